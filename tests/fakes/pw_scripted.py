#!/usr/bin/env python3
"""A stand-in for pw.x that replays recorded pw.x outputs, chosen by what the input asks for.

Usage (as dft.command): [python3, pw_scripted.py, SCRIPT.json]; pw.x's arguments follow.
SCRIPT.json is a list of rules {"when": regex, "stdout": file, "crash": file|null,
"exit": int, "outdir": bool}; the first rule whose regex matches the input text is played:
stdout is copied to stdout, crash (if any) to ./CRASH, and with "outdir" a charge density and
a wavefunction file are written to ./tmp as pw.x does. Every start appends one JSON line to
./fake.log: the OMP_NUM_THREADS it got, whether the input asked to start from files and
whether ./tmp already held a charge density when it started.
"""

import json
import os
import re
import sys
from pathlib import Path


def main() -> None:
    script = json.loads(Path(sys.argv[1]).read_text())
    rest = sys.argv[2:]
    text = Path(rest[rest.index("-in") + 1]).read_text()
    density = Path("tmp/pwscf.save/charge-density.dat")
    with open("fake.log", "a") as log:
        entry = {
            "omp": os.environ.get("OMP_NUM_THREADS"),
            "startingpot": "startingpot" in text,
            "startingwfc": "startingwfc" in text,
            "density_present": density.is_file(),
        }
        log.write(json.dumps(entry) + "\n")
    rule = next(rule for rule in script if re.search(rule["when"], text))
    if rule.get("crash"):
        Path("CRASH").write_text(Path(rule["crash"]).read_text())
    if rule.get("outdir"):
        density.parent.mkdir(parents=True, exist_ok=True)
        density.write_text("density")
        Path("tmp/pwscf.wfc1").write_text("wavefunctions")
    sys.stdout.write(Path(rule["stdout"]).read_text())
    sys.stdout.flush()
    sys.exit(rule["exit"])


if __name__ == "__main__":
    main()
