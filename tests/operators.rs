//! Reference tests of the stream operators, through test pipelines built on the public API.
//!
//! Each operator (`window_join`, `interval_join`, `as_of_join`, `dedupe`, `top_k`,
//! `stateful`, `Stream::stateful` with retirement) is
//! wrapped in a small test pipeline that uses only `tidemark::pipeline::prelude`, as a
//! user's pipeline would, and is replayed through the harness exactly as `tidemark run`
//! replays it. A plain-Rust reference model computes the final rows from the input files
//! and the *documented* semantics alone:
//!
//! - per input, the watermark a record arrives at is
//!   `W = max(0, max ts of the records before it on that input - max_out_of_orderness)`;
//! - a record is applied by the operator's own rule against that `W` (windowed joins and
//!   dedupe: per window, `end + allowed_lateness > W`; interval and as-of joins:
//!   `ts + allowed_lateness >= W`, as `Lateness::After`), and the router dead-letters it
//!   as `too_late` exactly when it is applied nowhere (each input's `InputOptions` says
//!   the same rule);
//! - the result is computed over the applied records: every matching pair with its
//!   multiplicity (joins), the greatest `(ts, record)` not after the stream record
//!   (as-of), the smallest `(ts, record)` per key and window (dedupe), and ranks `1..=k`
//!   of the greatest values (top-k).
//!
//! Joined streams are read through [`Stream::collection`], which never retracts by
//! time, so the final content is every pair ever produced: state retirement must never
//! forget a record that a later applied record could still match.
//!
//! Seeded random inputs (few keys, disorder, late and too-late records, one input far
//! ahead of or behind the other) run with 1 and 2 workers and several chunk sizes; a
//! failure message names the seed, the parameters, the inputs and each configuration's
//! missing and extra rows. `OPERATORS_SEEDS=n` runs more seeds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tidemark::pipeline::prelude::*;

use crate::harness::Run;

// ---------------------------------------------------------------------------------------
// Test pipelines.
// ---------------------------------------------------------------------------------------

/// The record of every test input: `{"k": string, "ts": int, "v": int}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Ev {
    k: String,
    ts: u64,
    v: i64,
}

impl Record for Ev {
    const FIELDS: &'static [(&'static str, &'static str)] = &[("k", "string"), ("ts", "int"), ("v", "int")];
    fn ts(&self) -> Time {
        self.ts
    }
}

/// The parameters of every test pipeline (each uses the ones it needs).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct OpParams {
    /// Windows of `window_join` and `top_k` (tumbling or sliding).
    window: WindowKind,
    /// Interval join bounds: `lower <= right.ts - left.ts <= upper`.
    lower: i64,
    upper: i64,
    /// Dedupe's tumbling window size.
    size: u64,
    /// How many values `top_k` ranks.
    k: usize,
    /// The watermark of the first input (and of the second, unless overridden).
    max_out_of_orderness: u64,
    /// The watermark of the second input, if it differs.
    right_max_out_of_orderness: Option<u64>,
    allowed_lateness: u64,
}

impl Default for OpParams {
    fn default() -> Self {
        OpParams {
            window: WindowKind::Tumbling { size: 10 },
            lower: 0,
            upper: 10,
            size: 10,
            k: 3,
            max_out_of_orderness: 0,
            right_max_out_of_orderness: None,
            allowed_lateness: 0,
        }
    }
}

impl Params for OpParams {
    fn validate(&self) -> Result<(), ParamError> {
        self.window.validate()?;
        if matches!(self.window, WindowKind::Session { .. }) {
            return Err(ParamError::invalid("window", "must be tumbling or sliding"));
        }
        if self.lower > self.upper {
            return Err(ParamError::invalid("lower", "must not exceed upper"));
        }
        if self.size == 0 || self.k == 0 {
            return Err(ParamError::invalid("size", "size and k must be positive"));
        }
        check_duration("max_out_of_orderness", self.max_out_of_orderness)?;
        check_duration("right_max_out_of_orderness", self.right_max_out_of_orderness.unwrap_or(0))?;
        check_duration("allowed_lateness", self.allowed_lateness)
    }
}

impl OpParams {
    fn windowing(&self) -> Windowing {
        Windowing { kind: self.window, allowed_lateness: self.allowed_lateness, retention: None, emit: Emit::Eager }
    }

    fn left_moo(&self) -> u64 {
        self.max_out_of_orderness
    }

    fn right_moo(&self) -> u64 {
        self.right_max_out_of_orderness.unwrap_or(self.max_out_of_orderness)
    }

    fn left_options(&self, lateness: Lateness) -> InputOptions {
        InputOptions { max_out_of_orderness: self.left_moo(), lateness }
    }

    fn right_options(&self, lateness: Lateness) -> InputOptions {
        InputOptions { max_out_of_orderness: self.right_moo(), lateness }
    }

    /// The parameters as `--param` values.
    fn to_params(&self) -> Vec<(String, Value)> {
        match serde_json::to_value(self).expect("params serialize") {
            Value::Object(map) => map.into_iter().collect(),
            _ => unreachable!("params are an object"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct WindowJoinRow {
    k: String,
    start: u64,
    end: u64,
    left: Ev,
    right: Ev,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct IntervalJoinRow {
    k: String,
    left: Ev,
    right: Ev,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct AsOfRow {
    record: Ev,
    version: Option<Ev>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct TopRow {
    k: String,
    start: u64,
    end: u64,
    rank: u32,
    item: i64,
    count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct TopAllRow {
    k: String,
    rank: u32,
    v: i64,
}

/// `window_join`: inputs `left`, `right`; output `joined` of [`WindowJoinRow`]s.
struct WindowJoinPipeline;

impl Pipeline for WindowJoinPipeline {
    type Params = OpParams;

    fn description(&self) -> Description {
        Description::new("window_join", "left and right records with equal keys in the same window")
            .input(InputDesc::of::<Ev>("left"))
            .input(InputDesc::of::<Ev>("right"))
            .output(OutputDesc::new("joined", &["k", "start"]))
    }

    fn inputs(&self, p: &OpParams) -> Inputs {
        let lateness = p.windowing().lateness();
        Inputs::new().with("left", p.left_options(lateness.clone())).with("right", p.right_options(lateness))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &OpParams) -> Result<(), BuildError> {
        let windowing = p.windowing();
        let left = job.input::<Ev>("left")?;
        let right = job.input::<Ev>("right")?;
        let joined = left.window_join(
            right,
            "window join",
            &windowing,
            |e: &Ev| e.k.clone(),
            |e: &Ev| e.ts,
            |e: &Ev| e.k.clone(),
            |e: &Ev| e.ts,
        );
        let rows =
            joined.collection().map(|(k, w, left, right)| WindowJoinRow { k, start: w.start, end: w.end, left, right });
        job.output("joined", rows)
    }
}

/// `interval_join`: inputs `left`, `right`; output `joined` of [`IntervalJoinRow`]s.
struct IntervalJoinPipeline;

impl Pipeline for IntervalJoinPipeline {
    type Params = OpParams;

    fn description(&self) -> Description {
        Description::new("interval_join", "left and right records with equal keys and close event times")
            .input(InputDesc::of::<Ev>("left"))
            .input(InputDesc::of::<Ev>("right"))
            .output(OutputDesc::new("joined", &["k"]))
    }

    fn inputs(&self, p: &OpParams) -> Inputs {
        let lateness = Lateness::After(p.allowed_lateness);
        Inputs::new().with("left", p.left_options(lateness.clone())).with("right", p.right_options(lateness))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &OpParams) -> Result<(), BuildError> {
        let left = job.input::<Ev>("left")?;
        let right = job.input::<Ev>("right")?;
        let joined = left.interval_join(
            right,
            "interval join",
            (p.lower, p.upper),
            p.allowed_lateness,
            |e: &Ev| e.k.clone(),
            |e: &Ev| e.ts,
            |e: &Ev| e.k.clone(),
            |e: &Ev| e.ts,
        )?;
        job.output("joined", joined.collection().map(|(k, left, right)| IntervalJoinRow { k, left, right }))
    }
}

/// `as_of_join`: inputs `stream`, `table`; output `enriched` of [`AsOfRow`]s.
struct AsOfJoinPipeline;

impl Pipeline for AsOfJoinPipeline {
    type Params = OpParams;

    fn description(&self) -> Description {
        Description::new("as_of_join", "stream records with the table version in effect at their time")
            .input(InputDesc::of::<Ev>("stream"))
            .input(InputDesc::of::<Ev>("table"))
            .output(OutputDesc::new("enriched", &[]))
    }

    fn inputs(&self, p: &OpParams) -> Inputs {
        let lateness = Lateness::After(p.allowed_lateness);
        Inputs::new().with("stream", p.left_options(lateness.clone())).with("table", p.right_options(lateness))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &OpParams) -> Result<(), BuildError> {
        let stream = job.input::<Ev>("stream")?;
        let table = job.input::<Ev>("table")?;
        let enriched = stream.as_of_join(
            table,
            "as of join",
            p.allowed_lateness,
            |e: &Ev| e.k.clone(),
            |e: &Ev| e.ts,
            |e: &Ev| e.k.clone(),
            |e: &Ev| e.ts,
        );
        job.output("enriched", enriched.collection().map(|(record, version)| AsOfRow { record, version }))
    }
}

/// `dedupe`: input `events`; output `kept`, the records kept per key and window.
struct DedupePipeline;

impl Pipeline for DedupePipeline {
    type Params = OpParams;

    fn description(&self) -> Description {
        Description::new("dedupe", "one record per key and tumbling window")
            .input(InputDesc::of::<Ev>("events"))
            .output(OutputDesc::new("kept", &["k"]))
    }

    fn inputs(&self, p: &OpParams) -> Inputs {
        let lateness = Lateness::Windows { kind: WindowKind::Tumbling { size: p.size }, allowed: p.allowed_lateness };
        Inputs::new().with("events", p.left_options(lateness))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &OpParams) -> Result<(), BuildError> {
        let events = job.input::<Ev>("events")?;
        let kept = events.dedupe("dedupe", p.size, p.allowed_lateness, |e: &Ev| e.k.clone(), |e: &Ev| e.ts)?;
        job.output("kept", kept.collection())
    }
}

/// `top_k`: input `events`; outputs `top` (the `k` most frequent items `v` per group `k`
/// and window, by a windowed count) and `top_all` (the `k` greatest values `v` per group
/// over all records, each record taking its own rank).
struct TopKPipeline;

impl Pipeline for TopKPipeline {
    type Params = OpParams;

    fn description(&self) -> Description {
        Description::new("top_k", "the most frequent items per group and window, and the greatest values")
            .input(InputDesc::of::<Ev>("events"))
            .output(OutputDesc::new("top", &["k", "start", "rank"]))
            .output(OutputDesc::new("top_all", &["k", "rank"]))
    }

    fn inputs(&self, p: &OpParams) -> Inputs {
        Inputs::new().with("events", p.left_options(p.windowing().lateness()))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &OpParams) -> Result<(), BuildError> {
        let events = job.input::<Ev>("events")?;
        let counts = item_counts(events.clone(), p);
        let ranked = top_k(counts.map(|((k, item), w, count)| ((k, w), (count, item))), p.k);
        let top =
            ranked.map(|((k, w), rank, (count, item))| TopRow { k, start: w.start, end: w.end, rank, item, count });
        job.output("top", top)?;
        let all = top_k(events.collection().map(|e| (e.k, e.v)), p.k);
        job.output("top_all", all.map(|(k, rank, v)| TopAllRow { k, rank, v }))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct SummaryRow {
    k: String,
    counts: u64,
    total: u64,
    max: u64,
}

/// Per group `k`, a summary of the windowed counts of its items, kept by
/// [`GroupLogic`]: the counts it holds as a multiset (a count's update retracts the
/// old value and adds the new one, in either order within a step), and the row it
/// shows.
struct Summary {
    k: String,
    counts: BTreeMap<(u64, i64, u64), Diff>,
    shown: Option<SummaryRow>,
}

impl GroupLogic for Summary {
    type Value = (u64, i64, u64);
    type Out = SummaryRow;

    fn update(&mut self, value: (u64, i64, u64), diff: Diff) {
        let n = self.counts.entry(value).or_default();
        *n += diff;
        if *n == 0 {
            self.counts.remove(&value);
        }
    }

    fn settle(&mut self, out: &mut Vec<(SummaryRow, Diff)>) {
        assert!(self.counts.values().all(|n| *n == 1), "a count of one window and item held twice: {:?}", self.counts);
        let row = (!self.counts.is_empty()).then(|| SummaryRow {
            k: self.k.clone(),
            counts: self.counts.len() as u64,
            total: self.counts.keys().map(|(_, _, c)| c).sum(),
            max: self.counts.keys().map(|(_, _, c)| *c).max().unwrap_or(0),
        });
        if row != self.shown {
            out.extend(self.shown.take().map(|r| (r, -1)));
            out.extend(row.clone().map(|r| (r, 1)));
            self.shown = row;
        }
    }

    fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.shown.is_none()
    }
}

/// `stateful`: input `events`; output `summary`: per group `k`, over the windowed counts
/// of its items (as `top_k` counts them), how many there are, their total and the
/// largest. The counts change as records arrive, so the logic gets retractions too.
struct StatefulPipeline;

impl Pipeline for StatefulPipeline {
    type Params = OpParams;

    fn description(&self) -> Description {
        Description::new("stateful", "a summary per group of its windowed item counts")
            .input(InputDesc::of::<Ev>("events"))
            .output(OutputDesc::new("summary", &["k"]))
    }

    fn inputs(&self, p: &OpParams) -> Inputs {
        Inputs::new().with("events", p.left_options(p.windowing().lateness()))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &OpParams) -> Result<(), BuildError> {
        let events = job.input::<Ev>("events")?;
        let per_group = item_counts(events, p).map(|((k, item), w, count)| (k, (w.start, item, count)));
        let summary =
            stateful(per_group, "Summary", |k: &String| Summary { k: k.clone(), counts: BTreeMap::new(), shown: None });
        job.output("summary", summary)
    }
}

/// Per key `k`, an "auction": its opener (the record with `v == 0`, one per key) opens
/// it for `[ts, ts + size]`, and the row shows the greatest `v` of the key's records in
/// that range. Kept by [`Stream::stateful`], which retires a key once the watermark
/// says nothing in its range can still come; `live` counts the groups alive.
struct Auction {
    lateness: u64,
    size: u64,
    k: String,
    open: Option<u64>,
    bids: BTreeMap<(u64, i64), Diff>,
    latest: u64,
    shown: Option<AuctionRow>,
    retired: bool,
    live: Arc<Live>,
}

/// Groups alive now and at most, over all workers.
#[derive(Default)]
struct Live {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Auction {
    fn new(k: &str, p: &OpParams, live: Arc<Live>) -> Auction {
        let now = live.now.fetch_add(1, Ordering::SeqCst) + 1;
        live.peak.fetch_max(now, Ordering::SeqCst);
        let (lateness, size) = (p.allowed_lateness, p.size);
        let (bids, shown) = (BTreeMap::new(), None);
        Auction { lateness, size, k: k.into(), open: None, bids, latest: 0, shown, retired: false, live }
    }
}

impl Drop for Auction {
    fn drop(&mut self) {
        self.live.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct AuctionRow {
    k: String,
    open: u64,
    best: i64,
}

impl GroupLogic for Auction {
    type Value = (u64, i64);
    type Out = AuctionRow;

    fn update(&mut self, (ts, v): (u64, i64), diff: Diff) {
        assert!(!self.retired, "{}: an update after retirement that could matter: ts {ts} v {v}", self.k);
        if v == 0 {
            assert_eq!(diff, 1, "openers are never retracted");
            self.open = Some(self.open.map_or(ts, |o| o.min(ts)));
            return;
        }
        self.latest = self.latest.max(ts);
        let n = self.bids.entry((ts, v)).or_default();
        *n += diff;
        if *n == 0 {
            self.bids.remove(&(ts, v));
        }
    }

    fn settle(&mut self, out: &mut Vec<(AuctionRow, Diff)>) {
        let row = self.open.and_then(|open| {
            let best = self.bids.keys().filter(|(ts, _)| (open..=open + self.size).contains(ts)).map(|b| b.1).max()?;
            Some(AuctionRow { k: self.k.clone(), open, best })
        });
        if row != self.shown {
            out.extend(self.shown.take().map(|r| (r, -1)));
            out.extend(row.clone().map(|r| (r, 1)));
            self.shown = row;
        }
    }

    fn is_empty(&self) -> bool {
        self.retired || (self.open.is_none() && self.bids.is_empty() && self.shown.is_none())
    }

    fn retire_at(&self) -> Option<u64> {
        let last = match self.open {
            Some(open) => open + self.size,
            None if self.bids.is_empty() => return None,
            None => self.latest,
        };
        Some(last + self.lateness + 1)
    }

    fn retire(&mut self, watermark: u64) {
        assert!(self.retire_at().is_some_and(|at| at <= watermark), "{}: retired early", self.k);
        self.retired = true;
    }
}

/// `retiring`: input `events` (`Lateness::After(allowed_lateness)`); output `auctions`,
/// one row per opened key with a record in its range (see [`Auction`]).
#[derive(Default)]
struct RetiringPipeline {
    live: Arc<Live>,
}

impl Pipeline for RetiringPipeline {
    type Params = OpParams;

    fn description(&self) -> Description {
        Description::new("retiring", "the greatest value per opened key, its state retired by watermark")
            .input(InputDesc::of::<Ev>("events"))
            .output(OutputDesc::new("auctions", &["k"]))
    }

    fn inputs(&self, p: &OpParams) -> Inputs {
        Inputs::new().with("events", p.left_options(Lateness::After(p.allowed_lateness)))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &OpParams) -> Result<(), BuildError> {
        let events = job.input::<Ev>("events")?;
        let (live, p) = (self.live.clone(), p.clone());
        let auctions =
            events.map(|e| (e.k, (e.ts, e.v))).stateful("Auction", move |k: &String| Auction::new(k, &p, live.clone()));
        job.output("auctions", auctions)
    }
}

/// The windowed count of each item `v` per group `k`.
fn item_counts<'s>(events: Stream<'s, Ev>, p: &OpParams) -> Collection<'s, ((String, i64), Window, u64)> {
    events.window_aggregate("count per item", &p.windowing(), |e: &Ev| (e.k.clone(), e.v), |e: &Ev| e.ts, |_| (), Count)
}

fn registry() -> Registry {
    Registry::new()
        .with(WindowJoinPipeline)
        .with(IntervalJoinPipeline)
        .with(AsOfJoinPipeline)
        .with(DedupePipeline)
        .with(TopKPipeline)
        .with(StatefulPipeline)
        .with(RetiringPipeline::default())
}

// ---------------------------------------------------------------------------------------
// Reference models: the documented semantics, in plain Rust.
// ---------------------------------------------------------------------------------------

fn ev(k: &str, ts: u64, v: i64) -> Ev {
    Ev { k: k.into(), ts, v }
}

fn ev_json(e: &Ev) -> Value {
    json!({"k": e.k, "ts": e.ts, "v": e.v})
}

/// Each record with the watermark of its input when it arrives: the largest event time
/// before it on that input, less `max_out_of_orderness`, and never below 0.
fn arrivals(records: &[Ev], max_out_of_orderness: u64) -> Vec<(Ev, u64)> {
    let mut max_ts: Option<u64> = None;
    records
        .iter()
        .map(|e| {
            let w = max_ts.map_or(0, |m| m.saturating_sub(max_out_of_orderness));
            max_ts = max_ts.max(Some(e.ts));
            (e.clone(), w)
        })
        .collect()
}

/// The windows `[start, end)` containing `ts`: starts are multiples of the slide.
fn windows_of(kind: WindowKind, ts: u64) -> Vec<(u64, u64)> {
    let (size, slide) = match kind {
        WindowKind::Tumbling { size } => (size, size),
        WindowKind::Sliding { size, slide } => (size, slide),
        WindowKind::Session { .. } => panic!("no sessions here"),
    };
    (0..=ts / slide).map(|j| j * slide).filter(|&s| s <= ts && ts < s + size).map(|s| (s, s + size)).collect()
}

/// The windows of a record arriving at watermark `w` that it is applied to.
fn open_windows(kind: WindowKind, lateness: u64, ts: u64, w: u64) -> Vec<(u64, u64)> {
    windows_of(kind, ts).into_iter().filter(|&(_, end)| end + lateness > w).collect()
}

/// Whether a record at `ts` arriving at watermark `w` is applied by an interval or
/// as-of join with `lateness`: like a window `[ts, ts + 1)`, `ts + 1 + lateness > w`.
fn in_time(lateness: u64, ts: u64, w: u64) -> bool {
    ts + lateness >= w
}

fn dead_letter(input: &str, e: &Ev) -> Value {
    json!({"input": input, "record": ev_json(e), "reason": "too_late", "ts": e.ts})
}

/// The final rows a replay must print, per output (`dead_letter` included).
type Expected = Vec<(&'static str, Vec<Value>)>;

fn model_window_join(p: &OpParams, left: &[Ev], right: &[Ev]) -> Expected {
    let (kind, lateness) = (p.window, p.allowed_lateness);
    let applied = |records: &[Ev], moo| -> Vec<(Ev, Vec<(u64, u64)>)> {
        arrivals(records, moo)
            .into_iter()
            .map(|(e, w)| {
                let open = open_windows(kind, lateness, e.ts, w);
                (e, open)
            })
            .collect()
    };
    let (l, r) = (applied(left, p.left_moo()), applied(right, p.right_moo()));
    let mut rows = Vec::new();
    for (le, lw) in &l {
        for (re, rw) in r.iter().filter(|(re, _)| re.k == le.k) {
            for &(start, end) in lw.iter().filter(|w| rw.contains(w)) {
                rows.push(json!({"k": le.k, "start": start, "end": end, "left": ev_json(le), "right": ev_json(re)}));
            }
        }
    }
    let mut dead: Vec<Value> = l.iter().filter(|(_, ws)| ws.is_empty()).map(|(e, _)| dead_letter("left", e)).collect();
    dead.extend(r.iter().filter(|(_, ws)| ws.is_empty()).map(|(e, _)| dead_letter("right", e)));
    vec![("joined", rows), ("dead_letter", dead)]
}

/// The applied records of an input of an interval or as-of join, and its dead letters.
fn split_in_time(input: &str, records: &[Ev], moo: u64, lateness: u64, dead: &mut Vec<Value>) -> Vec<Ev> {
    let mut applied = Vec::new();
    for (e, w) in arrivals(records, moo) {
        if in_time(lateness, e.ts, w) {
            applied.push(e);
        } else {
            dead.push(dead_letter(input, &e));
        }
    }
    applied
}

fn model_interval_join(p: &OpParams, left: &[Ev], right: &[Ev]) -> Expected {
    let mut dead = Vec::new();
    let l = split_in_time("left", left, p.left_moo(), p.allowed_lateness, &mut dead);
    let r = split_in_time("right", right, p.right_moo(), p.allowed_lateness, &mut dead);
    let mut rows = Vec::new();
    for le in &l {
        for re in r.iter().filter(|re| re.k == le.k) {
            let d = re.ts as i64 - le.ts as i64;
            if p.lower <= d && d <= p.upper {
                rows.push(json!({"k": le.k, "left": ev_json(le), "right": ev_json(re)}));
            }
        }
    }
    vec![("joined", rows), ("dead_letter", dead)]
}

fn model_as_of_join(p: &OpParams, stream: &[Ev], table: &[Ev]) -> Expected {
    let mut dead = Vec::new();
    let s = split_in_time("stream", stream, p.left_moo(), p.allowed_lateness, &mut dead);
    let t = split_in_time("table", table, p.right_moo(), p.allowed_lateness, &mut dead);
    let rows = s
        .iter()
        .map(|d| {
            let version = t.iter().filter(|v| v.k == d.k && v.ts <= d.ts).max_by_key(|v| (v.ts, (*v).clone()));
            json!({"record": ev_json(d), "version": version.map(ev_json)})
        })
        .collect();
    vec![("enriched", rows), ("dead_letter", dead)]
}

fn model_dedupe(p: &OpParams, events: &[Ev]) -> Expected {
    let kind = WindowKind::Tumbling { size: p.size };
    let mut kept: BTreeMap<(String, u64), (u64, Ev)> = BTreeMap::new();
    let mut dead = Vec::new();
    for (e, w) in arrivals(events, p.left_moo()) {
        let open = open_windows(kind, p.allowed_lateness, e.ts, w);
        if open.is_empty() {
            dead.push(dead_letter("events", &e));
        }
        for (start, _) in open {
            let candidate = (e.ts, e.clone());
            let slot = kept.entry((e.k.clone(), start)).or_insert_with(|| candidate.clone());
            if candidate < *slot {
                *slot = candidate;
            }
        }
    }
    vec![("kept", kept.values().map(|(_, e)| ev_json(e)).collect()), ("dead_letter", dead)]
}

fn model_top_k(p: &OpParams, events: &[Ev]) -> Expected {
    let mut counts: BTreeMap<(String, u64, u64), BTreeMap<i64, u64>> = BTreeMap::new();
    let mut values: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut dead = Vec::new();
    for (e, w) in arrivals(events, p.left_moo()) {
        let open = open_windows(p.window, p.allowed_lateness, e.ts, w);
        if open.is_empty() {
            dead.push(dead_letter("events", &e));
            continue;
        }
        values.entry(e.k.clone()).or_default().push(e.v);
        for (start, end) in open {
            *counts.entry((e.k.clone(), start, end)).or_default().entry(e.v).or_default() += 1;
        }
    }
    let mut top = Vec::new();
    for ((k, start, end), items) in counts {
        let mut ranked: Vec<(u64, i64)> = items.into_iter().map(|(item, count)| (count, item)).collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        for (i, (count, item)) in ranked.into_iter().take(p.k).enumerate() {
            top.push(json!({"k": k, "start": start, "end": end, "rank": i + 1, "item": item, "count": count}));
        }
    }
    let mut top_all = Vec::new();
    for (k, mut vs) in values {
        vs.sort_unstable_by(|a, b| b.cmp(a));
        for (i, v) in vs.into_iter().take(p.k).enumerate() {
            top_all.push(json!({"k": k, "rank": i + 1, "v": v}));
        }
    }
    vec![("top", top), ("top_all", top_all), ("dead_letter", dead)]
}

/// `stateful`'s summaries, from the windowed counts of `top_k`'s model (every item
/// ranked).
fn model_stateful(p: &OpParams, events: &[Ev]) -> Expected {
    let mut model: BTreeMap<&str, Vec<Value>> =
        model_top_k(&OpParams { k: usize::MAX, ..p.clone() }, events).into_iter().collect();
    let mut summaries: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for row in &model["top"] {
        let count = row["count"].as_u64().expect("count");
        let s = summaries.entry(row["k"].as_str().expect("k").to_string()).or_default();
        *s = (s.0 + 1, s.1 + count, s.2.max(count));
    }
    let summary = summaries
        .into_iter()
        .map(|(k, (counts, total, max))| json!({"k": k, "counts": counts, "total": total, "max": max}))
        .collect();
    vec![("summary", summary), ("dead_letter", model.remove("dead_letter").expect("dead letters"))]
}

/// `retiring`'s rows: per key, its applied opener and the greatest `v` of its applied
/// records in `[open, open + size]`; records are applied when `ts + allowed_lateness >= W`.
fn model_retiring(p: &OpParams, events: &[Ev]) -> Expected {
    let mut dead = Vec::new();
    let applied = split_in_time("events", events, p.max_out_of_orderness, p.allowed_lateness, &mut dead);
    let mut rows = Vec::new();
    let opens: BTreeMap<&str, u64> = applied.iter().filter(|e| e.v == 0).map(|e| (e.k.as_str(), e.ts)).collect();
    for (k, open) in opens {
        let best =
            applied.iter().filter(|e| e.k == k && e.v > 0 && (open..=open + p.size).contains(&e.ts)).map(|e| e.v);
        if let Some(best) = best.max() {
            rows.push(json!({"k": k, "open": open, "best": best}));
        }
    }
    vec![("auctions", rows), ("dead_letter", dead)]
}

// ---------------------------------------------------------------------------------------
// Running a scenario through tidemark and comparing.
// ---------------------------------------------------------------------------------------

/// `(workers, chunk_lines)`; chunk 0 is the replay's default (4096 lines per turn).
const ALL_CONFIGS: &[(usize, usize)] = &[(1, 1), (1, 5), (1, 0), (2, 1), (2, 5), (2, 0)];

/// Inputs, parameters and the rows a replay must print.
struct Scenario {
    dataflow: &'static str,
    /// What to name in failure messages (the seed, for random scenarios).
    label: String,
    params: OpParams,
    /// In the order the replay takes turns feeding them.
    inputs: Vec<(&'static str, Vec<Ev>)>,
    expected: Expected,
}

fn sorted_texts(rows: &[Value]) -> Vec<String> {
    let mut texts: Vec<String> = rows.iter().map(Value::to_string).collect();
    texts.sort();
    texts
}

/// `(missing, extra)`: rows of `expected` not in `actual`, and the converse (multisets).
fn multiset_diff(expected: &[String], actual: &[String]) -> (Vec<String>, Vec<String>) {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for e in expected {
        *counts.entry(e).or_default() += 1;
    }
    for a in actual {
        *counts.entry(a).or_default() -= 1;
    }
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for (row, n) in counts {
        for _ in 0..n.max(0) {
            missing.push(row.to_string());
        }
        for _ in 0..(-n).max(0) {
            extra.push(row.to_string());
        }
    }
    (missing, extra)
}

/// Records as `key@ts:v`, in order (the first 100).
fn compact(records: &[Ev]) -> String {
    let mut text = records.iter().take(100).map(|e| format!("{}@{}:{}", e.k, e.ts, e.v)).collect::<Vec<_>>().join(" ");
    if records.len() > 100 {
        let _ = write!(text, " … ({} more)", records.len() - 100);
    }
    text
}

impl Scenario {
    /// The final rows of a replay; with `changes`, those its changes add up to (the
    /// operators then run in exact time, as in a served job).
    fn run(
        &self,
        registry: Registry,
        workers: usize,
        chunk_lines: usize,
        changes: bool,
    ) -> BTreeMap<&'static str, Vec<String>> {
        let mut run = Run::new(self.dataflow).with_registry(registry).workers(workers).chunk_lines(chunk_lines);
        if changes {
            run = run.changes();
        }
        for (name, value) in self.params.to_params() {
            run = run.param(&name, value);
        }
        for (name, records) in &self.inputs {
            run = run.input(name, records.iter().map(|e| ev_json(e).to_string()).collect());
        }
        let printed = run.go();
        let rows = |output| if changes { printed.consolidated(output) } else { printed.sorted(output) };
        self.expected.iter().map(|(output, _)| (*output, rows(output))).collect()
    }

    /// Replays the scenario in every configuration and checks each against the model.
    fn verify(&self, configs: &[(usize, usize)]) {
        self.check(configs, false);
    }

    /// As [`Scenario::verify`], in exact time (every change printed and added up).
    fn verify_exact(&self, configs: &[(usize, usize)]) {
        self.check(configs, true);
    }

    fn check(&self, configs: &[(usize, usize)], changes: bool) {
        let expected: BTreeMap<&str, Vec<String>> =
            self.expected.iter().map(|(output, rows)| (*output, sorted_texts(rows))).collect();
        let mut failures = String::new();
        let mut results = Vec::new();
        for &(workers, chunk_lines) in configs {
            let actual = self.run(registry(), workers, chunk_lines, changes);
            for (output, want) in &expected {
                let (missing, extra) = multiset_diff(want, &actual[output]);
                if missing.is_empty() && extra.is_empty() {
                    continue;
                }
                let _ = writeln!(
                    failures,
                    "  workers={workers} chunk_lines={chunk_lines} changes={changes} output `{output}`: {} expected, {} printed",
                    want.len(),
                    actual[output].len()
                );
                for row in missing.iter().take(6) {
                    let _ = writeln!(failures, "    missing {row}");
                }
                for row in extra.iter().take(6) {
                    let _ = writeln!(failures, "    extra   {row}");
                }
            }
            results.push(((workers, chunk_lines), actual));
        }
        if failures.is_empty() {
            return;
        }
        let agree = results.windows(2).all(|pair| pair[0].1 == pair[1].1);
        let mut message = format!(
            "{} [{}] disagrees with the reference model; configurations {}\n",
            self.dataflow,
            self.label,
            if agree { "agree with each other" } else { "DIFFER from each other" }
        );
        let _ = writeln!(message, "  params: {}", serde_json::to_string(&self.params).expect("params serialize"));
        for (name, records) in &self.inputs {
            let _ = writeln!(message, "  {name}: {}", compact(records));
        }
        panic!("{message}{failures}");
    }
}

// ---------------------------------------------------------------------------------------
// Random scenarios.
// ---------------------------------------------------------------------------------------

/// Random scenarios per operator, each replayed in every configuration.
const SEEDS: u64 = 30;

/// Seeds per operator (`OPERATORS_SEEDS` overrides).
fn seeds(default: u64) -> std::ops::Range<u64> {
    let n = std::env::var("OPERATORS_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    0..n
}

/// `n` records over about `[offset, offset + span)`: mostly mildly out of order, some
/// beyond the disorder allowance (late), some far behind (usually too late), some ahead
/// of the rest, some exact repeats of earlier records; now and then one record jumps
/// far into the future, making most of what follows on its input too late.
fn gen_input(rng: &mut ChaCha8Rng, keys: &[&str], items: i64, n: usize, offset: u64, span: u64) -> Vec<Ev> {
    let step = (span / n.max(1) as u64).max(1);
    let disorder = rng.random_range(0..=12);
    let jump_at = if rng.random_bool(0.1) { rng.random_range(n / 2..=n) } else { usize::MAX };
    let mut clock = offset;
    let mut out: Vec<Ev> = Vec::with_capacity(n);
    for i in 0..n {
        if i == jump_at {
            out.push(ev(keys[0], clock + 10 * span, 0));
            continue;
        }
        if !out.is_empty() && rng.random_bool(0.08) {
            let again = out[rng.random_range(0..out.len())].clone();
            out.push(again);
            continue;
        }
        clock += rng.random_range(0..=2 * step);
        let ts = match rng.random_range(0..100) {
            0..55 => clock.saturating_sub(rng.random_range(0..=disorder)),
            55..72 => clock.saturating_sub(rng.random_range(disorder..=3 * disorder + 6)),
            72..84 => clock.saturating_sub(rng.random_range(0..=span / 2 + 10)),
            84..93 => clock + rng.random_range(0..=2 * disorder + 6),
            _ => clock,
        };
        let k = keys[rng.random_range(0..keys.len())];
        out.push(ev(k, ts, rng.random_range(0..items)));
    }
    out
}

/// Two inputs over overlapping time ranges, at different rates and offsets, so that
/// (fed in turns) one often runs far ahead of the other.
fn gen_two_inputs(rng: &mut ChaCha8Rng) -> (Vec<Ev>, Vec<Ev>) {
    let keys = gen_keys(rng);
    // Now and then a long stream, whose keys' state must be retired and slots reused.
    let (span, n) =
        if rng.random_bool(0.15) { (rng.random_range(1000..=3000), 200) } else { (rng.random_range(80..=300), 60) };
    let (n_left, n_right) = (rng.random_range(2..=n), rng.random_range(2..=n));
    let right_offset = match rng.random_range(0..4) {
        0 => span / 2,
        1 => rng.random_range(0..=40),
        _ => 0,
    };
    let right_span = match rng.random_range(0..3) {
        0 => span / 3,
        1 => span * 2,
        _ => span,
    };
    let left = gen_input(rng, keys, 3, n_left, 0, span);
    let right = gen_input(rng, keys, 3, n_right, right_offset, right_span);
    if rng.random_bool(0.3) { (right, left) } else { (left, right) }
}

/// Few keys, mostly; sometimes enough to spread over both workers.
fn gen_keys(rng: &mut ChaCha8Rng) -> &'static [&'static str] {
    match rng.random_range(0..6) {
        0 | 1 => &["a", "b"],
        2..=4 => &["a", "b", "c"],
        _ => &["a", "b", "c", "d", "e", "f", "g", "h"],
    }
}

fn gen_lateness(rng: &mut ChaCha8Rng) -> (u64, u64, Option<u64>) {
    let lateness = [0, 0, 1, 3, 10, 25, 200][rng.random_range(0..7)];
    let moo = [0, 0, 2, 5, 15, 100][rng.random_range(0..6)];
    let right_moo = if rng.random_bool(0.3) { Some([0, 4, 20][rng.random_range(0..3)]) } else { None };
    (lateness, moo, right_moo)
}

fn gen_window(rng: &mut ChaCha8Rng) -> WindowKind {
    match rng.random_range(0..5) {
        0 | 1 => WindowKind::Tumbling { size: [5, 10, 20, 30][rng.random_range(0..4)] },
        2 => WindowKind::Sliding { size: 20, slide: 5 },
        3 => WindowKind::Sliding { size: 10, slide: 3 },
        _ => WindowKind::Sliding { size: 12, slide: 12 },
    }
}

fn random_params(rng: &mut ChaCha8Rng) -> OpParams {
    let (allowed_lateness, max_out_of_orderness, right_max_out_of_orderness) = gen_lateness(rng);
    OpParams { allowed_lateness, max_out_of_orderness, right_max_out_of_orderness, ..OpParams::default() }
}

fn window_join_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0a11_0000 + seed);
    let params = OpParams { window: gen_window(&mut rng), ..random_params(&mut rng) };
    let (left, right) = gen_two_inputs(&mut rng);
    let expected = model_window_join(&params, &left, &right);
    let inputs = if rng.random_bool(0.3) {
        vec![("right", right), ("left", left)]
    } else {
        vec![("left", left), ("right", right)]
    };
    Scenario { dataflow: "window_join", label: format!("seed {seed}"), params, inputs, expected }
}

fn interval_join_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0b22_0000 + seed);
    let lower = rng.random_range(-15..=5);
    let upper = lower + rng.random_range(0..=15);
    let params = OpParams { lower, upper, ..random_params(&mut rng) };
    let (left, right) = gen_two_inputs(&mut rng);
    let expected = model_interval_join(&params, &left, &right);
    let inputs = if rng.random_bool(0.3) {
        vec![("right", right), ("left", left)]
    } else {
        vec![("left", left), ("right", right)]
    };
    Scenario { dataflow: "interval_join", label: format!("seed {seed}"), params, inputs, expected }
}

fn as_of_join_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0c33_0000 + seed);
    let params = random_params(&mut rng);
    let (stream, table) = gen_two_inputs(&mut rng);
    let expected = model_as_of_join(&params, &stream, &table);
    let inputs = if rng.random_bool(0.3) {
        vec![("table", table), ("stream", stream)]
    } else {
        vec![("stream", stream), ("table", table)]
    };
    Scenario { dataflow: "as_of_join", label: format!("seed {seed}"), params, inputs, expected }
}

fn dedupe_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0d44_0000 + seed);
    let params = OpParams { size: [5, 10, 20][rng.random_range(0..3)], ..random_params(&mut rng) };
    let keys = gen_keys(&mut rng);
    let n = rng.random_range(5..=80);
    let span = rng.random_range(60..=300);
    let events = gen_input(&mut rng, keys, 3, n, 0, span);
    let expected = model_dedupe(&params, &events);
    Scenario { dataflow: "dedupe", label: format!("seed {seed}"), params, inputs: vec![("events", events)], expected }
}

fn top_k_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0e55_0000 + seed);
    let params = OpParams { window: gen_window(&mut rng), k: rng.random_range(1..=4), ..random_params(&mut rng) };
    let keys: &[&str] = if rng.random_bool(0.5) { &["a"] } else { &["a", "b"] };
    let n = rng.random_range(5..=90);
    let span = rng.random_range(40..=200);
    let items = rng.random_range(2..=6);
    let events = gen_input(&mut rng, keys, items, n, 0, span);
    let expected = model_top_k(&params, &events);
    Scenario { dataflow: "top_k", label: format!("seed {seed}"), params, inputs: vec![("events", events)], expected }
}

fn stateful_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(0x57a7_0000 + seed);
    let params = OpParams { window: gen_window(&mut rng), ..random_params(&mut rng) };
    let keys = gen_keys(&mut rng);
    let n = rng.random_range(5..=90);
    let span = rng.random_range(40..=200);
    let items = rng.random_range(2..=6);
    let events = gen_input(&mut rng, keys, items, n, 0, span);
    let expected = model_stateful(&params, &events);
    Scenario { dataflow: "stateful", label: format!("seed {seed}"), params, inputs: vec![("events", events)], expected }
}

/// Keys opened one after another (each by one record with `v == 0`), records with
/// `v > 0` for keys opened recently, before their opener, inside and past their range,
/// in mild disorder with some late and too-late ones.
fn gen_auctions(rng: &mut ChaCha8Rng, keys: usize, size: u64) -> Vec<Ev> {
    let names: Vec<String> = (0..keys).map(|i| format!("a{i}")).collect();
    let gap = rng.random_range(1..=size);
    let disorder = [0, 3, 12, 40][rng.random_range(0..4)];
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let clock = i as u64 * gap + 50;
        out.push(ev(name, clock.saturating_sub(rng.random_range(0..=disorder)), 0));
        for _ in 0..rng.random_range(0..=6) {
            // A key opened up to ~2 ranges ago, or one opened a little later.
            let back = rng.random_range(0..=(2 * size / gap).min(i as u64 + 1) as usize);
            let j = (i + rng.random_range(0..=1)).saturating_sub(back).min(keys - 1);
            let ts = match rng.random_range(0..10) {
                0 => clock.saturating_sub(rng.random_range(0..=3 * disorder + 2 * size)),
                _ => clock.saturating_sub(rng.random_range(0..=disorder)),
            };
            out.push(ev(&names[j], ts, rng.random_range(1..=9)));
        }
    }
    out
}

fn retiring_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(0x4e71_0000 + seed);
    let params = OpParams { size: [1, 10, 30][rng.random_range(0..3)], ..random_params(&mut rng) };
    let keys = rng.random_range(2..=40);
    let events = gen_auctions(&mut rng, keys, params.size);
    let expected = model_retiring(&params, &events);
    Scenario { dataflow: "retiring", label: format!("seed {seed}"), params, inputs: vec![("events", events)], expected }
}

#[test]
fn window_join_matches_the_model() {
    for seed in seeds(SEEDS) {
        window_join_scenario(seed).verify(ALL_CONFIGS);
    }
}

#[test]
fn interval_join_matches_the_model() {
    for seed in seeds(SEEDS) {
        interval_join_scenario(seed).verify(ALL_CONFIGS);
    }
}

#[test]
fn as_of_join_matches_the_model() {
    for seed in seeds(SEEDS) {
        as_of_join_scenario(seed).verify(ALL_CONFIGS);
    }
}

#[test]
fn dedupe_matches_the_model() {
    for seed in seeds(SEEDS) {
        dedupe_scenario(seed).verify(ALL_CONFIGS);
    }
}

#[test]
fn top_k_matches_the_model() {
    for seed in seeds(SEEDS) {
        top_k_scenario(seed).verify(ALL_CONFIGS);
    }
}

#[test]
fn stateful_matches_the_model() {
    for seed in seeds(SEEDS) {
        let scenario = stateful_scenario(seed);
        scenario.verify(ALL_CONFIGS);
        scenario.verify_exact(ALL_CONFIGS);
    }
}

#[test]
fn retiring_stateful_matches_the_model() {
    for seed in seeds(SEEDS) {
        let scenario = retiring_scenario(seed);
        scenario.verify(ALL_CONFIGS);
        scenario.verify_exact(ALL_CONFIGS);
    }
}

/// Retired groups go: 300 keys opened one after another, each open for 30 ms, keep a
/// few groups alive at a time, not 300 (a group lives from its key's first record until
/// the watermark passes its range and lateness: 4 keys' worth, plus a chunk).
#[test]
fn retiring_stateful_keeps_only_open_groups() {
    let params = OpParams { size: 30, allowed_lateness: 5, max_out_of_orderness: 3, ..OpParams::default() };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut events = Vec::new();
    for i in 0..300u64 {
        let k = format!("a{i}");
        events.push(ev(&k, i * 10, 0));
        for _ in 0..4 {
            events.push(ev(&k, i * 10 + rng.random_range(0..=3), rng.random_range(1..=9)));
        }
    }
    let expected = model_retiring(&params, &events);
    let expected_rows = sorted_texts(&expected[0].1);
    assert_eq!(expected_rows.len(), 300);
    let label = "300 keys in turn".into();
    let scenario = Scenario { dataflow: "retiring", label, params, inputs: vec![("events", events)], expected };
    for workers in [1, 2] {
        let pipeline = RetiringPipeline::default();
        let live = pipeline.live.clone();
        let printed = scenario.run(Registry::new().with(pipeline), workers, 7, false);
        assert_eq!(printed["auctions"], expected_rows, "{workers} workers");
        // One worker runs on the replay's thread, a chunk at a time, so what is alive is
        // exact; with two the reader runs ahead of the workers' progress by a varying
        // amount, and only the rows are checked.
        let peak = live.peak.load(Ordering::SeqCst);
        if workers == 1 {
            assert!(peak <= 10, "{peak} groups alive at once, of 300 keys");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Hand cases: expected rows written out (and checked against the model too).
// ---------------------------------------------------------------------------------------

fn e(k: &str, ts: u64, v: i64) -> Value {
    ev_json(&ev(k, ts, v))
}

/// Checks that the model agrees with the rows written out, then replays the scenario.
fn hand_case(
    dataflow: &'static str,
    label: &str,
    params: OpParams,
    inputs: Vec<(&'static str, Vec<Ev>)>,
    expected: Expected,
    model: Expected,
) {
    for ((output, want), (model_output, modelled)) in expected.iter().zip(&model) {
        assert_eq!(output, model_output);
        assert_eq!(
            sorted_texts(want),
            sorted_texts(modelled),
            "{dataflow} [{label}]: the model disagrees on `{output}`"
        );
    }
    assert_eq!(expected.len(), model.len());
    Scenario { dataflow, label: label.into(), params, inputs, expected }.verify(ALL_CONFIGS);
}

/// `n` records of key `pad` from `from` on, one every 10 ms: they match nothing, and
/// only keep their input's watermark moving while the other input's stands still.
fn padding(from: u64, n: u64) -> Vec<Ev> {
    (0..n).map(|i| ev("pad", from + 10 * i, 0)).collect()
}

/// With `allowed_lateness` 0, a record exactly at the bound of the interval is applied
/// (it arrives before the watermark passes its time) and must still find its partner,
/// even though its own arrival moves its input's watermark to exactly its time, the
/// last watermark at which the partner may be kept. The other input keeps moving
/// (padding), so the operator sees the frontier stand at that point. A second record at
/// the same time arrives at `W = ts` and is on time too; one a millisecond earlier is
/// too late.
#[test]
fn interval_join_zero_lateness_keeps_left_records_at_the_upper_bound() {
    let params = OpParams { lower: -7, upper: 13, allowed_lateness: 0, ..OpParams::default() };
    // right.ts - left.ts = 13 = upper; the right watermark stops at 113.
    let mut left = vec![ev("u", 100, 1)];
    left.extend(padding(200, 200));
    let right = vec![ev("u", 113, 2), ev("u", 113, 3), ev("u", 112, 4)];
    let rows = vec![
        json!({"k": "u", "left": e("u", 100, 1), "right": e("u", 113, 2)}),
        json!({"k": "u", "left": e("u", 100, 1), "right": e("u", 113, 3)}),
    ];
    let model = model_interval_join(&params, &left, &right);
    hand_case(
        "interval_join",
        "upper bound, L = 0",
        params,
        vec![("left", left), ("right", right)],
        vec![("joined", rows), ("dead_letter", vec![dead_letter("right", &ev("u", 112, 4))])],
        model,
    );
}

/// As above, for a right record at the lower bound.
#[test]
fn interval_join_zero_lateness_keeps_right_records_at_the_lower_bound() {
    let params = OpParams { lower: -7, upper: 13, allowed_lateness: 0, ..OpParams::default() };
    // right.ts - left.ts = -7 = lower; the left watermark stops at 107.
    let left = vec![ev("w", 107, 3), ev("w", 107, 5), ev("w", 106, 6)];
    let mut right = vec![ev("w", 100, 4)];
    right.extend(padding(200, 200));
    let rows = vec![
        json!({"k": "w", "left": e("w", 107, 3), "right": e("w", 100, 4)}),
        json!({"k": "w", "left": e("w", 107, 5), "right": e("w", 100, 4)}),
    ];
    let model = model_interval_join(&params, &left, &right);
    hand_case(
        "interval_join",
        "lower bound, L = 0",
        params,
        vec![("right", right), ("left", left)],
        vec![("joined", rows), ("dead_letter", vec![dead_letter("left", &ev("w", 106, 6))])],
        model,
    );
}

#[test]
fn window_join_hand_cases() {
    // Tumbling windows of 10, lateness 5: a late left record joins [0, 10), a too-late
    // one does not; a repeated right record makes every pair twice.
    let params = OpParams { window: WindowKind::Tumbling { size: 10 }, allowed_lateness: 5, ..OpParams::default() };
    let left = vec![ev("a", 1, 1), ev("a", 12, 2), ev("a", 3, 3), ev("a", 25, 4), ev("a", 2, 5), ev("b", 4, 6)];
    let right = vec![ev("a", 5, 10), ev("a", 14, 20), ev("a", 5, 10), ev("b", 8, 30), ev("a", 19, 40)];
    let row =
        |start: u64, l: Value, r: Value| json!({"k": "a", "start": start, "end": start + 10, "left": l, "right": r});
    let rows = vec![
        row(0, e("a", 1, 1), e("a", 5, 10)),
        row(0, e("a", 1, 1), e("a", 5, 10)),
        row(0, e("a", 3, 3), e("a", 5, 10)),
        row(0, e("a", 3, 3), e("a", 5, 10)),
        row(10, e("a", 12, 2), e("a", 14, 20)),
        row(10, e("a", 12, 2), e("a", 19, 40)),
    ];
    let dead = vec![dead_letter("left", &ev("a", 2, 5)), dead_letter("left", &ev("b", 4, 6))];
    let model = model_window_join(&params, &left, &right);
    hand_case(
        "window_join",
        "tumbling",
        params,
        vec![("left", left), ("right", right)],
        vec![("joined", rows), ("dead_letter", dead)],
        model,
    );

    // Sliding windows of 10 every 5, lateness 0: right a@8 arrives at watermark 12, too
    // late for [0, 10) but in time for [5, 15).
    let params = OpParams { window: WindowKind::Sliding { size: 10, slide: 5 }, ..OpParams::default() };
    let left = vec![ev("a", 7, 1)];
    let right = vec![ev("a", 3, 2), ev("a", 12, 3), ev("a", 8, 4)];
    let row =
        |start: u64, r: Value| json!({"k": "a", "start": start, "end": start + 10, "left": e("a", 7, 1), "right": r});
    let rows = vec![row(0, e("a", 3, 2)), row(5, e("a", 12, 3)), row(5, e("a", 8, 4))];
    let model = model_window_join(&params, &left, &right);
    hand_case(
        "window_join",
        "sliding",
        params,
        vec![("left", left), ("right", right)],
        vec![("joined", rows), ("dead_letter", vec![])],
        model,
    );

    // The left input runs far ahead (watermark 5000) before the right one starts: the
    // right records are judged by their own watermark and still find their partners.
    let params = OpParams { window: WindowKind::Tumbling { size: 10 }, ..OpParams::default() };
    let mut left = vec![ev("a", 5, 1), ev("b", 21, 2)];
    left.extend(padding(100, 500));
    let right = vec![ev("a", 7, 3), ev("b", 28, 4), ev("b", 22, 5), ev("a", 9, 6)];
    let rows = vec![
        json!({"k": "a", "start": 0, "end": 10, "left": e("a", 5, 1), "right": e("a", 7, 3)}),
        json!({"k": "b", "start": 20, "end": 30, "left": e("b", 21, 2), "right": e("b", 28, 4)}),
        json!({"k": "b", "start": 20, "end": 30, "left": e("b", 21, 2), "right": e("b", 22, 5)}),
    ];
    let dead = vec![dead_letter("right", &ev("a", 9, 6))];
    let model = model_window_join(&params, &left, &right);
    hand_case(
        "window_join",
        "left far ahead",
        params,
        vec![("left", left), ("right", right)],
        vec![("joined", rows), ("dead_letter", dead)],
        model,
    );
}

#[test]
fn interval_join_hand_cases() {
    // Orders (left) and payments (right), payments fed first: a payment may come up
    // to 5 before and 20 after its order; lateness 10.
    let params = OpParams { lower: -5, upper: 20, allowed_lateness: 10, ..OpParams::default() };
    let orders = vec![ev("a", 102, 1), ev("b", 110, 2), ev("c", 120, 3), ev("d", 50, 4)];
    let payments = vec![ev("a", 100, 10), ev("c", 114, 30), ev("b", 131, 20), ev("b", 125, 21), ev("c", 116, 31)];
    let rows = vec![
        // Paid 2 before the order, and fed before it.
        json!({"k": "a", "left": e("a", 102, 1), "right": e("a", 100, 10)}),
        // Late (watermark 131) but in time, 15 after the order; b@131 is 21 after.
        json!({"k": "b", "left": e("b", 110, 2), "right": e("b", 125, 21)}),
    ];
    // c@114 is 6 before its order; c@116 would match but is too late (116 + 10 < 131).
    let dead = vec![dead_letter("left", &ev("d", 50, 4)), dead_letter("right", &ev("c", 116, 31))];
    let model = model_interval_join(&params, &orders, &payments);
    hand_case(
        "interval_join",
        "orders and payments",
        params,
        vec![("right", payments), ("left", orders)],
        vec![("joined", rows), ("dead_letter", dead)],
        model,
    );

    // A window entirely before the left records: bounds (-30, -10).
    let params =
        OpParams { lower: -30, upper: -10, allowed_lateness: 3, max_out_of_orderness: 4, ..OpParams::default() };
    let left = vec![ev("a", 50, 1), ev("a", 60, 2), ev("a", 55, 3), ev("a", 51, 4)];
    let right = vec![ev("a", 20, 5), ev("a", 40, 6), ev("a", 41, 7), ev("a", 30, 8), ev("a", 45, 9)];
    // Left watermarks 0, 46, 56, 56: a@51 is too late (51 + 3 < 56). Right watermarks
    // 0, 16, 36, 37, 37: a@30 is too late (30 + 3 < 37).
    let row = |l: Value, r: Value| json!({"k": "a", "left": l, "right": r});
    let rows = vec![
        row(e("a", 50, 1), e("a", 20, 5)),
        row(e("a", 50, 1), e("a", 40, 6)),
        row(e("a", 60, 2), e("a", 40, 6)),
        row(e("a", 60, 2), e("a", 41, 7)),
        row(e("a", 60, 2), e("a", 45, 9)),
        row(e("a", 55, 3), e("a", 40, 6)),
        row(e("a", 55, 3), e("a", 41, 7)),
        row(e("a", 55, 3), e("a", 45, 9)),
    ];
    let dead = vec![dead_letter("left", &ev("a", 51, 4)), dead_letter("right", &ev("a", 30, 8))];
    let model = model_interval_join(&params, &left, &right);
    hand_case(
        "interval_join",
        "negative bounds",
        params,
        vec![("left", left), ("right", right)],
        vec![("joined", rows), ("dead_letter", dead)],
        model,
    );
}

#[test]
fn as_of_join_hand_cases() {
    // Lateness 5. Table a@16 arrives late (watermark 20) and corrects a@17, which it now
    // governs; a@2 is too late and never governs a@5; of two versions at 20 the greater
    // record wins; b has no version.
    let params = OpParams { allowed_lateness: 5, ..OpParams::default() };
    let stream = vec![
        ev("a", 5, 1),
        ev("b", 7, 5),
        ev("a", 12, 2),
        ev("a", 10, 6),
        ev("a", 17, 3),
        ev("a", 25, 4),
        ev("a", 3, 7),
    ];
    let table =
        vec![ev("a", 0, 100), ev("a", 10, 200), ev("a", 20, 400), ev("a", 16, 300), ev("a", 20, 399), ev("a", 2, 50)];
    let row = |d: Value, v: Value| json!({"record": d, "version": v});
    let rows = vec![
        row(e("a", 5, 1), e("a", 0, 100)),
        row(e("b", 7, 5), Value::Null),
        row(e("a", 12, 2), e("a", 10, 200)),
        row(e("a", 10, 6), e("a", 10, 200)),
        row(e("a", 17, 3), e("a", 16, 300)),
        row(e("a", 25, 4), e("a", 20, 400)),
    ];
    let dead = vec![dead_letter("stream", &ev("a", 3, 7)), dead_letter("table", &ev("a", 2, 50))];
    let model = model_as_of_join(&params, &stream, &table);
    hand_case(
        "as_of_join",
        "late version",
        params.clone(),
        vec![("stream", stream.clone()), ("table", table.clone())],
        vec![("enriched", rows.clone()), ("dead_letter", dead.clone())],
        model.clone(),
    );
    // The same, the table fed first.
    hand_case(
        "as_of_join",
        "late version, table first",
        params,
        vec![("table", table), ("stream", stream)],
        vec![("enriched", rows), ("dead_letter", dead)],
        model,
    );

    // The stream runs far ahead (disorder allowance 5); versions arriving much later,
    // in time by the table's own watermark, govern the stream records fed long before.
    let params = OpParams { max_out_of_orderness: 5, ..OpParams::default() };
    let mut stream = vec![ev("a", 10, 1), ev("a", 30, 2), ev("b", 30, 3)];
    stream.extend(padding(100, 300));
    // Table watermarks 0, 0, 15, 26, 26: a@8 is too late (8 < 26, lateness 0).
    let table = vec![ev("a", 5, 10), ev("a", 20, 20), ev("b", 31, 30), ev("a", 30, 40), ev("a", 8, 50)];
    let mut rows = vec![
        json!({"record": e("a", 10, 1), "version": e("a", 5, 10)}),
        json!({"record": e("a", 30, 2), "version": e("a", 30, 40)}),
        json!({"record": e("b", 30, 3), "version": null}),
    ];
    rows.extend(padding(100, 300).iter().map(|p| json!({"record": ev_json(p), "version": null})));
    let model = model_as_of_join(&params, &stream, &table);
    hand_case(
        "as_of_join",
        "stream far ahead",
        params,
        vec![("stream", stream), ("table", table)],
        vec![("enriched", rows), ("dead_letter", vec![dead_letter("table", &ev("a", 8, 50))])],
        model,
    );
}

#[test]
fn dedupe_hand_cases() {
    // Windows of 10, lateness 5: late a@4 replaces a@7, then late a@4:0 (a smaller
    // record at the same time) replaces a@4:2; a@1 and b@5 are too late; a@22 is late
    // but in time for [20, 30).
    let params = OpParams { size: 10, allowed_lateness: 5, ..OpParams::default() };
    let events = vec![
        ev("a", 7, 1),
        ev("a", 4, 2),
        ev("a", 13, 1),
        ev("a", 4, 0),
        ev("a", 13, 1),
        ev("a", 30, 9),
        ev("a", 1, 5),
        ev("a", 22, 3),
        ev("b", 5, 1),
        ev("b", 35, 2),
    ];
    let kept = vec![e("a", 4, 0), e("a", 13, 1), e("a", 22, 3), e("a", 30, 9), e("b", 35, 2)];
    let dead = vec![dead_letter("events", &ev("a", 1, 5)), dead_letter("events", &ev("b", 5, 1))];
    let model = model_dedupe(&params, &events);
    hand_case(
        "dedupe",
        "late replacements",
        params,
        vec![("events", events)],
        vec![("kept", kept), ("dead_letter", dead)],
        model,
    );

    // With disorder allowance 20 and no lateness: b@3 arrives at watermark 8, in time.
    let params = OpParams { size: 10, max_out_of_orderness: 20, ..OpParams::default() };
    let events = vec![ev("b", 28, 1), ev("b", 9, 2), ev("b", 3, 3), ev("b", 45, 4), ev("b", 2, 5), ev("b", 21, 6)];
    // Watermarks 0, 8, 8, 8, 25, 25: b@2 is too late ([0, 10) + 0 <= 25), b@21 in time.
    let kept = vec![e("b", 3, 3), e("b", 21, 6), e("b", 45, 4)];
    let model = model_dedupe(&params, &events);
    hand_case(
        "dedupe",
        "disorder allowance",
        params,
        vec![("events", events)],
        vec![("kept", kept), ("dead_letter", vec![dead_letter("events", &ev("b", 2, 5))])],
        model,
    );
}

#[test]
fn top_k_hand_cases() {
    // k = 2, windows of 10, lateness 5 (group `k`, item `v`).
    let params =
        OpParams { window: WindowKind::Tumbling { size: 10 }, k: 2, allowed_lateness: 5, ..OpParams::default() };
    let items = [(1, 3), (2, 1), (3, 3), (4, 4), (5, 1), (6, 4), (7, 3), (8, 2)];
    let mut events: Vec<Ev> = items.iter().map(|&(ts, v)| ev("g", ts, v)).collect();
    // g@6:1 is late but in time: item 1 ties item 3 at 3 views and ranks below it;
    // g@5:2 is too late.
    events.extend([ev("h", 9, 7), ev("g", 12, 5), ev("g", 6, 1), ev("g", 14, 5), ev("g", 25, 0), ev("g", 5, 2)]);
    let row = |k: &str, start: u64, rank: u32, item: i64, count: u64| json!({"k": k, "start": start, "end": start + 10, "rank": rank, "item": item, "count": count});
    let top = vec![
        row("g", 0, 1, 3, 3),
        row("g", 0, 2, 1, 3),
        row("h", 0, 1, 7, 1),
        row("g", 10, 1, 5, 2),
        row("g", 20, 1, 0, 1),
    ];
    let top_all = vec![
        json!({"k": "g", "rank": 1, "v": 5}),
        json!({"k": "g", "rank": 2, "v": 5}),
        json!({"k": "h", "rank": 1, "v": 7}),
    ];
    let model = model_top_k(&params, &events);
    hand_case(
        "top_k",
        "late counts",
        params,
        vec![("events", events)],
        vec![("top", top), ("top_all", top_all), ("dead_letter", vec![dead_letter("events", &ev("g", 5, 2))])],
        model,
    );

    // Sliding windows of 10 every 5, k = 1: ties at equal counts go to the greater item.
    let params = OpParams { window: WindowKind::Sliding { size: 10, slide: 5 }, k: 1, ..OpParams::default() };
    let events = vec![ev("g", 1, 2), ev("g", 6, 1), ev("g", 7, 1), ev("g", 8, 2), ev("g", 12, 3)];
    let top = vec![row("g", 0, 1, 2, 2), row("g", 5, 1, 1, 2), row("g", 10, 1, 3, 1)];
    let top_all = vec![json!({"k": "g", "rank": 1, "v": 3})];
    let model = model_top_k(&params, &events);
    hand_case(
        "top_k",
        "sliding ties",
        params,
        vec![("events", events)],
        vec![("top", top), ("top_all", top_all), ("dead_letter", vec![])],
        model,
    );
}
