//! Fuzzes the path of an HTTP ingest body: framing (JSON array, NDJSON), record parsing,
//! shape checks, lateness and placement, and the dataflows behind them. The body is
//! `RecordTarget` of `tests/fuzz_targets.rs`, which the regression test runs too.

#[path = "../../../dataflows/registry.rs"]
#[allow(dead_code)]
mod dataflows;
#[path = "../../../tests/fuzz_targets.rs"]
#[allow(dead_code)]
mod targets;

use std::panic::AssertUnwindSafe;

fn main() {
    // Started once per process and reused by every input (persistent mode); the engine
    // holds `RefCell`s, and a panic aborts the process anyway.
    let mut target = AssertUnwindSafe(targets::RecordTarget::new());
    afl::fuzz!(|data: &[u8]| target.run(data));
}
