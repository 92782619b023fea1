//! Running a scenario (a test pipeline, its parameters, its inputs and the rows its model
//! expects) through tidemark in several configurations, and comparing: a failure names
//! the scenario, its parameters and inputs, and each configuration's missing and extra
//! rows. Hand cases check their written-out rows against the model first.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;
use tidemark::pipeline::prelude::Registry;

use super::models::Expected;
use super::pipelines::{Ev, OpParams, registry};
use super::{ev, ev_json};
use crate::harness::Run;

/// `(workers, chunk_lines)`; chunk 0 is the replay's default (4096 lines per turn).
pub(super) const ALL_CONFIGS: &[(usize, usize)] = &[(1, 1), (1, 5), (1, 0), (2, 1), (2, 5), (2, 0)];

/// Inputs, parameters and the rows a replay must print.
pub(super) struct Scenario {
    pub(super) dataflow: &'static str,
    /// What to name in failure messages (the seed, for random scenarios).
    pub(super) label: String,
    pub(super) params: OpParams,
    /// In the order the replay takes turns feeding them.
    pub(super) inputs: Vec<(&'static str, Vec<Ev>)>,
    pub(super) expected: Expected,
}

pub(super) fn sorted_texts(rows: &[Value]) -> Vec<String> {
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
    pub(super) fn run(
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
    pub(super) fn verify(&self, configs: &[(usize, usize)]) {
        self.check(configs, false);
    }

    /// As [`Scenario::verify`], in exact time (every change printed and added up).
    pub(super) fn verify_exact(&self, configs: &[(usize, usize)]) {
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

/// A record as the rows show it, for writing expected rows out by hand.
pub(super) fn e(k: &str, ts: u64, v: i64) -> Value {
    ev_json(&ev(k, ts, v))
}

/// Checks that the model agrees with the rows written out, then replays the scenario.
pub(super) fn hand_case(
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
