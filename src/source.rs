//! Sources: where the records of a job's inputs come from, behind one trait.
//!
//! A job gives each of its inputs a [`Feed`] (its own implementation, in `job`) and
//! starts the input's source from its [`SourceSpec`] with [`SourceSpec::start`]. The
//! source writes records into the feed however its transport works, and reports
//! where it stands as a [`Position`] from which it can start again:
//!
//! | source      | runs                                   | position                              |
//! |-------------|----------------------------------------|---------------------------------------|
//! | [`http`]    | in the request handlers (`serve`)      | records taken so far (a log position)    |
//! | [`file`](mod@file) | once, on a blocking thread, at start   | the file and the bytes read from it    |
//! | [`generator`] | a task ticking every 100 ms          | the seeds, ticks and records produced  |
//! | [`kafka`]   | a thread of its own (librdkafka)       | the next offset of every partition     |
//!
//! The position is the seam durable checkpoints use: a file source started from a
//! position reads on from its byte offset, a Kafka source from its offsets. A source
//! that stops on an error (a file that cannot be read, a job that can take no more)
//! says so through [`Feed::fail`]; the job fails, its outputs keep their content.
//!
//! Sources know nothing of jobs: they see only their feed. The generator-fed inputs of
//! a job share one world (payments pay the job's orders), so they are one source that
//! feeds several inputs.

pub mod file;
pub mod generator;
pub mod http;
pub mod kafka;

use std::fmt::Display;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ingest::IngestReport;

pub use generator::GeneratorSpec;

/// Where a source's records go: one input of a running job.
pub trait Feed: Send + Sync + 'static {
    /// Records of no partition in particular, in order; the input advances after them.
    fn records(&self, records: &[&[u8]]) -> Result<IngestReport, FeedError>;
    /// The input has (at least) `partitions` partitions; each holds the input's
    /// watermark back until it has records or is idle.
    fn partitions(&self, partitions: usize);
    /// Records of partition `partition`, in order (not yet visible).
    fn partition_records(&self, partition: usize, records: &[&[u8]]) -> Result<(), FeedError>;
    /// Makes every record fed so far visible: advances the input.
    fn flush(&self) -> Result<(), FeedError>;
    /// Moves the input's watermark to at least `watermark`; the watermark it has then.
    fn advance(&self, watermark: crate::pipeline::Time) -> Result<crate::pipeline::Time, FeedError>;
    /// The source stopped on `error` and feeds no more: the job fails.
    fn fail(&self, error: &dyn Display);
    /// The source fixed where it starts (a Kafka source started without offsets
    /// resolves them): the job keeps it, to start there again.
    fn started_at(&self, _position: &Position) {}
}

/// A source's records could not go to its job.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The job was deleted.
    #[error("the job is gone")]
    Gone,
    /// The job could not take them (it failed; the job says why).
    #[error("{0}")]
    Job(Box<dyn std::error::Error + Send + Sync>),
}

/// Where an input's records come from, as a job spec gives it (`{"source": "http"}`,
/// `{"source": "file", "path": ...}`, ...). Specs are decoded field by field by
/// `job::spec`, so that every error names its field; this is their typed form, and
/// how job status shows them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum SourceSpec {
    /// Posted to `/api/v1/jobs/{job}/inputs/{input}`.
    Http,
    /// Read once from an NDJSON file when the job starts.
    File {
        /// The file.
        path: PathBuf,
    },
    /// The built-in demo generator.
    Generator(GeneratorSpec),
    /// A Kafka topic.
    Kafka(crate::kafka::SourceSpec),
}

/// Where a source stands: enough to start it again from there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum Position {
    /// Records taken over HTTP so far: the position in the input's log.
    Http {
        /// Records of every request the input took (valid or not), in order.
        records: u64,
    },
    /// Where a checkpoint took an HTTP input's log: what the log holds up to this
    /// byte, the checkpoint holds (a restored input applies only what follows).
    Logged {
        /// The log's length when the checkpoint was taken.
        after: u64,
    },
    /// How far a file has been read.
    File {
        /// The file.
        path: PathBuf,
        /// Bytes read and fed (always the end of a line).
        offset: u64,
        /// Records fed.
        records: u64,
        /// Whether the whole file was fed.
        done: bool,
    },
    /// How far the generator has gone.
    Generator {
        /// The seed of each input it feeds, by input index.
        seeds: Vec<(usize, u64)>,
        /// Ticks so far.
        ticks: u64,
        /// Records produced so far, over every input.
        records: u64,
        /// The wall-clock time of the last tick (epoch ms).
        clock: Option<u64>,
    },
    /// How far a topic has been read.
    Kafka {
        /// The next offset of each partition whose records are all applied.
        offsets: crate::kafka::Offsets,
    },
}

/// What a source shows in job status beyond its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceStatus {
    /// Nothing more than its input's counters.
    Plain,
    /// A Kafka source's partitions and latest trouble.
    Kafka(kafka::KafkaStatus),
    /// A source that takes no more, and why (an HTTP input whose log cannot be written).
    Failing(String),
}

/// A running source.
pub trait Source: Send + Sync {
    /// Where it stands.
    fn position(&self) -> Position;
    /// What job status shows of it.
    fn status(&self) -> SourceStatus {
        SourceStatus::Plain
    }
    /// Stops it, waiting for its thread or task to finish.
    fn stop(&self) {}
    /// The HTTP source, for the handlers that feed it.
    fn as_http(&self) -> Option<&http::HttpSource> {
        None
    }
    /// Holds it still for a checkpoint: until the [`Held`] is dropped it feeds nothing
    /// more, and everything it fed before is in its input. `None` when a checkpoint
    /// cannot keep its position (its job takes no checkpoints).
    fn hold(&self) -> Result<Option<Held<'_>>, HoldFailed> {
        Ok(None)
    }
    /// The position [`Source::hold`] would give now, without holding it: a periodic
    /// checkpoint is skipped while every source stands where the last one took it.
    fn checkpoint_position(&self) -> Option<Position> {
        None
    }
    /// A checkpoint holding everything before `position` (from [`Source::hold`]) is
    /// committed: what the source keeps only to replay it may go (an HTTP input's log
    /// is truncated).
    fn checkpointed(&self, _position: &Position) {}
}

/// A source held still for a checkpoint (see [`Source::hold`]), and where it stands.
pub struct Held<'a> {
    /// Where it stands: everything before it is in its input, nothing after it.
    pub position: Position,
    _guard: Box<dyn Guard + 'a>,
}

/// Anything that keeps a source still while it lives.
trait Guard {}
impl<T> Guard for T {}

impl<'a> Held<'a> {
    /// Held at `position` until `guard` is dropped.
    pub fn new(position: Position, guard: impl Sized + 'a) -> Held<'a> {
        Held { position, _guard: Box::new(guard) }
    }
}

/// A source could not be held still for a checkpoint.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct HoldFailed(pub Box<dyn std::error::Error + Send + Sync>);

impl SourceSpec {
    /// Starts the source of one input, feeding `feed`, from `from` if given (a
    /// position it reported before), else from its beginning; an HTTP input keeps its
    /// write-ahead log at `log` if given. `name` names it in logs. Generator specs are
    /// started together by [`generator::GeneratorSource::start`]. A file source must
    /// run inside a tokio runtime.
    pub fn start(
        &self,
        name: &str,
        feed: Arc<dyn Feed>,
        from: Option<Position>,
        log: Option<PathBuf>,
    ) -> Result<Option<Arc<dyn Source>>, StartError> {
        Ok(match self {
            SourceSpec::Http => {
                let after = match from {
                    Some(Position::Logged { after }) => after,
                    _ => 0,
                };
                Some(Arc::new(http::HttpSource::open(feed, from, log, after)?))
            }
            SourceSpec::File { path } => Some(Arc::new(file::FileSource::start(path.clone(), feed, from))),
            SourceSpec::Kafka(spec) => {
                let offsets = match from {
                    Some(Position::Kafka { offsets }) => Some(offsets),
                    _ => None,
                };
                Some(Arc::new(kafka::KafkaSource::start(name.to_string(), spec.clone(), offsets, feed)))
            }
            SourceSpec::Generator(_) => None,
        })
    }
}

/// A source that could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An HTTP input's log could not be read back, or what it holds applied.
    #[error(transparent)]
    Http(#[from] http::HttpError),
}

#[cfg(test)]
pub(crate) mod testing {
    //! A feed that keeps what it is given, for the sources' tests.

    use std::fmt::Display;
    use std::sync::Mutex;

    use super::{Feed, FeedError, Position};
    use crate::ingest::IngestReport;

    /// Keeps records, failures and positions; refuses records once `refuse_after`
    /// records were taken.
    #[derive(Default)]
    pub(crate) struct Kept {
        pub(crate) records: Mutex<Vec<String>>,
        pub(crate) failures: Mutex<Vec<String>>,
        pub(crate) started: Mutex<Vec<Position>>,
        pub(crate) refuse_after: Option<usize>,
    }

    impl Feed for Kept {
        fn records(&self, records: &[&[u8]]) -> Result<IngestReport, FeedError> {
            let mut kept = self.records.lock().unwrap();
            if self.refuse_after.is_some_and(|n| kept.len() >= n) {
                return Err(FeedError::Job("refused".into()));
            }
            kept.extend(records.iter().map(|r| String::from_utf8_lossy(r).into_owned()));
            Ok(IngestReport { accepted: records.len() as u64, ..IngestReport::default() })
        }

        fn partitions(&self, _partitions: usize) {}

        fn partition_records(&self, _partition: usize, records: &[&[u8]]) -> Result<(), FeedError> {
            self.records(records).map(|_| ())
        }

        fn flush(&self) -> Result<(), FeedError> {
            Ok(())
        }

        fn advance(&self, watermark: crate::pipeline::Time) -> Result<crate::pipeline::Time, FeedError> {
            self.records.lock().unwrap().push(format!("advance {watermark}"));
            Ok(watermark)
        }

        fn fail(&self, error: &dyn Display) {
            self.failures.lock().unwrap().push(error.to_string());
        }

        fn started_at(&self, position: &Position) {
            self.started.lock().unwrap().push(position.clone());
        }
    }
}
