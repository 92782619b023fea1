//! Jobs: a dataflow with parameters, running on the runtime, fed through routers.
//!
//! - [`spec`]: job specs as users write them, and their validation.
//! - [`managed`]: a job of the server with its sources and sinks: started, failed, stopped.
//! - [`manager`]: the jobs of a server: created, persisted, restored, deleted.
//! - [`file_root`]: the directory below which file sources read (`--file-root`).
//! - [`params`]: a job's parameters, its dataflow's and its own (`idle_timeout_ms`).
//!
//! A [`RunningJob`] owns, per declared input, the ingest router (watermark, lateness,
//! placement) and, per output, the [`Materialized`] content its workers feed. It is
//! the only place where ingest and runtime meet: routed batches go to the workers,
//! then the input advances, then any dead letters follow on the job's dead-letter
//! input.

pub mod checkpoint;
pub mod file_root;
pub mod history;
pub mod managed;
pub mod manager;
pub mod params;
pub mod spec;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ingest::router::{DeadLetters, InputRouter, Routed};
use crate::ingest::{IngestReport, LaneState};
use crate::pipeline::{Dataflow, DeadLetter, OutputSink, Time, TimeMode};
use crate::runtime::{Engine, Install, JobId, Keep, Materialized, Runtime, RuntimeError};
use params::JobParams;

/// How long a restored job waits for its outputs to be rebuilt up to its checkpoint.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(300);

/// How a job is run.
#[derive(Clone, Debug)]
pub struct JobOptions {
    /// Timing of output changes.
    pub mode: TimeMode,
    /// What the outputs keep of their changes.
    pub keep: Keep,
    /// How long (in event time after their arrival) dead letters stay in the
    /// `dead_letter` output; `None` keeps them all. Independent of the dataflow's own
    /// `retention`, which is about windows.
    pub dead_letter_retention: Option<Time>,
    /// Whether the job can take checkpoints ([`RunningJob::checkpoint`]).
    pub checkpoints: bool,
}

/// Counters of one input since the job started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct InputStats {
    /// Records applied.
    pub accepted: u64,
    /// Applied records that were late.
    pub late: u64,
    /// Records dead-lettered as too late.
    pub too_late: u64,
    /// Records dead-lettered as invalid.
    pub rejected: u64,
}

/// One input of a running job.
pub struct InputPort {
    /// Its name.
    pub name: String,
    router: Mutex<InputRouter>,
    frontier: AtomicU64,
    watermark: AtomicU64,
    stats: Mutex<InputStats>,
}

/// One output of a running job.
pub struct OutputPort {
    /// Its name.
    pub name: String,
    /// Its key fields.
    pub key: Vec<String>,
    /// Its content.
    pub rows: Arc<Materialized>,
}

/// A job could not be started or fed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The checkpoint it was to start from holds the state of other operators than
    /// the ones its dataflow builds.
    #[error("the checkpoint's state does not fit this job: {0}")]
    StateDoesNotFit(String),
}

/// A job installed on an engine (by default, the threaded [`Runtime`], shared).
pub struct RunningJob<E: Engine = Arc<Runtime>> {
    id: JobId,
    name: String,
    dataflow: Dataflow,
    params: JobParams,
    runtime: E,
    inputs: Vec<InputPort>,
    dead: Mutex<DeadLetters>,
    dead_frontier: AtomicU64,
    outputs: Vec<OutputPort>,
    /// The least watermark of the inputs, which outputs report with their progress.
    watermark: Arc<AtomicU64>,
    /// Its side of its operators' checkpoints, if it takes any.
    state: Option<Arc<checkpoint::JobStore>>,
}

impl<E: Engine> RunningJob<E> {
    /// Installs `dataflow` with `params` on every worker of `runtime`.
    pub fn start(
        runtime: E,
        id: JobId,
        name: &str,
        dataflow: &Dataflow,
        params: JobParams,
        options: &JobOptions,
    ) -> Result<Self, JobError> {
        Self::start_from(runtime, id, name, dataflow, params, options, None)
    }

    /// [`RunningJob::start`], restored from a checkpoint if given (with
    /// `options.checkpoints`): routers, operators, and inputs at its frontier.
    pub fn start_from(
        runtime: E,
        id: JobId,
        name: &str,
        dataflow: &Dataflow,
        params: JobParams,
        options: &JobOptions,
        mut restored: Option<checkpoint::Restored>,
    ) -> Result<Self, JobError> {
        let (job, install) = Self::assemble(runtime, id, name, dataflow, params, options, restored.as_mut());
        job.runtime.install(id, install)?;
        if let Some(state) = &job.state
            && let Some(why) = state.misfit()
        {
            job.runtime.stop(id);
            return Err(JobError::StateDoesNotFit(why));
        }
        if let Some(restored) = &restored {
            job.resume_from(restored)?;
            // Served from here on: the outputs rebuilt up to the checkpoint first.
            let outputs = job.outputs.iter().filter(|o| o.name != crate::pipeline::DEAD_LETTER);
            let rebuilt = || outputs.clone().all(|o| o.rows.frontier().is_none_or(|f| f >= restored.frontier()));
            if !job.runtime.settle(&rebuilt, RESTORE_TIMEOUT) {
                tracing::warn!(job = %name, "the outputs were not rebuilt up to the checkpoint within {RESTORE_TIMEOUT:?}");
            }
        }
        Ok(job)
    }

    /// A job whose dataflow could not be built on `runtime` (its pipeline panicked or
    /// failed while it was): its inputs and outputs are there, empty, so that it can be
    /// listed, described and deleted while its supervisor tries again. Nothing runs.
    pub fn unbuilt(
        runtime: E,
        id: JobId,
        name: &str,
        dataflow: &Dataflow,
        params: JobParams,
        options: &JobOptions,
    ) -> Self {
        Self::assemble(runtime, id, name, dataflow, params, options, None).0
    }

    /// The job's ports and state, and what installs its dataflow.
    fn assemble(
        runtime: E,
        id: JobId,
        name: &str,
        dataflow: &Dataflow,
        params: JobParams,
        options: &JobOptions,
        restored: Option<&mut checkpoint::Restored>,
    ) -> (Self, Install) {
        let state = options.checkpoints.then(|| Arc::new(checkpoint::JobStore::new(restored)));
        let workers = runtime.workers();
        let description = dataflow.description();
        let watermark = Arc::new(AtomicU64::new(0));
        let keys = description.outputs.iter().map(|o| o.key.clone()).chain([Vec::new()]);
        let outputs: Vec<OutputPort> = dataflow
            .output_names()
            .into_iter()
            .zip(keys)
            .map(|(name, key)| {
                let rows = Materialized::new(workers, options.keep, key.clone(), watermark.clone());
                if options.checkpoints {
                    rows.track_history();
                }
                OutputPort { name, key, rows }
            })
            .collect();
        let sinks = outputs.iter().map(|o| o.rows.clone() as Arc<dyn OutputSink>).collect();
        let inputs = description
            .inputs
            .iter()
            .map(|desc| {
                let options = params.dataflow.inputs.options(&desc.name);
                let router = InputRouter::new(&desc.name, desc.codec.clone(), options, workers, params.idle_timeout);
                InputPort {
                    name: desc.name.clone(),
                    router: Mutex::new(router),
                    frontier: AtomicU64::new(0),
                    watermark: AtomicU64::new(0),
                    stats: Mutex::new(InputStats::default()),
                }
            })
            .collect();
        let install = Install {
            name: name.into(),
            dataflow: dataflow.clone(),
            params: params.dataflow.clone(),
            mode: options.mode,
            sinks,
            state: state.clone().map(|s| s as Arc<dyn crate::pipeline::state::StateStore>),
        };
        let job = RunningJob {
            id,
            name: name.into(),
            dataflow: dataflow.clone(),
            params,
            runtime,
            inputs,
            dead: Mutex::new({
                let mut dead = DeadLetters::new(options.dead_letter_retention);
                if options.checkpoints {
                    dead.keep_live();
                }
                dead
            }),
            dead_frontier: AtomicU64::new(0),
            outputs,
            watermark,
            state,
        };
        (job, install)
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dataflow it runs.
    pub fn dataflow(&self) -> &Dataflow {
        &self.dataflow
    }

    /// Its effective parameters.
    pub fn params(&self) -> &JobParams {
        &self.params
    }

    /// Its inputs, in declaration order.
    pub fn inputs(&self) -> &[InputPort] {
        &self.inputs
    }

    /// Its outputs, in declaration order, `dead_letter` last.
    pub fn outputs(&self) -> &[OutputPort] {
        &self.outputs
    }

    /// The index of input `name`.
    pub fn input_index(&self, name: &str) -> Option<usize> {
        self.inputs.iter().position(|i| i.name == name)
    }

    /// The output `name`.
    pub fn output(&self, name: &str) -> Option<&OutputPort> {
        self.outputs.iter().find(|o| o.name == name)
    }

    /// Feeds records (JSON texts, in order) to input `input`, then advances it.
    pub fn ingest<'a>(
        &self,
        input: usize,
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<IngestReport, JobError> {
        self.ingest_with(input, records, true)
    }

    /// Feeds records to input `input`, and advances it only if `advance`: a caller
    /// sending many batches in a row advances once after several (fewer provisional
    /// output versions), while every batch stays small (cache-friendly).
    pub fn ingest_with<'a>(
        &self,
        input: usize,
        records: impl IntoIterator<Item = &'a [u8]>,
        advance: bool,
    ) -> Result<IngestReport, JobError> {
        self.ingest_routed(input, advance, |router| router.route(records))
    }

    /// Feeds records of one partition (a *lane*, see [`crate::ingest::router`]) of
    /// input `input`, in order; advances the input only if `advance`.
    pub fn ingest_lane<'a>(
        &self,
        input: usize,
        lane: usize,
        records: impl IntoIterator<Item = &'a [u8]>,
        advance: bool,
    ) -> Result<IngestReport, JobError> {
        self.ingest_routed(input, advance, |router| router.route_lane(lane, records, Instant::now()))
    }

    /// Declares that input `input` has (at least) `lanes` partitions: each holds the
    /// watermark back until it has records or has been idle for the idle timeout.
    pub fn add_lanes(&self, input: usize, lanes: usize) {
        self.inputs[input].router.lock().expect("router lock").add_lanes(lanes, Instant::now());
    }

    /// The state of each lane of input `input`.
    pub fn lanes(&self, input: usize) -> Vec<LaneState> {
        self.inputs[input].router.lock().expect("router lock").lanes(Instant::now())
    }

    fn ingest_routed(
        &self,
        input: usize,
        advance: bool,
        route: impl FnOnce(&mut InputRouter) -> Routed,
    ) -> Result<IngestReport, JobError> {
        let port = &self.inputs[input];
        let (report, dead) = {
            let mut router = port.router.lock().expect("router lock");
            let routed = route(&mut router);
            for (worker, batch) in routed.batches.into_iter().enumerate() {
                if let Some(batch) = batch {
                    self.runtime.push(self.id, input, worker, batch)?;
                }
            }
            if advance {
                self.flush(input, &mut router, 0)?;
            }
            (routed.report, routed.dead)
        };
        let mut stats = port.stats.lock().expect("stats lock");
        stats.accepted += report.accepted;
        stats.late += report.late;
        stats.too_late += report.too_late;
        stats.rejected += report.rejected.len() as u64;
        drop(stats);
        self.dead_letters(dead)?;
        Ok(report)
    }

    /// Moves input `input`'s watermark to at least `watermark`; returns its new
    /// `(frontier, watermark)`.
    pub fn advance(&self, input: usize, watermark: Time) -> Result<(Time, Time), JobError> {
        let mut router = self.inputs[input].router.lock().expect("router lock");
        router.clock.advance_to(watermark);
        self.flush(input, &mut router, 0)?;
        let at = (router.clock.frontier(), router.clock.watermark());
        drop(router);
        self.dead_letters(Vec::new())?;
        Ok(at)
    }

    /// Moves every input's watermark to at least `watermark` and all their frontiers
    /// to one common frontier, which is returned: every output is complete once it
    /// reaches it (for replays, which read the outputs at their end).
    pub fn advance_all(&self, watermark: Time) -> Result<Time, JobError> {
        let mut common = watermark;
        for (i, port) in self.inputs.iter().enumerate() {
            let mut router = port.router.lock().expect("router lock");
            router.clock.advance_to(watermark);
            self.flush(i, &mut router, 0)?;
            common = common.max(router.clock.frontier());
        }
        for (i, port) in self.inputs.iter().enumerate() {
            self.flush(i, &mut port.router.lock().expect("router lock"), common)?;
        }
        self.dead_letters(Vec::new())?;
        Ok(common)
    }

    /// The frontier every output must reach to reflect all input so far: the inputs'
    /// least frontier, and the dead-letter frontier for `dead_letter`.
    pub fn complete_at(&self, output: usize) -> Time {
        if output + 1 == self.outputs.len() {
            self.dead_frontier.load(Ordering::SeqCst)
        } else {
            self.inputs.iter().map(|i| i.frontier.load(Ordering::SeqCst)).min().unwrap_or(0)
        }
    }

    /// Waits until every output reflects all input so far; false on timeout or failure.
    pub fn wait_complete(&self, timeout: Duration) -> bool {
        let complete =
            || self.outputs.iter().enumerate().all(|(i, o)| o.rows.frontier().is_none_or(|f| f >= self.complete_at(i)));
        self.runtime.settle(&complete, timeout)
    }

    /// The counters of input `input`.
    pub fn input_stats(&self, input: usize) -> InputStats {
        *self.inputs[input].stats.lock().expect("stats lock")
    }

    /// The frontier input `input` has been advanced to.
    pub fn input_frontier(&self, input: usize) -> Time {
        self.inputs[input].frontier.load(Ordering::SeqCst)
    }

    /// The least watermark of the job's inputs.
    pub fn job_watermark(&self) -> Time {
        self.watermark.load(Ordering::SeqCst)
    }

    /// The current watermark of input `input`.
    pub fn watermark(&self, input: usize) -> Time {
        self.inputs[input].router.lock().expect("router lock").clock.watermark()
    }

    /// The processing-time fallback: moves the watermark of every input that has had no
    /// records for the job's idle timeout as if event time had kept passing at the
    /// wall-clock rate since its last record. A server calls this periodically.
    pub fn tick(&self, now: Instant) -> Result<(), JobError> {
        self.tick_inputs(0..self.inputs.len(), now)
    }

    /// [`tick`](Self::tick) for `inputs` alone.
    pub fn tick_inputs(&self, inputs: impl IntoIterator<Item = usize>, now: Instant) -> Result<(), JobError> {
        if self.params.idle_timeout.is_none() {
            return Ok(());
        }
        for input in inputs {
            let mut router = self.inputs[input].router.lock().expect("router lock");
            router.follow_wall_clock(now);
            self.flush(input, &mut router, 0)?;
        }
        self.dead_letters(Vec::new())
    }

    /// The watermark input `input` would follow the wall clock to at `now` (it has been
    /// quiet for the idle timeout), if that raises it. An input whose moves must be
    /// replayed from its log advances to it, logged, instead of ticking.
    pub fn quiet_watermark(&self, input: usize, now: Instant) -> Option<Time> {
        self.params.idle_timeout?;
        self.inputs[input].router.lock().expect("router lock").quiet_watermark(now)
    }

    /// The largest valid event time input `input` has seen.
    pub fn max_ts(&self, input: usize) -> Option<Time> {
        self.inputs[input].router.lock().expect("router lock").max_ts
    }

    /// Why the job's workers stopped (a panic's message), if they did.
    pub fn runtime_failure(&self) -> Option<String> {
        if !self.runtime.failed() {
            return None;
        }
        Some(self.runtime.failure().unwrap_or_else(|| "a worker stopped".to_string()))
    }

    /// Stops the job's dataflow on every worker.
    pub fn stop(&self) {
        self.runtime.stop(self.id);
    }

    fn flush(&self, input: usize, router: &mut InputRouter, at_least: Time) -> Result<(), JobError> {
        if let Some((frontier, watermark)) = router.clock.flush(at_least) {
            self.runtime.advance(self.id, input, frontier, watermark)?;
            self.inputs[input].frontier.store(frontier, Ordering::SeqCst);
            self.inputs[input].watermark.store(watermark, Ordering::SeqCst);
            let least = self.inputs.iter().map(|i| i.watermark.load(Ordering::SeqCst)).min().unwrap_or(watermark);
            self.watermark.store(least, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Places dead letters and keeps the dead-letter frontier with the inputs'.
    fn dead_letters(&self, dead: Vec<DeadLetter>) -> Result<(), JobError> {
        let index = self.inputs.len();
        let inputs_frontier = self.inputs.iter().map(|i| i.frontier.load(Ordering::SeqCst)).max().unwrap_or(0);
        let mut letters = self.dead.lock().expect("dead letters lock");
        let (updates, advance) = letters.place(dead, inputs_frontier);
        if !updates.is_empty() {
            self.runtime.push(self.id, index, 0, Box::new(updates))?;
        }
        if let Some(frontier) = advance {
            self.runtime.advance(self.id, index, frontier, frontier)?;
            self.dead_frontier.store(frontier, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl<E: Engine> Drop for RunningJob<E> {
    fn drop(&mut self) {
        self.stop();
    }
}
