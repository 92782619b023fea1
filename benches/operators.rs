//! Criterion micro-benchmarks of the engine's hot operators, for spotting regressions
//! between commits (see BENCHMARKS.md, "Micro-benchmarks").
//!
//! ```sh
//! cargo bench --bench operators                            # or: scripts/bench.sh --micro
//! cargo bench --bench operators -- window                  # only the names matching `window`
//! cargo bench --bench operators -- --save-baseline main    # on main; then, on a branch:
//! cargo bench --bench operators -- --baseline main         # the change against main
//! ```
//!
//! Every benchmark but `decode` is a whole replay, as `tidemark run --workers 1` does
//! it ([`tidemark::replay::replay`] on one worker, on this thread): read NDJSON files,
//! parse and route the records, build and run the dataflow, print the final outputs
//! (to a sink). Only the pipeline differs between them, so a change of one figure is
//! the change of its operator; `decode` shows how much of a `nexmark/*` replay is
//! parsing alone.
//! The inputs are written to temporary files before measuring, from fixed seeds.
//! Elements are input records (events).
//!
//! - `decode/nexmark_event`: serde_json parsing of 10,000 Nexmark event lines (the
//!   first 100 lines of `tests/golden/nexmark/events.ndjson`, cycled) into
//!   `dataflows::nexmark::Event`.
//! - `window/tumbling_count`: `Stream::window_aggregate` with `Count` per key over 10 s
//!   tumbling windows; 100,000 records `{"k","ts","v"}`, 1,000 uniform keys, one per
//!   ms, 1% moved back by up to 1 s (`max_out_of_orderness` 1 s); 10,000 rows.
//! - `window/sliding_count`: the same over 10 s windows sliding by 2 s (each record is
//!   in 5 windows); about 50,000 rows.
//! - `join/window_join`: `Stream::window_join` of two inputs of 50,000 records each
//!   over 10 s tumbling windows, 5,000 keys (one record per key, window and side on
//!   average), about 50,000 pairs. It is the join Nexmark q8 runs.
//! - `stateful/sum`: `stateful` with a `GroupLogic` keeping a running sum per key over
//!   the 100,000 records of `window/*`; 1,000 rows.
//! - `nexmark/q5`, `nexmark/q7`, `nexmark/q9`: the compiled-in `nexmark_q5` (hot items,
//!   sliding windows), `nexmark_q7` (highest bid, tumbling windows) and `nexmark_q9`
//!   (winning bids, over all time) on 50,000 events of the `nexmark` crate's generator at
//!   1,000 events per second of event time (the events of `benches/nexmark/gen.rs
//!   --events 50000 --rate 1000`, as `scripts/bench.sh --nexmark --quick` uses).

use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tempfile::TempDir;
use tidemark::pipeline::Registry;
use tidemark::pipeline::prelude::*;
use tidemark::replay::{Replay, replay};

/// The Nexmark pipelines of `dataflows/`, compiled in as the binary compiles them; not
/// the other dataflows, which would make this file build several times longer.
// A bench builds with `cfg(test)` but without the test harness: the dataflows' unit-test
// modules compile without their `#[test]` functions, leaving their imports unused.
#[path = "../dataflows"]
#[allow(dead_code, unused_imports)]
mod dataflows {
    pub mod nexmark;
}

#[path = "nexmark/lines.rs"]
mod nexmark_lines;

// The binary's allocator: what the engine allocates costs here what it costs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Records of the `window/*` and `stateful/*` benchmarks.
const RECORDS: usize = 100_000;
/// Records of each side of `join/window_join`.
const JOIN_RECORDS: usize = 50_000;
/// Events of the `nexmark/*` benchmarks.
const NEXMARK_EVENTS: usize = 50_000;
/// Lines of `decode/nexmark_event`.
const DECODE_LINES: usize = 10_000;

// ---------------------------------------------------------------------------------------
// Bench pipelines: public API only, as a user's pipeline would be.
// ---------------------------------------------------------------------------------------

/// The record of every bench input: `{"k": string, "ts": int, "v": int}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Ev {
    k: Text,
    ts: u64,
    v: i64,
}

impl Record for Ev {
    const FIELDS: &'static [(&'static str, &'static str)] = &[("k", "string"), ("ts", "int"), ("v", "int")];
    fn ts(&self) -> Time {
        self.ts
    }
}

/// The parameters of every bench pipeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
struct BenchParams {
    window: WindowKind,
    max_out_of_orderness: Time,
}

impl Default for BenchParams {
    fn default() -> Self {
        BenchParams { window: WindowKind::Tumbling { size: 10_000 }, max_out_of_orderness: 1_000 }
    }
}

impl Params for BenchParams {
    fn validate(&self) -> Result<(), ParamError> {
        self.window.validate()?;
        check_duration("max_out_of_orderness", self.max_out_of_orderness)
    }
}

impl BenchParams {
    fn windowing(&self) -> Windowing {
        Windowing { kind: self.window, allowed_lateness: 0, retention: None, emit: Emit::Eager }
    }

    fn options(&self, lateness: Lateness) -> InputOptions {
        InputOptions { max_out_of_orderness: self.max_out_of_orderness, lateness }
    }
}

/// `bench_window`: input `events`; output `windows`, the count per key and window.
struct WindowCount;

impl Pipeline for WindowCount {
    type Params = BenchParams;

    fn description(&self) -> Description {
        Description::new("bench_window", "records per key and window")
            .input(InputDesc::of::<Ev>("events"))
            .output(OutputDesc::new("windows", &[]))
    }

    fn inputs(&self, p: &BenchParams) -> Inputs {
        Inputs::new().with("events", p.options(p.windowing().lateness()))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &BenchParams) -> Result<(), BuildError> {
        let windowing = p.windowing();
        let events = job.input::<Ev>("events")?;
        let counts = events.window_aggregate("count", &windowing, |e: &Ev| e.k.clone(), |e: &Ev| e.ts, |_| (), Count);
        job.output("windows", counts.map(|(k, w, n)| (k, w.start, n)))
    }
}

/// `bench_window_join`: inputs `left`, `right`; output `joined`, the pairs with equal
/// keys in the same window.
struct WindowJoin;

impl Pipeline for WindowJoin {
    type Params = BenchParams;

    fn description(&self) -> Description {
        Description::new("bench_window_join", "pairs with equal keys in the same window")
            .input(InputDesc::of::<Ev>("left"))
            .input(InputDesc::of::<Ev>("right"))
            .output(OutputDesc::new("joined", &[]))
    }

    fn inputs(&self, p: &BenchParams) -> Inputs {
        let options = p.options(p.windowing().lateness());
        Inputs::new().with("left", options.clone()).with("right", options)
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &BenchParams) -> Result<(), BuildError> {
        let windowing = p.windowing();
        let left = job.input::<Ev>("left")?;
        let right = job.input::<Ev>("right")?;
        let key = |e: &Ev| e.k.clone();
        let joined = left.window_join(right, "join", &windowing, key, |e: &Ev| e.ts, key, |e: &Ev| e.ts);
        job.output("joined", joined.collection().map(|(k, w, l, r)| (k, w.start, l.ts, r.ts)))
    }
}

/// The running sum of one key's values, as `(key, sum)`.
#[derive(Serialize, Deserialize)]
struct Total {
    key: Text,
    sum: i64,
    shown: Option<i64>,
}

impl GroupLogic for Total {
    type Value = i64;
    type Out = (Text, i64);

    fn update(&mut self, value: i64, diff: Diff) {
        self.sum += value * diff as i64;
    }

    fn settle(&mut self, out: &mut Vec<((Text, i64), Diff)>) {
        if self.shown != Some(self.sum) {
            out.extend(self.shown.map(|s| ((self.key.clone(), s), -1)));
            out.push(((self.key.clone(), self.sum), 1));
            self.shown = Some(self.sum);
        }
    }

    fn is_empty(&self) -> bool {
        self.shown.is_none()
    }
}

/// `bench_stateful`: input `events`; output `sums`, the running sum of `v` per key.
struct StatefulSum;

impl Pipeline for StatefulSum {
    type Params = BenchParams;

    fn description(&self) -> Description {
        Description::new("bench_stateful", "the running sum per key")
            .input(InputDesc::of::<Ev>("events"))
            .output(OutputDesc::new("sums", &[]))
    }

    fn inputs(&self, p: &BenchParams) -> Inputs {
        Inputs::new().with("events", p.options(Lateness::After(0)))
    }

    fn build<'s>(&self, job: &mut Job<'s>, _p: &BenchParams) -> Result<(), BuildError> {
        let events = job.input::<Ev>("events")?;
        let values = events.collection().map(|e| (e.k, e.v));
        let sums = stateful(values, "Total", |key: &Text| Total { key: key.clone(), sum: 0, shown: None });
        job.output("sums", sums)
    }
}

// ---------------------------------------------------------------------------------------
// Inputs.
// ---------------------------------------------------------------------------------------

/// `n` records `{"k","ts","v"}` with `keys` uniform keys and values in [-1000, 1000],
/// record `i` at `i * step` ms and 1% of them moved back by up to 1 s.
fn records(n: usize, keys: u64, step: u64, seed: u64) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let line = |i: usize, rng: &mut ChaCha8Rng| {
        let (k, v) = (rng.random_range(0..keys), rng.random_range(-1000..=1000i64));
        let late = if rng.random_ratio(1, 100) { rng.random_range(1..=1000) } else { 0 };
        let ts = (i as u64 * step).saturating_sub(late);
        format!(r#"{{"k":"k{k}","ts":{ts},"v":{v}}}"#)
    };
    (0..n).map(|i| line(i, &mut rng)).collect()
}

/// The first `n` events of the `nexmark` crate's generator at `rate` events per second,
/// the lines `benches/nexmark/gen.rs` writes.
fn nexmark_events(n: usize, rate: usize) -> Vec<String> {
    nexmark_lines::events(n, rate).map(|event| event.to_string()).collect()
}

/// Writes `lines` to `dir/name.ndjson`.
fn write_lines(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(format!("{name}.ndjson"));
    let mut file = BufWriter::new(std::fs::File::create(&path).expect("create input file"));
    for line in lines {
        writeln!(file, "{line}").expect("write input file");
    }
    file.flush().expect("write input file");
    path
}

// ---------------------------------------------------------------------------------------
// Benchmarks.
// ---------------------------------------------------------------------------------------

/// Replays `spec` through `registry`, its outputs printed to a line counter; panics
/// unless some rows were printed (a benchmark of an empty output measures nothing).
fn run(registry: &Registry, spec: &Replay) -> usize {
    let mut rows = LineCount(0);
    replay(registry, spec, &mut rows).unwrap_or_else(|e| panic!("replay of {} failed: {e}", spec.dataflow));
    assert!(rows.0 > 0, "replay of {} printed nothing", spec.dataflow);
    rows.0
}

/// A sink that counts the lines written to it.
struct LineCount(usize);

impl Write for LineCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.iter().filter(|&&b| b == b'\n').count();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn spec(dataflow: &str, inputs: &[(&str, &Path)], params: &[(&str, &str)]) -> Replay {
    Replay {
        dataflow: dataflow.into(),
        inputs: inputs.iter().map(|(name, path)| (name.to_string(), path.to_path_buf())).collect(),
        params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        workers: 1,
        ..Replay::default()
    }
}

/// A group of replays: each takes tens of milliseconds, so every sample runs the same
/// number of them rather than Criterion's default linear ramp.
fn replay_group<'c>(c: &'c mut Criterion, name: &str, elements: usize) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group.sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(elements as u64));
    group
}

fn decode(c: &mut Criterion) {
    let golden = include_str!("../tests/golden/nexmark/events.ndjson");
    let lines: Vec<&str> = golden.lines().take(100).cycle().take(DECODE_LINES).collect();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("nexmark_event", |b| {
        b.iter(|| {
            for line in &lines {
                let event: dataflows::nexmark::Event = serde_json::from_str(black_box(line)).expect("event");
                black_box(event);
            }
        })
    });
    group.finish();
}

fn operators(c: &mut Criterion) {
    let dir = TempDir::new().expect("temp dir");
    let registry = Registry::new().with(WindowCount).with(WindowJoin).with(StatefulSum);
    let events = write_lines(dir.path(), "events", &records(RECORDS, 1_000, 1, 42));
    let left = write_lines(dir.path(), "left", &records(JOIN_RECORDS, 5_000, 2, 43));
    let right = write_lines(dir.path(), "right", &records(JOIN_RECORDS, 5_000, 2, 44));

    let mut group = replay_group(c, "window", RECORDS);
    let tumbling = spec("bench_window", &[("events", &events)], &[("window", r#"{"tumbling":{"size":10000}}"#)]);
    group.bench_function("tumbling_count", |b| b.iter(|| run(&registry, &tumbling)));
    let window = r#"{"sliding":{"size":10000,"slide":2000}}"#;
    let sliding = spec("bench_window", &[("events", &events)], &[("window", window)]);
    group.bench_function("sliding_count", |b| b.iter(|| run(&registry, &sliding)));
    group.finish();

    let mut group = replay_group(c, "join", 2 * JOIN_RECORDS);
    let join = spec("bench_window_join", &[("left", &left), ("right", &right)], &[]);
    group.bench_function("window_join", |b| b.iter(|| run(&registry, &join)));
    group.finish();

    let mut group = replay_group(c, "stateful", RECORDS);
    let sum = spec("bench_stateful", &[("events", &events)], &[]);
    group.bench_function("sum", |b| b.iter(|| run(&registry, &sum)));
    group.finish();
}

fn nexmark(c: &mut Criterion) {
    let dir = TempDir::new().expect("temp dir");
    use dataflows::nexmark::{Q5, Q7, Q9};
    let registry = Registry::new().with(Q5).with(Q7).with(Q9);
    let events = write_lines(dir.path(), "nexmark", &nexmark_events(NEXMARK_EVENTS, 1_000));
    let mut group = replay_group(c, "nexmark", NEXMARK_EVENTS);
    for query in ["q5", "q7", "q9"] {
        let spec = spec(&format!("nexmark_{query}"), &[("events", &events)], &[]);
        group.bench_function(query, |b| b.iter(|| run(&registry, &spec)));
    }
    group.finish();
}

/// Ten samples of about 0.5 s each: the whole run measures for about a minute here.
fn config() -> Criterion {
    Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config();
    targets = decode, operators, nexmark
}
criterion_main!(benches);
