#!/usr/bin/env bash
# Stops the broker that scripts/kafka-up.sh started on ${KAFKA_PORT:-9092}.
# Idempotent: does nothing if none is running. Data is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

port=${KAFKA_PORT:-9092}
pid_file=.tools/kafka-$port.pid
if [[ ! -f $pid_file ]]; then
    echo "kafka: no broker started by kafka-up.sh on port $port"
    exit 0
fi
pid=$(cat "$pid_file")
if kill -0 "$pid" 2>/dev/null; then
    kill -CONT "$pid" 2>/dev/null || true  # a paused broker cannot act on TERM
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$pid_file"
echo "kafka: stopped (port $port)"
