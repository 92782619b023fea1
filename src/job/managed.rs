//! [`ManagedJob`]: a job of the server — its spec, its running dataflow, and the
//! sources and sinks that feed and drain it — and its life: started, failed, stopped.
//!
//! Sources and sinks are started from their specs ([`crate::source`],
//! [`crate::sink`]); each source writes into its input through an `InputFeed`, the
//! job's side of [`Feed`].
//! Stopping a job stops its sinks first (so that they write nothing of the job's
//! shutdown), then its sources, then its dataflow. A job with an idle timeout has a
//! clock task: every 100 ms it lets idle inputs follow the wall clock
//! ([`RunningJob::tick_inputs`]); an HTTP input moves through its source instead, so
//! that the move is in its log ([`HttpSource::follow_clock`]).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinHandle;

mod checkpoints;

use super::checkpoint::{CheckpointFailed, NoCheckpoints};
use super::history::History;
use super::spec::JobSpec;
use super::{JobError, RunningJob};
use crate::checkpoint::Store;
use crate::ingest::IngestReport;
use crate::pipeline::Time;
use crate::sink::{Sink, SinkPosition, SinkSpec, SinkStatus};
use crate::source::generator::GeneratorSource;
#[cfg(doc)]
use crate::source::http::HttpSource;
use crate::source::{Feed, FeedError, Position, Source, SourceSpec, SourceStatus};

/// How often idle inputs follow the wall clock.
const CLOCK_PERIOD: Duration = Duration::from_millis(100);
/// The smallest move of an idle HTTP input's watermark (each is a frame of its log).
const CLOCK_STEP: Duration = Duration::from_secs(1);

/// Failures in a row (without a checkpoint between them) after which a job whose
/// pipeline fails is not restarted again.
pub const MAX_FAILURES: u32 = 5;
/// The first wait before a restart; each further failure in a row doubles it, up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepting input and keeping its outputs up to date.
    Running,
    /// Its pipeline failed (panicked); it waits to start again from its last
    /// checkpoint. Its outputs keep their last content.
    Restarting,
    /// A source failed, or the pipeline failed [`MAX_FAILURES`] times in a row; its
    /// outputs keep their last content.
    Failed,
    /// Suspended after a checkpoint: its sources, sinks and clock are stopped and it
    /// takes no input; its outputs keep their content at the checkpoint. It stays so
    /// across restarts until resumed.
    Suspended,
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobState::Running => "running",
            JobState::Restarting => "restarting",
            JobState::Failed => "failed",
            JobState::Suspended => "suspended",
        })
    }
}

/// What the supervisor knows of a job across its runs.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Supervision {
    /// Runs started after a failure.
    pub(super) restarts: u32,
    /// Failures since the last checkpoint (or the start).
    pub(super) failures: u32,
    /// When a restarting job starts again.
    pub(super) due: Option<Instant>,
}

/// The wait before the restart that follows the `failures`-th failure in a row.
pub(super) fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// The last checkpoint of a job, as job status and `POST .../checkpoint` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckpointInfo {
    /// Its number.
    pub id: u64,
    /// The frontier it was taken at.
    pub frontier: Time,
    /// Bytes written for it (the state that changed since the previous one).
    pub bytes: u64,
    /// How long it took, from holding the inputs to the manifest's commit.
    pub duration_ms: u64,
    /// When it was taken, wall-clock ms since the epoch.
    pub at: u64,
}

/// Why a job was not suspended.
#[derive(Debug, thiserror::Error)]
pub enum SuspendError {
    /// It is not running.
    #[error("the job is {0}, not running")]
    NotRunning(JobState),
    /// Its checkpoint failed (it runs on).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointFailed),
}

/// A running source and the inputs it feeds.
type Running = (Vec<usize>, Arc<dyn Source>);

/// A job of the server.
pub struct ManagedJob {
    /// The spec it was created from.
    pub spec: JobSpec,
    /// A source per declared input.
    pub sources: Vec<SourceSpec>,
    /// The running dataflow.
    pub job: RunningJob,
    status: Mutex<(JobState, Option<String>)>,
    supervision: Mutex<Supervision>,
    /// Sinks, by output index.
    sink_specs: Vec<(usize, SinkSpec)>,
    running: Mutex<Vec<Running>>,
    sinks: Mutex<Vec<(usize, Arc<dyn Sink>)>>,
    clock: Mutex<Option<JoinHandle<()>>>,
    /// Where it checkpoints, or why it cannot.
    checkpoints: Mutex<Result<Store, NoCheckpoints>>,
    last_checkpoint: Mutex<Option<CheckpointInfo>>,
    checkpoint_error: Mutex<Option<String>>,
    checkpointing: Mutex<Option<JoinHandle<()>>>,
    /// Where each source stood at the last checkpoint, by input.
    checkpointed: Mutex<BTreeMap<String, Position>>,
    /// What happened to it, across its runs and the server's restarts.
    pub history: Arc<History>,
}

impl ManagedJob {
    /// A job of `spec` around `job`, with its sources and sinks not yet started.
    pub(super) fn new(
        spec: JobSpec,
        sources: Vec<SourceSpec>,
        sinks: Vec<(usize, SinkSpec)>,
        job: RunningJob,
        history: Arc<History>,
    ) -> ManagedJob {
        ManagedJob {
            spec,
            sources,
            job,
            status: Mutex::new((JobState::Running, None)),
            supervision: Mutex::new(Supervision::default()),
            sink_specs: sinks,
            running: Mutex::new(Vec::new()),
            sinks: Mutex::new(Vec::new()),
            clock: Mutex::new(None),
            checkpoints: Mutex::new(Err(NoCheckpoints(CheckpointFailed::Disabled.to_string()))),
            last_checkpoint: Mutex::new(None),
            checkpoint_error: Mutex::new(None),
            checkpointing: Mutex::new(None),
            checkpointed: Mutex::new(Default::default()),
            history,
        }
    }

    /// Its state, and the error that made it fail.
    pub fn state(&self) -> (JobState, Option<String>) {
        self.status.lock().expect("status lock").clone()
    }

    /// The running source of input `input` (none once the job stopped).
    pub fn source(&self, input: usize) -> Option<Arc<dyn Source>> {
        let running = self.running.lock().expect("sources lock");
        running.iter().find(|(inputs, _)| inputs.contains(&input)).map(|(_, source)| source.clone())
    }

    /// Where the source of input `input` stands.
    pub fn position(&self, input: usize) -> Option<Position> {
        self.source(input).map(|source| source.position())
    }

    /// What job status shows of the source of input `input`.
    pub fn source_status(&self, input: usize) -> SourceStatus {
        self.source(input).map_or(SourceStatus::Plain, |source| source.status())
    }

    /// Where the sink of output `output` stands, if it has one.
    pub fn sink(&self, output: usize) -> Option<SinkStatus> {
        let sinks = self.sinks.lock().expect("sinks lock");
        sinks.iter().find(|(o, _)| *o == output).map(|(_, s)| s.status())
    }

    /// How many times the job was started again after its pipeline failed.
    pub fn restarts(&self) -> u32 {
        self.supervision.lock().expect("supervision lock").restarts
    }

    /// What the supervisor knows of this run, for the next.
    pub(super) fn supervision(&self) -> Supervision {
        *self.supervision.lock().expect("supervision lock")
    }

    /// Continues the supervision of an earlier run of the job.
    pub(super) fn supervise_as(&self, supervision: Supervision) {
        *self.supervision.lock().expect("supervision lock") = supervision;
    }

    /// Marks the job failed (once: the first error stays). A job whose pipeline failed
    /// is the supervisor's ([`ManagedJob::watch`]): what fails after that (its sources
    /// and clock find the workers gone) is a consequence, not the cause.
    pub(super) fn fail(&self, error: impl std::fmt::Display) {
        if self.job.runtime_failure().is_none() && self.state().0 == JobState::Running {
            self.give_up(error);
        }
    }

    /// Marks the job failed, whatever its state.
    pub(super) fn give_up(&self, error: impl std::fmt::Display) {
        tracing::error!(job = %self.spec.name, %error, "job failed");
        self.history.record("failed", serde_json::json!({"error": error.to_string()}));
        *self.status.lock().expect("status lock") = (JobState::Failed, Some(error.to_string()));
    }

    /// Suspends the job (see [`JobState::Suspended`]): refuses input from now on,
    /// checkpoints, then stops its sinks, sources and clock. If the checkpoint fails
    /// the job runs on. A suspended job is left as it is.
    pub(super) fn suspend(&self) -> Result<(), SuspendError> {
        {
            let mut status = self.status.lock().expect("status lock");
            match status.0 {
                JobState::Running => *status = (JobState::Suspended, None),
                JobState::Suspended => return Ok(()),
                state => return Err(SuspendError::NotRunning(state)),
            }
        }
        match self.checkpoint() {
            Ok(taken) => {
                self.stop_feeding();
                self.history.record("suspended", serde_json::json!({"checkpoint": taken.id}));
                Ok(())
            }
            Err(failed) => {
                *self.status.lock().expect("status lock") = (JobState::Running, None);
                Err(SuspendError::Checkpoint(failed))
            }
        }
    }

    /// Marks a job restored at a server start suspended, as it was (its sources were
    /// not started).
    pub(super) fn stay_suspended(&self) {
        *self.status.lock().expect("status lock") = (JobState::Suspended, None);
    }

    /// One look of the supervisor at `now`: a running job whose pipeline failed stops
    /// its sources and sinks and waits to restart (or fails for good after
    /// [`MAX_FAILURES`] in a row); true when a restarting job is due to start again.
    pub(super) fn watch(&self, now: Instant) -> bool {
        let state = self.state().0;
        if state == JobState::Running
            && let Some(why) = self.job.runtime_failure()
        {
            self.stop_feeding();
            self.crashed(format_args!("the pipeline panicked: {why}"), now);
            return false;
        }
        state == JobState::Restarting && self.supervision().due.is_some_and(|due| due <= now)
    }

    /// Counts a failure of the pipeline: the job waits to restart, or after
    /// [`MAX_FAILURES`] in a row stays failed.
    pub(super) fn crashed(&self, why: impl Display, now: Instant) {
        let mut supervision = self.supervision.lock().expect("supervision lock");
        supervision.failures += 1;
        let failures = supervision.failures;
        let mut status = self.status.lock().expect("status lock");
        if failures >= MAX_FAILURES {
            supervision.due = None;
            let error = format!("{why} ({failures} failures in a row without a checkpoint: not restarted again)");
            tracing::error!(job = %self.spec.name, %error, "job failed");
            self.history.record("failed", serde_json::json!({"error": error}));
            *status = (JobState::Failed, Some(error));
        } else {
            let wait = backoff(failures);
            supervision.due = Some(now + wait);
            tracing::warn!(job = %self.spec.name, error = %why, ?wait, failures, "job restarting");
            let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            self.history.record("restarting", serde_json::json!({"error": why.to_string(), "wait_ms": wait_ms}));
            *status = (JobState::Restarting, Some(why.to_string()));
        }
    }

    /// Starts sinks and sources — each input's from `from(input)` if it gives a
    /// position, HTTP inputs with their logs in `log_dir` if given, each sink from its
    /// output's position in `sinks_from` — and the clock of idle inputs; `keep(input)`
    /// keeps a position a source fixed. A source that cannot start fails the job. Must
    /// run inside a tokio runtime.
    pub(super) fn start(
        self: &Arc<Self>,
        mut from: impl FnMut(&str) -> Option<Position>,
        keep: impl Fn(&str) -> Keep,
        log_dir: Option<&Path>,
        mut sinks_from: BTreeMap<String, SinkPosition>,
    ) {
        let name = &self.spec.name;
        for (output, spec) in &self.sink_specs {
            let port = &self.job.outputs()[*output];
            let from = sinks_from.remove(&port.name);
            let sink = spec.start(format!("{name}.{}", port.name), port.rows.clone(), port.key.clone(), from);
            self.sinks.lock().expect("sinks lock").push((*output, sink));
        }
        let feed = |input: usize| -> Arc<InputFeed> {
            let keep = keep(&self.job.inputs()[input].name);
            Arc::new(InputFeed { job: Arc::downgrade(self), input, keep })
        };
        let mut running: Vec<Running> = Vec::new();
        let mut generated = Vec::new();
        for (input, spec) in self.sources.iter().enumerate() {
            let input_name = &self.job.inputs()[input].name;
            match spec {
                SourceSpec::Generator(spec) => generated.push((input, spec.clone(), feed(input) as _)),
                spec => {
                    let position = from(input_name);
                    let log = log_dir.map(|dir| dir.join(format!("{input_name}.log")));
                    match spec.start(&format!("{name}.{input_name}"), feed(input), position, log) {
                        Ok(Some(source)) => running.push((vec![input], source)),
                        Ok(None) => {}
                        Err(error) => self.fail(format_args!("input `{input_name}`: {error}")),
                    }
                }
            }
        }
        if !generated.is_empty() {
            let inputs = generated.iter().map(|(input, _, _)| *input).collect();
            running.push((inputs, Arc::new(GeneratorSource::start(generated))));
        }
        *self.running.lock().expect("sources lock") = running;
        if self.job.params().idle_timeout.is_some() {
            *self.clock.lock().expect("clock lock") = Some(tokio::spawn(follow_clock(self.clone())));
        }
        let interval = self.spec.checkpoint_interval();
        if interval > 0 && self.checkpoints.lock().expect("checkpoints lock").is_ok() {
            let every = Duration::from_millis(interval);
            *self.checkpointing.lock().expect("checkpointing lock") =
                Some(tokio::spawn(checkpoints::checkpoint_every(self.clone(), every)));
        }
    }

    /// Stops sinks, sources, clock and dataflow, in that order; blocks while the
    /// sources' and sinks' threads finish.
    pub(super) fn stop(&self) {
        self.stop_feeding();
        self.job.stop();
    }

    /// Stops sinks, sources and clock, in that order (the dataflow stays, with its
    /// outputs); blocks while the sources' and sinks' threads finish.
    fn stop_feeding(&self) {
        for (_, sink) in std::mem::take(&mut *self.sinks.lock().expect("sinks lock")) {
            sink.stop();
        }
        for (_, source) in std::mem::take(&mut *self.running.lock().expect("sources lock")) {
            source.stop();
        }
        if let Some(clock) = self.clock.lock().expect("clock lock").take() {
            clock.abort();
        }
        if let Some(checkpointing) = self.checkpointing.lock().expect("checkpointing lock").take() {
            checkpointing.abort();
        }
    }
}

/// Lets idle inputs follow the wall clock, every [`CLOCK_PERIOD`].
async fn follow_clock(job: Arc<ManagedJob>) {
    let mut ticks = tokio::time::interval(CLOCK_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let ticking = job.clone();
        match tokio::task::spawn_blocking(move || ticking.tick(Instant::now())).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return job.fail(error),
            Err(error) if error.is_cancelled() => return,
            Err(error) => return job.fail(error),
        }
    }
}

impl ManagedJob {
    /// One step of the wall-clock fallback. An HTTP input moves through its source, so
    /// that its log holds the move (in steps of at least [`CLOCK_STEP`], or the idle
    /// timeout if shorter, to keep idle logs small); the others follow the clock
    /// directly.
    fn tick(&self, now: Instant) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let step = self.job.params().idle_timeout.map_or(CLOCK_STEP, |idle| idle.min(CLOCK_STEP));
        let step = Time::try_from(step.as_millis()).unwrap_or(Time::MAX);
        let mut others = Vec::new();
        for input in 0..self.job.inputs().len() {
            let source = self.source(input);
            match source.as_ref().and_then(|s| s.as_http()) {
                Some(http) => {
                    let current = self.job.watermark(input);
                    if let Some(watermark) = self.job.quiet_watermark(input, now).filter(|w| *w >= current + step) {
                        http.follow_clock(watermark)?;
                    }
                }
                None => others.push(input),
            }
        }
        self.job.tick_inputs(others, now)?;
        Ok(())
    }
}

/// Keeps a position a source fixed (its starting offsets), to start there again.
pub type Keep = Box<dyn Fn(&Position) + Send + Sync>;

/// One input of a job, as its source sees it. It holds the job weakly: a deleted
/// job's source finds it [`FeedError::Gone`].
pub(super) struct InputFeed {
    pub(super) job: Weak<ManagedJob>,
    pub(super) input: usize,
    pub(super) keep: Keep,
}

impl InputFeed {
    fn job(&self) -> Result<Arc<ManagedJob>, FeedError> {
        self.job.upgrade().ok_or(FeedError::Gone)
    }
}

fn fed<T>(result: Result<T, JobError>) -> Result<T, FeedError> {
    result.map_err(|error| FeedError::Job(Box::new(error)))
}

impl Feed for InputFeed {
    fn records(&self, records: &[&[u8]]) -> Result<IngestReport, FeedError> {
        fed(self.job()?.job.ingest(self.input, records.iter().copied()))
    }

    fn partitions(&self, partitions: usize) {
        if let Ok(job) = self.job() {
            job.job.add_lanes(self.input, partitions);
        }
    }

    fn partition_records(&self, partition: usize, records: &[&[u8]]) -> Result<(), FeedError> {
        fed(self.job()?.job.ingest_lane(self.input, partition, records.iter().copied(), false)).map(|_| ())
    }

    fn flush(&self) -> Result<(), FeedError> {
        fed(self.job()?.job.advance(self.input, 0)).map(|_| ())
    }

    fn advance(&self, watermark: Time) -> Result<Time, FeedError> {
        fed(self.job()?.job.advance(self.input, watermark)).map(|(_, watermark)| watermark)
    }

    fn fail(&self, error: &dyn Display) {
        if let Ok(job) = self.job() {
            job.fail(format_args!("input `{}`: {error}", job.job.inputs()[self.input].name));
        }
    }

    fn started_at(&self, position: &Position) {
        (self.keep)(position);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_up_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
