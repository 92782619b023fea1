//! Part files: per-key states (or removals), framed and checksummed.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::{CheckpointError, FORMAT};
use crate::pipeline::state::frame_entry;

/// The first bytes of a part file, before its format byte and a newline.
const MAGIC: &[u8; 6] = b"TMPART";
/// A frame longer than this is damage.
const MAX_FRAME: u32 = 1 << 30;

/// One entry of a part file: a key, and its state (`None`: the key was removed).
pub type Entry = (Vec<u8>, Option<Vec<u8>>);

/// Writes one part file; nothing of it counts until [`PartWriter::finish`] has synced it.
pub struct PartWriter {
    path: PathBuf,
    out: BufWriter<File>,
    bytes: u64,
}

impl PartWriter {
    /// Creates the file at `path` (replacing any).
    pub(super) fn create(path: &Path) -> Result<PartWriter, CheckpointError> {
        let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io)?);
        out.write_all(MAGIC).and_then(|()| out.write_all(&[FORMAT as u8, b'\n'])).map_err(io)?;
        Ok(PartWriter { path: path.to_path_buf(), out, bytes: MAGIC.len() as u64 + 2 })
    }

    /// Writes `key`'s state, or its removal (`None`).
    pub fn put(&mut self, key: &[u8], state: Option<&[u8]>) -> Result<(), CheckpointError> {
        let mut frame = Vec::with_capacity(17 + key.len() + state.map_or(0, <[u8]>::len));
        frame_entry(&mut frame, key, state);
        self.put_frames(&frame)
    }

    /// Writes entries already framed ([`frame_entry`]), one after the other.
    pub fn put_frames(&mut self, frames: &[u8]) -> Result<(), CheckpointError> {
        self.out.write_all(frames).map_err(|source| CheckpointError::Io { path: self.path.clone(), source })?;
        self.bytes += frames.len() as u64;
        Ok(())
    }

    /// Flushes and syncs the file; its length in bytes.
    pub fn finish(self) -> Result<u64, CheckpointError> {
        let path = self.path;
        let io = |source| CheckpointError::Io { path: path.clone(), source };
        let file = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        Ok(self.bytes)
    }
}

/// Reads one part file's entries, `(key, state)` with `None` for a removed key; a frame
/// that does not check out is an error (a part file is synced before any manifest
/// names it, so damage is never a crash's doing).
pub struct PartReader {
    path: PathBuf,
    input: BufReader<File>,
    offset: u64,
}

impl PartReader {
    /// Opens the file at `path` and checks its header.
    pub fn open(path: &Path) -> Result<PartReader, CheckpointError> {
        let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
        let mut input = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
        let mut header = [0u8; 8];
        let damaged = |why: &str| CheckpointError::Damaged { path: path.to_path_buf(), why: why.into() };
        input.read_exact(&mut header).map_err(|_| damaged("not a part file"))?;
        if &header[..6] != MAGIC || header[7] != b'\n' {
            return Err(damaged("not a part file"));
        }
        if u32::from(header[6]) > FORMAT {
            return Err(CheckpointError::Newer { path: path.to_path_buf(), found: u32::from(header[6]) });
        }
        Ok(PartReader { path: path.to_path_buf(), input, offset: 8 })
    }

    fn damaged(&self, why: &str) -> CheckpointError {
        CheckpointError::Damaged { path: self.path.clone(), why: format!("frame at byte {}: {why}", self.offset) }
    }

    fn next_entry(&mut self) -> Result<Option<Entry>, CheckpointError> {
        let mut head = [0u8; 8];
        match self.input.read(&mut head[..1]) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(source) => return Err(CheckpointError::Io { path: self.path.clone(), source }),
        }
        self.input.read_exact(&mut head[1..]).map_err(|_| self.damaged("cut short"))?;
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        if len > MAX_FRAME {
            return Err(self.damaged("impossible length"));
        }
        let mut payload = vec![0u8; len as usize];
        self.input.read_exact(&mut payload).map_err(|_| self.damaged("cut short"))?;
        if crc32fast::hash(&payload) != crc {
            return Err(self.damaged("checksum does not match"));
        }
        let entry = decode(&payload).ok_or_else(|| self.damaged("malformed entry"))?;
        self.offset += 8 + u64::from(len);
        Ok(Some(entry))
    }
}

impl Iterator for PartReader {
    type Item = Result<Entry, CheckpointError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().transpose()
    }
}

fn decode(payload: &[u8]) -> Option<Entry> {
    let key_len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let key = payload.get(4..4 + key_len)?.to_vec();
    let rest = payload.get(4 + key_len..)?;
    match rest.split_first()? {
        (1, state) => Some((key, Some(state.to_vec()))),
        (0, []) => Some((key, None)),
        _ => None,
    }
}
