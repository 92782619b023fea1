//! The worker loop: typed commands in, dataflow steps out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::time::Duration;

use timely::worker::Worker;

use super::{Command, Install, JobId};
use crate::pipeline::state::JobState;
use crate::pipeline::{BuildError, Job, Time, WorkerInput};

/// The longest a worker parks with nothing to do.
const IDLE_PARK: Duration = Duration::from_secs(1);

/// An installed job on this worker.
struct WorkerJob {
    inputs: Vec<Box<dyn WorkerInput>>,
}

/// Runs commands and dataflows until the command channel closes, or until `failed`
/// says a peer has failed (then the dataflows cannot complete, and are left).
pub(crate) fn run(worker: &mut Worker, commands: &Receiver<Command>, failed: &AtomicBool) {
    let mut jobs: HashMap<JobId, WorkerJob> = HashMap::new();
    loop {
        if failed.load(Ordering::SeqCst) {
            return;
        }
        loop {
            match commands.try_recv() {
                Ok(command) => execute(worker, &mut jobs, command),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    // Closing every input lets the dataflows drain and complete.
                    jobs.clear();
                    while worker.step_or_park(Some(Duration::from_millis(10))) {
                        if failed.load(Ordering::SeqCst) {
                            return;
                        }
                    }
                    return;
                }
            }
        }
        // Commands unpark the thread, and so do messages from peers: the timeout is a
        // fallback only, long enough that hundreds of idle jobs' workers cost nothing.
        worker.step_or_park(Some(IDLE_PARK));
    }
}

fn execute(worker: &mut Worker, jobs: &mut HashMap<JobId, WorkerJob>, command: Command) {
    match command {
        Command::Install { job, install, ack } => {
            let reply = install_job(worker, &install).map(|inputs| {
                jobs.insert(job, WorkerJob { inputs });
            });
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

/// Builds a job's dataflow on this worker; its inputs' handles.
pub(crate) fn install_job(worker: &mut Worker, install: &Install) -> Result<Vec<Box<dyn WorkerInput>>, BuildError> {
    let (index, peers) = (worker.index(), worker.peers());
    let name = format!("job {}", install.name);
    worker.dataflow_named::<Time, _, _>(&name, |scope| {
        let description = install.dataflow.description();
        let mut job = Job::new(scope, description, install.mode, &install.sinks, index);
        match &install.state {
            Some(state) => {
                JobState::building(state.clone(), index, peers, || install.dataflow.build(&mut job, &install.params))?
            }
            None => install.dataflow.build(&mut job, &install.params)?,
        }
        job.finish()
    })
}

/// Replies to an install: built, or why not.
pub(crate) type InstallAck = SyncSender<Result<(), BuildError>>;
