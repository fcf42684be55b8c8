#!/usr/bin/env bash
# Run the whole test suite. pytest exits 5 when it collected no test: that is a broken
# suite, so it is reported as a failure on purpose, not passed through by accident.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: treating that as a failure" >&2
    exit 1
fi
exit "$rc"
