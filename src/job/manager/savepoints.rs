//! Savepoints (API.md, "Lifecycle"): a job's checkpoint copied aside and kept until
//! deleted, from which a new job can start.
//!
//! Each is a directory `DATA_DIR/savepoints/<job>/<id>/`: `checkpoint/`, a checkpoint
//! store holding one checkpoint (its files linked from the job's own, which never
//! change once written), and `savepoint.json`, what the API shows of it with the job's
//! spec at the time. Its id is the id of the checkpoint it copies. A job's savepoints go
//! with the job when it is deleted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::savepoints_dir;
use super::{CreateError, JobManager};
use crate::checkpoint::Store;
use crate::job::checkpoint::{CheckpointFailed, for_a_new_job, kafka_position};
use crate::job::managed::JobState;
use crate::job::spec::{JobSpec, SavepointRef, SpecError, ValidSpec};
use crate::pipeline::Time;
use crate::source::SourceSpec;

/// A savepoint, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavepointInfo {
    /// Its id: the id of the checkpoint it copies.
    pub id: u64,
    /// The frontier its state was taken at.
    pub frontier: Time,
    /// The bytes of its files (the whole state, not a delta).
    pub bytes: u64,
    /// When it was taken, wall-clock ms since the epoch.
    pub at: u64,
}

/// What `savepoint.json` holds.
#[derive(Serialize, Deserialize)]
struct Saved {
    #[serde(flatten)]
    info: SavepointInfo,
    /// The job's spec when it was taken.
    spec: JobSpec,
}

/// Why a savepoint was not taken, listed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum SavepointError {
    /// There is no such job.
    #[error("job `{0}` does not exist")]
    NoJob(String),
    /// The job has no such savepoint.
    #[error("job `{job}` has no savepoint {id}")]
    NoSavepoint {
        /// The job.
        job: String,
        /// The id asked for.
        id: u64,
    },
    /// The job is neither running nor suspended.
    #[error("the job is {0}: its state is not a savepoint's")]
    NotRunning(JobState),
    /// Its checkpoint could not be taken or copied.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointFailed),
    /// The savepoint could not be written, read or removed.
    #[error("savepoint: {0}")]
    Io(#[from] std::io::Error),
}

impl JobManager {
    /// Takes a savepoint of job `name`: a checkpoint now (a suspended job's last one),
    /// copied aside. Blocks while it is taken.
    pub fn savepoint(&self, name: &str) -> Result<SavepointInfo, SavepointError> {
        // One at a time, and not while the job is deleted.
        let _changing = self.changing.lock().expect("changing lock");
        let job = self.get(name).ok_or_else(|| SavepointError::NoJob(name.to_string()))?;
        let data_dir = self.data_dir.as_ref().ok_or(CheckpointFailed::Disabled)?;
        // What an attempt cut short by a crash left.
        if let Ok(entries) = std::fs::read_dir(savepoints_dir(data_dir, name)) {
            for entry in entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(".taking-")) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        match job.state().0 {
            JobState::Running => {
                job.checkpoint()?;
            }
            JobState::Suspended => {}
            state => return Err(SavepointError::NotRunning(state)),
        }
        // A directory per attempt, renamed into place once whole.
        let taking = savepoints_dir(data_dir, name).join(format!(".taking-{}", crate::job::history::now_ms()));
        let copied = job.copy_checkpoint(&taking.join("checkpoint"));
        let manifest = match copied {
            Ok(Some(manifest)) => manifest,
            Ok(None) => return Err(CheckpointFailed::Disabled.into()),
            Err(failed) => {
                let _ = std::fs::remove_dir_all(&taking);
                return Err(failed.into());
            }
        };
        let bytes = manifest.parts.values().flatten().map(|p| p.bytes).sum();
        let info = SavepointInfo { id: manifest.id, frontier: manifest.frontier, bytes, at: manifest.at };
        let saved = Saved { info: info.clone(), spec: job.spec.clone() };
        let written = serde_json::to_vec_pretty(&saved)
            .map_err(std::io::Error::other)
            .and_then(|text| std::fs::write(taking.join("savepoint.json"), text))
            .and_then(|()| {
                let at = savepoint_dir(data_dir, name, info.id);
                let _ = std::fs::remove_dir_all(&at);
                std::fs::rename(&taking, &at)
            });
        if let Err(error) = written {
            let _ = std::fs::remove_dir_all(&taking);
            return Err(error.into());
        }
        job.history.record("savepoint", serde_json::json!({"id": info.id, "frontier": info.frontier}));
        Ok(info)
    }

    /// Job `name`'s savepoints, oldest first.
    pub fn savepoints(&self, name: &str) -> Result<Vec<SavepointInfo>, SavepointError> {
        if !self.contains(name) {
            return Err(SavepointError::NoJob(name.to_string()));
        }
        let Some(data_dir) = &self.data_dir else { return Ok(Vec::new()) };
        let Ok(entries) = std::fs::read_dir(savepoints_dir(data_dir, name)) else { return Ok(Vec::new()) };
        let mut found: Vec<SavepointInfo> =
            entries.filter_map(|entry| read_saved(&entry.ok()?.path()).ok()).map(|saved| saved.info).collect();
        found.sort_by_key(|info| info.id);
        Ok(found)
    }

    /// Deletes savepoint `id` of job `name`.
    pub fn delete_savepoint(&self, name: &str, id: u64) -> Result<(), SavepointError> {
        if !self.contains(name) {
            return Err(SavepointError::NoJob(name.to_string()));
        }
        let missing = || SavepointError::NoSavepoint { job: name.to_string(), id };
        let data_dir = self.data_dir.as_ref().ok_or_else(missing)?;
        let dir = savepoint_dir(data_dir, name, id);
        if !dir.join("savepoint.json").exists() {
            return Err(missing());
        }
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// Makes the checkpoint store of the new job of `valid` (`dir`) the savepoint it
    /// starts from: its state as the savepoint holds it, its HTTP inputs starting at
    /// the beginning of their new logs, its Kafka inputs at the savepoint's offsets
    /// (which must then read the topic the savepoint's job read).
    pub(super) fn start_from_savepoint(
        &self,
        valid: &ValidSpec,
        from: &SavepointRef,
        dir: &Path,
    ) -> Result<(), CreateError> {
        let invalid =
            |message: String| CreateError::Spec(SpecError::new("from_savepoint", "invalid_spec", message, false));
        let data_dir =
            self.data_dir.as_ref().ok_or_else(|| invalid("the server runs without a data directory".into()))?;
        // A job's name: never a path out of the savepoints' directory.
        crate::job::spec::check_name(&from.job).map_err(|_| invalid(format!("`{}` is not a job's name", from.job)))?;
        let at = savepoint_dir(data_dir, &from.job, from.id);
        let saved = read_saved(&at).map_err(|_| invalid(format!("job `{}` has no savepoint {}", from.job, from.id)))?;
        if saved.spec.dataflow != valid.spec.dataflow {
            let message =
                format!("the savepoint is of dataflow `{}`, not `{}`", saved.spec.dataflow, valid.spec.dataflow);
            return Err(invalid(message));
        }
        let store = Store::open(&at.join("checkpoint")).map_err(CreateError::Checkpoint)?;
        let Some(manifest) = store.current() else { return Err(invalid("the savepoint holds no checkpoint".into())) };
        for (input, source) in valid.dataflow.description().inputs.iter().zip(&valid.sources) {
            let kept = kafka_position(&manifest.job, &input.name);
            let same_topic = |topic: &str| match saved.spec.inputs.get(&input.name).and_then(|s| s.get("topic")) {
                Some(serde_json::Value::String(t)) => t == topic,
                _ => false,
            };
            let fits = match (source, &kept) {
                (SourceSpec::Http, None) => true,
                (SourceSpec::Kafka(kafka), Some(_)) => same_topic(&kafka.topic),
                _ => false,
            };
            if !fits {
                let message = format!("input `{}` must be fed as it was when the savepoint was taken", input.name);
                return Err(invalid(message));
            }
        }
        let _ = std::fs::remove_dir_all(dir);
        let copied = store.copy_current(dir).map_err(CreateError::Checkpoint)?;
        let mut store = Store::open(dir).map_err(CreateError::Checkpoint)?;
        let job = for_a_new_job(copied.map(|m| m.job).unwrap_or_default());
        store.replace_job(job).map_err(CreateError::Checkpoint)
    }
}

fn savepoint_dir(data_dir: &Path, job: &str, id: u64) -> PathBuf {
    savepoints_dir(data_dir, job).join(id.to_string())
}

fn read_saved(dir: &Path) -> std::io::Result<Saved> {
    let text = std::fs::read(dir.join("savepoint.json"))?;
    serde_json::from_slice(&text).map_err(std::io::Error::other)
}
