//! `window_agg` against a plain-Rust reference model written from API.md alone.
//!
//! The model replays the NDJSON lines of input `events` record by record: it parses
//! and validates each line, judges lateness against the input's watermark before the
//! record (max valid event time so far minus `max_out_of_orderness`), assigns the
//! event to its windows, and at the end aggregates every window and keeps those that
//! `emit` and `retention` show at the final frontier F = max valid ts + 1. It shares
//! no code with tidemark's window operators.
//!
//! Window finality (when a window can no longer change at watermark W):
//! - tumbling/sliding: an event of window `[s, e)` is accepted iff `e + lateness > W`,
//!   so the window is final once `e + lateness <= W`;
//! - session `[s, e)` (e = last ts + gap): an event at `t` is accepted iff
//!   `t + gap + lateness > W` and changes the session iff `t <= e - 1` (it is within
//!   the gap of the last event, or inside), so the session can still change iff
//!   `e - 1 + gap + lateness > W`: it is final once `e + gap + lateness - 1 <= W`.

use std::collections::BTreeMap;
use std::io::Write as _;

use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::harness::{Printed, Run};

/// The largest valid event time (tidemark's documented bound).
const MAX_TS: u64 = 1 << 62;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Window {
    Tumbling { size: u64 },
    Sliding { size: u64, slide: u64 },
    Session { gap: u64 },
}

impl Window {
    pub(crate) fn param(self) -> Value {
        match self {
            Window::Tumbling { size } => json!({"tumbling": {"size": size}}),
            Window::Sliding { size, slide } => json!({"sliding": {"size": size, "slide": slide}}),
            Window::Session { gap } => json!({"session": {"gap": gap}}),
        }
    }

    /// A typical time extent of one window.
    fn extent(self) -> u64 {
        match self {
            Window::Tumbling { size } | Window::Sliding { size, .. } => size,
            Window::Session { gap } => 2 * gap,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Emit {
    Eager,
    OnClose,
    Final,
}

impl Emit {
    const ALL: [Emit; 3] = [Emit::Eager, Emit::OnClose, Emit::Final];

    fn name(self) -> &'static str {
        match self {
            Emit::Eager => "eager",
            Emit::OnClose => "on_close",
            Emit::Final => "final",
        }
    }
}

/// The parameters of one `window_agg` replay.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    window: Window,
    max_out_of_orderness: u64,
    allowed_lateness: u64,
    /// `None`: unbounded (sent as an explicit `null`).
    retention: Option<u64>,
    emit: Emit,
}

impl Config {
    pub(crate) fn new(window: Window) -> Config {
        Config { window, max_out_of_orderness: 0, allowed_lateness: 0, retention: None, emit: Emit::Eager }
    }

    pub(crate) fn ooo(mut self, max_out_of_orderness: u64) -> Config {
        self.max_out_of_orderness = max_out_of_orderness;
        self
    }

    pub(crate) fn lateness(mut self, allowed_lateness: u64) -> Config {
        self.allowed_lateness = allowed_lateness;
        self
    }

    fn retention(mut self, retention: Option<u64>) -> Config {
        self.retention = retention;
        self
    }

    fn emit(mut self, emit: Emit) -> Config {
        self.emit = emit;
        self
    }

    /// The replay with every parameter given explicitly.
    fn run(&self, lines: &[String]) -> Run {
        Run::new("window_agg")
            .param("window", self.window.param())
            .param("max_out_of_orderness", json!(self.max_out_of_orderness))
            .param("allowed_lateness", json!(self.allowed_lateness))
            .param("retention", json!(self.retention))
            .param("emit", json!(self.emit.name()))
            .input("events", lines.to_vec())
    }

    /// The replay with only the non-default parameters given (`run` defaults).
    fn run_defaults(&self, lines: &[String]) -> Run {
        let mut run = Run::new("window_agg").param("window", self.window.param());
        if self.max_out_of_orderness != 0 {
            run = run.param("max_out_of_orderness", json!(self.max_out_of_orderness));
        }
        if self.allowed_lateness != 0 {
            run = run.param("allowed_lateness", json!(self.allowed_lateness));
        }
        if let Some(r) = self.retention {
            run = run.param("retention", json!(r));
        }
        if self.emit != Emit::Eager {
            run = run.param("emit", json!(self.emit.name()));
        }
        run.input("events", lines.to_vec())
    }

    /// When window `[_, end)` can no longer change (see the module docs).
    fn final_at(&self, end: u64) -> u64 {
        match self.window {
            Window::Session { gap } => end + gap + self.allowed_lateness - 1,
            _ => end + self.allowed_lateness,
        }
    }

    /// Whether window `[_, end)` is in the output at frontier `f`.
    fn visible(&self, end: u64, f: u64) -> bool {
        let final_at = self.final_at(end);
        let emitted = match self.emit {
            Emit::Eager => true,
            Emit::OnClose => end <= f,
            Emit::Final => final_at <= f,
        };
        emitted && self.retention.is_none_or(|r| f < final_at + r)
    }
}

// ---------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------

/// One input line, as the model reads it.
#[derive(Clone, Debug)]
enum Parsed {
    Blank,
    Event { key: String, ts: u64, value: f64, record: Value },
    Invalid { record: Value, ts: Option<u64> },
}

fn parse_line(line: &str) -> Parsed {
    if line.trim().is_empty() {
        return Parsed::Blank;
    }
    let Ok(record) = serde_json::from_str::<Value>(line) else {
        return Parsed::Invalid { record: Value::String(line.to_string()), ts: None };
    };
    let ts = record.get("ts").and_then(Value::as_u64).filter(|&t| t <= MAX_TS);
    let key = record.get("key").and_then(Value::as_str).map(str::to_string);
    let value = record.get("value").and_then(Value::as_f64).filter(|v| v.is_finite());
    match (key, ts, value) {
        (Some(key), Some(ts), Some(value)) => Parsed::Event { key, ts, value, record },
        _ => Parsed::Invalid { record, ts },
    }
}

/// The windows `[start, end)` of a tumbling or sliding window kind holding `ts`.
fn fixed_windows(window: Window, ts: u64) -> Vec<(u64, u64)> {
    match window {
        Window::Tumbling { size } => vec![(ts - ts % size, ts - ts % size + size)],
        Window::Sliding { size, slide } => {
            // k·slide <= ts < k·slide + size, k >= 0.
            let lo = if ts + 1 > size { (ts + 1 - size).div_ceil(slide) } else { 0 };
            (lo..=ts / slide).map(|k| (k * slide, k * slide + size)).collect()
        }
        Window::Session { .. } => unreachable!("sessions have no fixed windows"),
    }
}

/// One row of `windows`.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    key: String,
    start: u64,
    end: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    avg: f64,
}

impl Row {
    fn of(key: &str, start: u64, end: u64, values: &[f64]) -> Row {
        let sum = exact_sum(values);
        Row {
            key: key.to_string(),
            start,
            end,
            count: values.len() as u64,
            sum,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            avg: sum / values.len() as f64,
        }
    }

    /// Parses a printed row strictly: exactly the eight fields, of the right types.
    fn parse(v: &Value) -> Result<Row, String> {
        let obj = v.as_object().ok_or_else(|| format!("row is not an object: {v}"))?;
        let mut names: Vec<&str> = obj.keys().map(String::as_str).collect();
        names.sort_unstable();
        if names != ["avg", "count", "end", "key", "max", "min", "start", "sum"] {
            return Err(format!("row has fields {names:?}: {v}"));
        }
        let int = |f: &str| obj[f].as_u64().ok_or_else(|| format!("`{f}` is not a non-negative integer: {v}"));
        let num = |f: &str| obj[f].as_f64().ok_or_else(|| format!("`{f}` is not a number: {v}"));
        Ok(Row {
            key: obj["key"].as_str().ok_or_else(|| format!("`key` is not a string: {v}"))?.to_string(),
            start: int("start")?,
            end: int("end")?,
            count: int("count")?,
            sum: num("sum")?,
            min: num("min")?,
            max: num("max")?,
            avg: num("avg")?,
        })
    }

    /// Equal, floats within 1e-9 relative.
    fn matches(&self, other: &Row) -> bool {
        self.key == other.key
            && self.start == other.start
            && self.end == other.end
            && self.count == other.count
            && close(self.sum, other.sum)
            && close(self.min, other.min)
            && close(self.max, other.max)
            && close(self.avg, other.avg)
    }

    fn json(&self) -> Value {
        json!({"key": self.key, "start": self.start, "end": self.end, "count": self.count,
               "sum": self.sum, "min": self.min, "max": self.max, "avg": self.avg})
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// The correctly rounded sum of `values` (Shewchuk's algorithm, as Python's `fsum`).
fn exact_sum(values: &[f64]) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for &v in values {
        let mut x = v;
        let mut i = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        partials.truncate(i);
        partials.push(x);
    }
    let Some(mut n) = partials.len().checked_sub(1) else { return 0.0 };
    let mut hi = partials[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = partials[n];
        hi = x + y;
        lo = y - (hi - x);
        if lo != 0.0 {
            break;
        }
    }
    // Round half-even correctly when the remaining partials push past a tie.
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

fn dead_letter(record: Value, reason: &str, ts: Option<u64>) -> Value {
    json!({"input": "events", "record": record, "reason": reason, "ts": ts})
}

/// What the model predicts a replay prints.
#[derive(Clone, Debug)]
pub(crate) struct Expected {
    pub(crate) windows: Vec<Row>,
    pub(crate) dead_letter: Vec<Value>,
}

pub(crate) fn model(cfg: &Config, lines: &[String]) -> Expected {
    let lateness = cfg.allowed_lateness;
    let mut max_ts: Option<u64> = None;
    let mut dead = Vec::new();
    let mut fixed: BTreeMap<(String, u64, u64), Vec<f64>> = BTreeMap::new();
    let mut sessions: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    for line in lines {
        match parse_line(line) {
            Parsed::Blank => {}
            Parsed::Invalid { record, ts } => dead.push(dead_letter(record, "invalid", ts)),
            Parsed::Event { key, ts, value, record } => {
                let watermark = max_ts.map_or(0, |m| m.saturating_sub(cfg.max_out_of_orderness));
                let applied = match cfg.window {
                    Window::Session { gap } => {
                        let on_time = ts + gap + lateness > watermark;
                        if on_time {
                            sessions.entry(key).or_default().push((ts, value));
                        }
                        on_time
                    }
                    window => {
                        let mut any = false;
                        for (start, end) in fixed_windows(window, ts) {
                            if end + lateness > watermark {
                                fixed.entry((key.clone(), start, end)).or_default().push(value);
                                any = true;
                            }
                        }
                        any
                    }
                };
                if !applied {
                    dead.push(dead_letter(record, "too_late", Some(ts)));
                }
                max_ts = Some(max_ts.map_or(ts, |m| m.max(ts)));
            }
        }
    }
    let mut all: Vec<Row> = fixed.iter().map(|((k, s, e), vs)| Row::of(k, *s, *e, vs)).collect();
    if let Window::Session { gap } = cfg.window {
        for (key, mut events) in sessions {
            events.sort_by_key(|e| e.0);
            let mut values = vec![events[0].1];
            let (mut first, mut last) = (events[0].0, events[0].0);
            for &(ts, value) in &events[1..] {
                if ts - last >= gap {
                    all.push(Row::of(&key, first, last + gap, &values));
                    values.clear();
                    first = ts;
                }
                values.push(value);
                last = ts;
            }
            all.push(Row::of(&key, first, last + gap, &values));
        }
    }
    let f = max_ts.map_or(0, |m| m + 1);
    Expected { windows: all.into_iter().filter(|r| cfg.visible(r.end, f)).collect(), dead_letter: dead }
}

// ---------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------

/// `v` as text with every object's fields sorted, so equal values print equally.
fn canon(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut fields: Vec<(&String, &Value)> = m.iter().collect();
                fields.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = serde_json::Map::new();
                for (k, v) in fields {
                    out.insert(k.clone(), sorted(v));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

/// Counts of canonical texts.
pub(crate) fn multiset<'a>(values: impl IntoIterator<Item = &'a Value>) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(canon(v)).or_insert(0) += 1;
    }
    m
}

/// What differs between two multisets, or `None`.
pub(crate) fn multiset_diff(expected: &BTreeMap<String, i64>, actual: &BTreeMap<String, i64>) -> Option<String> {
    let mut out = String::new();
    for (v, &n) in expected {
        let m = actual.get(v).copied().unwrap_or(0);
        if m != n {
            out += &format!("\n    expected {n}×, got {m}×: {v}");
        }
    }
    for (v, &m) in actual {
        if !expected.contains_key(v) {
            out += &format!("\n    unexpected {m}×: {v}");
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Problems with `windows` rows (empty: they match).
pub(crate) fn compare_windows(expected: &[Row], actual: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    for v in actual {
        match Row::parse(v) {
            Ok(r) => rows.push(r),
            Err(e) => problems.push(e),
        }
    }
    let mut used = vec![false; rows.len()];
    for e in expected {
        match (0..rows.len()).find(|&i| !used[i] && rows[i].matches(e)) {
            Some(i) => used[i] = true,
            None => {
                let near: Vec<String> = rows
                    .iter()
                    .filter(|r| r.key == e.key && r.start == e.start)
                    .map(|r| r.json().to_string())
                    .collect();
                problems.push(format!("missing window {} (tidemark has {near:?})", e.json()));
            }
        }
    }
    for (r, used) in rows.iter().zip(used) {
        if !used {
            problems.push(format!("unexpected window {}", r.json()));
        }
    }
    problems
}

/// Problems with both outputs (empty: they match the model).
fn compare(expected: &Expected, printed: &Printed) -> Vec<String> {
    let mut problems = compare_windows(&expected.windows, printed.rows("windows"));
    if let Some(d) = multiset_diff(&multiset(&expected.dead_letter), &multiset(printed.rows("dead_letter"))) {
        problems.push(format!("dead_letter differs:{d}"));
    }
    for output in printed.rows.keys() {
        if output != "windows" && output != "dead_letter" {
            problems.push(format!("unexpected output `{output}`"));
        }
    }
    problems
}

fn show_lines(lines: &[String]) -> String {
    lines.iter().enumerate().map(|(i, l)| format!("\n    {i:3}: {l}")).collect()
}

/// Replays `lines` with `cfg` on `workers` workers (`chunk_lines`: 0 for the default)
/// and describes how the result differs from the model, if it does.
fn differences(what: &str, cfg: &Config, lines: &[String], workers: usize, chunk_lines: usize) -> Option<String> {
    let printed = cfg.run(lines).workers(workers).chunk_lines(chunk_lines).go();
    let problems = compare(&model(cfg, lines), &printed);
    (!problems.is_empty()).then(|| {
        format!(
            "{what}: tidemark differs from the model with {cfg:?}, {workers} worker(s):\n  {}\ninput:{}",
            problems.join("\n  "),
            show_lines(lines)
        )
    })
}

// ---------------------------------------------------------------------------
// Random inputs
// ---------------------------------------------------------------------------

/// A random value, as JSON text: small and large magnitudes, decimals, negatives, and
/// now and then the exact negation of an earlier large value (cancellation).
fn value_text(rng: &mut ChaCha8Rng, big: &mut Vec<String>) -> String {
    match rng.random_range(0..100) {
        0..30 => rng.random_range(-20..=20).to_string(),
        30..50 => format!("{:.2}", rng.random_range(-1000.0..1000.0)),
        50..58 => {
            let text = match rng.random_range(0..4) {
                0 => format!("{}e15", rng.random_range(1..10)),
                1 => format!("-{}.5e15", rng.random_range(1..10)),
                2 => format!("{}.25e300", rng.random_range(1..10)),
                _ => format!("-{}e300", rng.random_range(1..10)),
            };
            big.push(text.clone());
            text
        }
        58..66 => match big.pop() {
            Some(t) => t.strip_prefix('-').map_or_else(|| format!("-{t}"), str::to_string),
            None => "0".into(),
        },
        66..76 => ["1e-9", "-3.25e-12", "3e-300", "-7.5e-200", "0.000001"][rng.random_range(0..5)].into(),
        76..86 => ["0.1", "0.2", "0.3", "1E2", "-0.5", "12.50"][rng.random_range(0..6)].into(),
        86..90 => ["9007199254740993", "-9007199254740993", "123456789.123456789"][rng.random_range(0..3)].into(),
        _ => format!("{}", rng.random_range(-1e6..1e6)),
    }
}

/// One event line, fields in a random order, sometimes with unknown extra fields.
fn event_line(rng: &mut ChaCha8Rng, key: &str, ts: u64, value: &str) -> String {
    let key = Value::from(key);
    let mut fields = vec![format!(r#""key":{key}"#), format!(r#""ts":{ts}"#), format!(r#""value":{value}"#)];
    match rng.random_range(0..10) {
        0 => fields.push(r#""extra":{"nested":[1,2,null]}"#.into()),
        1 => fields.push(r#""note":null"#.into()),
        _ => {}
    }
    if rng.random_range(0..3) == 0 {
        fields.shuffle(rng);
    }
    format!("{{{}}}", fields.join(","))
}

/// An invalid line; those with a valid `ts` carry one ahead of the stream, which
/// must not move the watermark.
fn invalid_line(rng: &mut ChaCha8Rng, key: &str, ahead: u64) -> String {
    let k = Value::from(key);
    let t = ahead;
    match rng.random_range(0..24) {
        0 => format!(r#"{{"key":{k},"ts":{t},"#),
        1 => "not json".into(),
        2 => format!("{{'key': 'a', 'ts': {t}, 'value': 1}}"),
        3 => format!(r#"{{"key":{k},"ts":{t},"value":1}}}}"#),
        4 => format!(r#"{{"ts":{t},"value":1}}"#),
        5 => format!(r#"{{"key":{k},"value":1}}"#),
        6 => format!(r#"{{"key":{k},"ts":{t}}}"#),
        7 => format!(r#"{{"key":7,"ts":{t},"value":1}}"#),
        8 => format!(r#"{{"key":null,"ts":{t},"value":1}}"#),
        9 => format!(r#"{{"key":{k},"ts":-{t},"value":1}}"#),
        10 => format!(r#"{{"key":{k},"ts":{t}.5,"value":1}}"#),
        11 => format!(r#"{{"key":{k},"ts":{t}.0,"value":1}}"#),
        12 => format!(r#"{{"key":{k},"ts":"{t}","value":1}}"#),
        13 => format!(r#"{{"key":{k},"ts":4611686018427387905,"value":1}}"#),
        14 => format!(r#"{{"key":{k},"ts":18446744073709551616,"value":1}}"#),
        15 => format!(r#"{{"key":{k},"ts":null,"value":1}}"#),
        16 => format!(r#"{{"key":{k},"ts":{t},"value":"3"}}"#),
        17 => format!(r#"{{"key":{k},"ts":{t},"value":null}}"#),
        18 => format!(r#"{{"key":{k},"ts":{t},"value":true}}"#),
        19 => format!(r#"{{"key":{k},"ts":{t},"value":[1]}}"#),
        20 => format!(r#"[{{"key":{k},"ts":{t},"value":1}}]"#),
        21 => "{}".into(),
        22 => ["null", "42", r#""just a string""#, "true"][rng.random_range(0..4)].into(),
        _ => format!(r#"{{"key":{k},"ts":1e3,"value":1}}"#),
    }
}

/// A random stream for `cfg`: 2–5 keys, event time moving forward with jumps,
/// out-of-order events around the lateness bounds, far-too-late events, duplicated
/// lines, invalid lines and blank lines.
fn random_lines(seed: u64, cfg: &Config, len: usize) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pool = ["a", "b", "", "c\"q", "ключ"];
    pool.shuffle(&mut rng);
    let keys = &pool[..rng.random_range(2..=5)];
    let extent = cfg.window.extent();
    let reach = extent + cfg.max_out_of_orderness + cfg.allowed_lateness;
    let mut t: u64 = if rng.random_bool(0.3) { 0 } else { rng.random_range(0..=extent) };
    let mut big = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    while lines.len() < len {
        let key = keys[rng.random_range(0..keys.len())];
        let ts = match rng.random_range(0..100) {
            0..42 => {
                t += rng.random_range(0..=extent / 2);
                t
            }
            42..48 => {
                t += rng.random_range(extent..=4 * extent);
                t
            }
            48..66 => t.saturating_sub(rng.random_range(1..=reach + 2)),
            66..71 => rng.random_range(0..=t),
            71..77 if !lines.is_empty() => {
                let line = lines[rng.random_range(0..lines.len())].clone();
                lines.push(line);
                continue;
            }
            77..90 => {
                let ahead = t + rng.random_range(1..=3 * reach);
                lines.push(invalid_line(&mut rng, key, ahead));
                continue;
            }
            90..93 => {
                lines.push(String::new());
                continue;
            }
            _ => t,
        };
        let value = value_text(&mut rng, &mut big);
        lines.push(event_line(&mut rng, key, ts, &value));
    }
    lines
}

// ---------------------------------------------------------------------------
// 1. Reference tests
// ---------------------------------------------------------------------------

/// `(max_out_of_orderness, allowed_lateness)` combinations.
const LATENESS: [(u64, u64); 4] = [(0, 0), (0, 15), (7, 0), (12, 40)];

/// Every emit mode × lateness combination × retention (unbounded, a number) for the
/// given window kinds, each on a fresh seeded stream, on 1 and 2 workers.
fn reference(family: u64, windows: &[Window]) {
    let (mut n, mut runs) = (0u64, 0);
    let mut failures = Vec::new();
    for emit in Emit::ALL {
        for (ooo, lateness) in LATENESS {
            for retention in [None, Some([0, 9, 30, 120][(n / 2) as usize % 4])] {
                let window = windows[n as usize % windows.len()];
                let cfg = Config::new(window).ooo(ooo).lateness(lateness).retention(retention).emit(emit);
                let seed = 0x71de_0000 + family * 1000 + n;
                n += 1;
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xffff);
                let lines = random_lines(seed, &cfg, rng.random_range(60..=140));
                for workers in [1, 2] {
                    runs += 1;
                    failures.extend(differences(&format!("seed {seed:#x}"), &cfg, &lines, workers, 0));
                }
            }
        }
    }
    // Every configuration runs; the first failures are shown in full.
    assert!(
        failures.is_empty(),
        "{} of {runs} replays differ from the model; the first:\n\n{}",
        failures.len(),
        failures.iter().take(3).cloned().collect::<Vec<_>>().join("\n\n")
    );
}

#[test]
fn reference_tumbling() {
    reference(1, &[Window::Tumbling { size: 10 }, Window::Tumbling { size: 25 }, Window::Tumbling { size: 1 }]);
}

#[test]
fn reference_sliding() {
    reference(
        2,
        &[
            Window::Sliding { size: 30, slide: 10 },
            Window::Sliding { size: 25, slide: 10 },
            Window::Sliding { size: 20, slide: 20 },
            Window::Sliding { size: 16, slide: 7 },
        ],
    );
}

#[test]
fn reference_session() {
    reference(3, &[Window::Session { gap: 10 }, Window::Session { gap: 4 }, Window::Session { gap: 1 }]);
}

/// Long streams, fed in several chunks.
#[test]
fn reference_long_streams() {
    let configs = [
        Config::new(Window::Tumbling { size: 20 }).ooo(5).lateness(30).retention(Some(200)),
        Config::new(Window::Sliding { size: 45, slide: 15 }).lateness(10).emit(Emit::Final),
        Config::new(Window::Session { gap: 8 }).ooo(3).lateness(12).emit(Emit::OnClose),
    ];
    let mut failures = Vec::new();
    for (i, cfg) in configs.iter().enumerate() {
        let seed = 0x1079_0000 + i as u64;
        let lines = random_lines(seed, cfg, 9000);
        // Default chunks, and chunks of 1000 records (several per input).
        for (workers, chunk) in [(1, 0), (2, 1000)] {
            if let Some(d) = differences(&format!("seed {seed:#x}, chunk_lines {chunk}"), cfg, &lines, workers, chunk) {
                // The whole input is too long to show; the seed reproduces it.
                failures.push(d[..d.find("\ninput:").unwrap_or(d.len())].to_string());
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------
// 2. Independence of batching and workers
// ---------------------------------------------------------------------------

fn any_config() -> impl Strategy<Value = Config> {
    let window = prop_oneof![
        (1u64..30).prop_map(|size| Window::Tumbling { size }),
        (1u64..12, 1u64..4).prop_map(|(slide, mult)| Window::Sliding { size: slide * mult + slide / 2, slide }),
        (1u64..15).prop_map(|gap| Window::Session { gap }),
    ];
    let emit = prop_oneof![Just(Emit::Eager), Just(Emit::OnClose), Just(Emit::Final)];
    (window, 0u64..15, 0u64..30, prop::option::of(0u64..60), emit).prop_map(
        |(window, ooo, lateness, retention, emit)| {
            Config::new(window).ooo(ooo).lateness(lateness).retention(retention).emit(emit)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// The final output does not depend on how the files are chunked nor on the
    /// number of workers.
    #[test]
    fn output_independent_of_chunking_and_workers(cfg in any_config(), seed in any::<u64>(), len in 1usize..120) {
        let lines = random_lines(seed, &cfg, len);
        let base = cfg.run(&lines).workers(1).go();
        for workers in [1, 2] {
            for chunk in [1, 2, 7, 64, 0] {
                let printed = cfg.run(&lines).workers(workers).chunk_lines(chunk).go();
                for output in ["windows", "dead_letter"] {
                    prop_assert_eq!(
                        printed.sorted(output),
                        base.sorted(output),
                        "seed {}: {:?}: `{}` with {} worker(s), chunk_lines {} differs from 1 worker, default chunks",
                        seed, cfg, output, workers, chunk
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Changes consistency
// ---------------------------------------------------------------------------

#[test]
fn changes_sum_to_the_snapshot() {
    let windows = [Window::Tumbling { size: 10 }, Window::Sliding { size: 25, slide: 10 }, Window::Session { gap: 6 }];
    let mut retractions = 0;
    let mut failures = Vec::new();
    for (i, window) in windows.into_iter().enumerate() {
        for (j, emit) in Emit::ALL.into_iter().enumerate() {
            let retention = if j == 1 { None } else { Some(20) };
            let cfg = Config::new(window).ooo(5).lateness(20).retention(retention).emit(emit);
            let seed = 0xc4a9_0000 + (i * 10 + j) as u64;
            let lines = random_lines(seed, &cfg, 90);
            for (workers, chunk) in [(1, 1), (2, 3)] {
                let what = format!("seed {seed:#x}, {cfg:?}, {workers} worker(s), chunk_lines {chunk}");
                let changes = cfg.run(&lines).workers(workers).chunk_lines(chunk).changes().go();
                let snapshot = cfg.run(&lines).workers(workers).chunk_lines(chunk).go();
                for (output, list) in &changes.changes {
                    if output != "windows" && output != "dead_letter" {
                        failures.push(format!("{what}: changes of unexpected output `{output}`"));
                    }
                    let times: Vec<u64> = list.iter().map(|c| c.0).collect();
                    if !times.is_sorted() {
                        failures.push(format!("{what}: `{output}` change times decrease: {times:?}"));
                    }
                }
                for output in ["windows", "dead_letter"] {
                    let mut sums: BTreeMap<String, i64> = BTreeMap::new();
                    for (_, row, diff) in changes.changes.get(output).map_or(&[][..], Vec::as_slice) {
                        *sums.entry(canon(row)).or_insert(0) += diff;
                        retractions += usize::from(output == "windows" && *diff < 0);
                    }
                    sums.retain(|_, n| *n != 0);
                    if let Some(d) = multiset_diff(&multiset(snapshot.rows(output)), &sums) {
                        failures.push(format!("{what}: the diffs of `{output}` do not sum to the snapshot:{d}"));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures; the first:\n\n{}",
        failures.len(),
        failures[..failures.len().min(4)].join("\n\n")
    );
    assert!(retractions > 0, "no change retracted a window: the test exercises no corrections");
}

// ---------------------------------------------------------------------------
// 4. Bad input
// ---------------------------------------------------------------------------

fn lines(text: &[&str]) -> Vec<String> {
    text.iter().map(|l| l.to_string()).collect()
}

fn assert_rows(what: &str, printed: &Printed, windows: &[Value], dead: &[Value]) {
    let expected: Vec<Row> = windows.iter().map(|v| Row::parse(v).expect("expected row")).collect();
    let mut problems = compare_windows(&expected, printed.rows("windows"));
    if let Some(d) = multiset_diff(&multiset(dead), &multiset(printed.rows("dead_letter"))) {
        problems.push(format!("dead_letter differs:{d}"));
    }
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

/// Checks the literal expectation against tidemark on 1 and 2 workers, and against the model.
fn check_literal(what: &str, cfg: &Config, input: &[String], windows: &[Value], dead: &[Value]) {
    let m = model(cfg, input);
    let model_printed = Printed {
        rows: [
            ("windows".to_string(), m.windows.iter().map(Row::json).collect()),
            ("dead_letter".to_string(), m.dead_letter.clone()),
        ]
        .into(),
        ..Printed::default()
    };
    assert_rows(&format!("{what}: the model itself"), &model_printed, windows, dead);
    for workers in [1, 2] {
        let printed = cfg.run_defaults(input).workers(workers).chunk_lines(1).go();
        assert_rows(&format!("{what}: tidemark, {workers} worker(s)"), &printed, windows, dead);
    }
}

fn w(key: &str, start: u64, end: u64, values: &[f64]) -> Value {
    Row::of(key, start, end, values).json()
}

fn invalid(record: Value, ts: Option<u64>) -> Value {
    dead_letter(record, "invalid", ts)
}

fn too_late(line: &str, ts: u64) -> Value {
    dead_letter(serde_json::from_str(line).expect("a JSON line"), "too_late", Some(ts))
}

#[test]
fn bad_input_is_dead_lettered() {
    let good = [
        r#"{"key":"a","ts":1,"value":1}"#,
        r#"{"key":"b","ts":3,"value":2.5}"#,
        r#"{"key":"a","ts":6,"value":4}"#,
        r#"  {"key":"b","ts":12,"value":-1.5,"note":"extra field"}  "#,
        r#"{"key":"a","ts":13,"value":0.25}"#,
    ];
    // (line, ts of its dead letter); valid `ts` values run ahead of the stream: if an
    // invalid record moved the watermark, the later valid records would be too late.
    let bad: [(&str, Option<u64>); 24] = [
        (r#"{"key":"a","ts":4,"#, None),
        ("not json at all", None),
        (r#"{"key":"a","ts":5,"value":1}}"#, None),
        (r#"{'key':'a','ts':5,'value':1}"#, None),
        (r#"{"ts":50,"value":1}"#, Some(50)),
        (r#"{"key":"a","value":1}"#, None),
        (r#"{"key":"a","ts":60}"#, Some(60)),
        (r#"{"key":5,"ts":61,"value":1}"#, Some(61)),
        (r#"{"key":null,"ts":62,"value":1}"#, Some(62)),
        (r#"{"key":"a","ts":-3,"value":1}"#, None),
        (r#"{"key":"a","ts":7.5,"value":1}"#, None),
        (r#"{"key":"a","ts":7.0,"value":1}"#, None),
        (r#"{"key":"a","ts":"7","value":1}"#, None),
        (r#"{"key":"a","ts":null,"value":1}"#, None),
        (r#"{"key":"a","ts":4611686018427387905,"value":1}"#, None),
        (r#"{"key":"a","ts":18446744073709551616,"value":1}"#, None),
        (r#"{"key":"a","ts":70,"value":"3"}"#, Some(70)),
        (r#"{"key":"a","ts":71,"value":null}"#, Some(71)),
        (r#"{"key":"a","ts":72,"value":true}"#, Some(72)),
        (r#"{"key":"a","ts":73,"value":{"x":1}}"#, Some(73)),
        (r#"[{"key":"a","ts":8,"value":1}]"#, None),
        ("{}", None),
        ("null", None),
        ("42", None),
    ];
    let mut input = Vec::new();
    for (i, (line, _)) in bad.iter().enumerate() {
        if i % 5 == 0 && i / 5 < good.len() {
            input.push(good[i / 5].to_string());
        }
        input.push(line.to_string());
        if i % 7 == 3 {
            input.push(if i % 2 == 0 { String::new() } else { "   ".into() });
        }
    }
    let dead: Vec<Value> = bad
        .iter()
        .map(|(line, ts)| {
            let record = serde_json::from_str(line).unwrap_or_else(|_| Value::String(line.to_string()));
            invalid(record, *ts)
        })
        .collect();
    let windows = [w("a", 0, 10, &[1.0, 4.0]), w("a", 10, 20, &[0.25]), w("b", 0, 10, &[2.5]), w("b", 10, 20, &[-1.5])];
    let cfg = Config::new(Window::Tumbling { size: 10 });
    check_literal("bad input", &cfg, &input, &windows, &dead);

    // The valid neighbours come out exactly as without the bad lines.
    for workers in [1, 2] {
        let with = cfg.run_defaults(&input).workers(workers).go();
        let without = cfg.run_defaults(&lines(&good)).workers(workers).go();
        assert_eq!(with.sorted("windows"), without.sorted("windows"), "bad lines changed the windows");
        assert!(without.rows("dead_letter").is_empty());
    }

    // The largest valid event time is valid, one more is not.
    let edge = lines(&[
        r#"{"key":"z","ts":4611686018427387904,"value":1}"#,
        r#"{"key":"z","ts":4611686018427387905,"value":2}"#,
    ]);
    let max = json!({"key":"z","ts":4611686018427387905_u64,"value":2});
    check_literal(
        "ts bound",
        &cfg,
        &edge,
        &[w("z", 4611686018427387900, 4611686018427387910, &[1.0])],
        &[invalid(max, None)],
    );

    // A file of nothing but bad lines still runs.
    let only_bad: Vec<String> = bad.iter().map(|(l, _)| l.to_string()).collect();
    check_literal("only bad lines", &cfg, &only_bad, &[], &dead);
}

/// Replays through `tidemark::replay` and returns the raw printed lines (the harness
/// panics on a line it cannot parse; here that is what is checked).
fn raw_replay(cfg: &Config, input: &[String]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.ndjson");
    let mut file = std::fs::File::create(&path).expect("create input");
    for line in input {
        writeln!(file, "{line}").expect("write input");
    }
    drop(file);
    let spec = tidemark::replay::Replay {
        dataflow: "window_agg".into(),
        inputs: vec![("events".into(), path)],
        params: vec![("window".into(), cfg.window.param().to_string())],
        outputs: Vec::new(),
        changes: false,
        workers: 1,
        chunk_lines: 0,
    };
    let mut out = Vec::new();
    tidemark::replay::replay(&crate::dataflows::registry(), &spec, &mut out).expect("replay");
    String::from_utf8(out).expect("utf-8").lines().map(str::to_string).collect()
}

/// Numbers out of the f64 range are invalid, and the dead letter is still JSON that
/// a JSON parser reads: the record is kept as the line's text.
#[test]
fn out_of_range_numbers_are_invalid() {
    // JSON's grammar allows `1e400`, an f64 cannot hold it: the record is invalid, and
    // its dead letter carries its text as a JSON string (many JSON readers refuse the
    // number itself), with its `ts` when that is valid.
    let bad = [
        (r#"{"key":"a","ts":3,"value":1e400}"#, "3"),
        (r#"{"key":"a","ts":4,"value":-1e400}"#, "4"),
        (r#"{"key":"a","ts":1e400,"value":1}"#, "null"),
    ];
    let input =
        lines(&[r#"{"key":"a","ts":1,"value":1}"#, bad[0].0, bad[1].0, bad[2].0, r#"{"key":"a","ts":2,"value":2}"#]);
    let cfg = Config::new(Window::Tumbling { size: 10 });
    let raw = raw_replay(&cfg, &input);
    let mut printed = Printed::default();
    for line in &raw {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("unreadable output line ({e}): {line}"));
        printed.rows.entry(v["output"].as_str().expect("output").to_string()).or_default().push(v["row"].clone());
    }
    let dead: Vec<Value> = bad
        .iter()
        .map(|(record, ts)| {
            let ts: Value = serde_json::from_str(ts).unwrap();
            json!({"input": "events", "record": record, "reason": "invalid", "ts": ts})
        })
        .collect();
    assert_rows("out-of-range numbers", &printed, &[w("a", 0, 10, &[1.0, 2.0])], &dead);
}

// ---------------------------------------------------------------------------
// 5. Hand cases
// ---------------------------------------------------------------------------

#[test]
fn late_event_inside_lateness_corrects_its_window() {
    let cfg = Config::new(Window::Tumbling { size: 10 }).lateness(5);
    let input = lines(&[
        r#"{"key":"a","ts":1,"value":1}"#,
        r#"{"key":"a","ts":12,"value":2}"#,
        r#"{"key":"a","ts":8,"value":4}"#,
        r#"{"key":"a","ts":20,"value":1}"#,
    ]);
    let windows = [w("a", 0, 10, &[1.0, 4.0]), w("a", 10, 20, &[2.0]), w("a", 20, 30, &[1.0])];
    check_literal("late within lateness", &cfg, &input, &windows, &[]);
    // The correction is a retraction of the first version and the corrected row.
    let changes = cfg.run_defaults(&input).chunk_lines(1).changes().go();
    let list = &changes.changes["windows"];
    let first = canon(&w("a", 0, 10, &[1.0]));
    let corrected = canon(&w("a", 0, 10, &[1.0, 4.0]));
    assert!(
        list.iter().any(|(_, r, d)| canon(r) == first && *d == -1),
        "no retraction of the uncorrected window: {list:?}"
    );
    assert!(list.iter().any(|(_, r, d)| canon(r) == corrected && *d == 1), "no corrected window: {list:?}");
}

#[test]
fn too_late_event_changes_nothing() {
    let cfg = Config::new(Window::Tumbling { size: 10 }).lateness(5);
    let late = r#"{"key":"a","ts":9,"value":100}"#;
    let new_key = r#"{"key":"n","ts":2,"value":7}"#;
    let input = lines(&[
        r#"{"key":"a","ts":1,"value":1}"#,
        r#"{"key":"a","ts":15,"value":2}"#,
        // W = 15 and [0, 10) ends at 10: 10 + 5 <= 15, too late.
        late,
        new_key,
        r#"{"key":"a","ts":20,"value":3}"#,
        // W = 20 and [10, 20) ends at 20: 20 + 5 > 20, still on time.
        r#"{"key":"a","ts":14,"value":4}"#,
    ]);
    let windows = [w("a", 0, 10, &[1.0]), w("a", 10, 20, &[2.0, 4.0]), w("a", 20, 30, &[3.0])];
    check_literal("too late", &cfg, &input, &windows, &[too_late(late, 9), too_late(new_key, 2)]);
    // Without the too-late lines the windows are the same.
    let without: Vec<String> = input.iter().filter(|l| *l != late && *l != new_key).cloned().collect();
    assert_eq!(cfg.run_defaults(&without).go().sorted("windows"), cfg.run_defaults(&input).go().sorted("windows"));
}

#[test]
fn late_event_bridges_two_sessions() {
    let cfg = Config::new(Window::Session { gap: 10 }).lateness(20);
    let input = lines(&[
        r#"{"key":"a","ts":0,"value":1}"#,
        r#"{"key":"a","ts":18,"value":2}"#,
        // W = 18: 9 + 10 + 20 > 18, applied; within the gap of both 0 and 18.
        r#"{"key":"a","ts":9,"value":3}"#,
        r#"{"key":"a","ts":40,"value":5}"#,
        // Exactly `gap` apart: two sessions.
        r#"{"key":"b","ts":41,"value":1}"#,
        r#"{"key":"b","ts":51,"value":1}"#,
    ]);
    let windows =
        [w("a", 0, 28, &[1.0, 2.0, 3.0]), w("a", 40, 50, &[5.0]), w("b", 41, 51, &[1.0]), w("b", 51, 61, &[1.0])];
    check_literal("session bridge", &cfg, &input, &windows, &[]);
    // The two sessions existed before the bridge.
    let before = lines(&[r#"{"key":"a","ts":0,"value":1}"#, r#"{"key":"a","ts":18,"value":2}"#]);
    check_literal("sessions before the bridge", &cfg, &before, &[w("a", 0, 10, &[1.0]), w("a", 18, 28, &[2.0])], &[]);
}

#[test]
fn late_sliding_event_reaches_only_its_later_window() {
    let cfg = Config::new(Window::Sliding { size: 20, slide: 10 });
    let input = lines(&[
        r#"{"key":"a","ts":1,"value":1}"#,
        r#"{"key":"a","ts":25,"value":1}"#,
        // W = 25: [0, 20) is closed, [10, 30) is not.
        r#"{"key":"a","ts":15,"value":5}"#,
    ]);
    let windows = [w("a", 0, 20, &[1.0]), w("a", 10, 30, &[1.0, 5.0]), w("a", 20, 40, &[1.0])];
    check_literal("sliding late", &cfg, &input, &windows, &[]);
}

#[test]
fn emit_modes_and_retention_at_the_final_frontier() {
    let session = Config::new(Window::Session { gap: 10 }).lateness(5);
    // Session [0, 10) is final once F >= 10 + 10 + 5 - 1 = 24: an event at 9 is still
    // accepted at W = 23 (9 + 10 + 5 > 23) and would change it.
    let upto =
        |last: u64| lines(&[r#"{"key":"a","ts":0,"value":1}"#, &format!(r#"{{"key":"b","ts":{last},"value":2}}"#)]);
    let a = w("a", 0, 10, &[1.0]);
    check_literal("session final at 24", &session.emit(Emit::Final), &upto(23), std::slice::from_ref(&a), &[]);
    check_literal("session not final at 23", &session.emit(Emit::Final), &upto(22), &[], &[]);
    check_literal("session closed at 10", &session.emit(Emit::OnClose), &upto(9), std::slice::from_ref(&a), &[]);
    check_literal("session open at 9", &session.emit(Emit::OnClose), &upto(8), &[], &[]);
    check_literal(
        "session retained",
        &session.retention(Some(3)),
        &upto(25),
        &[a.clone(), w("b", 25, 35, &[2.0])],
        &[],
    );
    check_literal("session dropped", &session.retention(Some(3)), &upto(26), &[w("b", 26, 36, &[2.0])], &[]);

    let tumbling = Config::new(Window::Tumbling { size: 10 }).lateness(5);
    let a = w("a", 0, 10, &[1.0]);
    let b = |last: u64| w("b", last - last % 10, last - last % 10 + 10, &[2.0]);
    // [0, 10) closes at F = 10 and is final at F = 15; with retention 5 it is gone at 20.
    check_literal("tumbling final at 15", &tumbling.emit(Emit::Final), &upto(14), std::slice::from_ref(&a), &[]);
    check_literal("tumbling not final at 14", &tumbling.emit(Emit::Final), &upto(13), &[], &[]);
    check_literal("tumbling closed at 10", &tumbling.emit(Emit::OnClose), &upto(9), &[a.clone(), b(9)], &[]);
    check_literal("tumbling open at 9", &tumbling.emit(Emit::OnClose), &upto(8), &[], &[]);
    check_literal("tumbling retained", &tumbling.retention(Some(5)), &upto(18), &[a.clone(), b(18)], &[]);
    check_literal("tumbling dropped", &tumbling.retention(Some(5)), &upto(19), &[b(19)], &[]);
    check_literal("final, retained", &tumbling.emit(Emit::Final).retention(Some(5)), &upto(18), &[a], &[]);
    check_literal("final, dropped", &tumbling.emit(Emit::Final).retention(Some(5)), &upto(19), &[], &[]);
}
