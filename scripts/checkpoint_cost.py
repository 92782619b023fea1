#!/usr/bin/env python3
"""What an incremental checkpoint costs against a full one (BENCHMARKS.md, issue 15).

    scripts/checkpoint_cost.py BINARY [--keys 1000000] [--new 1000]

Starts `BINARY serve` on a fresh data directory with a `window_agg` job (tumbling
windows of an hour, `checkpoint_interval_ms` 0), feeds one event per key over HTTP (that
many live windows: all open), waits until the outputs are up to date, takes a checkpoint
(the first: every window), feeds NEW more events on new keys, waits again, and takes
another. Prints one JSON line: both checkpoints' bytes and durations and their ratios.
"""

import argparse
import json
import os
import subprocess
import tempfile
import urllib.request


def call(base, path, body=None, ndjson=False):
    data = None
    headers = {"Content-Type": "application/json"}
    if body is not None:
        if ndjson:
            data = "\n".join(json.dumps(r) for r in body).encode()
            headers = {"Content-Type": "application/x-ndjson"}
        else:
            data = json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method="POST" if data is not None else "GET",
                                     headers=headers)
    with urllib.request.urlopen(request, timeout=600) as answer:
        return json.loads(answer.read() or b"null")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        config = os.path.join(data, "empty.toml")
        open(config, "w").write("")
        server = subprocess.Popen(
            [args.binary, "serve", "--config", config, "--data-dir", os.path.join(data, "d"),
             "--listen", "127.0.0.1:0", "--workers", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            base = "http://" + server.stdout.readline().strip().rsplit(" ", 1)[1]
            call(base, "/api/v1/jobs", {
                "name": "c", "dataflow": "window_agg", "checkpoint_interval_ms": 0,
                "params": {"window": {"tumbling": {"size": 3_600_000}}, "max_out_of_orderness": 1000,
                           "idle_timeout_ms": None}})
            batch = []
            for k in range(args.keys):
                batch.append({"key": f"k{k}", "ts": k % 10_000, "value": k % 100})
                if len(batch) == 5000:
                    call(base, "/api/v1/jobs/c/inputs/events", batch, ndjson=True)
                    batch = []
            if batch:
                call(base, "/api/v1/jobs/c/inputs/events", batch, ndjson=True)
            # An advance answers once the outputs reflect everything before it.
            call(base, "/api/v1/jobs/c/inputs/events/advance", {"watermark": 0})
            full = call(base, "/api/v1/jobs/c/checkpoint", {})
            call(base, "/api/v1/jobs/c/inputs/events/advance", {"watermark": 0})
            rows = call(base, "/api/v1/jobs/c")["outputs"]["windows"]["rows"]
            new = [{"key": f"n{i}", "ts": 9_999, "value": 1} for i in range(args.new)]
            call(base, "/api/v1/jobs/c/inputs/events", new, ndjson=True)
            call(base, "/api/v1/jobs/c/inputs/events/advance", {"watermark": 0})
            incremental = call(base, "/api/v1/jobs/c/checkpoint", {})
            print(json.dumps({
                "live_windows": rows, "new_events": args.new,
                "full": {"bytes": full["bytes"], "ms": full["duration_ms"]},
                "incremental": {"bytes": incremental["bytes"], "ms": incremental["duration_ms"]},
                "bytes_ratio": round(incremental["bytes"] / full["bytes"], 5),
                "time_ratio": round(incremental["duration_ms"] / max(full["duration_ms"], 1), 5)}))
        finally:
            server.terminate()
            server.wait(timeout=120)


if __name__ == "__main__":
    main()
