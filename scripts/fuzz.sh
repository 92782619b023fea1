#!/usr/bin/env bash
# Coverage-guided fuzzing of the record parser and the job-spec parser with AFL++
# (cargo-afl, stable Rust) for a fixed budget per target. Not run in CI: whoever runs it
# commits what it finds, which `cargo test fuzz_targets` then replays. See fuzz/README.md.
#
#   scripts/fuzz.sh                  # every target, 300 s each
#   scripts/fuzz.sh 60 record        # one target, 60 s
#
# Targets (fuzz/src/bin/, bodies in tests/fuzz_targets.rs): `record` (an HTTP ingest
# body, framed as a JSON array and as NDJSON, fed to window_agg, kmeans and logreg jobs
# on the inline engine) and `job_spec` (a POST /api/v1/jobs body: parse, validate).
#
# Speed, on 2 busy cores: `record` about 900 inputs/s; `job_spec` about 700/s, though a
# spec with a valid Kafka source or sink takes some 35 ms per client: validation creates
# (and drops) a real librdkafka client, which starts threads and connects to the spec's
# brokers. The seeds name 127.0.0.1:9, where nothing listens, not a broker of the tests.
#
# `record`'s jobs carry state from one input to the next (AFL++ reports a low stability);
# AFL_FUZZER_LOOPCOUNT=1 scripts/fuzz.sh gives every input fresh jobs, forked from the
# started process (about 300 inputs/s, stable, each finding reproducible on its own).
#
# Idempotent setup: installs cargo-afl into .tools/cargo-afl and builds its AFL++ there
# (XDG_DATA_HOME=.tools/cargo-afl/share) only if missing (a one-off of about 2 minutes);
# builds fuzz/ into fuzz/target: every crate instrumented, with one codegen unit, so about
# 20 minutes the first time on 2 cores and some 10 after a change to src/. Each run
# starts afresh from the seeds of fuzz/corpus/<target> and writes to fuzz/out/<target>
# (gitignored). Crashing and hanging inputs are copied into
# tests/fuzz/regressions/<target>/, named by content hash.
#
# Exit status: 0 if nothing was found, 1 if a crash or a hang was (commit the inputs and
# fix the bug), 2 on a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

all_targets=(record job_spec)
# cargo-afl and the afl crate (fuzz/Cargo.toml) are upgraded together.
afl_version=0.18.2
# Longer than any input should take; a rebuild of the record target's jobs (every
# 10,000 inputs) takes a few milliseconds.
hang_ms=2000

seconds=${1:-300}
if [[ ! $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...] (targets: ${all_targets[*]})" >&2
    exit 2
fi
shift $(($# > 0 ? 1 : 0))
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
    if [[ ! " ${all_targets[*]} " =~ " $target " ]]; then
        echo "fuzz: unknown target \`$target\` (targets: ${all_targets[*]})" >&2
        exit 2
    fi
done

# Everything cargo-afl keeps (AFL++'s source, build and runtime) stays in .tools.
export PATH=$root/.tools/cargo-afl/bin:$PATH
export XDG_DATA_HOME=$root/.tools/cargo-afl/share

# cargo-afl keeps AFL++ per rustc and per cargo-afl version; its runtime object is the
# last thing `cargo afl config --build` makes.
afl_home() {
    local release hash
    release=$(rustc -vV | sed -n 's/^release: //p')
    hash=$(rustc -vV | sed -n 's/^commit-hash: //p')
    echo "$XDG_DATA_HOME/afl.rs/rustc-$release${hash:+-${hash:0:7}}/afl.rs-$afl_version"
}

install_afl() {
    mkdir -p .tools
    # One install at a time, even when several runs race here.
    exec 9>.tools/cargo-afl.install.lock
    flock 9
    if ! cargo afl --version 2>/dev/null | grep -q "^cargo-afl $afl_version "; then
        echo "fuzz: installing cargo-afl $afl_version into .tools/cargo-afl"
        cargo install --locked cargo-afl --version "$afl_version" --root .tools/cargo-afl --force --quiet
    fi
    if [[ ! -f $(afl_home)/afl-llvm/afl-compiler-rt.o ]]; then
        echo "fuzz: building AFL++ into $(afl_home)"
        cargo afl config --build --force
    fi
    flock -u 9
}

# The value of `key` in AFL++'s fuzzer_stats of a run (0 if absent).
stat() {
    local value
    value=$(sed -n "s/^$2 *: *//p" "fuzz/out/$1/default/fuzzer_stats" 2>/dev/null)
    echo "${value:-0}"
}

# Copies every crash and hang of a run into tests/fuzz/regressions/<target>/, named by
# content hash; prints how many were new.
keep_findings() {
    local target=$1 pair file name new=0
    local dest=tests/fuzz/regressions/$target
    mkdir -p "$dest"
    for pair in crashes:crash hangs:hang; do
        for file in "fuzz/out/$target/default/${pair%:*}"/id:*; do
            [[ -f $file ]] || continue
            name=${pair#*:}-$(sha256sum "$file" | cut -c1-16)
            if [[ ! -e $dest/$name ]]; then
                install -m 0644 "$file" "$dest/$name"
                new=$((new + 1))
            fi
        done
    done
    echo "$new"
}

fuzz_target() {
    local target=$1
    local dicts=(-x fuzz/dict/tidemark.dict -x "$(afl_home)/afl/share/afl/dictionaries/json.dict")
    rm -rf "fuzz/out/$target"
    mkdir -p fuzz/out
    echo "fuzz: $target for $seconds s (log in fuzz/out/$target.log)"
    # As root in a container: no CPU frequency governor to check, core dumps not piped
    # anywhere that matters, no terminal for the UI, and other work may hold both cores.
    AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 \
        cargo afl fuzz -i "fuzz/corpus/$target" -o "fuzz/out/$target" -V "$seconds" -t "$hang_ms" \
        "${dicts[@]}" "fuzz/target/release/$target" >"fuzz/out/$target.log" 2>&1 || {
        echo "fuzz: afl-fuzz failed on $target; last lines of fuzz/out/$target.log:" >&2
        tail -n 30 "fuzz/out/$target.log" >&2
        exit 1
    }
}

install_afl
echo "fuzz: building fuzz/ (instrumented, into fuzz/target)"
(cd fuzz && cargo afl build --release --target-dir target --quiet)

found=0
summary=()
for target in "${targets[@]}"; do
    fuzz_target "$target"
    new=$(keep_findings "$target")
    crashes=$(stat "$target" saved_crashes)
    hangs=$(stat "$target" saved_hangs)
    found=$((found + crashes + hangs))
    summary+=("$(printf '%-9s %10s execs %8s/s  %5s paths  stability %-8s crashes %s  hangs %s  (%s new in tests/fuzz/regressions/%s)' \
        "$target" "$(stat "$target" execs_done)" "$(stat "$target" execs_per_sec)" "$(stat "$target" corpus_count)" \
        "$(stat "$target" stability)" "$crashes" "$hangs" "$new" "$target")")
done

echo
printf '%s\n' "${summary[@]}"
if ((found > 0)); then
    echo
    echo "fuzz: found crashes or hangs: commit the new files of tests/fuzz/regressions/ and fix" >&2
    echo "fuzz: (\`cargo test fuzz_targets\` replays them; \`cargo afl tmin\` minimizes one, see fuzz/README.md)" >&2
    exit 1
fi
