#!/usr/bin/env bash
# Build a serial LAMMPS (4 Feb 2025) with the ML-PACE package from package registries alone:
#   - LAMMPS: Debian trixie's source package lammps 20250204+dfsg.1 (fetched with apt-get into a
#     private apt state folder; the system's apt configuration is not touched; no root needed);
#   - PACE library: the sources python-ace ships in its PyPI sdist under lib/ace (ACE 2024.7.4,
#     newer than the tag v.2023.11.25.fix2 that LAMMPS's ML-PACE.cmake would download from
#     GitHub; LAMMPS's ML-PACE sources compile against it with EXTRA_C_PROJECTIONS and
#     COMPUTE_B_GRAD defined).
# Needs: apt-get, pip with a recent setuptools (the project's .venv; PYTHON=... to choose),
# cmake >= 3.16, a C++17 compiler, zlib headers. The work folder (printed first) is kept.
#
#   scripts/build-lammps.sh [PREFIX]          # installs PREFIX/bin/lmp (default: ./lammps)
#   STAGE=configure scripts/build-lammps.sh   # stop after cmake configure and the PACE library
#
# Then: PATH=PREFIX/bin:$PATH, or inference.lammps_command: [PREFIX/bin/lmp].
# A full build took about 10 minutes with JOBS=1 on a 2-core Debian bookworm machine (JOBS=N
# for more parallelism); that binary passed tests/integration/test_lammps.py (gamma, energy
# and force parity with pyace). WORK=folder keeps and reuses downloads and the build tree.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=$(realpath -m "${1:-lammps}")
jobs=${JOBS:-$(nproc)}
stage=${STAGE:-all}
version=20250204+dfsg.1
orig=lammps_${version}.orig.tar.xz
work=${WORK:-$(mktemp -d -t build-lammps.XXXXXX)}
echo "building in $work, installing to $prefix"
cd "$work"

# 1. LAMMPS sources: Debian trixie's orig tarball, checked against the Sources index.
mkdir -p apt/lists/partial apt/cache/archives/partial
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    > apt/sources.list
apt_opts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
if [ ! -f "$orig" ]; then
    apt-get "${apt_opts[@]}" -qq update
    # The .dsc may be missing on a mirror; only the orig tarball is needed (checked below).
    apt-get "${apt_opts[@]}" -qq --download-only source "lammps=${version}-2" || true
fi
wanted=$(apt-cache "${apt_opts[@]}" showsrc lammps \
    | sed -n '/^Checksums-Sha256:/,/^[A-Z]/p' | awk -v f="$orig" '$3 == f {print $1}' | head -1)
[ -n "$wanted" ] || { echo "no checksum for $orig in trixie's Sources" >&2; exit 1; }
echo "$wanted  $orig" | sha256sum -c -
[ -d lammps-4Feb2025 ] || tar xJf "$orig"

# 2. PACE library sources from python-ace's sdist, laid out as LAMMPS's LOCAL_ML-PACE expects:
#    a folder whose CMakeLists.txt defines the target `pace`.
# pip prepares the sdist's metadata, which needs a recent setuptools: the project's .venv has one
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=python3
pip=("$python" -m pip)
if [ ! -d python_ace-0.4.0rc1 ]; then
    "${pip[@]}" download -q --no-deps --no-binary :all: --no-build-isolation -d sdist \
        "python-ace==0.4.0rc1"
    tar xzf sdist/python_ace-0.4.0rc1.tar.gz
fi
pace=$work/libpace
mkdir -p "$pace"
ln -sfn "$work/python_ace-0.4.0rc1/lib/ace" "$pace/ace"
cat > "$pace/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(libpace CXX)
set(ACE ${CMAKE_CURRENT_LIST_DIR}/ace)
set(YAML_BUILD_SHARED_LIBS OFF CACHE BOOL "" FORCE)
set(YAML_CPP_BUILD_TOOLS OFF CACHE BOOL "" FORCE)
set(YAML_CPP_BUILD_TESTS OFF CACHE BOOL "" FORCE)
add_subdirectory(${ACE}/ace-evaluator/lib/yaml-cpp build-yaml-cpp)
set_target_properties(yaml-cpp-pace PROPERTIES POSITION_INDEPENDENT_CODE ON)
find_package(ZLIB REQUIRED)
file(GLOB EVALUATOR_SOURCES ${ACE}/ace-evaluator/src/ace-evaluator/*.cpp)
set(B_BASIS_SOURCES ace_b_basis ace_b_basisfunction ace_b_evaluator ace_clebsch_gordan
    ace_couplings ace_spherical_polar ace_yaml_input)
list(TRANSFORM B_BASIS_SOURCES PREPEND ${ACE}/src/ace/)
list(TRANSFORM B_BASIS_SOURCES APPEND .cpp)
add_library(pace STATIC ${EVALUATOR_SOURCES} ${B_BASIS_SOURCES} ${ACE}/utils/cnpy/cnpy.cpp)
set_target_properties(pace PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(pace PUBLIC ${ACE}/ace-evaluator/src ${ACE}/src ${ACE}/utils
    ${ACE}/utils/wigner-cpp/include ${ACE}/ace-evaluator/lib/yaml-cpp/include)
target_compile_definitions(pace PUBLIC EXTRA_C_PROJECTIONS COMPUTE_B_GRAD)
target_link_libraries(pace PRIVATE yaml-cpp-pace ZLIB::ZLIB)
EOF

# 3. Configure (serial, shared liblammps found through RPATH), build, install.
mkdir -p lammps-4Feb2025/build
cd lammps-4Feb2025/build
cmake ../cmake -D CMAKE_BUILD_TYPE=Release -D CMAKE_INSTALL_PREFIX="$prefix" \
    -D CMAKE_INSTALL_RPATH='$ORIGIN/../lib' -D CMAKE_DISABLE_FIND_PACKAGE_MPI=ON \
    -D BUILD_MPI=off -D BUILD_SHARED_LIBS=on -D PKG_ML-PACE=on -D "LOCAL_ML-PACE=$pace" \
    -D DOWNLOAD_POTENTIALS=off -D BUILD_TOOLS=off -D WITH_JPEG=off -D WITH_PNG=off \
    -D WITH_FFMPEG=off >cmake.log
echo "configured (log: $PWD/cmake.log)"
cmake --build . --target pace -j "$jobs"
if [ "$stage" = configure ]; then
    echo "STAGE=configure: stopped after configuring LAMMPS and building the PACE library"
    exit 0
fi
cmake --build . -j "$jobs"
cmake --install . >/dev/null
"$prefix/bin/lmp" -h | grep -A2 "Installed packages"
echo "done: $prefix/bin/lmp"
