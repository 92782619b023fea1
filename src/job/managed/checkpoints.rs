//! A job's checkpoints: taken on demand and every `checkpoint_interval_ms`, with its
//! sources held still meanwhile ([`crate::source::Source::hold`]: an HTTP input's log,
//! a Kafka input's reader), their positions kept in the manifest (see
//! [`super::super::checkpoint`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::checkpoint::{CheckpointFailed, NoCheckpoints, Positions};
use super::{CheckpointInfo, JobState, ManagedJob, Running};
use crate::checkpoint::Store;

impl ManagedJob {
    /// Checkpoints go to `store` (or cannot be taken, and why), the last one being
    /// `last` if the job was restored from it.
    pub(in crate::job) fn checkpoint_to(&self, store: Result<Store, NoCheckpoints>, last: Option<CheckpointInfo>) {
        *self.checkpoints.lock().expect("checkpoints lock") = store;
        *self.last_checkpoint.lock().expect("checkpoint lock") = last;
    }

    /// The last checkpoint, and why the latest attempt failed if it did.
    pub fn last_checkpoint(&self) -> (Option<CheckpointInfo>, Option<String>) {
        let last = self.last_checkpoint.lock().expect("checkpoint lock").clone();
        (last, self.checkpoint_error.lock().expect("checkpoint error lock").clone())
    }

    /// Takes a checkpoint now: holds every source still (requests wait), then
    /// the job's routers, and writes what changed since the last one
    /// ([`super::super::RunningJob::checkpoint`]). A failure is kept for job status; the job runs on.
    pub fn checkpoint(&self) -> Result<CheckpointInfo, CheckpointFailed> {
        let taken = self.take_checkpoint();
        let mut error = self.checkpoint_error.lock().expect("checkpoint error lock");
        match &taken {
            Ok(info) => {
                let recorded = serde_json::json!({"id": info.id, "frontier": info.frontier, "bytes": info.bytes});
                self.history.record("checkpoint", recorded);
                *error = None;
                *self.last_checkpoint.lock().expect("checkpoint lock") = Some(info.clone());
                self.supervision.lock().expect("supervision lock").failures = 0;
            }
            Err(CheckpointFailed::Unsupported(_) | CheckpointFailed::Disabled) => {}
            Err(failed) => {
                tracing::warn!(job = %self.spec.name, error = %failed, "checkpoint failed");
                *error = Some(failed.to_string());
            }
        }
        taken
    }

    /// Whether no source moved since the last checkpoint (each stands where the
    /// checkpoint held it): a periodic checkpoint then has nothing to write.
    fn unchanged_since_checkpoint(&self) -> bool {
        let noted = self.checkpointed.lock().expect("checkpointed lock");
        let running = self.running.lock().expect("sources lock");
        !noted.is_empty()
            && running.iter().all(|(inputs, source)| {
                let input = &self.job.inputs()[inputs[0]].name;
                source.checkpoint_position().is_some_and(|at| noted.get(input) == Some(&at))
            })
    }

    fn take_checkpoint(&self) -> Result<CheckpointInfo, CheckpointFailed> {
        let mut store = self.checkpoints.lock().expect("checkpoints lock");
        let store = store.as_mut().map_err(|why| CheckpointFailed::Unsupported(why.0.clone()))?;
        let started = Instant::now();
        let sources: Vec<Running> = self.running.lock().expect("sources lock").clone();
        let mut held = Vec::new();
        let mut positions = BTreeMap::new();
        for (inputs, source) in &sources {
            let input = self.job.inputs()[inputs[0]].name.clone();
            let hold =
                source.hold().map_err(|e| CheckpointFailed::Input { input: input.clone(), why: e.to_string() })?;
            let Some(hold) = hold else {
                return Err(CheckpointFailed::Unsupported(format!("input `{input}` cannot be held for a checkpoint")));
            };
            positions.insert(input, hold.position.clone());
            held.push(hold);
        }
        let at = crate::job::history::now_ms();
        let sinks = || {
            let sinks = self.sinks.lock().expect("sinks lock");
            let outputs = self.job.outputs();
            let at = sinks.iter().filter_map(|(output, sink)| Some((outputs[*output].name.clone(), sink.position()?)));
            Positions { sources: positions.clone(), sinks: at.collect() }
        };
        let manifest = self.job.checkpoint(store, at, sinks)?;
        drop(held);
        for (inputs, source) in &sources {
            if let Some(position) = positions.get(&self.job.inputs()[inputs[0]].name) {
                source.checkpointed(position);
            }
        }
        *self.checkpointed.lock().expect("checkpointed lock") = positions;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Off the inputs' path (they run again): chains that grew past their base are
        // folded, so that a restore reads each key once, not once per checkpoint.
        if let Err(error) = store.compact() {
            tracing::warn!(job = %self.spec.name, %error, "cannot compact the checkpoints; they stay as they are");
        }
        Ok(CheckpointInfo { id: manifest.id, frontier: manifest.frontier, bytes: manifest.bytes, duration_ms, at })
    }
}

impl ManagedJob {
    /// Copies the job's last checkpoint into the new directory `to` (see
    /// [`Store::copy_current`]); `None` if it has none.
    pub(in crate::job) fn copy_checkpoint(
        &self,
        to: &std::path::Path,
    ) -> Result<Option<crate::checkpoint::Manifest>, CheckpointFailed> {
        let store = self.checkpoints.lock().expect("checkpoints lock");
        let store = store.as_ref().map_err(|why| CheckpointFailed::Unsupported(why.0.clone()))?;
        Ok(store.copy_current(to)?)
    }
}

/// Takes a checkpoint every `every` while the job runs.
pub(super) async fn checkpoint_every(job: Arc<ManagedJob>, every: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if job.state().0 != JobState::Running || job.unchanged_since_checkpoint() {
            continue;
        }
        let checkpointing = job.clone();
        let taken = tokio::task::spawn_blocking(move || checkpointing.checkpoint().map(drop)).await;
        if taken.is_err_and(|error| error.is_cancelled()) {
            return;
        }
    }
}
