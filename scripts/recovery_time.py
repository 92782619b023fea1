#!/usr/bin/env python3
"""How long a job takes to recover after `kill -9`, with and without a checkpoint.

    scripts/recovery_time.py BINARY [--events 1000000,5000000] [--repeat 3]
                             [--after 1000] [--ms-per-event 10] [--workers 2]
                             [--retention-ms 60000]

For each event count N and each mode, REPEAT times (modes interleaved): starts `BINARY
serve` on a fresh data directory with a `window_agg` job (tumbling windows of 1000 ms,
1,000 keys, `checkpoint_interval_ms` 0, `idle_timeout_ms` null), feeds N events over
HTTP in NDJSON batches of 5,000 (key `k{i % 1000}`, ts `floor(i * MS_PER_EVENT)`),
advances the watermark past the last ts (every window final but the last: a small live
state) and waits until the outputs' frontier passes it. Mode `checkpoint` then takes a
checkpoint (POST .../checkpoint, its bytes recorded); mode `no_checkpoint` takes none,
so that the job has to replay its whole HTTP log. Then AFTER more events (never
checkpointed: replayed from the log in both modes), waits until the outputs reflect
them and notes every output's frontier and row count, and the rows of key `k0`. Then
`kill -9` (Popen.kill()) and `serve` again on the same data directory; measured: wall
time from spawning the new process until GET /api/v1/jobs/{job} shows every output's
frontier at least what it was before the kill (polled every 2 ms). Checked: the row
counts and the rows of key `k0` equal those before the kill.

Event time runs MS_PER_EVENT ms per event (default 10: 100 events, 100 keys per window)
and final windows stay RETENTION_MS (default a minute of event time, `--retention-ms`),
so every N >= 6,000 leaves the same retained windows (about 6,000 rows; an hour, the
API's default, leaves about 360,000 for every N >= 360,000): N then changes only the
history, not the state a checkpoint holds.

Prints one JSON line per (N, mode), medians over the repetitions, and a final one with
the recovery-time ratios of the largest N to the smallest, per mode. Target:
with a checkpoint, 5M events take at most 1.2x the time of 1M, and under 1 s.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

JOB = "r"
KEYS = 1000
BATCH = 5000
WINDOW_MS = 1000


def call(base, path, body=None, ndjson=None):
    """GET `path`, or POST `body` (JSON) or `ndjson` (bytes); the answer's JSON."""
    data, content_type = None, "application/json"
    if ndjson is not None:
        data, content_type = ndjson, "application/x-ndjson"
    elif body is not None:
        data = json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=600) as answer:
        return json.loads(answer.read() or b"null")


def start_server(binary, config, data_dir, workers):
    """Starts `serve`; returns the process and its base URL (from its first stdout line)."""
    server = subprocess.Popen(
        [binary, "serve", "--config", config, "--data-dir", data_dir, "--listen", "127.0.0.1:0",
         "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    if not line:
        server.kill()
        server.wait()
        raise RuntimeError(f"{binary} serve exited before listening (status {server.returncode})")
    # Keep draining stdout, so that the server never blocks on a full pipe.
    threading.Thread(target=server.stdout.read, daemon=True).start()
    return server, "http://" + line.strip().rsplit(" ", 1)[1]


def stop(server):
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def events(first, count, ms_per_event):
    """NDJSON of events first .. first+count-1."""
    return "".join(f'{{"key":"k{i % KEYS}","ts":{int(i * ms_per_event)},"value":{i % 100}}}\n'
                   for i in range(first, first + count)).encode()


def frontiers(status):
    return {name: output["frontier"] for name, output in status["outputs"].items()}


def wait_for_frontiers(base, minimum, timeout=600):
    """Polls the job's status every 2 ms until every output's frontier is at least
    `minimum` (an int, or a frontier per output); answers the status."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = call(base, f"/api/v1/jobs/{JOB}")
            seen = frontiers(status)
            wanted = minimum if isinstance(minimum, dict) else {name: minimum for name in seen}
            if seen and all(seen.get(name, -1) >= frontier for name, frontier in wanted.items()):
                return status
        except (urllib.error.URLError, ConnectionError, KeyError, TypeError, ValueError):
            pass  # not listening yet, job not restored yet (404/503), ...
        if time.monotonic() > deadline:
            raise RuntimeError(f"outputs' frontiers did not reach {minimum} within {timeout} s")
        time.sleep(0.002)


def run(args, n, mode):
    """One measurement; answers a dict."""
    with tempfile.TemporaryDirectory() as data:
        config = os.path.join(data, "empty.toml")
        open(config, "w").write("")
        data_dir = os.path.join(data, "d")
        server, base = start_server(args.binary, config, data_dir, args.workers)
        restarted = None
        try:
            call(base, "/api/v1/jobs", {
                "name": JOB, "dataflow": "window_agg", "checkpoint_interval_ms": 0,
                "params": {"window": {"tumbling": {"size": WINDOW_MS}}, "idle_timeout_ms": None,
                           "retention": args.retention_ms}})
            for first in range(0, n, BATCH):
                call(base, f"/api/v1/jobs/{JOB}/inputs/events",
                     ndjson=events(first, min(BATCH, n - first), args.ms_per_event))
            last_ts = int((n - 1) * args.ms_per_event)
            call(base, f"/api/v1/jobs/{JOB}/inputs/events/advance", {"watermark": last_ts + 1})
            wait_for_frontiers(base, last_ts + 1)
            checkpoint = call(base, f"/api/v1/jobs/{JOB}/checkpoint", {}) if mode == "checkpoint" else None

            answer = call(base, f"/api/v1/jobs/{JOB}/inputs/events",
                          ndjson=events(n, args.after, args.ms_per_event))
            if answer["accepted"] != args.after:
                raise RuntimeError(f"events after the checkpoint not all accepted: {answer}")
            before = wait_for_frontiers(base, answer["watermark"])
            f_old = frontiers(before)
            rows_old = {name: output["rows"] for name, output in before["outputs"].items()}
            k0_old = call(base, f"/api/v1/jobs/{JOB}/outputs/windows?key=k0")["rows"]

            server.kill()
            server.wait()
            started = time.monotonic()
            restarted, base = start_server(args.binary, config, data_dir, args.workers)
            listening = time.monotonic() - started
            after = wait_for_frontiers(base, f_old)
            recovered = time.monotonic() - started

            rows_new = {name: output["rows"] for name, output in after["outputs"].items()}
            k0_new = call(base, f"/api/v1/jobs/{JOB}/outputs/windows?key=k0")["rows"]
            key = lambda row: json.dumps(row, sort_keys=True)
            return {
                "recovery_s": recovered, "listening_s": listening,
                "checkpoint_bytes": checkpoint["bytes"] if checkpoint else 0,
                "checkpoint_ms": checkpoint["duration_ms"] if checkpoint else 0,
                "checkpoint_before_kill": before.get("checkpoint"),
                "rows": rows_old, "frontiers": f_old,
                "rows_ok": rows_new == rows_old and sorted(map(key, k0_new)) == sorted(map(key, k0_old)),
            }
        finally:
            server.kill()
            server.wait()
            if restarted is not None:
                stop(restarted)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--events", default="1000000,5000000", help="comma-separated event counts")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--after", type=int, default=1000, help="events fed after the checkpoint")
    parser.add_argument("--ms-per-event", type=float, default=10,
                        help="event time between consecutive events (0.01: 100 events a ms)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--retention-ms", type=int, default=60_000,
                        help="how long final windows stay (the live state: about 100 rows a second of it)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.events.split(",")]
    modes = ("checkpoint", "no_checkpoint")

    medians, all_ok = {}, True
    for n in sizes:
        runs = {mode: [] for mode in modes}
        for rep in range(args.repeat):
            for mode in modes:
                print(f"  [{n} events] repetition {rep + 1}/{args.repeat}: {mode}", file=sys.stderr, flush=True)
                runs[mode].append(run(args, n, mode))
        for mode in modes:
            results = runs[mode]
            medians[n, mode] = statistics.median(r["recovery_s"] for r in results)
            print(json.dumps({
                "events": n, "mode": mode, "repeat": args.repeat,
                "recovery_s": round(medians[n, mode], 4),
                "listening_s": round(statistics.median(r["listening_s"] for r in results), 4),
                "recovery_s_all": [round(r["recovery_s"], 4) for r in results],
                "checkpoint_bytes": statistics.median(r["checkpoint_bytes"] for r in results),
                "checkpoint_ms": statistics.median(r["checkpoint_ms"] for r in results),
                "checkpoint_before_kill": results[-1]["checkpoint_before_kill"],
                "rows": results[-1]["rows"], "frontiers": results[-1]["frontiers"],
                "rows_ok": all(r["rows_ok"] for r in results)}), flush=True)
            all_ok = all_ok and all(r["rows_ok"] for r in results)

    small, large = min(sizes), max(sizes)
    label = f"{large}/{small}"
    summary = {"ratio": label}
    for mode in modes:
        summary[mode] = round(medians[large, mode] / medians[small, mode], 3)
    summary["target"] = "checkpoint ratio <= 1.2 and recovery < 1 s"
    summary["target_met"] = summary["checkpoint"] <= 1.2 and medians[large, "checkpoint"] < 1.0
    summary["rows_ok"] = all_ok
    print(json.dumps(summary))
    if not all_ok:
        sys.exit("recovery_time.py: a recovered job's rows differ from those before the kill")


if __name__ == "__main__":
    main()
