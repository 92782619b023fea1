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

use std::fmt::Display;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinHandle;

use super::spec::JobSpec;
use super::{JobError, RunningJob};
use crate::ingest::IngestReport;
use crate::pipeline::Time;
use crate::sink::{Sink, SinkSpec, SinkStatus};
use crate::source::generator::GeneratorSource;
#[cfg(doc)]
use crate::source::http::HttpSource;
use crate::source::{Feed, FeedError, Position, Source, SourceSpec, SourceStatus};

/// How often idle inputs follow the wall clock.
const CLOCK_PERIOD: Duration = Duration::from_millis(100);
/// The smallest move of an idle HTTP input's watermark (each is a frame of its log).
const CLOCK_STEP: Duration = Duration::from_secs(1);

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepting input and keeping its outputs up to date.
    Running,
    /// A source or the runtime failed; its outputs keep their last content.
    Failed,
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
    /// Sinks, by output index.
    sink_specs: Vec<(usize, SinkSpec)>,
    running: Mutex<Vec<Running>>,
    sinks: Mutex<Vec<(usize, Arc<dyn Sink>)>>,
    clock: Mutex<Option<JoinHandle<()>>>,
}

impl ManagedJob {
    /// A job of `spec` around `job`, with its sources and sinks not yet started.
    pub(super) fn new(
        spec: JobSpec,
        sources: Vec<SourceSpec>,
        sinks: Vec<(usize, SinkSpec)>,
        job: RunningJob,
    ) -> ManagedJob {
        ManagedJob {
            spec,
            sources,
            job,
            status: Mutex::new((JobState::Running, None)),
            sink_specs: sinks,
            running: Mutex::new(Vec::new()),
            sinks: Mutex::new(Vec::new()),
            clock: Mutex::new(None),
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

    /// Marks the job failed (once: the first error stays).
    pub(super) fn fail(&self, error: impl std::fmt::Display) {
        let mut status = self.status.lock().expect("status lock");
        if status.0 != JobState::Failed {
            tracing::error!(job = %self.spec.name, %error, "job failed");
            *status = (JobState::Failed, Some(error.to_string()));
        }
    }

    /// Starts sinks and sources — each input's from `from(input)` if it gives a
    /// position, HTTP inputs with their logs in `log_dir` if given — and the clock of
    /// idle inputs; `keep(input)` keeps a position a source fixed. A source that cannot
    /// start fails the job. Must run inside a tokio runtime.
    pub(super) fn start(
        self: &Arc<Self>,
        mut from: impl FnMut(&str) -> Option<Position>,
        keep: impl Fn(&str) -> Keep,
        log_dir: Option<&Path>,
    ) {
        let name = &self.spec.name;
        for (output, spec) in &self.sink_specs {
            let port = &self.job.outputs()[*output];
            let sink = spec.start(format!("{name}.{}", port.name), port.rows.clone(), port.key.clone());
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
    }

    /// Stops sinks, sources, clock and dataflow, in that order; blocks while the
    /// sources' and sinks' threads finish.
    pub(super) fn stop(&self) {
        for (_, sink) in std::mem::take(&mut *self.sinks.lock().expect("sinks lock")) {
            sink.stop();
        }
        for (_, source) in std::mem::take(&mut *self.running.lock().expect("sources lock")) {
            source.stop();
        }
        if let Some(clock) = self.clock.lock().expect("clock lock").take() {
            clock.abort();
        }
        self.job.stop();
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
