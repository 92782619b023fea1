//! File sources: an NDJSON file read once, in chunks, when the job starts.
//!
//! The position is the byte offset of the end of the last chunk fed (always the end
//! of a line); a file source started from a position seeks there and reads on.
//! [`NdjsonFile`] is how files are read, here and by `tidemark run`.

use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{Feed, FeedError, Position, Source};
use crate::ingest::format::{Chunk, NdjsonChunks};

/// Lines per chunk fed to the job.
const CHUNK_LINES: usize = 4096;

/// A file source stopped before the end of its file.
#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The job took no more records.
    #[error(transparent)]
    Feed(#[from] FeedError),
}

/// How far the file has been read.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    offset: u64,
    records: u64,
    done: bool,
}

struct Shared {
    path: PathBuf,
    progress: Mutex<Progress>,
    stop: AtomicBool,
}

/// An input fed from a file.
pub struct FileSource {
    shared: Arc<Shared>,
}

impl FileSource {
    /// Reads `path` into `feed` on a blocking thread of the tokio runtime, from the
    /// offset of `from` if it is a position in the same file; a read or feed error
    /// fails the job.
    pub fn start(path: PathBuf, feed: Arc<dyn Feed>, from: Option<Position>) -> FileSource {
        let progress = match from {
            Some(Position::File { path: at, offset, records, done }) if at == path => {
                Progress { offset, records, done }
            }
            _ => Progress::default(),
        };
        let shared = Arc::new(Shared { path, progress: Mutex::new(progress), stop: AtomicBool::new(false) });
        let reading = shared.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(error) = read(&reading, feed.as_ref()) {
                feed.fail(&error);
            }
        });
        FileSource { shared }
    }
}

/// An NDJSON file read in chunks of whole lines, from a byte offset, keeping its
/// position: what file sources and `tidemark run` read files with.
pub struct NdjsonFile {
    chunks: NdjsonChunks<BufReader<std::fs::File>>,
    offset: u64,
}

impl NdjsonFile {
    /// `path`, from byte `offset` (the end of a line, as a position gives it).
    pub fn open(path: &Path, offset: u64) -> std::io::Result<NdjsonFile> {
        let mut file = std::fs::File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(NdjsonFile { chunks: NdjsonChunks::new(BufReader::with_capacity(1 << 20, file)), offset })
    }

    /// Reads up to `lines` lines into `chunk`; empty at the end of the file.
    pub fn next_into(&mut self, chunk: &mut Chunk, lines: usize) -> std::io::Result<()> {
        self.chunks.next_into(chunk, lines)?;
        self.offset += chunk.bytes() as u64;
        Ok(())
    }

    /// The byte offset after the last chunk read.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// Feeds the file from where `shared` stands to its end, chunk by chunk.
fn read(shared: &Shared, feed: &dyn Feed) -> Result<(), FileSourceError> {
    let start = *shared.progress.lock().expect("progress lock");
    if start.done {
        return Ok(());
    }
    let unreadable = |source| FileSourceError::Read { path: shared.path.clone(), source };
    let mut file = NdjsonFile::open(&shared.path, start.offset).map_err(unreadable)?;
    let mut chunk = Chunk::default();
    while !shared.stop.load(Ordering::SeqCst) {
        file.next_into(&mut chunk, CHUNK_LINES).map_err(unreadable)?;
        if chunk.is_empty() {
            shared.progress.lock().expect("progress lock").done = true;
            return Ok(());
        }
        let records: Vec<&[u8]> = chunk.records().collect();
        feed.records(&records)?;
        let mut progress = shared.progress.lock().expect("progress lock");
        progress.offset = file.offset();
        progress.records += records.len() as u64;
    }
    Ok(())
}

impl Source for FileSource {
    fn position(&self) -> Position {
        let progress = *self.shared.progress.lock().expect("progress lock");
        Position::File {
            path: self.shared.path.clone(),
            offset: progress.offset,
            records: progress.records,
            done: progress.done,
        }
    }

    fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::source::testing::Kept;

    /// Waits until `source` has read its whole file, or failed.
    async fn finished(source: &FileSource, feed: &Kept) -> Position {
        for _ in 0..500 {
            let position = source.position();
            if matches!(position, Position::File { done: true, .. }) || !feed.failures.lock().unwrap().is_empty() {
                return position;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the file source did not finish: {:?}", source.position());
    }

    #[tokio::test]
    async fn reads_the_file_and_resumes_from_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.ndjson");
        let lines: Vec<String> = (0..10_000).map(|i| format!("{{\"n\":{i}}}")).collect();
        std::fs::write(&path, lines.join("\n") + "\n\n").unwrap();
        let length = std::fs::metadata(&path).unwrap().len();

        let feed = Arc::new(Kept::default());
        let source = FileSource::start(path.clone(), feed.clone(), None);
        let position = finished(&source, &feed).await;
        assert_eq!(position, Position::File { path: path.clone(), offset: length, records: 10_000, done: true });
        assert_eq!(*feed.records.lock().unwrap(), lines);

        // From the end of the first chunk: only the lines after it.
        let first_chunk: u64 = lines[..CHUNK_LINES].iter().map(|l| l.len() as u64 + 1).sum();
        let from = Position::File { path: path.clone(), offset: first_chunk, records: CHUNK_LINES as u64, done: false };
        let rest = Arc::new(Kept::default());
        let resumed = FileSource::start(path.clone(), rest.clone(), Some(from));
        assert_eq!(finished(&resumed, &rest).await, position);
        assert_eq!(*rest.records.lock().unwrap(), lines[CHUNK_LINES..]);

        // A position in another file starts from the beginning.
        let elsewhere = Position::File { path: dir.path().join("other"), offset: 5, records: 1, done: false };
        let fresh = Arc::new(Kept::default());
        let source = FileSource::start(path, fresh.clone(), Some(elsewhere));
        finished(&source, &fresh).await;
        assert_eq!(fresh.records.lock().unwrap().len(), 10_000);
    }

    #[tokio::test]
    async fn errors_fail_the_input_and_stop_the_position() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.ndjson");
        let feed = Arc::new(Kept::default());
        let source = FileSource::start(missing.clone(), feed.clone(), None);
        finished(&source, &feed).await;
        let failures = feed.failures.lock().unwrap().clone();
        assert!(failures.len() == 1 && failures[0].contains("missing.ndjson"), "{failures:?}");

        let path = dir.path().join("in.ndjson");
        std::fs::write(&path, (0..CHUNK_LINES * 2).map(|i| format!("{i}\n")).collect::<String>()).unwrap();
        let refusing = Arc::new(Kept { refuse_after: Some(CHUNK_LINES), ..Kept::default() });
        let source = FileSource::start(path, refusing.clone(), None);
        let position = finished(&source, &refusing).await;
        assert!(matches!(position, Position::File { records, done: false, .. } if records == CHUNK_LINES as u64));
        assert_eq!(*refusing.failures.lock().unwrap(), ["refused"]);
    }
}
