#!/usr/bin/env python3
"""A stand-in for pw.x that misbehaves on purpose, chosen by the number of atoms.

Usage (as dft.command): [python3, pw_faulty.py, "1=hang,3=crash,4=garbage", /usr/bin/pw.x]
pw.x's own arguments (-in pw.in) follow. Structures whose atom count has no fault run the
real program. Faults: hang (spawns a child and waits forever, so a timeout must kill the
whole process group; child pid in child.pid), crash (partial output, then SIGSEGV),
garbage (random text, exit 0).
"""

import os
import random
import re
import signal
import subprocess
import sys
import time


def atom_count(input_path: str) -> int:
    with open(input_path) as handle:
        text = handle.read()
    return int(re.search(r"nat\s*=\s*(\d+)", text).group(1))


def main() -> None:
    faults = dict(item.split("=") for item in sys.argv[1].split(","))
    real_program, rest = sys.argv[2], sys.argv[3:]
    input_path = rest[rest.index("-in") + 1]
    fault = faults.get(str(atom_count(input_path)))
    if fault == "hang":
        child = subprocess.Popen(["sleep", "1000"])
        with open("child.pid", "w") as handle:
            handle.write(str(child.pid))
        while True:
            time.sleep(1)
    if fault == "crash":
        print("     Program PWSCF v.6.7 starts on ...\n     iteration #  1", flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
    if fault == "garbage":
        rng = random.Random(0)
        for _ in range(200):
            print("".join(rng.choice("abc!@#%&*()0123456789 \t") for _ in range(60)))
        return
    os.execv(real_program, [real_program, *rest])


if __name__ == "__main__":
    main()
