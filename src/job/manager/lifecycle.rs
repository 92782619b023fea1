//! Suspending, resuming and deleting jobs (API.md, "Lifecycle").

use std::sync::Arc;
use std::time::Instant;

use super::files::{checkpoint_dir, history_path, log_dir, savepoints_dir, set_suspended, spec_path, state_path};
use super::{CreateError, JobManager};
use crate::job::managed::{JobState, ManagedJob, SuspendError};
use crate::job::spec;

/// Why a job was not suspended or resumed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// There is no such job.
    #[error("job `{0}` does not exist")]
    NotFound(String),
    /// It cannot be suspended now (not running, or its checkpoint failed).
    #[error(transparent)]
    Suspend(#[from] SuspendError),
    /// It could not be started again.
    #[error("cannot resume: {0}")]
    Resume(#[from] CreateError),
    /// Whether it is suspended could not be kept in its state.
    #[error("cannot keep the job's state: {0}")]
    Persist(#[from] std::io::Error),
}

impl JobManager {
    /// Suspends job `name` (see [`JobState::Suspended`]) and keeps it suspended across
    /// restarts. Blocks while it checkpoints and its sources stop.
    pub fn suspend(&self, name: &str) -> Result<Arc<ManagedJob>, LifecycleError> {
        let _changing = self.changing.lock().expect("changing lock");
        let job = self.get(name).ok_or_else(|| LifecycleError::NotFound(name.to_string()))?;
        job.suspend()?;
        if let Some(dir) = &self.data_dir {
            // Kept running after a restart otherwise, from the suspending checkpoint:
            // nothing is lost, but say so.
            set_suspended(dir, name, true)?;
        }
        Ok(job)
    }

    /// Starts job `name` again from its last checkpoint (Kafka inputs from its offsets):
    /// a suspended job, or a failed one (its failures forgotten); a running one is left
    /// as it is. Blocks while it is restored.
    pub fn resume(&self, name: &str) -> Result<Arc<ManagedJob>, LifecycleError> {
        let _changing = self.changing.lock().expect("changing lock");
        let current = self.get(name).ok_or_else(|| LifecycleError::NotFound(name.to_string()))?;
        if current.state().0 == JobState::Running {
            return Ok(current);
        }
        if let Some(dir) = &self.data_dir {
            set_suspended(dir, name, false)?;
        }
        let mut supervision = current.supervision();
        (supervision.failures, supervision.due) = (0, None);
        match self.relaunch(&current, supervision, Instant::now()) {
            Ok(job) => {
                job.history.record("resumed", serde_json::json!({"checkpoint": job.last_checkpoint().0.map(|c| c.id)}));
                self.jobs.write().expect("jobs lock").insert(name.to_string(), job.clone());
                tracing::info!(job = %name, "job resumed");
                Ok(job)
            }
            Err(error) => {
                current.give_up(format_args!("cannot resume: {error}"));
                Err(error.into())
            }
        }
    }

    /// Stops and removes the job `name` and its persisted spec; false if there is none.
    /// A persisted job that could not be restored (its spec no longer valid, say) is
    /// not listed, but deleting it removes what it left.
    pub fn delete(&self, name: &str) -> bool {
        let _changing = self.changing.lock().expect("changing lock");
        let job = self.jobs.write().expect("jobs lock").remove(name);
        let left = self
            .data_dir
            .as_ref()
            .is_some_and(|dir| spec::check_name(name).is_ok() && job.is_none() && spec_path(dir, name).exists());
        if job.is_none() && !left {
            return false;
        }
        if let Some(job) = &job {
            job.stop();
            job.history.remove();
        }
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_file(spec_path(dir, name));
            let _ = std::fs::remove_file(state_path(dir, name));
            let _ = std::fs::remove_file(history_path(dir, name));
            let _ = std::fs::remove_dir_all(log_dir(dir, name));
            let _ = std::fs::remove_dir_all(checkpoint_dir(dir, name));
            let _ = std::fs::remove_dir_all(savepoints_dir(dir, name));
        }
        tracing::info!(job = %name, "job deleted");
        true
    }
}
