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

stamp=.venv/.setup-stamp
wanted=$(cat pyproject.toml constraints.txt | sha1sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
    exit 0
fi
echo "creating .venv with pinned dependencies (first time: several minutes, ~8 GB)"
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build
.venv/bin/pip install -q "torch==2.13.0"
.venv/bin/pip install -q -c constraints.txt -e ".[ml,dev]"
echo "$wanted" > "$stamp"
