//! The runtime: timely workers, and the typed commands that drive them.
//!
//! [`Runtime::start`] spawns the timely workers (`Config::process(n)`), each running a
//! loop (`worker`) that executes typed `Command`s from a bounded channel and steps its
//! dataflows. Only typed, validated commands cross into the workers: install a job,
//! push a batch of records to one of its inputs, advance an input, stop a job. Outputs
//! leave through [`OutputSink`]s, which never hand out timely types.
//!
//! Every worker receives every install, advance and stop in the same order, so all
//! build the same dataflows; batches go to one worker each and the dataflows exchange
//! records by key. Closing the runtime closes the channels; workers then drain their
//! dataflows and exit.

mod output;
mod sink;
mod worker;

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::Duration;

pub use output::{Keep, Materialized, OutputSink, RowText};
pub(crate) use sink::sink;
pub(crate) use worker::{TypedInput, WorkerInput};

use crate::pipeline::{Dataflow, DecodedParams, InputOptions, Time, TimeMode};

/// Identifies a job within a runtime.
pub type JobId = u64;

/// How many batches may wait for each worker before senders block.
const CHANNEL_BOUND: usize = 64;

/// What a worker is told to do.
pub(crate) enum Command {
    Install { job: JobId, install: Arc<Install>, ack: worker::InstallAck },
    Push { job: JobId, input: usize, batch: Box<dyn Any + Send> },
    Advance { job: JobId, input: usize, frontier: Time, watermark: Time },
    Stop { job: JobId },
}

/// A job to build on every worker.
pub(crate) struct Install {
    pub(crate) name: String,
    pub(crate) dataflow: Dataflow,
    pub(crate) params: DecodedParams,
    pub(crate) mode: TimeMode,
    /// One per output, `dead_letter` last.
    pub(crate) sinks: Vec<Arc<dyn OutputSink>>,
}

/// The runtime failed or is gone.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Timely could not start.
    #[error("cannot start workers: {0}")]
    Start(String),
    /// A worker stopped (it panicked, or the runtime shut down).
    #[error("a worker stopped; the runtime is unusable")]
    WorkerGone,
    /// A pipeline failed to build.
    #[error("dataflow failed to build: {0}")]
    Build(String),
}

struct WorkerHandle {
    commands: SyncSender<Command>,
    thread: Thread,
}

/// A set of timely workers running job dataflows.
pub struct Runtime {
    workers: Vec<WorkerHandle>,
    guards: Mutex<Option<timely::communication::WorkerGuards<()>>>,
    failed: Arc<AtomicBool>,
}

/// Sets the runtime's failure flag if a worker unwinds.
struct PanicFlag(Arc<AtomicBool>);

impl Drop for PanicFlag {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

impl Runtime {
    /// Starts `workers` worker threads.
    pub fn start(workers: usize) -> Result<Runtime, RuntimeError> {
        let workers = workers.max(1);
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..workers).map(|_| mpsc::sync_channel(CHANNEL_BOUND)).unzip();
        let receivers = Arc::new(Mutex::new(receivers.into_iter().map(Some).collect::<Vec<_>>()));
        let (thread_tx, thread_rx) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let guards = timely::execute(timely::Config::process(workers), move |worker| {
            let _flag = PanicFlag(flag.clone());
            let index = worker.index();
            let commands = receivers.lock().expect("receivers lock")[index].take().expect("one receiver per worker");
            let _ = thread_tx.send((index, std::thread::current()));
            worker::run(worker, commands);
        })
        .map_err(RuntimeError::Start)?;
        let mut threads: Vec<Option<Thread>> = vec![None; workers];
        for _ in 0..workers {
            let (index, thread) =
                thread_rx.recv_timeout(Duration::from_secs(30)).map_err(|_| RuntimeError::WorkerGone)?;
            threads[index] = Some(thread);
        }
        let workers = senders
            .into_iter()
            .zip(threads)
            .map(|(commands, thread)| WorkerHandle { commands, thread: thread.expect("every worker reported") })
            .collect();
        Ok(Runtime { workers, guards: Mutex::new(Some(guards)), failed })
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Whether a worker has panicked.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    fn send(&self, worker: usize, command: Command) -> Result<(), RuntimeError> {
        let w = &self.workers[worker];
        w.commands.send(command).map_err(|_| RuntimeError::WorkerGone)?;
        w.thread.unpark();
        Ok(())
    }

    /// Builds a job on every worker; returns the options of its declared inputs.
    pub(crate) fn install(&self, job: JobId, install: Install) -> Result<Vec<InputOptions>, RuntimeError> {
        let install = Arc::new(install);
        let (ack, acks) = mpsc::sync_channel(self.workers.len());
        for w in 0..self.workers.len() {
            self.send(w, Command::Install { job, install: install.clone(), ack: ack.clone() })?;
        }
        let mut options = None;
        for _ in 0..self.workers.len() {
            let reply = acks.recv_timeout(Duration::from_secs(60)).map_err(|_| RuntimeError::WorkerGone)?;
            let reply = reply.map_err(RuntimeError::Build)?;
            options.get_or_insert(reply);
        }
        Ok(options.unwrap_or_default())
    }

    /// Sends a batch to one worker's copy of an input.
    pub(crate) fn push(
        &self,
        job: JobId,
        input: usize,
        worker: usize,
        batch: Box<dyn Any + Send>,
    ) -> Result<(), RuntimeError> {
        self.send(worker, Command::Push { job, input, batch })
    }

    /// Advances an input on every worker.
    pub(crate) fn advance(
        &self,
        job: JobId,
        input: usize,
        frontier: Time,
        watermark: Time,
    ) -> Result<(), RuntimeError> {
        for w in 0..self.workers.len() {
            self.send(w, Command::Advance { job, input, frontier, watermark })?;
        }
        Ok(())
    }

    /// Stops a job on every worker (its inputs close and its dataflow drains).
    pub(crate) fn stop(&self, job: JobId) {
        for w in 0..self.workers.len() {
            let _ = self.send(w, Command::Stop { job });
        }
    }

    /// Closes the command channels and wakes the workers to notice.
    fn close_channels(&mut self) {
        for worker in self.workers.drain(..) {
            drop(worker.commands);
            worker.thread.unpark();
        }
    }

    /// Stops every job and joins the workers.
    pub fn shutdown(mut self) -> Result<(), RuntimeError> {
        self.close_channels();
        let guards = self.guards.lock().expect("guards lock").take();
        if let Some(guards) = guards
            && guards.join().iter().any(Result::is_err)
        {
            return Err(RuntimeError::WorkerGone);
        }
        if self.failed() { Err(RuntimeError::WorkerGone) } else { Ok(()) }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Close the channels first, so that joining the workers cannot wait forever.
        self.close_channels();
        if let Some(guards) = self.guards.lock().ok().and_then(|mut g| g.take()) {
            let _ = guards.join();
        }
    }
}
