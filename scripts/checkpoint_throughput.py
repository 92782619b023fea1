#!/usr/bin/env python3
"""What periodic checkpoints cost HTTP ingest throughput.

    scripts/checkpoint_throughput.py BINARY [--events 12000000] [--repeat 3]
                                     [--checkpoint-interval-ms 10000] [--threads 4] [--workers 2]
                                     [--batch-ms 100] [--max-out-of-orderness 5000]

Runs, interleaved (none, periodic, none, periodic, ...), REPEAT times each: `BINARY
serve` on a fresh data directory with one `window_agg` job (tumbling windows of 1000 ms,
1,000 keys, `idle_timeout_ms` null), `checkpoint_interval_ms` 0 ("none": only on demand)
or CHECKPOINT_INTERVAL_MS ("periodic"). THREADS client threads (urllib, one request at a
time each) post EVENTS events between them in NDJSON batches of 1,000, each thread on
its own range of keys; in every thread, batch b spans event time [b * BATCH_MS,
(b + 1) * BATCH_MS), so the threads advance through event time together and
`max_out_of_orderness` (default 5000 ms) absorbs their drift. The bodies are encoded
before the clock starts. Measured: events/s = EVENTS / time from the first request to
the last answer. After each run the job's status gives its input's counts and its last
checkpoint (`"checkpoint"`, whose id counts those taken: a periodic run must last longer
than the interval to take one; the run's line says so).

Also reported: `applied_s`, from the first request until every output's frontier has
reached the input's watermark (polled every 10 ms): answers come once a batch is in the
log, so a short run measures little but the log (on 2 cores shared with a compiler,
300K events were answered at about 700K events/s, 2M at about 245K events/s). EVENTS
defaults to 12M so that a run lasts well over the 10 s interval; their bodies take about
450 MB of memory and several seconds to encode, once for all runs.

Prints one JSON line per run, then one with the medians per mode and their ratio
(periodic / none). Target: at least 0.90.
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
import urllib.request

JOB = "t"
KEYS = 1000
BATCH = 1000


def call(base, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
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


def bodies(thread, threads, batches, batch_ms):
    """The NDJSON bodies thread `thread` posts: keys k{thread * KEYS / threads} onwards."""
    per_thread = KEYS // threads
    out = []
    for b in range(batches):
        out.append("".join(
            f'{{"key":"k{thread * per_thread + (b * BATCH + i) % per_thread}",'
            f'"ts":{b * batch_ms + i * batch_ms // BATCH},"value":{i % 100}}}\n'
            for i in range(BATCH)).encode())
    return out


def post_all(url, batch_bodies, start, finished, errors, index):
    try:
        start.wait()
        for body in batch_bodies:
            request = urllib.request.Request(url, data=body, method="POST",
                                             headers={"Content-Type": "application/x-ndjson"})
            with urllib.request.urlopen(request, timeout=600) as answer:
                answer.read()
        finished[index] = time.monotonic()
    except BaseException as error:  # reported by the main thread
        errors.append(error)


def run(args, interval_ms, work):
    """One run on a fresh server; answers a dict."""
    with tempfile.TemporaryDirectory() as data:
        config = os.path.join(data, "empty.toml")
        open(config, "w").write("")
        server, base = start_server(args.binary, config, os.path.join(data, "d"), args.workers)
        try:
            call(base, "/api/v1/jobs", {
                "name": JOB, "dataflow": "window_agg", "checkpoint_interval_ms": interval_ms,
                "params": {"window": {"tumbling": {"size": 1000}}, "idle_timeout_ms": None,
                           "max_out_of_orderness": args.max_out_of_orderness}})
            url = f"{base}/api/v1/jobs/{JOB}/inputs/events"
            start = threading.Barrier(len(work) + 1)
            finished, errors = [None] * len(work), []
            clients = [threading.Thread(target=post_all, args=(url, w, start, finished, errors, t))
                       for t, w in enumerate(work)]
            for client in clients:
                client.start()
            start.wait()
            began = time.monotonic()
            for client in clients:
                client.join()
            if errors:
                raise errors[0]
            elapsed = max(finished) - began
            while True:
                status = call(base, f"/api/v1/jobs/{JOB}")
                watermark = status["inputs"]["events"]["watermark"]
                if all(o["frontier"] >= watermark for o in status["outputs"].values()):
                    break
                time.sleep(0.01)
            applied = time.monotonic() - began
        finally:
            server.terminate()
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    events = sum(len(w) for w in work) * BATCH
    counts = status["inputs"]["events"]
    return {"events": events, "seconds": round(elapsed, 3), "events_per_s": round(events / elapsed),
            "applied_s": round(applied, 3),
            "input": {k: counts[k] for k in ("accepted", "late", "too_late", "rejected")},
            "checkpoint": status.get("checkpoint")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--events", type=int, default=12_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--checkpoint-interval-ms", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-ms", type=int, default=100, help="event time one batch of a thread spans")
    parser.add_argument("--max-out-of-orderness", type=int, default=5000)
    args = parser.parse_args()
    batches = max(1, round(args.events / (BATCH * args.threads)))
    work = [bodies(t, args.threads, batches, args.batch_ms) for t in range(args.threads)]
    modes = {"none": 0, "periodic": args.checkpoint_interval_ms}

    rates = {mode: [] for mode in modes}
    for rep in range(args.repeat):
        for mode, interval_ms in modes.items():
            print(f"  repetition {rep + 1}/{args.repeat}: {mode}", file=sys.stderr, flush=True)
            result = run(args, interval_ms, work)
            rates[mode].append(result["events_per_s"])
            line = {"mode": mode, "checkpoint_interval_ms": interval_ms, **result}
            if interval_ms and result["seconds"] * 1000 <= interval_ms:
                line["warning"] = "the run was shorter than the interval: raise --events"
            print(json.dumps(line), flush=True)

    medians = {mode: statistics.median(r) for mode, r in rates.items()}
    print(json.dumps({
        "events": batches * BATCH * args.threads, "threads": args.threads, "repeat": args.repeat,
        "checkpoint_interval_ms": args.checkpoint_interval_ms,
        "none_events_per_s": round(medians["none"]), "periodic_events_per_s": round(medians["periodic"]),
        "ratio": round(medians["periodic"] / medians["none"], 3), "target": ">= 0.90",
        "target_met": medians["periodic"] / medians["none"] >= 0.90}))


if __name__ == "__main__":
    main()
