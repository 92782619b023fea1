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
mod worker;

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

use timely::worker::Worker;

pub use output::{
    Batch, HistoryDelta, Keep, KeyAtom, KeyedChange, Materialized, OrdF64, Query, RowKey, RowText, Rows,
    SUBSCRIBER_QUEUE, Start, Step, Subscription, Unanswerable, matches, row_key,
};

use crate::pipeline::state::StateStore;
use crate::pipeline::{BuildError, Dataflow, DecodedParams, OutputSink, Time, TimeMode, WorkerInput};

/// Identifies a job within a runtime.
pub type JobId = u64;

/// How many batches may wait for each worker before senders block.
const CHANNEL_BOUND: usize = 64;
/// How long installing a job waits for every worker to build it.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What a worker is told to do.
pub(crate) enum Command {
    Install { job: JobId, install: Arc<Install>, ack: worker::InstallAck },
    Push { job: JobId, input: usize, batch: Box<dyn Any + Send> },
    Advance { job: JobId, input: usize, frontier: Time, watermark: Time },
    Stop { job: JobId },
}

/// A job to build on every worker.
pub struct Install {
    /// The job's name (names the dataflow in logs).
    pub name: String,
    /// The pipeline.
    pub dataflow: Dataflow,
    /// Its decoded parameters.
    pub params: DecodedParams,
    /// How output changes are timed.
    pub mode: TimeMode,
    /// Where each output's changes go, `dead_letter` last.
    pub sinks: Vec<Arc<dyn OutputSink>>,
    /// Where its keyed operators take checkpoints and restore from, if anywhere.
    pub state: Option<Arc<dyn StateStore>>,
}

/// Where job dataflows run: on worker threads ([`Runtime`]) or on the calling thread
/// ([`Inline`]). A job (`RunningJob`) drives either the same way.
///
/// # Constraints
/// - Every call for one job comes in the order the job's inputs need: install first,
///   then per input batches and advances in order, stop last.
pub trait Engine {
    /// The number of workers (batches are spread over them).
    fn workers(&self) -> usize;
    /// Whether a worker has failed.
    fn failed(&self) -> bool;
    /// Why the workers failed (a panic's message), if they did.
    fn failure(&self) -> Option<String> {
        None
    }
    /// Builds a job on every worker.
    fn install(&self, job: JobId, install: Install) -> Result<(), RuntimeError>;
    /// Sends a batch of records to one worker's copy of an input.
    fn push(&self, job: JobId, input: usize, worker: usize, batch: Box<dyn Any + Send>) -> Result<(), RuntimeError>;
    /// Advances an input on every worker.
    fn advance(&self, job: JobId, input: usize, frontier: Time, watermark: Time) -> Result<(), RuntimeError>;
    /// Stops a job (its inputs close and its dataflow drains).
    fn stop(&self, job: JobId);
    /// Waits until `done()` holds, running the dataflows meanwhile if they run on the
    /// calling thread; false on timeout or failure.
    fn settle(&self, done: &dyn Fn() -> bool, timeout: Duration) -> bool;
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
    /// A worker panicked (a pipeline's bug, while building or on a record).
    #[error("a worker panicked: {0}")]
    Panicked(String),
    /// A pipeline failed to build.
    #[error("dataflow failed to build: {0}")]
    Build(#[from] BuildError),
}

struct WorkerHandle {
    commands: SyncSender<Command>,
    thread: Thread,
}

/// A set of timely workers running job dataflows.
pub struct Runtime {
    workers: Vec<WorkerHandle>,
    guards: Mutex<Option<timely::communication::WorkerGuards<()>>>,
    failure: Arc<Failure>,
}

/// Why a runtime's workers stopped: set once, by the first worker that fails.
#[derive(Default)]
struct Failure {
    failed: AtomicBool,
    why: Mutex<Option<String>>,
}

impl Failure {
    fn set(&self, why: String) {
        let mut first = self.why.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if first.is_none() {
            *first = Some(why);
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }
}

/// Sets the runtime's failure if a worker unwinds past the point where its panic is
/// caught (timely's own code around the worker loop).
struct PanicFlag(Arc<Failure>);

impl Drop for PanicFlag {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.set("a worker panicked".into());
        }
    }
}

/// The message of a panic's payload.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(message), _) => (*message).to_string(),
        (_, Some(message)) => message.clone(),
        _ => "a worker panicked".to_string(),
    }
}

impl Runtime {
    /// Starts `workers` worker threads.
    pub fn start(workers: usize) -> Result<Runtime, RuntimeError> {
        let workers = workers.max(1);
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..workers).map(|_| mpsc::sync_channel(CHANNEL_BOUND)).unzip();
        let receivers = Arc::new(Mutex::new(receivers.into_iter().map(Some).collect::<Vec<_>>()));
        let (thread_tx, thread_rx) = mpsc::channel();
        let failure = Arc::new(Failure::default());
        let flag = failure.clone();
        let guards = timely::execute(timely::Config::process(workers), move |worker| {
            let _flag = PanicFlag(flag.clone());
            let index = worker.index();
            let commands = receivers.lock().expect("receivers lock")[index].take().expect("one receiver per worker");
            let _ = thread_tx.send((index, std::thread::current()));
            // A panic in a dataflow (a pipeline's bug, or a record it cannot take) stops
            // this runtime alone: its peers see the flag and stop too, and the job that
            // owns the runtime is restarted by its supervisor.
            // The receiver outlives the catch: senders see the worker gone only once the
            // failure is recorded, so what fails for them is known to follow a panic.
            let failed = &flag.failed;
            let run = AssertUnwindSafe(|| worker::run(worker, &commands, failed));
            if let Err(payload) = std::panic::catch_unwind(run) {
                flag.set(panic_message(&*payload));
            }
            drop(commands);
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
        Ok(Runtime { workers, guards: Mutex::new(Some(guards)), failure })
    }

    fn send(&self, worker: usize, command: Command) -> Result<(), RuntimeError> {
        let w = &self.workers[worker];
        w.commands.send(command).map_err(|_| RuntimeError::WorkerGone)?;
        w.thread.unpark();
        Ok(())
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
        if self.failure.failed() { Err(RuntimeError::WorkerGone) } else { Ok(()) }
    }
}

impl Runtime {
    /// Why a worker stopped answering: its panic, which it records just after its
    /// stack unwound (dropping what it held), or gone without one.
    fn panicked_or_gone(&self) -> RuntimeError {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some(why) = self.failure() {
                return RuntimeError::Panicked(why);
            }
            if Instant::now() >= deadline {
                return RuntimeError::WorkerGone;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Engine for Runtime {
    fn workers(&self) -> usize {
        self.workers.len()
    }

    fn failed(&self) -> bool {
        self.failure.failed()
    }

    fn failure(&self) -> Option<String> {
        self.failure.why.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn install(&self, job: JobId, install: Install) -> Result<(), RuntimeError> {
        let install = Arc::new(install);
        let (ack, acks) = mpsc::sync_channel(self.workers.len());
        for w in 0..self.workers.len() {
            self.send(w, Command::Install { job, install: install.clone(), ack: ack.clone() })?;
        }
        // Only the workers hold senders now: one that panics while building drops its
        // own, and the wait ends.
        drop(ack);
        for _ in 0..self.workers.len() {
            acks.recv_timeout(INSTALL_TIMEOUT).map_err(|_| self.panicked_or_gone())??;
        }
        Ok(())
    }

    fn push(&self, job: JobId, input: usize, worker: usize, batch: Box<dyn Any + Send>) -> Result<(), RuntimeError> {
        self.send(worker, Command::Push { job, input, batch })
    }

    fn advance(&self, job: JobId, input: usize, frontier: Time, watermark: Time) -> Result<(), RuntimeError> {
        for w in 0..self.workers.len() {
            self.send(w, Command::Advance { job, input, frontier, watermark })?;
        }
        Ok(())
    }

    fn stop(&self, job: JobId) {
        for w in 0..self.workers.len() {
            let _ = self.send(w, Command::Stop { job });
        }
    }

    fn settle(&self, done: &dyn Fn() -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(50);
        loop {
            if done() {
                return true;
            }
            if self.failed() || Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }
}

/// Engines are shared through smart pointers: a job holds one by value.
macro_rules! engine_through {
    ($($pointer:tt)*) => {
        impl<E: Engine + ?Sized> Engine for $($pointer)*<E> {
            fn workers(&self) -> usize {
                (**self).workers()
            }
            fn failed(&self) -> bool {
                (**self).failed()
            }
            fn failure(&self) -> Option<String> {
                (**self).failure()
            }
            fn install(&self, job: JobId, install: Install) -> Result<(), RuntimeError> {
                (**self).install(job, install)
            }
            fn push(&self, job: JobId, input: usize, worker: usize, batch: Box<dyn Any + Send>) -> Result<(), RuntimeError> {
                (**self).push(job, input, worker, batch)
            }
            fn advance(&self, job: JobId, input: usize, frontier: Time, watermark: Time) -> Result<(), RuntimeError> {
                (**self).advance(job, input, frontier, watermark)
            }
            fn stop(&self, job: JobId) {
                (**self).stop(job)
            }
            fn settle(&self, done: &dyn Fn() -> bool, timeout: Duration) -> bool {
                (**self).settle(done, timeout)
            }
        }
    };
}
engine_through!(std::sync::Arc);
engine_through!(std::rc::Rc);

/// A single worker on the calling thread: batches are processed as they are pushed,
/// while still in cache, with no channels or thread hand-offs. For one-shot work such
/// as `tidemark run` with one worker; not shareable between threads.
pub struct Inline {
    worker: RefCell<Worker>,
    jobs: RefCell<HashMap<JobId, Vec<Box<dyn WorkerInput>>>>,
}

impl Inline {
    /// A worker on this thread.
    pub fn new() -> Inline {
        let allocator = timely::communication::Allocator::Thread(Default::default());
        let worker = Worker::new(timely::WorkerConfig::default(), allocator, Some(Instant::now()));
        Inline { worker: RefCell::new(worker), jobs: RefCell::new(HashMap::new()) }
    }

    /// Runs the dataflows until they have nothing more to do right now.
    fn run(&self) {
        let mut worker = self.worker.borrow_mut();
        loop {
            worker.step();
            if worker.activations().borrow().empty_for() != Some(Duration::ZERO) {
                break;
            }
        }
    }
}

impl Default for Inline {
    fn default() -> Self {
        Inline::new()
    }
}

impl Engine for Inline {
    fn workers(&self) -> usize {
        1
    }

    fn failed(&self) -> bool {
        false
    }

    fn install(&self, job: JobId, install: Install) -> Result<(), RuntimeError> {
        let inputs = worker::install_job(&mut self.worker.borrow_mut(), &install)?;
        self.jobs.borrow_mut().insert(job, inputs);
        Ok(())
    }

    fn push(&self, job: JobId, input: usize, _worker: usize, batch: Box<dyn Any + Send>) -> Result<(), RuntimeError> {
        if let Some(inputs) = self.jobs.borrow_mut().get_mut(&job) {
            inputs[input].push(batch);
        }
        self.run();
        Ok(())
    }

    fn advance(&self, job: JobId, input: usize, frontier: Time, watermark: Time) -> Result<(), RuntimeError> {
        if let Some(inputs) = self.jobs.borrow_mut().get_mut(&job) {
            inputs[input].advance(frontier, watermark);
        }
        self.run();
        Ok(())
    }

    fn stop(&self, job: JobId) {
        self.jobs.borrow_mut().remove(&job);
    }

    fn settle(&self, done: &dyn Fn() -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !done() {
            if Instant::now() >= deadline {
                return false;
            }
            self.worker.borrow_mut().step_or_park(Some(Duration::from_millis(1)));
        }
        true
    }
}

impl Drop for Inline {
    fn drop(&mut self) {
        // Closing the inputs lets the dataflows drain and complete.
        self.jobs.borrow_mut().clear();
        let worker = self.worker.get_mut();
        while worker.has_dataflows() {
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
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
