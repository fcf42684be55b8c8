#!/usr/bin/env python3
"""A stand-in for pacemaker that fails on purpose, for faults the real one won't make on demand.

Usage (as training.command): [python3, pacemaker_faulty.py, FAULT]; pacemaker's own argument
(input.yaml) follows. Faults:
- crash: logs a few lines like pacemaker, leaves an interim potential, then dies with a
  traceback (exit code 1);
- silent: exits 0 without writing output_potential.yaml;
- hang: never finishes (a timeout must stop it).
"""

import sys
import time


def main() -> None:
    fault, input_file = sys.argv[1], sys.argv[2]
    print(f"I - Loading {input_file}... ", file=sys.stderr, flush=True)
    if fault == "crash":
        with open("interim_potential_0.yaml", "w") as handle:
            handle.write("elements: [Si]\n# half written\n")
        print("I - Fitting cycle #0 started", file=sys.stderr, flush=True)
        raise RuntimeError("fake pacemaker crashed on purpose (tensorpotential exploded)")
    if fault == "silent":
        return
    if fault == "hang":
        while True:
            time.sleep(1)
    raise SystemExit(f"unknown fault {fault!r}")


if __name__ == "__main__":
    main()
