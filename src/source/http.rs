//! HTTP sources: records posted to `/api/v1/jobs/{job}/inputs/{input}` (the handlers
//! are `serve`'s), fed in order; the position counts them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Feed, FeedError, Position, Source};
use crate::ingest::IngestReport;

/// An input fed over HTTP.
pub struct HttpSource {
    feed: Arc<dyn Feed>,
    records: AtomicU64,
}

impl HttpSource {
    /// A source feeding `feed`, counting on from `from`'s records.
    pub fn new(feed: Arc<dyn Feed>, from: Option<Position>) -> HttpSource {
        let records = match from {
            Some(Position::Http { records }) => records,
            _ => 0,
        };
        HttpSource { feed, records: AtomicU64::new(records) }
    }

    /// Feeds one request's records, in order, and advances the input.
    pub fn post(&self, records: &[&[u8]]) -> Result<IngestReport, FeedError> {
        let report = self.feed.records(records)?;
        self.records.fetch_add(records.len() as u64, Ordering::SeqCst);
        Ok(report)
    }
}

impl Source for HttpSource {
    fn position(&self) -> Position {
        Position::Http { records: self.records.load(Ordering::SeqCst) }
    }

    fn as_http(&self) -> Option<&HttpSource> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::testing::Kept;

    #[test]
    fn the_position_counts_the_records_fed_and_resumes() {
        let feed = Arc::new(Kept::default());
        let source = HttpSource::new(feed.clone(), None);
        source.post(&[b"1", b"2"]).unwrap();
        source.post(&[b"3"]).unwrap();
        assert_eq!(source.position(), Position::Http { records: 3 });
        assert_eq!(*feed.records.lock().unwrap(), ["1", "2", "3"]);
        let again = HttpSource::new(feed, Some(source.position()));
        again.post(&[b"4"]).unwrap();
        assert_eq!(again.position(), Position::Http { records: 4 });
    }

    #[test]
    fn refused_records_do_not_count() {
        let feed = Arc::new(Kept { refuse_after: Some(1), ..Kept::default() });
        let source = HttpSource::new(feed, None);
        source.post(&[b"1"]).unwrap();
        assert!(source.post(&[b"2"]).is_err());
        assert_eq!(source.position(), Position::Http { records: 1 });
    }
}
