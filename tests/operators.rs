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
//!
//! # Layout
//!
//! As in differential dataflow's tests, the reference models are kept apart from the
//! pipelines and from the tests: a model sees only the record and the parameters, never
//! an operator, so it cannot share an operator's mistake.
//!
//! - `pipelines`: the test pipelines, their record [`Ev`], their parameters and rows;
//! - `models`: the plain-Rust reference models, one per test pipeline;
//! - `generators`: seeded random inputs and parameters;
//! - `scenario`: replaying a scenario in every configuration and comparing with its
//!   model, and hand cases (rows written out, checked against the model too);
//! - `joins`, `dedupe_topk`, `stateful`: the tests, one file per operator family.

use serde_json::{Value, json};

use self::pipelines::Ev;

mod dedupe_topk;
mod generators;
mod joins;
mod models;
mod pipelines;
mod scenario;
mod stateful;

/// An input record, as the tests write them.
fn ev(k: &str, ts: u64, v: i64) -> Ev {
    Ev { k: k.into(), ts, v }
}

/// A record as an input line and as the pipelines print it.
fn ev_json(e: &Ev) -> Value {
    json!({"k": e.k, "ts": e.ts, "v": e.v})
}
