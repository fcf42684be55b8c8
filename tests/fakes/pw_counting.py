#!/usr/bin/env python3
"""A transparent wrapper around the real pw.x that logs every start (its run folder) to a file.

Usage (as dft.command): [python3, pw_counting.py, LOG_FILE, /usr/bin/pw.x]; pw.x's own
arguments follow. It replaces itself with pw.x, so timeouts and kills act on the real program.
"""

import os
import sys

log_file, real_program, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(log_file, "a") as log:
    log.write(os.getcwd() + "\n")
os.execv(real_program, [real_program, *rest])
