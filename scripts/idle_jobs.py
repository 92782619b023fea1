#!/usr/bin/env python3
"""200 idle jobs on one server: its RSS and idle CPU (BENCHMARKS.md, issue 15).

    scripts/idle_jobs.py BINARY [--jobs 200] [--workers 2] [--seconds 20]

Starts `BINARY serve` on a fresh data directory, creates JOBS `window_agg` jobs fed
over HTTP, posts one record to each (so that every input follows the wall clock),
lets the server sit for SECONDS, and prints one JSON line: RSS (MiB, VmRSS), idle CPU
(cores, from /proc/PID/stat over the quiet period) and threads.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
import urllib.request


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.status


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        config = os.path.join(data, "empty.toml")
        open(config, "w").write("")
        server = subprocess.Popen(
            [args.binary, "serve", "--config", config, "--data-dir", os.path.join(data, "d"),
             "--listen", "127.0.0.1:0", "--workers", str(args.workers), "--max-jobs", str(args.jobs + 10)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            line = server.stdout.readline()
            base = "http://" + line.strip().rsplit(" ", 1)[1]
            for n in range(args.jobs):
                call(base, "POST", "/api/v1/jobs", {
                    "name": f"idle-{n}", "dataflow": "window_agg",
                    "params": {"window": {"tumbling": {"size": 60000}}, "idle_timeout_ms": 1000}})
                call(base, "POST", f"/api/v1/jobs/idle-{n}/inputs/events",
                     [{"key": "k", "ts": int(time.time() * 1000), "value": 1}])
            time.sleep(3)
            before, start = cpu_seconds(server.pid), time.monotonic()
            time.sleep(args.seconds)
            cores = (cpu_seconds(server.pid) - before) / (time.monotonic() - start)
            print(json.dumps({"jobs": args.jobs, "workers": args.workers,
                              "rss_mib": round(status(server.pid, "VmRSS") / 1024, 1),
                              "idle_cores": round(cores, 3), "threads": status(server.pid, "Threads")}))
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
