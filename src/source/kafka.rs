//! Kafka sources: a topic read into a job input, partition by partition.
//!
//! A source runs on a thread of its own. It assigns itself every partition of the
//! topic (no consumer group: tidemark keeps the offsets), polls batches of messages,
//! and hands each partition's messages, in offset order, to its [`Feed`] as one lane
//! of the input; after each batch it makes them visible (the input advances). New
//! partitions are discovered every few seconds and read from their beginning.
//!
//! The starting offsets are fixed once, when the job is created ([`resolve`]):
//! `earliest` is the first offset each partition holds, `latest` its end. They are
//! kept with the job, so that a restarted job reads the same records again and its
//! results equal those of an uninterrupted run. A checkpoint holds the source still
//! ([`Source::hold`]: the batch being fed, if any, is fed whole first) and keeps the
//! offsets it reached; a job restored from it reads on from there, and counts what it
//! read ([`KafkaStatus::records_read`]).
//!
//! A message that is not a valid record (not JSON, wrong fields, no value at all) is
//! dead-lettered like a bad record sent over HTTP; it never stops the source.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::{Feed, FeedError, Held, HoldFailed, Position, Source, SourceStatus};
use crate::kafka::client::{self, Context, Role, partitions};
use crate::kafka::{ClientError, Offsets, SourceSpec, StartAt};

/// How many messages at most make one batch.
const MAX_BATCH: usize = 16_384;
/// How long a poll waits for the first message of a batch.
const POLL: Duration = Duration::from_millis(100);
/// How often the topic's partitions are looked up.
const DISCOVERY: Duration = Duration::from_secs(5);
/// How long broker requests (metadata, offsets) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The starting offsets of `spec`'s topic: for every partition that exists now, its
/// first offset (`earliest`) or its end (`latest`). A topic that does not exist yet
/// has none: its partitions will be read from their beginning once they exist.
pub fn resolve(spec: &SourceSpec, timeout: Duration) -> Result<Offsets, ClientError> {
    let config = client::config(&spec.brokers, "tidemark-resolve", Role::Consumer, &spec.config);
    let consumer: BaseConsumer = config.create()?;
    let mut offsets = Offsets::new();
    for partition in partitions(&consumer, &spec.topic, timeout)? {
        let (low, high) = consumer
            .fetch_watermarks(&spec.topic, partition, timeout)
            .map_err(|source| ClientError::Offsets { topic: spec.topic.clone(), partition, source })?;
        offsets.insert(partition, if spec.start == StartAt::Earliest { low } else { high });
    }
    Ok(offsets)
}

/// Where one partition stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionStatus {
    /// The partition.
    pub partition: i32,
    /// The offset the job started from.
    pub start: Option<i64>,
    /// The next offset to read.
    pub position: Option<i64>,
    /// The next offset whose predecessors are all applied to the job's outputs.
    pub committed: Option<i64>,
    /// The partition's end, as the consumer's latest statistics give it (refreshed
    /// every second, from the latest fetch response).
    pub high_watermark: Option<i64>,
    /// Records in the partition not yet applied: `high_watermark - committed`.
    pub lag: Option<i64>,
}

/// Where a Kafka source stands, for job status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KafkaStatus {
    /// The topic.
    pub topic: String,
    /// Its partitions, by number.
    pub partitions: Vec<PartitionStatus>,
    /// Messages read since the job (re)started: after a restart from a checkpoint, the
    /// ones after the checkpoint's offsets, which the job read again.
    pub records_read: u64,
    /// The latest problem (within the last 30 s), such as an unreachable broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    start: Option<i64>,
    position: Option<i64>,
    committed: Option<i64>,
}

struct Shared {
    context: Context,
    partitions: Mutex<BTreeMap<i32, Progress>>,
    stop: AtomicBool,
    /// Held by the reader while it feeds a batch, and by a checkpoint while it is taken
    /// ([`Source::hold`]): a checkpoint sees no batch fed in part.
    feeding: Mutex<()>,
    /// Messages read (fed) by this run.
    read: AtomicU64,
}

/// A running Kafka source.
pub struct KafkaSource {
    topic: String,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl KafkaSource {
    /// Starts reading `spec`'s topic into `feed` from `offsets` (resolved at job
    /// creation; `None` resolves them now, as the spec's `start` says, and hands
    /// them to [`Feed::started_at`] to be kept). `name` names the source in logs.
    pub fn start(name: String, spec: SourceSpec, offsets: Option<Offsets>, feed: Arc<dyn Feed>) -> KafkaSource {
        let shared = Arc::new(Shared {
            context: Context::new(name.clone()),
            partitions: Mutex::new(BTreeMap::new()),
            stop: AtomicBool::new(false),
            feeding: Mutex::new(()),
            read: AtomicU64::new(0),
        });
        let topic = spec.topic.clone();
        let reader = Reader { name: name.clone(), spec, shared: shared.clone(), feed };
        let thread = std::thread::Builder::new()
            .name(format!("kafka-source-{name}"))
            .spawn(move || reader.run(offsets))
            .expect("spawn a kafka source thread");
        KafkaSource { topic, shared, thread: Mutex::new(Some(thread)) }
    }

    /// Where the source stands, partition by partition.
    pub fn kafka_status(&self) -> KafkaStatus {
        let partitions = self
            .shared
            .partitions
            .lock()
            .expect("partitions lock")
            .iter()
            .map(|(&partition, p)| {
                let high_watermark = self.shared.context.high_watermark(partition);
                let lag = match (high_watermark, p.committed.or(p.start)) {
                    (Some(high), Some(at)) => Some((high - at).max(0)),
                    _ => None,
                };
                PartitionStatus {
                    partition,
                    start: p.start,
                    position: p.position,
                    committed: p.committed,
                    high_watermark,
                    lag,
                }
            })
            .collect();
        let error = self.shared.context.recent_trouble(Duration::from_secs(30));
        let records_read = self.shared.read.load(Ordering::Relaxed);
        KafkaStatus { topic: self.topic.clone(), partitions, records_read, error }
    }

    /// Stops reading and waits for the thread to finish.
    fn halt(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.lock().expect("thread lock").take() {
            let _ = thread.join();
        }
    }
}

impl Source for KafkaSource {
    /// The next offset of each partition whose records are all applied (its start
    /// while none is).
    fn position(&self) -> Position {
        let partitions = self.shared.partitions.lock().expect("partitions lock");
        let offsets = partitions.iter().filter_map(|(&p, at)| at.committed.or(at.start).map(|o| (p, o))).collect();
        Position::Kafka { offsets }
    }

    fn status(&self) -> SourceStatus {
        SourceStatus::Kafka(self.kafka_status())
    }

    /// Waits for the batch being fed, if any: the offsets are then those of every
    /// message in the input.
    fn hold(&self) -> Result<Option<Held<'_>>, HoldFailed> {
        let feeding = self.shared.feeding.lock().expect("feeding lock");
        Ok(Some(Held::new(self.position(), feeding)))
    }

    fn checkpoint_position(&self) -> Option<Position> {
        Some(self.position())
    }

    fn stop(&self) {
        self.halt();
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Why a source's thread stopped.
#[derive(Debug, thiserror::Error)]
enum Stopped {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Feed(#[from] FeedError),
}

/// The source's thread.
struct Reader {
    name: String,
    spec: SourceSpec,
    shared: Arc<Shared>,
    feed: Arc<dyn Feed>,
}

impl Reader {
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    fn run(self, offsets: Option<Offsets>) {
        let context = self.shared.context.clone();
        let config = client::watched(client::config(&self.spec.brokers, &self.name, Role::Consumer, &self.spec.config));
        let consumer: BaseConsumer<Context> = match config.create_with_context(context.clone()) {
            Ok(consumer) => consumer,
            Err(e) => return context.trouble(format!("cannot create a consumer: {e}")),
        };
        // Offsets fixed at creation; a job restored without them fixes them now.
        let offsets = match offsets {
            Some(offsets) => offsets,
            None => loop {
                if self.stopped() {
                    return;
                }
                match resolve(&self.spec, REQUEST_TIMEOUT) {
                    Ok(offsets) => {
                        self.feed.started_at(&Position::Kafka { offsets: offsets.clone() });
                        break offsets;
                    }
                    Err(e) => {
                        context.trouble(e);
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            },
        };
        let mut next_discovery = Instant::now();
        while !self.stopped() {
            if Instant::now() >= next_discovery {
                next_discovery = Instant::now() + DISCOVERY;
                if let Err(e) = self.discover(&consumer, &offsets) {
                    context.trouble(e);
                    next_discovery = Instant::now() + Duration::from_secs(1);
                }
            }
            if self.shared.partitions.lock().expect("partitions lock").is_empty() {
                std::thread::sleep(POLL);
                continue;
            }
            match self.batch(&consumer) {
                Ok(()) => {}
                Err(Stopped::Feed(FeedError::Gone)) => return,
                Err(e) => {
                    context.trouble(format!("stopped: {e}"));
                    if let Stopped::Feed(e) = e {
                        self.feed.fail(&e);
                    }
                    return;
                }
            }
        }
    }

    /// Assigns partitions that appeared since the last look.
    fn discover(&self, consumer: &BaseConsumer<Context>, offsets: &Offsets) -> Result<(), ClientError> {
        let found = partitions(consumer, &self.spec.topic, REQUEST_TIMEOUT)?;
        let mut known = self.shared.partitions.lock().expect("partitions lock");
        if found.iter().all(|p| known.contains_key(p)) {
            return Ok(());
        }
        for &partition in &found {
            known.entry(partition).or_insert_with(|| {
                let start = offsets.get(&partition).copied();
                Progress { start, position: start, committed: start }
            });
        }
        // Reassign everything, each partition from where it stands: every message
        // polled so far has been fed, so nothing is read twice or skipped.
        let mut assignment = TopicPartitionList::new();
        for (&partition, progress) in known.iter() {
            let offset = progress.position.map_or(Offset::Beginning, Offset::Offset);
            assignment.add_partition_offset(&self.spec.topic, partition, offset)?;
        }
        consumer.assign(&assignment).map_err(ClientError::Assign)?;
        let lanes = known.keys().next_back().map_or(0, |p| *p as usize + 1);
        drop(known);
        self.feed.partitions(lanes);
        tracing::info!(source = %self.name, topic = %self.spec.topic, partitions = found.len(), "kafka: reading");
        Ok(())
    }

    /// Polls one batch of messages and feeds it, partition by partition.
    fn batch(&self, consumer: &BaseConsumer<Context>) -> Result<(), Stopped> {
        let mut messages = Vec::new();
        let mut wait = POLL;
        while messages.len() < MAX_BATCH {
            match consumer.poll(wait) {
                None => break,
                Some(Ok(message)) => messages.push(message),
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => self.shared.context.trouble(format!("cannot read: {e}")),
            }
            wait = Duration::ZERO;
        }
        if messages.is_empty() {
            return Ok(());
        }
        self.shared.context.clear_trouble();
        let _feeding = self.shared.feeding.lock().expect("feeding lock");
        let mut by_partition: BTreeMap<i32, Vec<&[u8]>> = BTreeMap::new();
        let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
        for message in &messages {
            by_partition.entry(message.partition()).or_default().push(message.payload().unwrap_or_default());
            ends.insert(message.partition(), message.offset() + 1);
        }
        for (partition, records) in &by_partition {
            self.feed.partition_records(*partition as usize, records)?;
        }
        {
            let mut known = self.shared.partitions.lock().expect("partitions lock");
            for (partition, end) in &ends {
                known.entry(*partition).or_default().position = Some(*end);
            }
        }
        self.feed.flush()?;
        let mut known = self.shared.partitions.lock().expect("partitions lock");
        for (partition, end) in ends {
            known.entry(partition).or_default().committed = Some(end);
        }
        self.shared.read.fetch_add(messages.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}
