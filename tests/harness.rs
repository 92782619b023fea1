//! Running dataflows in-process the way `tidemark run` does, and reading the results.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::Value;
use tidemark::pipeline::Registry;
use tidemark::replay::{Replay, ReplayError, replay};

/// A replay to run: a dataflow, its parameters and its inputs' NDJSON lines.
#[derive(Clone, Default)]
pub struct Run {
    /// The registry to find the dataflow in (default: the compiled-in dataflows).
    pub registry: Option<Registry>,
    pub dataflow: String,
    pub params: Vec<(String, Value)>,
    pub inputs: Vec<(String, Vec<String>)>,
    pub workers: usize,
    /// Records per chunk (0: the default).
    pub chunk_lines: usize,
    pub changes: bool,
    pub outputs: Vec<String>,
}

/// What a replay printed, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Printed {
    /// Output name → rows, in printed order (a row with multiplicity n appears n times).
    pub rows: BTreeMap<String, Vec<Value>>,
    /// With `changes`: output name → `(time, row, diff)` in printed order.
    pub changes: BTreeMap<String, Vec<(u64, Value, i64)>>,
}

impl Run {
    pub fn new(dataflow: &str) -> Run {
        Run { dataflow: dataflow.into(), workers: 1, ..Run::default() }
    }

    /// Runs a dataflow of `registry` (test pipelines) instead of a compiled-in one.
    pub fn with_registry(mut self, registry: Registry) -> Run {
        self.registry = Some(registry);
        self
    }

    pub fn param(mut self, name: &str, value: Value) -> Run {
        self.params.push((name.into(), value));
        self
    }

    pub fn input(mut self, name: &str, lines: Vec<String>) -> Run {
        self.inputs.push((name.into(), lines));
        self
    }

    pub fn workers(mut self, workers: usize) -> Run {
        self.workers = workers;
        self
    }

    pub fn chunk_lines(mut self, chunk_lines: usize) -> Run {
        self.chunk_lines = chunk_lines;
        self
    }

    pub fn changes(mut self) -> Run {
        self.changes = true;
        self
    }

    /// Runs the replay; panics on failure.
    pub fn go(&self) -> Printed {
        self.try_go().unwrap_or_else(|e| panic!("replay of {} failed: {e}", self.dataflow))
    }

    /// Runs the replay.
    pub fn try_go(&self) -> Result<Printed, ReplayError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut inputs = Vec::new();
        for (i, (name, lines)) in self.inputs.iter().enumerate() {
            let path = dir.path().join(format!("{i}-{name}.ndjson"));
            let mut file = std::fs::File::create(&path).expect("create input file");
            for line in lines {
                writeln!(file, "{line}").expect("write input file");
            }
            inputs.push((name.clone(), path));
        }
        let spec = Replay {
            dataflow: self.dataflow.clone(),
            inputs,
            // `--param K=V` takes V as JSON when it parses as JSON.
            params: self.params.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
            outputs: self.outputs.clone(),
            changes: self.changes,
            workers: self.workers,
            chunk_lines: self.chunk_lines,
        };
        let mut out = Vec::new();
        let registry = self.registry.clone().unwrap_or_else(crate::dataflows::registry);
        replay(&registry, &spec, &mut out)?;
        let mut printed = Printed::default();
        for line in String::from_utf8(out).expect("utf-8 output").lines() {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad output line {line}: {e}"));
            let output = v["output"].as_str().expect("output name").to_string();
            if self.changes {
                let change = (v["time"].as_u64().expect("time"), v["row"].clone(), v["diff"].as_i64().expect("diff"));
                printed.changes.entry(output).or_default().push(change);
            } else {
                printed.rows.entry(output).or_default().push(v["row"].clone());
            }
        }
        Ok(printed)
    }
}

impl Printed {
    /// The rows of `output` (empty if none were printed).
    pub fn rows(&self, output: &str) -> &[Value] {
        self.rows.get(output).map_or(&[], Vec::as_slice)
    }

    /// Every output's rows as sorted multisets of their JSON texts.
    pub fn all_sorted(&self) -> BTreeMap<String, Vec<String>> {
        self.rows.keys().map(|output| (output.clone(), self.sorted(output))).collect()
    }

    /// The rows of `output` as a sorted multiset of their JSON texts.
    pub fn sorted(&self, output: &str) -> Vec<String> {
        let mut rows: Vec<String> = self.rows(output).iter().map(Value::to_string).collect();
        rows.sort();
        rows
    }

    /// With `changes`: the rows of `output` that the changes add up to, as a sorted
    /// multiset of JSON texts (a row with multiplicity n appears n times).
    pub fn consolidated(&self, output: &str) -> Vec<String> {
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for (_, row, diff) in self.changes.get(output).map_or(&[][..], Vec::as_slice) {
            *counts.entry(row.to_string()).or_default() += diff;
        }
        assert!(counts.values().all(|n| *n >= 0), "{output}: changes add up to a negative multiplicity");
        counts.into_iter().flat_map(|(row, n)| std::iter::repeat_n(row, n as usize)).collect()
    }
}

/// Outputs as sorted row texts, by output name.
pub type SortedRows = BTreeMap<String, Vec<String>>;

/// Asserts that `actual` and `expected` hold the same rows for each of `outputs`,
/// showing a few of the differences.
pub fn assert_same_rows(what: &str, outputs: &[&str], actual: &SortedRows, expected: &SortedRows) {
    for output in outputs {
        let (a, e) =
            (actual.get(*output).cloned().unwrap_or_default(), expected.get(*output).cloned().unwrap_or_default());
        let missing: Vec<_> = e.iter().filter(|r| !a.contains(r)).take(3).collect();
        let extra: Vec<_> = a.iter().filter(|r| !e.contains(r)).take(3).collect();
        assert!(
            a == e,
            "{what}: {output}: {} rows, {} expected; missing {missing:?}; unexpected {extra:?}",
            a.len(),
            e.len()
        );
    }
}

// ---------------------------------------------------------------------------
// `window_agg` with tumbling windows: a reference and a comparison
// ---------------------------------------------------------------------------

pub fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// An expected row of `windows`.
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    pub key: String,
    pub start: u64,
    pub end: u64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Expected {
    pub fn of(key: &str, start: u64, end: u64, values: &[f64]) -> Expected {
        Expected {
            key: key.into(),
            start,
            end,
            count: values.len() as u64,
            sum: values.iter().sum(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// Compares the rows of `windows` with the expected ones (in any order).
#[track_caller]
pub fn assert_windows(what: &str, actual: &[Value], expected: &[Expected]) {
    let mut actual: Vec<&Value> = actual.iter().collect();
    actual.sort_by_key(|r| (r["key"].as_str().unwrap_or_default().to_string(), r["start"].as_u64()));
    let mut expected: Vec<&Expected> = expected.iter().collect();
    expected.sort_by_key(|e| (e.key.clone(), e.start));
    let shown = || format!("actual {actual:#?}\nexpected {expected:#?}");
    assert_eq!(actual.len(), expected.len(), "{what}: row counts differ\n{}", shown());
    for (row, e) in actual.iter().zip(&expected) {
        let number = |f: &str| row[f].as_f64().unwrap_or_else(|| panic!("{what}: `{f}` is not a number in {row}"));
        let ok = row["key"] == e.key.as_str()
            && row["start"] == e.start
            && row["end"] == e.end
            && row["count"] == e.count
            && approx(number("sum"), e.sum)
            && approx(number("min"), e.min)
            && approx(number("max"), e.max)
            && approx(number("avg"), e.sum / e.count as f64);
        assert!(ok, "{what}: row {row} differs from {e:?}\n{}", shown());
    }
}

/// A reference of `window_agg` with tumbling windows, written from API.md: lateness
/// is judged per event against the watermark when it arrives.
pub struct Reference {
    size: u64,
    max_out_of_orderness: u64,
    allowed_lateness: u64,
    pub watermark: u64,
    windows: BTreeMap<(String, u64), Vec<f64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judged {
    OnTime,
    Late,
    TooLate,
}

impl Reference {
    pub fn new(size: u64, max_out_of_orderness: u64, allowed_lateness: u64) -> Reference {
        Reference { size, max_out_of_orderness, allowed_lateness, watermark: 0, windows: BTreeMap::new() }
    }

    pub fn feed(&mut self, key: &str, ts: u64, value: f64) -> Judged {
        let w = self.watermark;
        let start = ts - ts % self.size;
        if start + self.size + self.allowed_lateness <= w {
            return Judged::TooLate;
        }
        self.windows.entry((key.to_string(), start)).or_default().push(value);
        self.watermark = w.max(ts.saturating_sub(self.max_out_of_orderness));
        if ts < w { Judged::Late } else { Judged::OnTime }
    }

    pub fn advance(&mut self, watermark: u64) {
        self.watermark = self.watermark.max(watermark);
    }

    pub fn rows(&self) -> Vec<Expected> {
        self.windows.iter().map(|((key, start), values)| Expected::of(key, *start, start + self.size, values)).collect()
    }
}
