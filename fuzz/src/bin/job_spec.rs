//! Fuzzes job specs as `POST /api/v1/jobs` takes them: parsing, then validation against
//! the compiled-in dataflows as a client's spec. The body is `job_spec` of
//! `tests/fuzz_targets.rs`, which the regression test runs too.

#[path = "../../../dataflows/registry.rs"]
#[allow(dead_code)]
mod dataflows;
#[path = "../../../tests/fuzz_targets.rs"]
#[allow(dead_code)]
mod targets;

use std::panic::AssertUnwindSafe;

fn main() {
    // The registry holds `dyn` pipelines, not known to be unwind-safe; a panic aborts the
    // process anyway.
    let registry = AssertUnwindSafe(dataflows::registry());
    afl::fuzz!(|data: &[u8]| targets::job_spec(&registry, data));
}
