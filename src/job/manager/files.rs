//! Where a job manager keeps its jobs on disk: specs, starting offsets, logs and
//! checkpoints under the data directory, each written atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::job::managed;
use crate::kafka::Offsets;
use crate::source::Position;

pub(super) fn spec_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("jobs").join(format!("{name}.json"))
}

/// Where the write-ahead logs of a job's HTTP inputs live.
pub(super) fn log_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join("log").join(name)
}

/// Where a job's checkpoints live.
pub(super) fn checkpoint_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join("checkpoints").join(name)
}

/// Where a job's savepoints live, one directory each.
pub(super) fn savepoints_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join("savepoints").join(name)
}

/// Where a job's history lives.
pub(super) fn history_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("history").join(format!("{name}.ndjson"))
}

/// Notes in job `job`'s state whether it is suspended.
pub(super) fn set_suspended(dir: &Path, job: &str, suspended: bool) -> std::io::Result<()> {
    let _writing = STATE_WRITES.lock().expect("state lock");
    let path = state_path(dir, job);
    let mut state = read_state(&path);
    state.suspended = suspended;
    write_atomically(&path, &state)
}

pub(super) fn state_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("state").join(format!("{name}.json"))
}

/// What a job keeps beside its spec: where its Kafka inputs start reading.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct State {
    /// Starting offsets per Kafka input, by partition.
    #[serde(default)]
    pub(super) offsets: BTreeMap<String, Offsets>,
    /// Whether the job is suspended (it stays so across restarts).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) suspended: bool,
}

/// The state kept in `path` (empty if there is none or it cannot be read: sources
/// then fix their offsets anew).
pub(super) fn read_state(path: &Path) -> State {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
            tracing::error!(path = %path.display(), %error, "unreadable job state; starting offsets are fixed anew");
            State::default()
        }),
        Err(_) => State::default(),
    }
}

/// Serializes `value` to `path` atomically: to a temporary file, then renamed into place.
pub(super) fn write_atomically(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?)?;
    std::fs::rename(&temporary, path)
}

/// State files are read, changed and written one at a time.
static STATE_WRITES: Mutex<()> = Mutex::new(());

/// Keeps offsets a restored job's source fixed after the fact.
pub(super) fn keep_offsets(dir: Option<PathBuf>, job: &str, input: &str) -> managed::Keep {
    let (job, input) = (job.to_string(), input.to_string());
    Box::new(move |position: &Position| {
        let (Some(dir), Position::Kafka { offsets }) = (&dir, position) else { return };
        let _writing = STATE_WRITES.lock().expect("state lock");
        let path = state_path(dir, &job);
        let mut state = read_state(&path);
        state.offsets.insert(input.clone(), offsets.clone());
        if let Err(error) = write_atomically(&path, &state) {
            tracing::error!(%job, %error, "cannot keep the starting offsets");
        }
    })
}
