//! Checkpoints on disk: a job's checkpoint is a manifest naming, per stateful operator,
//! a chain of *part* files of per-key state, written so that a crash at any moment
//! leaves the previous checkpoint whole and in use.
//!
//! ```text
//! DATA_DIR/checkpoints/<job>/
//!     manifest-00000000000000000007.json   the current checkpoint (the newest manifest)
//!     part-00000000000000000005-0.bin      part files the manifest names
//!     part-00000000000000000007-0.bin
//! ```
//!
//! - **Incremental.** A checkpoint writes, per operator, only the keys whose state
//!   changed since the previous one (a removed key is written as removed): a *delta*
//!   appended to the operator's chain. An operator with no part in a checkpoint keeps
//!   its chain. Reading a chain applies its files in order; the last word on a key wins.
//! - **Atomic.** Part files are written and synced first; the manifest is written to a
//!   temporary file, synced, and renamed into place, and the directory is synced: the
//!   rename is the commit. Files no manifest names (a checkpoint cut short by a crash)
//!   are removed when the store is opened, and superseded ones after each commit.
//! - **Compacted.** When a chain's deltas outweigh its base, [`Store::compact`] folds
//!   the chain into one base file and commits a manifest naming it (same checkpoint,
//!   next manifest number): meant to run in the background, off the checkpoint's path.
//! - **Versioned.** The manifest carries [`FORMAT`], each part file a header with it; a
//!   checkpoint of a newer format is refused with [`CheckpointError::Newer`], never
//!   misread. Fixtures of every released format are kept in `tests/fixtures/` and must
//!   still load.
//!
//! A part file is a header, `TMPART` + format byte + `\n`, then frames `len: u32 LE |
//! crc32(payload): u32 LE | payload`, the payload `key_len: u32 LE | key | 1 | state`
//! for a key's state or `key_len | key | 0` for a removed key. Keys and states are
//! opaque bytes: their encoding belongs to the operators.

mod part;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pipeline::Time;
pub use part::{Entry, PartReader, PartWriter};

/// The format this version writes, and the newest it reads.
pub const FORMAT: u32 = 1;
/// A chain is compacted when its deltas hold more bytes than this many times its base.
const COMPACT_RATIO: u64 = 1;
/// ... or when it is this many files long.
const COMPACT_LENGTH: usize = 16;

/// A checkpoint that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file system refused.
    #[error("checkpoint {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not what it should be (damaged, cut short, or not a checkpoint).
    #[error("checkpoint {}: damaged ({why}); the checkpoint is kept as it is", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The checkpoint was written by a newer tidemark.
    #[error(
        "checkpoint {}: format {found} is newer than this tidemark reads (up to {FORMAT}); run a newer \
         tidemark, or delete the job to start it afresh",
        path.display()
    )]
    Newer {
        /// The file.
        path: PathBuf,
        /// Its format.
        found: u32,
    },
}

/// The durable description of one checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The format it is written in.
    pub format: u32,
    /// The checkpoint's number: 1 for a job's first, then one more each.
    pub id: u64,
    /// The manifest's number: one more for each manifest written (compaction writes
    /// a new manifest for the same checkpoint).
    pub seq: u64,
    /// The frontier at which the state was taken.
    pub frontier: Time,
    /// When it was taken, wall-clock ms since the epoch.
    pub at: u64,
    /// Bytes of the part files written for this checkpoint.
    pub bytes: u64,
    /// What the job keeps beside its operators' state (routers, source positions,
    /// outputs), in its own encoding.
    pub job: serde_json::Value,
    /// Per operator, its chain of part files, oldest first.
    pub parts: BTreeMap<String, Vec<PartFile>>,
}

/// One part file of an operator's chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    /// Its name in the checkpoint directory.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Whether it holds every key of the operator (a base), not only changes.
    pub base: bool,
}

/// The checkpoints of one job, in their directory.
pub struct Store {
    dir: PathBuf,
    current: Option<Manifest>,
    /// The last id [`Store::begin`] gave.
    begun: u64,
}

impl Store {
    /// Opens (or creates) the directory `dir`: reads the newest manifest, if any, and
    /// removes every file it does not name. A damaged or newer manifest is an error.
    pub fn open(dir: &Path) -> Result<Store, CheckpointError> {
        let io = |source| CheckpointError::Io { path: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut manifests = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let name = entry.map_err(io)?.file_name().to_string_lossy().into_owned();
            let seq = name.strip_prefix("manifest-").and_then(|n| n.strip_suffix(".json"));
            if let Some(Ok(seq)) = seq.map(str::parse::<u64>) {
                manifests.push((seq, name));
            }
        }
        manifests.sort();
        let current = match manifests.last() {
            Some((_, name)) => Some(read_manifest(&dir.join(name))?),
            None => None,
        };
        let store = Store { dir: dir.to_path_buf(), current, begun: 0 };
        store.collect_garbage()?;
        Ok(store)
    }

    /// The current checkpoint, if the job has one.
    pub fn current(&self) -> Option<&Manifest> {
        self.current.as_ref()
    }

    /// Reads operator `operator`'s state in the current checkpoint: every key with its
    /// state, the chain applied in order (removed keys left out), sorted by key.
    pub fn read(&self, operator: &str) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, CheckpointError> {
        let mut state = BTreeMap::new();
        let chain = self.current.as_ref().and_then(|m| m.parts.get(operator));
        for part in chain.into_iter().flatten() {
            let path = self.dir.join(&part.file);
            for entry in PartReader::open(&path)? {
                match entry? {
                    (key, Some(value)) => state.insert(key, value),
                    (key, None) => state.remove(&key),
                };
            }
        }
        Ok(state)
    }

    /// Starts the next checkpoint. Its id follows every id begun before, committed or
    /// not: a checkpoint that failed never lends its id to the next.
    pub fn begin(&mut self) -> Checkpoint {
        let id = self.current.as_ref().map_or(1, |m| m.id + 1).max(self.begun + 1);
        self.begun = id;
        Checkpoint { dir: self.dir.clone(), id, parts: Vec::new(), bytes: 0 }
    }

    /// Folds every chain that has grown beyond its base into one base file, and
    /// commits a manifest naming them; the number of chains folded.
    pub fn compact(&mut self) -> Result<usize, CheckpointError> {
        let Some(current) = self.current.clone() else { return Ok(0) };
        let mut manifest = current.clone();
        let mut folded = 0;
        for (operator, chain) in &current.parts {
            let base = chain.first().filter(|p| p.base).map_or(0, |p| p.bytes);
            let deltas: u64 = chain.iter().filter(|p| !p.base).map(|p| p.bytes).sum();
            if chain.len() < 2 || (deltas <= base * COMPACT_RATIO && chain.len() < COMPACT_LENGTH) {
                continue;
            }
            let name = format!("part-{:020}-c{folded}.bin", current.seq + 1);
            let mut writer = PartWriter::create(&self.dir.join(&name))?;
            for (key, value) in self.read(operator)? {
                writer.put(&key, Some(&value))?;
            }
            let bytes = writer.finish()?;
            manifest.parts.insert(operator.clone(), vec![PartFile { file: name, bytes, base: true }]);
            folded += 1;
        }
        if folded > 0 {
            manifest.seq += 1;
            self.commit(manifest)?;
        }
        Ok(folded)
    }

    /// Copies the current checkpoint into the new directory `to` (its files linked
    /// where the file system allows: they never change once written), and returns its
    /// manifest; `None` if there is no checkpoint.
    pub fn copy_current(&self, to: &Path) -> Result<Option<Manifest>, CheckpointError> {
        let Some(manifest) = &self.current else { return Ok(None) };
        let io = |source| CheckpointError::Io { path: to.to_path_buf(), source };
        std::fs::create_dir_all(to).map_err(io)?;
        let names = std::iter::once(format!("manifest-{:020}.json", manifest.seq))
            .chain(manifest.parts.values().flatten().map(|p| p.file.clone()));
        for name in names {
            let (from, into) = (self.dir.join(&name), to.join(&name));
            if std::fs::hard_link(&from, &into).is_err() {
                std::fs::copy(&from, &into).map_err(io)?;
                File::open(&into).and_then(|f| f.sync_all()).map_err(io)?;
            }
        }
        File::open(to).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(Some(manifest.clone()))
    }

    /// Commits a new manifest of the current checkpoint with `job` as the job's part.
    pub fn replace_job(&mut self, job: serde_json::Value) -> Result<(), CheckpointError> {
        let Some(mut manifest) = self.current.clone() else { return Ok(()) };
        manifest.seq += 1;
        manifest.job = job;
        self.commit(manifest)
    }

    /// Makes `manifest` the current one (the rename is the commit), then removes what
    /// it does not name.
    fn commit(&mut self, manifest: Manifest) -> Result<(), CheckpointError> {
        let path = self.dir.join(format!("manifest-{:020}.json", manifest.seq));
        let temporary = path.with_extension("json.tmp");
        let io = |source| CheckpointError::Io { path: temporary.clone(), source };
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| io(std::io::Error::other(e)))?;
        let mut file = File::create(&temporary).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temporary, &path).map_err(io)?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io)?;
        self.current = Some(manifest);
        self.collect_garbage()
    }

    /// Removes every file of the directory the current manifest does not name.
    fn collect_garbage(&self) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io { path: self.dir.clone(), source };
        let keep: Vec<String> = match &self.current {
            Some(m) => std::iter::once(format!("manifest-{:020}.json", m.seq))
                .chain(m.parts.values().flatten().map(|p| p.file.clone()))
                .collect(),
            None => Vec::new(),
        };
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

/// A checkpoint being written: parts first, then [`Checkpoint::commit`].
pub struct Checkpoint {
    dir: PathBuf,
    id: u64,
    parts: Vec<(String, PartFile)>,
    bytes: u64,
}

impl Checkpoint {
    /// This checkpoint's number.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A part file for `operator`, holding every key if a base, else the keys changed
    /// since the previous checkpoint; written and synced by [`PartWriter::finish`], then
    /// handed back with [`Checkpoint::add`]. An operator may have several parts in one
    /// checkpoint (one per worker, holding different keys).
    pub fn part(&self, operator: &str) -> Result<(String, PartWriter), CheckpointError> {
        let _ = operator;
        let name = format!("part-{:020}-{}.bin", self.id, self.parts.len());
        Ok((name.clone(), PartWriter::create(&self.dir.join(&name))?))
    }

    /// Adds a finished part (`bytes` long) to `operator`'s chain; a `base` starts the
    /// chain afresh.
    pub fn add(&mut self, operator: &str, file: String, bytes: u64, base: bool) {
        self.bytes += bytes;
        self.parts.push((operator.to_string(), PartFile { file, bytes, base }));
    }

    /// Commits the checkpoint, taken at `frontier` at wall-clock `at`, with the job's
    /// own state `job`: the manifest's rename makes it the current one.
    pub fn commit(
        self,
        store: &mut Store,
        frontier: Time,
        at: u64,
        job: serde_json::Value,
    ) -> Result<Manifest, CheckpointError> {
        let previous = store.current.clone();
        if self.id != store.begun || previous.as_ref().is_some_and(|m| m.id >= self.id) {
            let why = format!("checkpoint {} was begun on another state of the store", self.id);
            return Err(CheckpointError::Damaged { path: self.dir, why });
        }
        let mut parts = previous.as_ref().map(|m| m.parts.clone()).unwrap_or_default();
        for (operator, part) in self.parts {
            let chain = parts.entry(operator).or_default();
            if part.base {
                chain.clear();
            }
            chain.push(part);
        }
        let seq = previous.as_ref().map_or(1, |m| m.seq + 1);
        let manifest = Manifest { format: FORMAT, id: self.id, seq, frontier, at, bytes: self.bytes, job, parts };
        store.commit(manifest.clone())?;
        Ok(manifest)
    }
}

fn read_manifest(path: &Path) -> Result<Manifest, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })?;
    let damaged = |why: String| CheckpointError::Damaged { path: path.to_path_buf(), why };
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
    let found = value.get("format").and_then(serde_json::Value::as_u64).ok_or_else(|| damaged("no format".into()))?;
    let found = u32::try_from(found).unwrap_or(u32::MAX);
    if found > FORMAT {
        return Err(CheckpointError::Newer { path: path.to_path_buf(), found });
    }
    serde_json::from_value(value).map_err(|e| damaged(e.to_string()))
}

#[cfg(test)]
mod tests;
