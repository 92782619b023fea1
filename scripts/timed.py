#!/usr/bin/env python3
"""Run a command and record its wall time, CPU time and peak memory.

    scripts/timed.py TIME_FILE STDOUT_FILE STDERR_FILE -- COMMAND [ARG ...]

The command's standard output and error go to the two files; TIME_FILE gets one
line "wall_s user_s sys_s max_rss_kb" (the fields of GNU time's '%e %U %S %M', so
that benchmarks need no package beyond python3). The peak RSS counts the child from
its fork, so it includes the interpreter's image before the exec (~13 MB): use it
for large figures only. Exits with the command's status.
"""

import os
import subprocess
import sys
import time


def main(argv):
    if len(argv) < 6 or argv[4] != "--":
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    time_file, out_file, err_file, command = argv[1], argv[2], argv[3], argv[5:]
    with open(out_file, "wb") as out, open(err_file, "wb") as err:
        start = time.monotonic()
        try:
            child = subprocess.Popen(command, stdout=out, stderr=err)
        except OSError as e:
            print(f"timed: cannot run {command[0]}: {e}", file=sys.stderr)
            return 127
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.monotonic() - start
    with open(time_file, "w", encoding="utf-8") as f:
        f.write(f"{wall:.2f} {usage.ru_utime:.2f} {usage.ru_stime:.2f} {usage.ru_maxrss}\n")
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
