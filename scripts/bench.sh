#!/usr/bin/env bash
# window_agg benchmark: `tidemark run window_agg` against a hand-written
# single-thread Rust program doing the same work (benches/yardstick/window_agg.rs),
# both measured in the same run. See BENCHMARKS.md for what is measured and why.
#
#   scripts/bench.sh           # 1M and 5M events, 5 repetitions each, medians
#   scripts/bench.sh --quick   # smoke check: 200k events, 1 repetition
#   scripts/bench.sh --serve   # the service: latency and throughput (benches/serve/load.rs)
#   scripts/bench.sh --serve-security [serve_load options]  # what tokens and limits cost: the
#                              # same against a plain and a secure server, interleaved
#                              # (benches/serve/security.rs; default --seconds 10 --repeat 3)
#   scripts/bench.sh --kafka   # Kafka -> window_agg throughput (benches/kafka/load.rs)
#   scripts/bench.sh --loops   # kmeans re-convergence, logreg training cost (benches/kmeans/load.rs)
#   scripts/bench.sh --nexmark [--quick]  # Nexmark queries vs benches/yardstick/nexmark.rs, outputs checked
#   scripts/bench.sh --idle-jobs [--jobs N]  # 200 idle jobs: server RSS and idle CPU (scripts/idle_jobs.py)
#   scripts/bench.sh --recovery [options]  # recovery time after kill -9, 1M and 5M events, with and
#                              # without a checkpoint (scripts/recovery_time.py)
#   scripts/bench.sh --checkpoint-throughput [options]  # HTTP ingest with checkpoints every 10 s
#                              # against none, alternating (serve_load checkpoints, benches/serve/checkpoints.rs)
#   scripts/bench.sh --micro   # Criterion micro-benchmarks of the hot operators (benches/operators.rs)
#
# BENCH_PROFILE=debug uses debug builds (scripts/test.sh runs `--nexmark --quick` so, as
# a check that every query's output equals its yardstick's; its figures mean nothing).
#
# Needs GNU time (/usr/bin/time) and python3. Data and outputs go to bench-data/
# (gitignored); the measurements also go to bench-data/results-window_agg.txt
# (results-window_agg-quick.txt with --quick).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

declare -A events_of=([200k]=200000 [1m]=1000000 [5m]=5000000)
ensure_events() { # size: generates bench-data/events-<size>.ndjson if missing
    local data=bench-data/events-$1.ndjson
    if [[ ! -s $data ]]; then
        echo "generating $data"
        bench-data/bin/gen_events --events "${events_of[$1]}" --keys 1000 --seed 42 "$data.tmp"
        mv "$data.tmp" "$data"
    fi
}

# Builds the release binaries and copies them (tidemark and the named examples) to
# bench-data/bin, so that a concurrent `cargo build` cannot swap a binary mid-run.
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# The median over the runs in a time file ("wall user sys max_rss_kb" lines) of an awk
# expression of their fields, e.g. '$2 + $3' for CPU seconds.
median_of() { # time-file awk-expression
    awk "{ print $2 }" "$1" | median
}

profile=${BENCH_PROFILE:-release}
build() { # example...
    if [[ $profile == debug ]]; then cargo build --bin tidemark --examples; else cargo build --release --bin tidemark --examples; fi
    mkdir -p bench-data/bin
    local out=${CARGO_TARGET_DIR:-target}/$profile
    cp "$out/tidemark" "${@/#/$out/examples/}" bench-data/bin/
}

# Runs a command with its output and errors to files, and writes "wall user sys
# max_rss_kb" to a file: with GNU time when installed, else with scripts/timed.py
# (python3 only, as scripts/test.sh needs; its peak RSS includes ~13 MB of the
# interpreter's image before the exec).
timed() { # time-file out-file err-file command...
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -f '%e %U %S %M' -o "$1" "${@:4}" >"$2" 2>"$3"
    else
        python3 scripts/timed.py "$1" "$2" "$3" -- "${@:4}"
    fi
}

# Nexmark: every query through `tidemark run` (1 worker; also 2 workers unless quick)
# and through the yardstick, on the same pre-generated events; outputs compared; CPU
# time and peak RSS per run.
nexmark() { # quick(0|1)
    local quick=$1 sizes reps results rate programs
    local -A events_of=([50k]=50000 [1m]=1000000 [2m]=2000000)
    if ((quick)); then sizes=(50k); reps=1; rate=1000; results=bench-data/results-nexmark-quick.txt; programs=(yardstick tidemark)
    else sizes=(1m 2m); reps=3; rate=10000; results=bench-data/results-nexmark.txt; programs=(yardstick tidemark tidemark-w2); fi
    build nexmark_gen yardstick_nexmark
    local queries=(q0 q1 q2 q3 q4 q5 q7 q8 q9)
    local -A output_of=([q0]=bids [q1]=bids [q2]=bids [q3]=sellers [q4]=categories [q5]=hot [q7]=highest [q8]=new_users [q9]=winners)
    for size in "${sizes[@]}"; do
        local data=bench-data/nexmark-$size-r$rate.ndjson
        if [[ ! -s $data ]]; then
            echo "generating $data" >&2
            bench-data/bin/nexmark_gen --events "${events_of[$size]}" --rate "$rate" "$data.tmp"
            mv "$data.tmp" "$data"
        fi
    done
    : >"$results"
    say() { printf '%s\n' "$*" | tee -a "$results"; }
    say "Nexmark benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $profile build"
    say "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM"
    local rev
    rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    git diff --quiet HEAD -- src dataflows Cargo.toml Cargo.lock 2>/dev/null || rev="$rev + uncommitted changes"
    say "tidemark: $rev, $(rustc --version)"
    say "events: nexmark crate, base time 2026-01-01, $rate events per second of event time; repetitions: $reps, medians"
    say ""
    for size in "${sizes[@]}"; do
        local data=bench-data/nexmark-$size-r$rate.ndjson
        for q in "${queries[@]}"; do
            for program in "${programs[@]}"; do
                rm -f "bench-data/nexmark-time-$size-$q-$program.txt"
            done
            for ((rep = 1; rep <= reps; rep++)); do
                for program in "${programs[@]}"; do
                    echo "  [$size] $q repetition $rep/$reps: $program" >&2
                    local base=bench-data/nexmark-run-$size-$q-$program
                    local -a cmd
                    case $program in
                        yardstick) cmd=(bench-data/bin/yardstick_nexmark "$q" "$data") ;;
                        tidemark) cmd=(bench-data/bin/tidemark run "nexmark_$q" --input "events=$data" --workers 1) ;;
                        tidemark-w2) cmd=(bench-data/bin/tidemark run "nexmark_$q" --input "events=$data" --workers 2) ;;
                    esac
                    if ! timed "$base.time" "$base.out" "$base.err" "${cmd[@]}"; then
                        echo "bench.sh: FAILED: ${cmd[*]}" >&2
                        cat "$base.time" "$base.err" >&2
                        exit 1
                    fi
                    tail -n 1 "$base.time" >>"bench-data/nexmark-time-$size-$q-$program.txt"
                done
            done
            for program in "${programs[@]:1}"; do
                local compared=bench-data/nexmark-compare-$size-$q-$program.txt
                if ! python3 scripts/compare_rows.py "bench-data/nexmark-run-$size-$q-yardstick.out" \
                    "bench-data/nexmark-run-$size-$q-$program.out" --output "${output_of[$q]}" >"$compared" 2>&1; then
                    cat "$compared" >&2
                    echo "bench.sh: OUTPUT MISMATCH: nexmark_$q ($program) differs from its yardstick on $data" >&2
                    exit 1
                fi
                if grep -q '"output":"dead_letter"' "bench-data/nexmark-run-$size-$q-$program.out"; then
                    echo "bench.sh: nexmark_$q ($program) dead-lettered events of $data" >&2
                    exit 1
                fi
                say "[$size] $q $program: $(cat "$compared")"
            done
        done
    done
    say ""
    say "| query | events | tidemark CPU s | tidemark events per CPU-s | yardstick CPU s | yardstick events per CPU-s | CPU ratio to yardstick | tidemark peak RSS MiB | yardstick peak RSS MiB |"
    say "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    local -A rss_of
    for size in "${sizes[@]}"; do
        for q in "${queries[@]}"; do
            local t=bench-data/nexmark-time-$size-$q-tidemark.txt y=bench-data/nexmark-time-$size-$q-yardstick.txt
            local tcpu ycpu trss yrss
            tcpu=$(median_of "$t" '$2 + $3')
            ycpu=$(median_of "$y" '$2 + $3')
            trss=$(median_of "$t" '$4')
            yrss=$(median_of "$y" '$4')
            rss_of[$size,$q]=$trss
            say "$(awk -v q="$q" -v e="${events_of[$size]}" -v t="$tcpu" -v y="$ycpu" -v tr="$trss" -v yr="$yrss" 'BEGIN {
                printf "| %s | %d | %.2f | %.0f | %.2f | %.0f | %.2f | %.1f | %.1f |", q, e, t, (t > 0 ? e / t : 0), y, (y > 0 ? e / y : 0), (y > 0 ? t / y : 0), tr / 1024, yr / 1024 }')"
        done
    done
    if ((!quick)); then
        say ""
        say "Two workers (both cores): wall time against one worker's, same run."
        say ""
        say "| query | events | 1 worker wall s | 2 workers wall s | speed-up | 2 workers events per wall-s | 2 workers CPU s | 2 workers peak RSS MiB |"
        say "|---|---:|---:|---:|---:|---:|---:|---:|"
        for size in "${sizes[@]}"; do
            for q in "${queries[@]}"; do
                local t1=bench-data/nexmark-time-$size-$q-tidemark.txt t2=bench-data/nexmark-time-$size-$q-tidemark-w2.txt
                local wall1 wall2 cpu2 rss2
                wall1=$(median_of "$t1" '$1')
                wall2=$(median_of "$t2" '$1')
                cpu2=$(median_of "$t2" '$2 + $3')
                rss2=$(median_of "$t2" '$4')
                say "$(awk -v q="$q" -v e="${events_of[$size]}" -v a="$wall1" -v b="$wall2" -v c="$cpu2" -v r="$rss2" 'BEGIN {
                    printf "| %s | %d | %.2f | %.2f | %.2f | %.0f | %.2f | %.1f |", q, e, a, b, (b > 0 ? a / b : 0), (b > 0 ? e / b : 0), c, r / 1024 }')"
            done
        done
        say ""
        say "tidemark peak RSS from 1M to 2M events:"
        for q in "${queries[@]}"; do
            say "$(awk -v q="$q" -v a="${rss_of[1m,$q]}" -v b="${rss_of[2m,$q]}" 'BEGIN {
                printf "  %-4s %7.1f MiB -> %7.1f MiB  (x%.2f)", q, a / 1024, b / 1024, b / a }')"
        done
    fi
    echo "results written to $results" >&2
}

quick=0
case "${1:-}" in
    "") ;;
    --quick) quick=1 ;;
    --serve)
        # The service: ingest-to-subscriber latency and HTTP ingest throughput
        # (benches/serve/load.rs; see BENCHMARKS.md).
        build serve_load
        bench-data/bin/serve_load --binary bench-data/bin/tidemark "${@:2}" | tee bench-data/results-serve.txt
        exit 0 ;;
    --serve-security)
        # What tokens and limits cost: the --serve latency (10K events/s unless --rates)
        # and throughput against `tidemark serve` and `tidemark serve --tokens FILE
        # --rate-limit 1000000 --max-subscribers 1024`, fresh servers, order alternating
        # (benches/serve/security.rs; see BENCHMARKS.md).
        build serve_load
        results=bench-data/results-serve-security.txt
        rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
        git diff --quiet HEAD -- src benches Cargo.toml Cargo.lock 2>/dev/null || rev="$rev + uncommitted changes"
        {
            echo "serve security benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), tidemark $rev"
            echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
            echo
        } | tee "$results"
        bench-data/bin/serve_load security --binary bench-data/bin/tidemark "${@:2}" | tee -a "$results"
        exit 0 ;;
    --kafka)
        # Kafka -> window_agg: with librdkafka's in-memory mock cluster (what tidemark
        # itself sustains), then with tansu on 127.0.0.1:9092 (a real broker on disk,
        # started here if none runs, and stopped again). See BENCHMARKS.md.
        build kafka_load gen_events
        ensure_events 1m
        ensure_events 200k
        if ! python3 scripts/kafka-probe.py 127.0.0.1 9092; then
            trap './scripts/kafka-down.sh' EXIT
            ./scripts/kafka-up.sh
        fi
        results=bench-data/results-kafka.txt
        {
            echo "Kafka -> window_agg benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), tidemark $(git rev-parse --short HEAD 2>/dev/null)"
            echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
            echo
        } | tee "$results"
        bench-data/bin/kafka_load --binary bench-data/bin/tidemark --mock --data bench-data/events-1m.ndjson --reps 5 | tee -a "$results"
        echo | tee -a "$results"
        bench-data/bin/kafka_load --binary bench-data/bin/tidemark --data bench-data/events-200k.ndjson --reps 3 | tee -a "$results"
        exit 0 ;;
    --nexmark)
        case "${2:-}" in
            "") nexmark 0 ;;
            --quick) nexmark 1 ;;
            *) echo "usage: scripts/bench.sh --nexmark [--quick]" >&2; exit 2 ;;
        esac
        exit 0 ;;
    --micro)
        # Criterion micro-benchmarks of the hot operators, about a minute of measuring;
        # extra arguments go to Criterion (a name filter, `--save-baseline main`,
        # `--baseline main`). See BENCHMARKS.md.
        mkdir -p bench-data
        cargo bench --bench operators -- "${@:2}" | tee bench-data/results-micro.txt
        exit 0 ;;
    --idle-jobs)
        # 200 idle jobs on one server: RSS and idle CPU (scripts/idle_jobs.py; options
        # --jobs N --workers N --seconds S). See BENCHMARKS.md.
        build
        python3 scripts/idle_jobs.py bench-data/bin/tidemark "${@:2}" | tee bench-data/results-idle-jobs.txt
        exit 0 ;;
    --recovery)
        # Recovery time after kill -9 on the same data directory, with a checkpoint (the
        # log after it replayed) and without (the whole log replayed); options --events
        # 1000000,5000000 --repeat 3 --after 1000 --ms-per-event 10 (scripts/recovery_time.py).
        build
        python3 scripts/recovery_time.py bench-data/bin/tidemark "${@:2}" | tee bench-data/results-recovery.txt
        exit 0 ;;
    --checkpoint-throughput)
        # HTTP ingest throughput (serve_load's: 4 connections, NDJSON batches of 1,000) of
        # a job checkpointing every 10 s against one that never does, fresh servers, order
        # alternating; default 30 s per run, 3 pairs (benches/serve/checkpoints.rs).
        build serve_load
        bench-data/bin/serve_load checkpoints --binary bench-data/bin/tidemark --seconds 30 "${@:2}" \
            | tee bench-data/results-checkpoint-throughput.txt
        exit 0 ;;
    --loops)
        build kmeans_load
        bench-data/bin/kmeans_load --binary bench-data/bin/tidemark "${@:2}" | tee bench-data/results-loops.txt
        exit 0 ;;
    *) echo "usage: scripts/bench.sh [--quick | --serve [serve_load options] | --serve-security [serve_load options] | --kafka | --idle-jobs [options] | --recovery [options] | --checkpoint-throughput [options] | --loops | --nexmark [--quick] | --micro [criterion options]]" >&2; exit 2 ;;
esac

if ((quick)); then
    sizes=(200k); reps=1; results=bench-data/results-window_agg-quick.txt
else
    sizes=(1m 5m); reps=5; results=bench-data/results-window_agg.txt
fi
[[ -x /usr/bin/time ]] || { echo "bench.sh: GNU time (/usr/bin/time) is required" >&2; exit 1; }

build yardstick_window_agg gen_events
tidemark=bench-data/bin/tidemark
yardstick=bench-data/bin/yardstick_window_agg

for size in "${sizes[@]}"; do
    ensure_events "$size"
done

: >"$results"
say() { printf '%s\n' "$*" | tee -a "$results"; }

# The programs measured. The commands are spelled out in BENCHMARKS.md too.
programs=(yardstick tidemark-w1 tidemark-w2 tidemark-w1-retention0)
set_command() { # program data-file: sets the array `cmd`
    local common=(run window_agg --input "events=$2" --param 'window={"tumbling":{"size":10000}}'
        --param max_out_of_orderness=5000 --output windows)
    case $1 in
        yardstick) cmd=("$yardstick" "$2" --size 10000 --max-out-of-orderness 5000 --allowed-lateness 0) ;;
        tidemark-w1) cmd=("$tidemark" "${common[@]}" --workers 1) ;;
        tidemark-w2) cmd=("$tidemark" "${common[@]}" --workers 2) ;;
        tidemark-w1-retention0) cmd=("$tidemark" "${common[@]}" --param retention=0 --workers 1) ;;
    esac
}

# Runs one program once; appends "wall user sys maxrss_kb" to bench-data/time-<size>-<program>.txt.
measure() { # program size
    local program=$1 size=$2 base=bench-data/run-$2-$1
    local -a cmd
    set_command "$program" "bench-data/events-$size.ndjson"
    if ! /usr/bin/time -f '%e %U %S %M' -o "$base.time" "${cmd[@]}" >"$base.out" 2>"$base.err"; then
        echo "bench.sh: FAILED: ${cmd[*]}" >&2
        cat "$base.time" "$base.err" >&2
        exit 1
    fi
    tail -n 1 "$base.time" >>"bench-data/time-$size-$program.txt"
}

say "window_agg benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
say "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM"
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src dataflows Cargo.toml Cargo.lock 2>/dev/null || rev="$rev + uncommitted changes to src/, dataflows/ or Cargo.*"
say "tidemark: $rev, $(rustc --version)"
say "workload: 1000 keys, 10 s tumbling windows, max_out_of_orderness 5000 ms, 1% of events out of order by 1..5000 ms"
say "repetitions: $reps per program and size, interleaved; figures are medians"
say ""

for size in "${sizes[@]}"; do
    for program in "${programs[@]}"; do rm -f "bench-data/time-$size-$program.txt"; done
    for ((rep = 1; rep <= reps; rep++)); do
        for program in "${programs[@]}"; do
            echo "  [$size] repetition $rep/$reps: $program" >&2
            measure "$program" "$size"
        done
    done
    # Outputs are deterministic; check those of the last repetition.
    for program in tidemark-w1 tidemark-w2; do
        if ! python3 scripts/compare_rows.py "bench-data/run-$size-yardstick.out" "bench-data/run-$size-$program.out" >"bench-data/compare-$size-$program.txt" 2>&1; then
            cat "bench-data/compare-$size-$program.txt" >&2
            echo "bench.sh: OUTPUT MISMATCH: $program differs from the yardstick on events-$size" >&2
            exit 1
        fi
        say "[$size events] $program vs yardstick: $(cat "bench-data/compare-$size-$program.txt")"
    done
    say "[$size events] yardstick counts: $(tail -n 1 "bench-data/run-$size-yardstick.err")"
done
say "(tidemark-w1-retention0 evicts every final window, so its output is not comparable and not checked)"
say ""

say "| program | events | wall s | CPU s (user+sys) | events per CPU-s | CPU ratio to yardstick | peak RSS MiB |"
say "|---|---:|---:|---:|---:|---:|---:|"
declare -A rss_of
for size in "${sizes[@]}"; do
    events=${events_of[$size]}
    base_cpu=$(median_of "bench-data/time-$size-yardstick.txt" '$2 + $3')
    for program in "${programs[@]}"; do
        t=bench-data/time-$size-$program.txt
        wall=$(median_of "$t" '$1')
        cpu=$(median_of "$t" '$2 + $3')
        rss=$(median_of "$t" '$4')
        rss_of[$size,$program]=$rss
        say "$(awk -v p="$program" -v e="$events" -v w="$wall" -v c="$cpu" -v b="$base_cpu" -v r="$rss" 'BEGIN {
            printf "| %s | %d | %.2f | %.2f | %.0f | %.2f | %.1f |", p, e, w, c, (c > 0 ? e / c : 0), (b > 0 ? c / b : 0), r / 1024 }')"
    done
done

if ((!quick)); then
    say ""
    say "peak RSS growth from 1M to 5M events (5x the windows):"
    for program in "${programs[@]}"; do
        say "$(awk -v p="$program" -v a="${rss_of[1m,$program]}" -v b="${rss_of[5m,$program]}" 'BEGIN {
            printf "  %-24s %7.1f MiB -> %7.1f MiB  (x%.2f)", p, a / 1024, b / 1024, b / a }')"
    done
fi
echo "results written to $results" >&2
