//! The write-ahead log of an HTTP input: every request's records, and every advance,
//! made durable before they are applied and answered.
//!
//! A log is a file `DATA_DIR/log/<job>/<input>.log`: a header, then one frame per
//! request, `len: u32 LE | crc32(payload): u32 LE | payload`, where the payload is
//! `1 | count: u32 | (len: u32 | record bytes)*` for records and `2 | watermark: u64`
//! for an advance. Appends are group-committed: each request writes its frame, then
//! waits until some request's `fdatasync` covers it (one sync for every request that
//! arrived meanwhile), then takes its turn, in the log's order, to be applied. So the
//! job applies requests in exactly the order a replay will, and nothing a client saw
//! acknowledged, or a subscriber saw applied, can be missing after a crash.
//!
//! Moves of an idle input's watermark by the wall clock are appended without a sync
//! of their own (the next request's sync covers them), and a move whose frame is the
//! last one is overwritten in place by the next move: only the latest of consecutive
//! moves matters to a replay, and an idle input's log does not grow.
//!
//! Opening a log reads it back: a frame cut short at the end of the file (a crash in
//! the middle of a write, never acknowledged) is cut off; a damaged frame with frames
//! after it is an error, never skipped.
//!
//! Checkpoints truncate the log: a checkpoint notes the log's length (synced first,
//! [`Log::pause`]) and, once committed, releases the bytes before it
//! ([`Log::release_before`]: a hole is punched, so offsets stay valid); a job restored
//! from it reads the log from there ([`Log::open_after`]).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::pipeline::Time;
use frames::{encode_advance, encode_records, read_frames};

mod frames;

/// The first bytes of every log file: the format and its version.
const HEADER: &[u8; 8] = b"TMLOG\x001\n";
const RECORDS: u8 = 1;
const ADVANCE: u8 = 2;
/// The largest frame a log accepts back (a length beyond it is damage).
const MAX_FRAME: u32 = 1 << 30;

/// One logged request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Records, in order.
    Records(Vec<Vec<u8>>),
    /// An advance of the input's watermark.
    Advance(Time),
}

/// What a request writes to a log.
#[derive(Clone, Copy, Debug)]
pub enum Write<'a> {
    /// Records, in order.
    Records(&'a [&'a [u8]]),
    /// An advance a client asked for.
    Advance(Time),
    /// A move of the wall-clock fallback of an idle input (an advance, read back as
    /// one; a move right after a move takes its place).
    ClockMove(Time),
}

/// A log that cannot be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file system refused.
    #[error("input log {}: {source}", path.display())]
    Io {
        /// The log.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a log of this version.
    #[error("input log {}: not a tidemark input log of this version", path.display())]
    Header {
        /// The log.
        path: PathBuf,
    },
    /// A frame is damaged and frames follow it.
    #[error("input log {}: frame at byte {offset} is damaged ({why}); the log is kept as it is", path.display())]
    Damaged {
        /// The log.
        path: PathBuf,
        /// Where the frame starts.
        offset: u64,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The log was closed: its input stopped (the job was deleted or restarts).
    #[error("input log {}: closed, the job stopped or is restarting", path.display())]
    Closed {
        /// The log.
        path: PathBuf,
    },
    /// An earlier write or sync failed: what the log holds is unknown.
    #[error("input log {}: an earlier write failed ({why}); the input takes no more until the job restarts", path.display())]
    Broken {
        /// The log.
        path: PathBuf,
        /// What failed.
        why: String,
    },
}

/// Where the log stands; guarded by [`Log::state`].
struct State {
    file: File,
    /// Writes so far (frames appended, and clock moves written in place of the
    /// previous one), each applied in this order; and the log's length in bytes.
    written: u64,
    bytes: u64,
    /// Writes known durable, and the length they make.
    synced: u64,
    synced_bytes: u64,
    /// Whether some request is syncing now.
    syncing: bool,
    /// Writes applied to the job, in order.
    applied: u64,
    /// Why the log takes no more.
    broken: Option<String>,
    /// Whether it was closed (it takes no more, and is no error).
    closed: bool,
    /// Whether appends wait (a checkpoint is being taken, see [`Log::pause`]).
    paused: bool,
    /// Where the last frame starts, if it is a move of the wall-clock fallback: the
    /// next such move takes its place instead of following it (only the latest of
    /// consecutive moves matters), so an idle input's log stays one frame long.
    last_clock: Option<u64>,
}

/// An open log.
pub struct Log {
    path: PathBuf,
    state: Mutex<State>,
    /// Signalled when `synced`, `applied` or `broken` change.
    changed: Condvar,
}

impl Log {
    /// Opens (or creates) the log at `path` and returns it with the entries it holds,
    /// oldest first, and the bytes a torn last frame held (cut off).
    pub fn open(path: &Path) -> Result<(Log, Vec<Entry>, u64), LogError> {
        Log::open_after(path, 0)
    }

    /// [`Log::open`], reading only the entries after byte `after` (what a checkpoint
    /// holds: see [`Log::pause`]; the bytes before it may have been released, see
    /// [`Log::release_before`]), so that a restore's cost follows what came after the
    /// checkpoint, not the log's history. A log shorter than `after` is damaged.
    pub fn open_after(path: &Path, after: u64) -> Result<(Log, Vec<Entry>, u64), LogError> {
        let io = |source| LogError::Io { path: path.to_path_buf(), source };
        let short = |length| LogError::Damaged {
            path: path.to_path_buf(),
            offset: length,
            why: "shorter than its checkpoint says",
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        let length = file.metadata().map_err(io)?.len();
        // A header cut short: the log was being created, and holds nothing.
        let mut start = [0u8; HEADER.len()];
        let read = if length < HEADER.len() as u64 { file.read(&mut start).map_err(io)? } else { 0 };
        let empty = length == 0 || (length < HEADER.len() as u64 && start[..read] == HEADER[..read]);
        if empty && after > HEADER.len() as u64 {
            return Err(short(length));
        }
        let (entries, good) = if empty {
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.write_all(HEADER).map_err(io)?;
            file.sync_data().map_err(io)?;
            sync_dir(path).map_err(io)?;
            (Vec::new(), HEADER.len() as u64)
        } else {
            if after > length {
                return Err(short(length));
            }
            read_frames(path, &mut file, length, after)?
        };
        let torn = length.saturating_sub(good);
        if torn > 0 {
            tracing::warn!(log = %path.display(), bytes = torn, "input log: cut off a torn last frame (never acknowledged)");
            file.set_len(good).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        file.seek(SeekFrom::Start(good)).map_err(io)?;
        let frames = entries.len() as u64;
        let state = State {
            file,
            written: frames,
            bytes: good,
            synced: frames,
            synced_bytes: good,
            syncing: false,
            applied: frames,
            broken: None,
            closed: false,
            paused: false,
            last_clock: None,
        };
        Ok((Log { path: path.to_path_buf(), state: Mutex::new(state), changed: Condvar::new() }, entries, torn))
    }

    /// Appends `write`, waits until it is durable (a clock move waits for no sync: the
    /// next request's sync makes it durable with that request, before anything that
    /// depends on it is acknowledged) and it is its turn, applies it with `apply`, and
    /// returns what that returned. Writes are applied in log order.
    pub fn append<T>(&self, write: Write<'_>, apply: impl FnOnce() -> T) -> Result<T, LogError> {
        match write {
            Write::Records(records) => self.append_frame(encode_records(records), true, apply),
            Write::Advance(watermark) => self.append_frame(encode_advance(watermark), true, apply),
            Write::ClockMove(watermark) => self.append_frame(encode_advance(watermark), false, apply),
        }
    }

    fn append_frame<T>(&self, frame: Vec<u8>, sync: bool, apply: impl FnOnce() -> T) -> Result<T, LogError> {
        let mut state = self.lock();
        while state.paused {
            state = self.changed.wait(state).expect("log lock");
        }
        self.check(&state)?;
        if state.closed {
            return Err(LogError::Closed { path: self.path.clone() });
        }
        if let (false, Some(at)) = (sync, state.last_clock) {
            // In place of the previous move (same length: an advance frame).
            if let Err(error) = state.file.write_all_at(&frame, at) {
                self.break_with(&mut state, &error);
                return Err(LogError::Io { path: self.path.clone(), source: error });
            }
            state.written += 1;
            let seq = state.written;
            return self.apply_in_turn(state, seq, apply);
        }
        if let Err(error) = state.file.write_all(&frame) {
            // Take the partial frame back, so the file stays a sequence of frames.
            let bytes = state.bytes;
            let undone = state.file.set_len(bytes).and_then(|()| state.file.seek(SeekFrom::Start(bytes)).map(drop));
            if undone.is_err() {
                self.break_with(&mut state, &error);
            }
            return Err(LogError::Io { path: self.path.clone(), source: error });
        }
        state.last_clock = (!sync).then_some(state.bytes);
        state.written += 1;
        state.bytes += frame.len() as u64;
        let seq = state.written;
        if sync {
            state = self.sync_through(state, seq)?;
        }
        self.apply_in_turn(state, seq, apply)
    }

    /// Applies write `seq` once every earlier one is applied.
    fn apply_in_turn<T>(
        &self,
        mut state: MutexGuard<'_, State>,
        seq: u64,
        apply: impl FnOnce() -> T,
    ) -> Result<T, LogError> {
        while state.applied + 1 != seq {
            // A write before this one failed and will never be applied.
            self.check(&state)?;
            state = self.changed.wait(state).expect("log lock");
        }
        drop(state);
        let answer = apply();
        let mut state = self.lock();
        state.applied = seq;
        self.changed.notify_all();
        Ok(answer)
    }

    /// Waits until frame `seq` is durable, syncing for every waiting request if no one
    /// else is.
    fn sync_through<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        seq: u64,
    ) -> Result<MutexGuard<'a, State>, LogError> {
        loop {
            self.check(&state)?;
            if state.synced >= seq {
                return Ok(state);
            }
            if state.syncing {
                state = self.changed.wait(state).expect("log lock");
                continue;
            }
            state.syncing = true;
            let (through, through_bytes) = (state.written, state.bytes);
            let file = state.file.try_clone();
            drop(state);
            let synced = file.and_then(|file| file.sync_data());
            state = self.lock();
            state.syncing = false;
            match synced {
                Ok(()) => {
                    state.synced = state.synced.max(through);
                    state.synced_bytes = state.synced_bytes.max(through_bytes);
                }
                Err(error) => {
                    // Nothing written since the last good sync was acknowledged: take
                    // it back (best effort), so a restart does not apply what its
                    // clients were told failed.
                    let _ = state.file.set_len(state.synced_bytes);
                    self.break_with(&mut state, &error);
                }
            }
            self.changed.notify_all();
        }
    }

    /// Makes every later write fail, as on a full or read-only file system: the file
    /// is swapped for a handle opened for reading.
    #[cfg(test)]
    pub(crate) fn refuse_writes(&self) {
        self.lock().file = File::open(&self.path).expect("the log reopens for reading");
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("log lock")
    }

    fn check(&self, state: &State) -> Result<(), LogError> {
        match &state.broken {
            Some(why) => Err(LogError::Broken { path: self.path.clone(), why: why.clone() }),
            None => Ok(()),
        }
    }

    /// The log's length in bytes now.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Holds every new write until the guard is dropped, once every write so far is
    /// applied; the guard tells the log's length then: a checkpoint taken meanwhile holds
    /// everything the log holds up to there, and a restore from it reads the log after it
    /// ([`Log::open_after`]). The last frame is sealed: a clock move after the pause
    /// follows it instead of taking its place.
    pub fn pause(&self) -> Result<Paused<'_>, LogError> {
        let mut state = self.lock();
        while state.paused {
            state = self.changed.wait(state).expect("log lock");
        }
        state.paused = true;
        while (state.applied < state.written || state.syncing) && state.broken.is_none() {
            state = self.changed.wait(state).expect("log lock");
        }
        // Clock moves are written unsynced: the log up to its length must be on disk
        // before a checkpoint says that a restore reads from there.
        if state.synced_bytes < state.bytes && state.broken.is_none() {
            match state.file.sync_data() {
                Ok(()) => (state.synced, state.synced_bytes) = (state.written, state.bytes),
                Err(error) => self.break_with(&mut state, &error),
            }
        }
        let paused = Paused { log: self, bytes: state.bytes };
        if let Err(error) = self.check(&state) {
            drop(state);
            drop(paused);
            return Err(error);
        }
        state.last_clock = None;
        Ok(paused)
    }

    /// Gives back the disk space of everything before byte `after`, which a checkpoint
    /// now holds (a restore reads the log after it): the file keeps its length and
    /// offsets, the range becomes a hole. Where the file system cannot punch holes the
    /// log keeps its bytes (a warning says so, once per log).
    pub fn release_before(&self, after: u64) {
        let state = self.lock();
        let start = HEADER.len() as u64;
        if after <= start || after > state.synced_bytes || state.closed {
            return;
        }
        let flags = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        if let Err(error) = rustix::fs::fallocate(&state.file, flags, start, after - start) {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(log = %self.path.display(), %error, "input log: cannot free what a checkpoint holds; logs keep growing");
            });
        }
    }

    /// Takes no more writes: once this returns, nothing more is written to the file,
    /// so that the job's next run may open it. Writes already in the file stay (they
    /// are replayed then).
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    fn break_with(&self, state: &mut State, error: &std::io::Error) {
        tracing::error!(log = %self.path.display(), %error, "input log: a write failed; the input takes no more");
        state.broken = Some(error.to_string());
        self.changed.notify_all();
    }

    /// Writes applied (frames, after a restart), and the log's length in bytes.
    #[cfg(test)]
    pub(crate) fn position(&self) -> (u64, u64) {
        let state = self.lock();
        (state.applied, state.bytes)
    }
}

/// A paused log (see [`Log::pause`]); writes go on when it is dropped.
pub struct Paused<'a> {
    log: &'a Log,
    /// The log's length: everything applied so far ends at or before it.
    pub bytes: u64,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.log.lock().paused = false;
        self.log.changed.notify_all();
    }
}

/// Makes a new file's directory entry durable.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
