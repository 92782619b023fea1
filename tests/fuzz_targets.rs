//! The bodies of the coverage-guided fuzz targets, and the test that replays their seeds
//! and every input they ever failed on.
//!
//! The fuzz binaries of `fuzz/` (run by `scripts/fuzz.sh`) include this file with
//! `#[path]`, as this test binary does, so an input AFL++ found crashing goes through
//! the very same code in `cargo test fuzz_targets` once it is committed under
//! `tests/fuzz/regressions/<target>/`. The targets use only the library's public API.
//!
//! - [`RecordTarget`]: a request body as `POST /api/v1/jobs/{job}/inputs/{input}` frames
//!   it (a JSON array, and NDJSON), fed to jobs of `window_agg`, `kmeans` and `logreg`
//!   on the single-thread engine. Every record must be accounted for.
//! - [`job_spec`]: a `POST /api/v1/jobs` body, parsed and validated as the API does.
//!
//! Neither may panic, whatever the bytes: bad data is data.

use serde_json::{Value, json};
use tidemark::ingest::IngestReport;
use tidemark::ingest::format::{json_array_records, ndjson_records};
use tidemark::job::params::JobParams;
use tidemark::job::spec::{self, Origin, Policy};
use tidemark::job::{JobOptions, RunningJob};
use tidemark::pipeline::{Registry, TimeMode};
use tidemark::runtime::{Inline, Keep};

/// Inputs between rebuilds of [`RecordTarget`]'s jobs. Windows, dead letters and
/// watermarks carry over from one input to the next (persistent mode, like a served
/// job); a rebuild keeps memory flat and gives later inputs a fresh watermark.
pub const REBUILD_EVERY: usize = 10_000;

/// The jobs records are fed to: every window kind and emit mode of `window_agg`, and
/// the two dataflows whose inputs check a shape (the first valid record fixes it).
fn job_params() -> Vec<(&'static str, Value)> {
    vec![
        ("window_agg", json!({"window": {"tumbling": {"size": 10000}}, "allowed_lateness": 5000})),
        (
            "window_agg",
            json!({"window": {"sliding": {"size": 10000, "slide": 2500}}, "max_out_of_orderness": 1000,
                   "emit": "on_close"}),
        ),
        ("window_agg", json!({"window": {"session": {"gap": 3000}}, "emit": "final", "retention": null})),
        ("kmeans", json!({"k": 2, "max_rounds": 10, "window": {"tumbling": {"size": 60000}}})),
        ("logreg", json!({"window": {"tumbling": {"size": 60000}}, "max_rounds": 10})),
    ]
}

/// Request bodies of records, fed to long-lived jobs on the [`Inline`] engine.
pub struct RecordTarget {
    registry: Registry,
    jobs: Vec<RunningJob<Inline>>,
    runs: usize,
}

impl RecordTarget {
    /// The target with its jobs started.
    pub fn new() -> RecordTarget {
        let registry = crate::dataflows::registry();
        let jobs = start_jobs(&registry);
        RecordTarget { registry, jobs, runs: 0 }
    }

    /// Feeds `body` to every job: its elements if it is a JSON array, then its lines.
    pub fn run(&mut self, body: &[u8]) {
        if self.runs == REBUILD_EVERY {
            // The old jobs go first: their engines drain on drop.
            self.jobs.clear();
            self.jobs = start_jobs(&self.registry);
            self.runs = 0;
        }
        self.runs += 1;
        if let Ok(records) = json_array_records(body) {
            self.feed(&records);
        }
        let lines: Vec<&[u8]> = ndjson_records(body).collect();
        self.feed(&lines);
    }

    fn feed(&self, records: &[&[u8]]) {
        for job in &self.jobs {
            for input in 0..job.inputs().len() {
                let before = job.watermark(input);
                let report = job.ingest(input, records.iter().copied()).expect("the inline engine never fails");
                check_report(job.name(), records.len(), before, &report);
            }
        }
    }
}

impl Default for RecordTarget {
    fn default() -> Self {
        RecordTarget::new()
    }
}

/// One job per entry of [`job_params`], each on an engine of its own.
fn start_jobs(registry: &Registry) -> Vec<RunningJob<Inline>> {
    // The server's options: exact times, outputs indexed by key with a history.
    let options = JobOptions {
        mode: TimeMode::Exact,
        keep: Keep::Served { history: 100 },
        dead_letter_retention: None,
        checkpoints: false,
    };
    job_params()
        .into_iter()
        .enumerate()
        .map(|(id, (name, params))| {
            let dataflow = registry.get(name).expect("a compiled-in dataflow");
            let params = JobParams::decode(dataflow, params.as_object().expect("an object")).expect("valid params");
            RunningJob::start(Inline::new(), id as u64, name, dataflow, params, &options).expect("the job starts")
        })
        .collect()
}

/// What must hold of any batch: every record is accepted, too late or rejected, once,
/// and the watermark never goes back.
fn check_report(job: &str, fed: usize, before: u64, report: &IngestReport) {
    let counted = report.accepted + report.too_late + report.rejected.len() as u64;
    assert_eq!(counted, fed as u64, "{job}: {fed} records fed, {counted} accounted for: {report:?}");
    assert!(report.late <= report.accepted, "{job}: more late than accepted records: {report:?}");
    let indices = report.rejected.iter().map(|r| r.index);
    assert!(indices.clone().zip(indices.skip(1)).all(|(a, b)| a < b), "{job}: rejected out of order: {report:?}");
    assert!(report.rejected.iter().all(|r| r.index < fed), "{job}: a rejected index past the batch: {report:?}");
    assert!(report.watermark >= before, "{job}: watermark went back from {before}: {report:?}");
}

/// A job spec as `POST /api/v1/jobs` takes it: parsed, then validated as a client's
/// spec. A spec that parses must come back the same from its own JSON.
pub fn job_spec(registry: &Registry, body: &[u8]) {
    let parsed = match spec::parse(body) {
        Ok(parsed) => parsed,
        Err(e) => {
            assert!(e.malformed && !e.field.is_empty(), "a parse error names a field: {e:?}");
            return;
        }
    };
    let json = serde_json::to_vec(&parsed).expect("a spec serializes");
    assert_eq!(spec::parse(&json).as_ref(), Ok(&parsed), "a spec does not survive its own JSON");
    let policy = Policy { origin: Origin::Api, file_root: None };
    match spec::validate(parsed, registry, &policy) {
        Ok(valid) => assert_eq!(valid.sources.len(), valid.dataflow.description().inputs.len()),
        Err(e) => assert!(!e.field.is_empty() && !e.code.is_empty(), "an error names a field and a code: {e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// The files of the seed corpus and of the committed regressions of `target`.
    fn inputs(target: &str) -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dirs = [root.join("fuzz/corpus").join(target), root.join("tests/fuzz/regressions").join(target)];
        let mut files: Vec<PathBuf> = dirs
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flatten()
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|path| path.is_file() && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect();
        files.sort();
        files
    }

    fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    #[test]
    fn record_inputs_replay_cleanly() {
        let files = inputs("record");
        assert!(!files.is_empty(), "no seeds in fuzz/corpus/record");
        // A fresh target per file: a committed crash must reproduce on its own.
        for path in files {
            eprintln!("record: {}", path.display());
            RecordTarget::new().run(&read(&path));
        }
    }

    #[test]
    fn job_spec_inputs_replay_cleanly() {
        let files = inputs("job_spec");
        assert!(!files.is_empty(), "no seeds in fuzz/corpus/job_spec");
        let registry = crate::dataflows::registry();
        for path in files {
            eprintln!("job_spec: {}", path.display());
            job_spec(&registry, &read(&path));
        }
    }
}
