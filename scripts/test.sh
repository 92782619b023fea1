#!/usr/bin/env bash
# The whole test suite: unit, integration, golden, reference, broker and doc tests.
#
# The broker tests need a Kafka-protocol broker on 127.0.0.1:9092: if none answers
# there, this script starts one with scripts/kafka-up.sh (installing it the first
# time, into .tools/), on a fresh data directory, and stops it at the end. A broker
# that was already running is used and left running. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

port=9092
if python3 scripts/kafka-probe.py 127.0.0.1 "$port"; then
    echo "test: using the broker already on 127.0.0.1:$port"
else
    data_dir=$(mktemp -d -t tidemark-kafka.XXXXXX)
    stop_broker() {
        KAFKA_PORT=$port ./scripts/kafka-down.sh || true
        rm -rf "$data_dir"
    }
    trap stop_broker EXIT
    KAFKA_PORT=$port KAFKA_DATA_DIR=$data_dir ./scripts/kafka-up.sh
fi
export TIDEMARK_TEST_KAFKA=127.0.0.1:$port
# Without a broker the broker tests fail rather than skip.
export TIDEMARK_REQUIRE_KAFKA=1

cargo test --all-targets "$@"
cargo test --doc "$@"
# Every Nexmark query's output equals its hand-written yardstick's (small input, debug
# build: a correctness check, not a measurement).
BENCH_PROFILE=debug ./scripts/bench.sh --nexmark --quick
