//! librdkafka clients as tidemark configures them, and the context that keeps what
//! they report (errors, partition offsets, deliveries) for status pages.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;

use super::SinkPosition;
use crate::pipeline::Time;

/// Properties tidemark sets itself: sources keep their own offsets and never join a
/// consumer group; sinks rely on an idempotent producer.
pub(crate) const RESERVED: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "enable.partition.eof",
    "enable.idempotence",
    "transactional.id",
    "statistics.interval.ms",
    "message.timeout.ms",
    "delivery.timeout.ms",
];

/// Whether a librdkafka property names something on the server's own machine: a file
/// (keys, certificates, keytabs, OIDC assertions), a library to load, or a command to
/// run. A job spec sent over the API may not set these: they would let a client make
/// the server read its files or run its programs.
pub fn is_local_property(key: &str) -> bool {
    const EXACT: &[&str] = &["plugin.library.paths", "ssl.engine.id", "ssl.providers", "sasl.kerberos.kinit.cmd"];
    const SUFFIXES: &[&str] = &[".location", ".file", ".keytab", ".path", ".paths", ".cmd", ".store", ".stores"];
    let key = key.trim().to_ascii_lowercase();
    EXACT.contains(&key.as_str()) || SUFFIXES.iter().any(|s| key.ends_with(s))
}

/// Asks for offset and partition statistics once a second, for status pages; for
/// clients created with a [`Context`], which keeps them (the default context would
/// log them).
pub(crate) fn watched(mut config: ClientConfig) -> ClientConfig {
    config.set("statistics.interval.ms", "1000");
    config
}

/// How often a client reports the same kind of trouble in the log.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// What a client is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Consumer,
    Producer,
}

/// The configuration of a client of `brokers` named `client_id`, with the user's
/// extra properties. Short-lived clients (offset lookups, read-backs) use it as is;
/// long-lived ones add [`watched`].
pub(crate) fn config(brokers: &str, client_id: &str, role: Role, extra: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", client_id)
        // Come back quickly after a broker outage.
        .set("reconnect.backoff.max.ms", "2000")
        .set("topic.metadata.refresh.interval.ms", "10000")
        .set_log_level(RDKafkaLogLevel::Warning);
    match role {
        Role::Consumer => {
            config
                // Required by librdkafka for consumers; never joined (partitions are
                // assigned, offsets kept by tidemark) and never committed to.
                .set("group.id", format!("tidemark.{client_id}"))
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("enable.partition.eof", "false")
                .set("auto.offset.reset", "earliest")
                .set("session.timeout.ms", "6000")
                .set("isolation.level", "read_committed")
                // When the local queue is full, fetch again 10 ms later rather than
                // librdkafka's 1000: a source catching up stalled for a second at
                // every 100,000 messages.
                .set("fetch.queue.backoff.ms", "10");
        }
        Role::Producer => {
            config
                // No duplicates or reordering when requests are retried, and retries
                // until delivered (or the sink resynchronizes).
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("message.timeout.ms", "0")
                .set("linger.ms", "5");
        }
    }
    for (key, value) in extra {
        config.set(key, value);
    }
    config
}

/// A user's librdkafka properties that librdkafka rejects.
#[derive(Debug)]
pub(crate) enum Rejected {
    /// One property, and librdkafka's description of the problem.
    Property { key: String, description: String },
    /// The properties together (say, two that contradict each other).
    Together(KafkaError),
}

/// Lets librdkafka check the user's properties.
pub(crate) fn check_config(brokers: &str, extra: &BTreeMap<String, String>, role: Role) -> Result<(), Rejected> {
    let config = config(brokers, "check", role, extra);
    let created = match role {
        Role::Consumer => config.create::<BaseConsumer>().map(drop),
        Role::Producer => config.create::<BaseProducer>().map(drop),
    };
    created.map_err(|e| match e {
        KafkaError::ClientConfig(_, description, key, _) => Rejected::Property { key, description },
        other => Rejected::Together(other),
    })
}

/// What a client reports, kept for status pages and logged without flooding.
/// Clones share it: the client holds one, its status page another.
#[derive(Clone)]
pub(crate) struct Context(Arc<Reports>);

impl std::ops::Deref for Context {
    type Target = Reports;
    fn deref(&self) -> &Reports {
        &self.0
    }
}

/// What [`Context`] keeps.
pub(crate) struct Reports {
    /// Names the client in logs: `job/input` or `job/output`.
    name: String,
    trouble: Mutex<Trouble>,
    /// `(low, high)` offsets per partition, from the latest statistics.
    offsets: Mutex<HashMap<i32, (i64, i64)>>,
    /// Messages delivered (producers).
    pub(crate) delivered: AtomicU64,
    /// A message could not be delivered (producers): the sink must resynchronize.
    pub(crate) delivery_failed: AtomicBool,
    /// Where the sink's progress messages landed (producers).
    progress: Mutex<ProgressDeliveries>,
}

/// A sink's progress messages as the broker acknowledged them: the latest one that
/// every partition received, with the offsets after it ([`SinkPosition`]).
#[derive(Default)]
struct ProgressDeliveries {
    /// The topic's partitions when the sink last resumed.
    partitions: usize,
    /// Offsets after the progress messages delivered to some partitions only, by frontier.
    pending: BTreeMap<Time, BTreeMap<i32, i64>>,
    /// The latest progress delivered to every partition.
    latest: Option<SinkPosition>,
    /// A message was lost since the sink last resumed: what the topic holds before a
    /// later progress message is not the output's content any more, until the sink
    /// resumes (reads back and corrects).
    lost: bool,
}

/// The delivery opaque of a data message; a progress message carries its frontier + 1.
pub(crate) const DATA: usize = 0;

/// The delivery opaque of a progress message of `frontier` ([`DATA`] if it does not fit:
/// its position is then not kept).
pub(crate) fn progress_opaque(frontier: Time) -> usize {
    usize::try_from(frontier).ok().and_then(|f| f.checked_add(1)).unwrap_or(DATA)
}

#[derive(Default)]
struct Trouble {
    /// The latest error and when it happened.
    last: Option<(String, Instant)>,
    logged: Option<Instant>,
    suppressed: u64,
}

impl Context {
    pub(crate) fn new(name: String) -> Context {
        Context(Arc::new(Reports {
            name,
            trouble: Mutex::new(Trouble::default()),
            offsets: Mutex::new(HashMap::new()),
            delivered: AtomicU64::new(0),
            delivery_failed: AtomicBool::new(false),
            progress: Mutex::new(ProgressDeliveries::default()),
        }))
    }
}

impl Reports {
    /// Records a problem for the status page, and logs it unless one was logged lately.
    pub(crate) fn trouble(&self, message: impl std::fmt::Display) {
        let message = message.to_string();
        let now = Instant::now();
        let mut trouble = self.trouble.lock().expect("trouble lock");
        if trouble.logged.is_none_or(|at| now.duration_since(at) >= LOG_EVERY) {
            let suppressed = std::mem::take(&mut trouble.suppressed);
            tracing::warn!(client = %self.name, suppressed, "kafka: {message}");
            trouble.logged = Some(now);
        } else {
            trouble.suppressed += 1;
        }
        trouble.last = Some((message, now));
    }

    /// The latest problem, if it happened within `within`.
    pub(crate) fn recent_trouble(&self, within: Duration) -> Option<String> {
        let trouble = self.trouble.lock().expect("trouble lock");
        trouble.last.as_ref().filter(|(_, at)| at.elapsed() < within).map(|(m, _)| m.clone())
    }

    /// Forgets the latest problem (things work again).
    pub(crate) fn clear_trouble(&self) {
        self.trouble.lock().expect("trouble lock").last = None;
    }

    /// A message will not be delivered: the sink must resynchronize, and no later
    /// progress message marks a position ([`Reports::delivered_progress`]) until then.
    pub(crate) fn lost_delivery(&self, why: impl std::fmt::Display) {
        self.delivery_failed.store(true, Ordering::SeqCst);
        let mut progress = self.progress.lock().expect("progress lock");
        progress.lost = true;
        progress.pending.clear();
        drop(progress);
        self.trouble(why);
    }

    /// A sink resumes writing to a topic of `partitions` (nothing of it in flight):
    /// progress messages from now on mark positions. `from` is where it stood, if known.
    pub(crate) fn resume_progress(&self, partitions: usize, from: Option<SinkPosition>) {
        let mut progress = self.progress.lock().expect("progress lock");
        progress.partitions = partitions;
        progress.pending.clear();
        progress.lost = false;
        if from.is_some() {
            progress.latest = from;
        }
    }

    /// The latest progress message every partition received (none if the sink never
    /// wrote one nor resumed from one).
    pub(crate) fn delivered_progress(&self) -> Option<SinkPosition> {
        self.progress.lock().expect("progress lock").latest.clone()
    }

    /// The high watermark of `partition`, from the latest statistics.
    pub(crate) fn high_watermark(&self, partition: i32) -> Option<i64> {
        self.offsets.lock().expect("offsets lock").get(&partition).map(|(_, high)| *high).filter(|h| *h >= 0)
    }
}

impl Reports {
    /// Progress `frontier` reached `partition`, which continues at `next`. Delivery
    /// reports of a partition come in order, so a message lost before it is known.
    fn progress_delivered(&self, frontier: Time, partition: i32, next: i64) {
        let mut progress = self.progress.lock().expect("progress lock");
        if progress.lost || progress.latest.as_ref().is_some_and(|l| l.progress >= frontier) {
            return;
        }
        let partitions = progress.partitions;
        if partitions == 0 {
            return;
        }
        let reached = progress.pending.entry(frontier).or_default();
        reached.insert(partition, next);
        if reached.len() >= partitions {
            let offsets = std::mem::take(reached);
            progress.pending.retain(|f, _| *f > frontier);
            progress.latest = Some(SinkPosition { progress: frontier, offsets });
        }
    }
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Debug | RDKafkaLogLevel::Info | RDKafkaLogLevel::Notice => {
                tracing::debug!(client = %self.name, facility, "librdkafka: {message}")
            }
            _ => self.trouble(format!("{facility}: {message}")),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.trouble(format!("{error}: {reason}"));
    }

    fn stats(&self, statistics: Statistics) {
        let mut offsets = self.offsets.lock().expect("offsets lock");
        for topic in statistics.topics.values() {
            for (partition, stats) in &topic.partitions {
                if *partition >= 0 {
                    offsets.insert(*partition, (stats.lo_offset, stats.hi_offset));
                }
            }
        }
    }
}

impl ConsumerContext for Context {}

impl ProducerContext for Context {
    /// [`DATA`], or a progress message's frontier + 1 ([`progress_opaque`]).
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        match result {
            Ok(message) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if opaque != DATA {
                    let frontier = (opaque - 1) as Time;
                    self.progress_delivered(frontier, message.partition(), message.offset() + 1);
                }
            }
            Err((error, _)) => self.lost_delivery(format!("delivery failed: {error}")),
        }
    }
}

/// The partitions of `topic` (none if it does not exist).
pub(crate) fn partitions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, super::ClientError> {
    use rdkafka::consumer::Consumer;
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(super::ClientError::Unreachable)?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else { return Ok(Vec::new()) };
    match found.error() {
        None => Ok(found.partitions().iter().map(|p| p.id()).collect()),
        Some(e) if RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition => Ok(Vec::new()),
        Some(e) => Err(super::ClientError::Topic { topic: topic.to_string(), code: RDKafkaErrorCode::from(e) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(progress: Time, offsets: &[(i32, i64)]) -> Option<SinkPosition> {
        Some(SinkPosition { progress, offsets: offsets.iter().copied().collect() })
    }

    /// A position is a progress message every partition received, with no message lost
    /// since the sink last resumed; a later one replaces it, an older one never does.
    #[test]
    fn a_position_needs_every_partition_and_nothing_lost() {
        let context = Context::new("t".into());
        context.progress_delivered(3, 0, 1);
        assert_eq!(context.delivered_progress(), None, "before the sink resumed");
        context.resume_progress(2, None);
        context.progress_delivered(5, 0, 10);
        assert_eq!(context.delivered_progress(), None, "one partition of two");
        context.progress_delivered(5, 1, 4);
        assert_eq!(context.delivered_progress(), at(5, &[(0, 10), (1, 4)]));

        context.progress_delivered(8, 0, 20);
        context.lost_delivery("a data message of partition 1");
        context.progress_delivered(8, 1, 9);
        assert_eq!(context.delivered_progress(), at(5, &[(0, 10), (1, 4)]), "a message was lost before it");
        assert!(context.delivery_failed.load(Ordering::SeqCst));

        context.resume_progress(2, None);
        context.progress_delivered(9, 1, 12);
        context.progress_delivered(9, 0, 25);
        assert_eq!(context.delivered_progress(), at(9, &[(0, 25), (1, 12)]));
        context.progress_delivered(7, 0, 30);
        context.progress_delivered(7, 1, 30);
        assert_eq!(context.delivered_progress(), at(9, &[(0, 25), (1, 12)]), "an older progress");

        let restored = Context::new("t".into());
        restored.resume_progress(0, at(4, &[(0, 2)]));
        assert_eq!(restored.delivered_progress(), at(4, &[(0, 2)]));
    }

    #[test]
    fn progress_opaques_carry_the_frontier() {
        assert_eq!(progress_opaque(0), 1);
        assert_eq!(progress_opaque(41), 42);
        assert_eq!(progress_opaque(Time::MAX), DATA);
    }
}
