//! `tidemark run`: replay NDJSON files through a dataflow and print its outputs.
//!
//! The files are read in chunks, taking turns between inputs, and fed through the
//! same routers and runtime as a served job. Then every input's watermark moves to
//! one past the largest event time seen, and the outputs are printed as of that
//! frontier (or, with `--changes`, every change on the way). Lateness is judged per
//! record, so chunking does not change the results.
//!
//! Without `--changes` the job runs in [`TimeMode::Compact`]: only the final content
//! is read, so provisional versions within a chunk are never produced.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::ingest::format::Chunk;
use crate::job::params::JobParams;
use crate::job::{JobOptions, RunningJob};
use crate::pipeline::{Dataflow, Diff, Registry, Time, TimeMode};
use crate::runtime::{Engine, Inline, Keep, RowText, Runtime};
use crate::source::file::NdjsonFile;

/// Records per batch sent to the workers: small enough to stay in cache.
const BATCH_LINES: usize = 4096;
/// Batches per input before its frontier advances and the next input takes its turn:
/// larger steps consolidate more provisional changes away.
const BATCHES_PER_STEP: usize = 16;
/// How long the final outputs may take to complete.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(3600);

/// What to replay.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    /// The dataflow's name.
    pub dataflow: String,
    /// `(input name, NDJSON file)` pairs.
    pub inputs: Vec<(String, PathBuf)>,
    /// `(name, value)` pairs; a value is JSON if it parses as JSON, else a string.
    pub params: Vec<(String, String)>,
    /// Outputs to print (all if empty).
    pub outputs: Vec<String>,
    /// Print every change instead of the final content.
    pub changes: bool,
    /// Worker threads.
    pub workers: usize,
    /// Records read per input before its frontier advances and the next input takes its
    /// turn (0: a default). Results do not depend on it; only the times of `--changes` do.
    pub chunk_lines: usize,
}

/// Why a replay did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The invocation is wrong (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The replay failed (exit code 1).
    #[error("{0}")]
    Failure(String),
}

/// Parses a `--param` value: JSON when it is valid JSON, else a string.
pub fn param_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Runs `replay`, writing NDJSON to `out`.
pub fn replay(registry: &Registry, replay: &Replay, out: &mut dyn Write) -> Result<(), ReplayError> {
    let usage = ReplayError::Usage;
    let dataflow = registry.get(&replay.dataflow).ok_or_else(|| {
        let known: Vec<&str> = registry.iter().map(|d| d.name()).collect();
        usage(format!("unknown dataflow `{}` (known: {})", replay.dataflow, known.join(", ")))
    })?;
    let mut params: Map<String, Value> = replay.params.iter().map(|(k, v)| (k.clone(), param_value(v))).collect();
    if dataflow.default_params().contains_key("retention") && !params.contains_key("retention") {
        // A replay keeps every window it produced.
        params.insert("retention".into(), Value::Null);
    }
    let params = JobParams::decode(dataflow, &params).map_err(|e| usage(e.to_string()))?;

    let description = dataflow.description();
    let mut files: Vec<(usize, NdjsonFile)> = Vec::new();
    for (name, path) in &replay.inputs {
        let index = description.inputs.iter().position(|i| &i.name == name).ok_or_else(|| {
            let known: Vec<&str> = description.inputs.iter().map(|i| i.name.as_str()).collect();
            usage(format!("`{}` has no input `{name}` (inputs: {})", dataflow.name(), known.join(", ")))
        })?;
        if files.iter().any(|(i, _)| *i == index) {
            return Err(usage(format!("input `{name}` is given twice")));
        }
        let file = NdjsonFile::open(path, 0).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
        files.push((index, file));
    }
    let names = dataflow.output_names();
    let selected: Vec<usize> = if replay.outputs.is_empty() {
        (0..names.len()).collect()
    } else {
        let mut selected = Vec::new();
        for name in &replay.outputs {
            let i = names.iter().position(|n| n == name).ok_or_else(|| {
                usage(format!("`{}` has no output `{name}` (outputs: {})", dataflow.name(), names.join(", ")))
            })?;
            selected.push(i);
        }
        selected
    };

    let plan = Plan { dataflow, params, files, selected, names };
    if replay.workers <= 1 {
        // One worker runs on this thread: each batch is processed as it is read.
        run(Inline::new(), plan, replay, out)
    } else {
        let runtime = Arc::new(Runtime::start(replay.workers).map_err(|e| failure(&e))?);
        run(runtime.clone(), plan, replay, out)?;
        match Arc::try_unwrap(runtime) {
            Ok(runtime) => runtime.shutdown().map_err(|e| failure(&e)),
            Err(_) => Ok(()),
        }
    }
}

/// A validated replay.
struct Plan<'a> {
    dataflow: &'a Dataflow,
    params: JobParams,
    files: Vec<(usize, NdjsonFile)>,
    selected: Vec<usize>,
    names: Vec<String>,
}

fn failure(e: &dyn std::fmt::Display) -> ReplayError {
    ReplayError::Failure(e.to_string())
}

/// Feeds the files through the job on `engine` and prints its outputs.
fn run<E: Engine>(engine: E, plan: Plan<'_>, replay: &Replay, out: &mut dyn Write) -> Result<(), ReplayError> {
    let Plan { dataflow, params, mut files, selected, names } = plan;
    let options = JobOptions {
        mode: if replay.changes { TimeMode::Exact } else { TimeMode::Compact },
        keep: if replay.changes { Keep::Changes } else { Keep::Final },
        dead_letter_retention: None,
        checkpoints: false,
    };
    let job = RunningJob::start(engine, 0, "replay", dataflow, params, &options).map_err(|e| failure(&e))?;

    // Feed the files, a step of each in turn.
    let started = std::time::Instant::now();
    let (batch_lines, batches) = match replay.chunk_lines {
        0 => (BATCH_LINES, BATCHES_PER_STEP),
        n => (n.min(BATCH_LINES), n.div_ceil(BATCH_LINES)),
    };
    let mut chunk = Chunk::default();
    while !files.is_empty() {
        let mut finished = Vec::new();
        for (n, (input, reader)) in files.iter_mut().enumerate() {
            for b in 0..batches {
                reader.next_into(&mut chunk, batch_lines).map_err(|e| failure(&format!("cannot read input: {e}")))?;
                let last = chunk.is_empty() || b + 1 == batches;
                job.ingest_with(*input, chunk.records(), last).map_err(|e| failure(&e))?;
                if chunk.is_empty() {
                    finished.push(n);
                    break;
                }
            }
        }
        for n in finished.into_iter().rev() {
            files.remove(n);
        }
    }
    let last = (0..dataflow.description().inputs.len()).filter_map(|i| job.max_ts(i)).max();
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "inputs fed");
    let frontier = job.advance_all(last.map_or(0, |t| t + 1)).map_err(|e| failure(&e))?;
    if !job.wait_complete(COMPLETION_TIMEOUT) {
        return Err(ReplayError::Failure("the dataflow did not complete (a worker failed)".into()));
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, frontier, "outputs complete");

    let write_err = |e: std::io::Error| ReplayError::Failure(format!("cannot write output: {e}"));
    if replay.changes {
        let mut changes: Vec<(Time, usize, Diff, RowText)> = Vec::new();
        for &i in &selected {
            let rows = &job.outputs()[i].rows;
            changes.extend(rows.take_changes().into_iter().map(|(t, row, d)| (t, i, d, row)));
        }
        changes.sort_by(|a, b| (a.0, a.1, a.2.signum(), &a.3).cmp(&(b.0, b.1, b.2.signum(), &b.3)));
        for (time, i, diff, row) in changes {
            let name = Value::from(names[i].as_str());
            writeln!(out, r#"{{"output":{name},"time":{time},"row":{row},"diff":{diff}}}"#).map_err(write_err)?;
        }
    } else {
        for &i in &selected {
            let rows = job.outputs()[i].rows.take_rows();
            let prefix = format!(r#"{{"output":{},"row":"#, Value::from(names[i].as_str()));
            for (row, n) in rows {
                for _ in 0..n.max(0) {
                    out.write_all(prefix.as_bytes()).map_err(write_err)?;
                    out.write_all(row.as_bytes()).map_err(write_err)?;
                    out.write_all(b"}\n").map_err(write_err)?;
                }
            }
        }
    }
    out.flush().map_err(write_err)?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "outputs written");
    Ok(())
}
