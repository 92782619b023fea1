//! The worker loop: typed commands in, dataflow steps, and the jobs' input handles.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::worker::Worker;

use super::{Command, Install, JobId};
use crate::ingest::codec::Updates;
use crate::pipeline::clock::ClockLog;
use crate::pipeline::{Data, InputOptions, Job, Time};

/// An input of an installed job, as the worker loop drives it.
pub(crate) trait WorkerInput {
    /// Sends a batch of updates (a `Box<Updates<D>>` for the input's type).
    fn push(&mut self, batch: Box<dyn Any + Send>);
    /// Logs the watermark, then advances the input's frontier.
    fn advance(&mut self, frontier: Time, watermark: Time);
}

/// The typed input behind [`WorkerInput`].
pub(crate) struct TypedInput<D: Data> {
    handle: InputHandle<Time, CapacityContainerBuilder<Updates<D>>>,
    log: Rc<RefCell<ClockLog>>,
}

impl<D: Data> TypedInput<D> {
    pub(crate) fn new(
        handle: InputHandle<Time, CapacityContainerBuilder<Updates<D>>>,
        log: Rc<RefCell<ClockLog>>,
    ) -> Self {
        TypedInput { handle, log }
    }
}

impl<D: Data> WorkerInput for TypedInput<D> {
    fn push(&mut self, batch: Box<dyn Any + Send>) {
        match batch.downcast::<Updates<D>>() {
            Ok(mut updates) => self.handle.send_batch(&mut updates),
            Err(_) => panic!("batch of the wrong type for input of {}", std::any::type_name::<D>()),
        }
    }

    fn advance(&mut self, frontier: Time, watermark: Time) {
        if frontier > *self.handle.time() {
            self.log.borrow_mut().append(frontier, watermark);
            self.handle.advance_to(frontier);
        }
    }
}

/// An installed job on this worker.
struct WorkerJob {
    inputs: Vec<Box<dyn WorkerInput>>,
}

/// Runs commands and dataflows until the command channel closes.
pub(crate) fn run(worker: &mut Worker, commands: Receiver<Command>) {
    let mut jobs: HashMap<JobId, WorkerJob> = HashMap::new();
    loop {
        loop {
            match commands.try_recv() {
                Ok(command) => execute(worker, &mut jobs, command),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    // Closing every input lets the dataflows drain and complete.
                    jobs.clear();
                    while worker.step_or_park(Some(Duration::from_millis(10))) {}
                    return;
                }
            }
        }
        worker.step_or_park(Some(Duration::from_millis(100)));
    }
}

fn execute(worker: &mut Worker, jobs: &mut HashMap<JobId, WorkerJob>, command: Command) {
    match command {
        Command::Install { job, install, ack } => {
            let result = install_job(worker, &install);
            let reply = match result {
                Ok((inputs, options)) => {
                    jobs.insert(job, WorkerJob { inputs });
                    Ok(options)
                }
                Err(e) => Err(e),
            };
            let _ = ack.send(reply);
        }
        Command::Push { job, input, batch } => {
            if let Some(j) = jobs.get_mut(&job) {
                j.inputs[input].push(batch);
            }
        }
        Command::Advance { job, input, frontier, watermark } => {
            if let Some(j) = jobs.get_mut(&job) {
                j.inputs[input].advance(frontier, watermark);
            }
        }
        Command::Stop { job } => {
            // Dropping the inputs closes them; the dataflow drains and is removed.
            jobs.remove(&job);
        }
    }
}

pub(crate) type Installed = (Vec<Box<dyn WorkerInput>>, Vec<InputOptions>);

pub(crate) fn install_job(worker: &mut Worker, install: &Install) -> Result<Installed, String> {
    let index = worker.index();
    let name = format!("job {}", install.name);
    worker.dataflow_named::<Time, _, _>(&name, |scope| {
        let description = install.dataflow.description();
        let mut job = Job::new(scope, description, install.mode, &install.sinks, index);
        install.dataflow.build(&mut job, &install.params).map_err(|e| e.to_string())?;
        let bound = job.finish().map_err(|e| e.to_string())?;
        Ok((bound.inputs, bound.options))
    })
}

/// Replies to an install: the input options, or why the build failed.
pub(crate) type InstallAck = SyncSender<Result<Vec<InputOptions>, String>>;
