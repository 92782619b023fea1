#!/usr/bin/env bash
# Starts a local Kafka-protocol broker (tansu, SQLite storage) on
# 127.0.0.1:${KAFKA_PORT:-9092} and returns once it serves metadata.
#
# Idempotent: installs tansu into .tools/tansu only if it is missing (a one-off
# build of about 9 minutes on 2 cores), and does nothing if a broker already
# answers on the port. Data lives in ${KAFKA_DATA_DIR:-.tools/kafka-data/PORT}
# and survives a broker restart. `scripts/kafka-down.sh` stops it.
#
# Environment: KAFKA_PORT (default 9092), KAFKA_DATA_DIR, TANSU_BIN (use this
# binary instead of installing one), KAFKA_ADVERTISED_PORT (the port clients are
# told to connect to, default KAFKA_PORT: a proxy in front of the broker).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

port=${KAFKA_PORT:-9092}
advertised=${KAFKA_ADVERTISED_PORT:-$port}
data_dir=${KAFKA_DATA_DIR:-.tools/kafka-data/$port}
pid_file=$root/.tools/kafka-$port.pid
log_file=$root/.tools/kafka-$port.log
probe() { python3 scripts/kafka-probe.py 127.0.0.1 "$port"; }

if probe; then
    echo "kafka: a broker already serves 127.0.0.1:$port"
    exit 0
fi

mkdir -p .tools
tansu=${TANSU_BIN:-$root/.tools/tansu/bin/tansu}
if [[ ! -x $tansu ]]; then
    # One install at a time, even when several scripts race here.
    exec 9>.tools/tansu.install.lock
    flock 9
    if [[ ! -x $tansu ]]; then
        echo "kafka: installing tansu 0.6.0 into .tools/tansu (one-off, several minutes)"
        cargo install tansu --version 0.6.0 --locked --features libsql --root .tools/tansu --quiet
    fi
    flock -u 9
fi

mkdir -p "$data_dir"
data_dir=$(cd "$data_dir" && pwd)
echo "kafka: starting tansu on 127.0.0.1:$port (data in $data_dir, log in $log_file)"
# tansu takes the SQLite path relative to its working directory (even a leading
# `/` is dropped), so it runs in the data directory. setsid: its own session, so
# that signals meant for whoever started it (Ctrl-C in a terminal) do not stop it.
setsid bash -c 'cd "$1" && shift && exec "$@"' _ "$data_dir" "$tansu" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$advertised" \
    --storage-engine "sqlite://tansu.db" \
    >"$log_file" 2>&1 </dev/null &
echo $! >"$pid_file"

for _ in $(seq 1 300); do
    if probe; then
        echo "kafka: ready on 127.0.0.1:$port"
        exit 0
    fi
    if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
        echo "kafka: tansu exited; last lines of $log_file:" >&2
        tail -n 20 "$log_file" >&2
        rm -f "$pid_file"
        exit 1
    fi
    sleep 0.1
done
echo "kafka: no metadata from 127.0.0.1:$port after 30 s; see $log_file" >&2
exit 1
