#!/usr/bin/env bash
# One idempotent setup step shared by `make run` and `make test`:
# pw.x from Debian when it is missing, and a .venv with the package and pinned dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pw.x >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "pw.x is missing and this is not root: install Quantum ESPRESSO yourself" >&2
        echo "(e.g. conda install -c conda-forge qe) and name it in dft.command" >&2
        exit 1
    fi
    echo "installing Quantum ESPRESSO (pw.x) and its pseudopotentials from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq quantum-espresso quantum-espresso-data
fi

# CPU builds by default; GPU=1 (`make setup GPU=1`) installs the GPU builds, GPU=0 goes back.
# Without GPU the venv keeps the kind it was built with. A change of kind rebuilds it from scratch.
stamp=.venv/.setup-stamp
built=$(cat .venv/.setup-gpu 2>/dev/null || echo 0)
gpu=${GPU:-$built}
case "$gpu" in 0 | 1) ;; *) echo "GPU must be 0 or 1, not '$gpu'" >&2; exit 2 ;; esac
wanted=$( (cat pyproject.toml constraints.txt constraints-gpu.txt; echo "gpu=$gpu") | sha1sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
    exit 0
fi
clear=()
if [ -d .venv ] && [ "$gpu" != "$built" ]; then
    clear=(--clear)
fi
pip_install() { .venv/bin/pip install -q -c constraints.txt "$@"; }
if [ "$gpu" = 1 ]; then
    echo "creating .venv with the GPU builds (first time: several minutes, ~8 GB)"
else
    echo "creating .venv with the CPU builds (first time: a few minutes, ~3.7 GB; GPU=1 for GPU builds)"
fi
python3 -m venv "${clear[@]}" .venv
.venv/bin/pip install -q --upgrade pip
# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build
.venv/bin/pip install -q "torch==2.13.0"
if [ "$gpu" = 1 ]; then
    pip_install -c constraints-gpu.txt -e ".[gpu,dev]"
else
    pip_install -e ".[ml,dev]"
    # tensorpotential asks for tensorflow[and-cuda]: ~4 GB of CUDA wheels a CPU never loads.
    # Everything else it needs came with the `ml` extra, plain tensorflow included.
    pip_install --no-deps tensorpotential
fi
.venv/bin/pip check
echo "$gpu" > .venv/.setup-gpu
echo "$wanted" > "$stamp"
