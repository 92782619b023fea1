//! HTTP sources: records posted to `/api/v1/jobs/{job}/inputs/{input}` and advances
//! of its watermark (the handlers are `serve`'s), fed in order.
//!
//! With a data directory, every request is written to the input's [`log`] and made
//! durable before it is applied and answered, and a source opened on an existing log
//! applies what it holds first: after a crash, the job gets back every request it had
//! acknowledged, in the same order. The position counts the records taken.

pub mod log;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{Feed, FeedError, Held, HoldFailed, Position, Source, SourceStatus};
use crate::ingest::IngestReport;
use crate::pipeline::Time;
use log::{Entry, Log, LogError, Paused, Write};

/// A request an HTTP input could not take.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Its log could not make it durable.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The job could not take it.
    #[error(transparent)]
    Feed(#[from] FeedError),
}

/// An input fed over HTTP.
pub struct HttpSource {
    feed: Arc<dyn Feed>,
    log: Option<Log>,
    records: AtomicU64,
    /// The latest failure of its log, for job status.
    trouble: Mutex<Option<String>>,
}

impl HttpSource {
    /// A source feeding `feed`: with a `log`, it first applies what the log holds after
    /// byte `after` (what a checkpoint restored does not hold; an error if the log cannot
    /// be read); without one, it counts on from `from`.
    pub fn open(
        feed: Arc<dyn Feed>,
        from: Option<Position>,
        log: Option<PathBuf>,
        after: u64,
    ) -> Result<HttpSource, HttpError> {
        let Some(path) = log else {
            let records = match from {
                Some(Position::Http { records }) => records,
                _ => 0,
            };
            return Ok(HttpSource { feed, log: None, records: AtomicU64::new(records), trouble: Mutex::new(None) });
        };
        let (log, entries, _) = Log::open_after(&path, after)?;
        let mut records = 0;
        for entry in entries {
            match entry {
                Entry::Records(taken) => {
                    let taken: Vec<&[u8]> = taken.iter().map(Vec::as_slice).collect();
                    feed.records(&taken)?;
                    records += taken.len() as u64;
                }
                Entry::Advance(watermark) => {
                    feed.advance(watermark)?;
                }
            }
        }
        if records > 0 {
            tracing::info!(log = %path.display(), records, "input log: applied what it held");
        }
        Ok(HttpSource { feed, log: Some(log), records: AtomicU64::new(records), trouble: Mutex::new(None) })
    }

    /// Feeds one request's records, in order, and advances the input; durable first
    /// when the input has a log.
    pub fn post(&self, records: &[&[u8]]) -> Result<IngestReport, HttpError> {
        let report = self.write(Write::Records(records), || self.feed.records(records))?;
        self.records.fetch_add(records.len() as u64, Ordering::SeqCst);
        Ok(report)
    }

    /// Moves the input's watermark to at least `watermark` (durable first when the
    /// input has a log); the watermark it has then.
    pub fn advance(&self, watermark: Time) -> Result<Time, HttpError> {
        self.write(Write::Advance(watermark), || self.feed.advance(watermark))
    }

    /// Moves the input's watermark to at least `watermark` for the wall-clock fallback
    /// of an idle input: logged (not synced: the next acknowledged request's sync
    /// covers it) so that a replay judges later records against the same watermark.
    pub fn follow_clock(&self, watermark: Time) -> Result<Time, HttpError> {
        self.write(Write::ClockMove(watermark), || self.feed.advance(watermark))
    }

    /// Its log's length in bytes, if it has a log.
    pub fn log_length(&self) -> Option<u64> {
        self.log.as_ref().map(Log::bytes)
    }

    /// Holds the input's writes while a checkpoint is taken (see [`Log::pause`]); none
    /// without a log.
    pub fn pause(&self) -> Result<Option<Paused<'_>>, LogError> {
        self.log.as_ref().map(Log::pause).transpose()
    }

    /// Applies `apply`, after writing `write` to the log if the input has one; a log
    /// failure is kept for job status.
    fn write<T>(&self, write: Write<'_>, apply: impl FnOnce() -> Result<T, FeedError>) -> Result<T, HttpError> {
        let Some(log) = &self.log else { return Ok(apply()?) };
        let written = log.append(write, apply);
        if let Err(error) = &written {
            *self.trouble.lock().expect("trouble lock") = Some(error.to_string());
        }
        Ok(written??)
    }
}

impl Source for HttpSource {
    fn position(&self) -> Position {
        Position::Http { records: self.records.load(Ordering::SeqCst) }
    }

    fn status(&self) -> SourceStatus {
        match self.trouble.lock().expect("trouble lock").clone() {
            Some(trouble) => SourceStatus::Failing(trouble),
            None => SourceStatus::Plain,
        }
    }

    fn as_http(&self) -> Option<&HttpSource> {
        Some(self)
    }

    /// Holds its log still ([`Log::pause`]); a checkpoint then holds what the log holds
    /// up to its length.
    fn hold(&self) -> Result<Option<Held<'_>>, HoldFailed> {
        let paused = self.pause().map_err(|e| HoldFailed(Box::new(e)))?;
        Ok(paused.map(|paused| Held::new(Position::Logged { after: paused.bytes }, paused)))
    }

    fn checkpoint_position(&self) -> Option<Position> {
        self.log_length().map(|after| Position::Logged { after })
    }

    fn checkpointed(&self, position: &Position) {
        if let (Some(log), Position::Logged { after }) = (&self.log, position) {
            log.release_before(*after);
        }
    }

    fn stop(&self) {
        if let Some(log) = &self.log {
            log.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::testing::Kept;

    #[test]
    fn the_position_counts_the_records_fed_and_resumes() {
        let feed = Arc::new(Kept::default());
        let source = HttpSource::open(feed.clone(), None, None, 0).unwrap();
        source.post(&[b"1", b"2"]).unwrap();
        source.post(&[b"3"]).unwrap();
        assert_eq!(source.position(), Position::Http { records: 3 });
        assert_eq!(*feed.records.lock().unwrap(), ["1", "2", "3"]);
        let again = HttpSource::open(feed, Some(source.position()), None, 0).unwrap();
        again.post(&[b"4"]).unwrap();
        assert_eq!(again.position(), Position::Http { records: 4 });
    }

    #[test]
    fn refused_records_do_not_count() {
        let feed = Arc::new(Kept { refuse_after: Some(1), ..Kept::default() });
        let source = HttpSource::open(feed, None, None, 0).unwrap();
        source.post(&[b"1"]).unwrap();
        assert!(source.post(&[b"2"]).is_err());
        assert_eq!(source.position(), Position::Http { records: 1 });
    }

    #[test]
    fn a_log_gives_back_every_request_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let feed = Arc::new(Kept::default());
        let source = HttpSource::open(feed.clone(), None, Some(path.clone()), 0).unwrap();
        source.post(&[b"1", b"2"]).unwrap();
        assert_eq!(source.advance(40).unwrap(), 40);
        source.post(&[b"3"]).unwrap();
        drop(source);

        let again = Arc::new(Kept::default());
        let source = HttpSource::open(again.clone(), None, Some(path.clone()), 0).unwrap();
        assert_eq!(*again.records.lock().unwrap(), ["1", "2", "advance 40", "3"]);
        assert_eq!(source.position(), Position::Http { records: 3 });
        source.post(&[b"4"]).unwrap();
        drop(source);
        let third = Arc::new(Kept::default());
        HttpSource::open(third.clone(), None, Some(path.clone()), 0).unwrap();
        assert_eq!(third.records.lock().unwrap().len(), 5);

        // A log that cannot be read is an error, not an empty input.
        std::fs::write(&path, b"not a log").unwrap();
        assert!(matches!(HttpSource::open(Arc::new(Kept::default()), None, Some(path), 0), Err(HttpError::Log(_))));
    }

    #[test]
    fn a_stopped_source_writes_nothing_more_to_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let source = HttpSource::open(Arc::new(Kept::default()), None, Some(path.clone()), 0).unwrap();
        source.post(&[b"1"]).unwrap();
        source.stop();
        let length = std::fs::metadata(&path).unwrap().len();
        assert!(matches!(source.post(&[b"2"]), Err(HttpError::Log(LogError::Closed { .. }))));
        assert!(matches!(source.follow_clock(50), Err(HttpError::Log(LogError::Closed { .. }))));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), length);
        let again = Arc::new(Kept::default());
        HttpSource::open(again.clone(), None, Some(path), 0).unwrap();
        assert_eq!(*again.records.lock().unwrap(), ["1"]);
    }

    #[test]
    fn a_log_that_fails_shows_in_the_status_and_applies_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let feed = Arc::new(Kept::default());
        let source = HttpSource::open(feed.clone(), None, Some(path.clone()), 0).unwrap();
        assert_eq!(source.status(), SourceStatus::Plain);
        source.log.as_ref().unwrap().refuse_writes();
        assert!(matches!(source.post(&[b"1"]), Err(HttpError::Log(_))));
        assert!(matches!(source.status(), SourceStatus::Failing(why) if why.contains("events.log")));
        assert!(feed.records.lock().unwrap().is_empty());
        assert_eq!(source.position(), Position::Http { records: 0 });
    }
}
