//! A job's history (`GET /api/v1/jobs/{job}/history`): what happened to it, oldest
//! first — `created`, `started`, `checkpoint`, `savepoint`, `suspended`, `resumed`,
//! `upgraded`, `restarting`, `failed` — each with the wall-clock time it happened at
//! (`at`, ms since the epoch) and what else it says.
//!
//! Kept in `DATA_DIR/history/<job>.ndjson`, a line per event appended as it happens, so
//! it survives restarts; a line that cannot be read (a crash cut it short) is skipped.
//! Only the last [`CHECKPOINTS_KEPT`] checkpoints are kept: past twice that many, the
//! file is written again without the older ones.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{Map, Value};

/// How many `checkpoint` events a history keeps.
pub const CHECKPOINTS_KEPT: usize = 10;

/// A job's history, in memory and (with a data directory) on disk.
pub struct History {
    path: Option<PathBuf>,
    events: Mutex<Vec<Value>>,
}

impl History {
    /// The history kept at `path` (none yet if there is no file; only in memory
    /// without a path).
    pub fn open(path: Option<PathBuf>) -> History {
        let mut events = Vec::new();
        if let Some(text) = path.as_ref().and_then(|path| std::fs::read_to_string(path).ok()) {
            let lines = text.lines().count();
            events.extend(text.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()));
            // A line cut short by a crash: written again without it, so that the next
            // event does not land on it.
            if (events.len() < lines || !text.ends_with('\n'))
                && let Some(path) = &path
                && let Err(error) = rewrite(path, &events)
            {
                tracing::warn!(path = %path.display(), %error, "cannot repair the job's history");
            }
        }
        History { path, events: Mutex::new(events) }
    }

    /// Every event, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().expect("history lock").clone()
    }

    /// Records `event` now, with `fields` (an object; other values are ignored).
    pub fn record(&self, event: &str, fields: Value) {
        let mut entry = Map::new();
        entry.insert("at".into(), Value::from(now_ms()));
        entry.insert("event".into(), Value::from(event));
        if let Value::Object(fields) = fields {
            entry.extend(fields);
        }
        let entry = Value::Object(entry);
        let mut events = self.events.lock().expect("history lock");
        events.push(entry.clone());
        let checkpoints = events.iter().filter(|e| e["event"] == "checkpoint").count();
        let Some(path) = &self.path else {
            if checkpoints > CHECKPOINTS_KEPT {
                forget_checkpoints(&mut events);
            }
            return;
        };
        let written = if checkpoints > 2 * CHECKPOINTS_KEPT {
            forget_checkpoints(&mut events);
            rewrite(path, &events)
        } else {
            append(path, &entry)
        };
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "cannot write the job's history");
        }
    }

    /// Forgets the history and removes its file.
    pub fn remove(&self) {
        self.events.lock().expect("history lock").clear();
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Drops all `checkpoint` events but the last [`CHECKPOINTS_KEPT`].
fn forget_checkpoints(events: &mut Vec<Value>) {
    let checkpoints = events.iter().filter(|e| e["event"] == "checkpoint").count();
    let mut drop = checkpoints.saturating_sub(CHECKPOINTS_KEPT);
    events.retain(|e| {
        let old = drop > 0 && e["event"] == "checkpoint";
        drop -= usize::from(old);
        !old
    });
}

fn append(path: &std::path::Path, entry: &Value) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(format!("{entry}\n").as_bytes())
}

/// Writes `events` to `path` atomically (a temporary file renamed into place).
fn rewrite(path: &std::path::Path, events: &[Value]) -> std::io::Result<()> {
    let temporary = path.with_extension("ndjson.tmp");
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events come back after a reopen, in order; only the last checkpoints are kept,
    /// on disk too; a line cut short is skipped.
    #[test]
    fn a_history_survives_a_reopen_and_keeps_the_last_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history/j.ndjson");
        let history = History::open(Some(path.clone()));
        history.record("created", serde_json::json!({"dataflow": "chaos"}));
        for id in 1..=25 {
            history.record("checkpoint", serde_json::json!({"id": id}));
        }
        history.record("suspended", Value::Null);
        let events = History::open(Some(path.clone())).events();
        let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert_eq!(kinds.first(), Some(&"created"));
        assert_eq!(kinds.last(), Some(&"suspended"));
        let ids: Vec<u64> = events.iter().filter_map(|e| e["id"].as_u64()).collect();
        assert!(ids.len() <= 2 * CHECKPOINTS_KEPT && ids.ends_with(&[24, 25]), "{ids:?}");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(events.iter().all(|e| e["at"].as_u64().is_some()), "{events:?}");

        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"at\": 1, \"ev").unwrap();
        let reopened = History::open(Some(path.clone()));
        assert_eq!(reopened.events().len(), events.len());
        reopened.record("resumed", Value::Null);
        assert_eq!(History::open(Some(path.clone())).events().len(), events.len() + 1, "appended after the cut");
        history.remove();
        assert!(!path.exists());
    }
}
