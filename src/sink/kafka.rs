//! Kafka sinks: an output's changes and progress, written to a topic exactly once in
//! accumulation.
//!
//! Messages (values are JSON):
//! - one per changed row: `{"time": t, "row": {...}, "diff": d}`, keyed by the row's
//!   key fields as a JSON object (`{"key": "a", "start": 0}`; the whole row for an
//!   output without key fields), so that a row's changes stay in one partition, in
//!   order;
//! - after each frontier step that changed the output (and otherwise at most once a
//!   second, with the latest frontier), `{"progress": f}` to every partition: no data
//!   message with a time below `f` follows.
//!
//! Exactly once, in accumulation: a consumer that sums the diffs of every data
//! message of the topic gets the output's content. On start (and after any
//! interruption of the stream, see below) the sink reads the topic back: the sum of
//! its data messages `C` and its last progress `P`. It waits until the output, which
//! a restarted job rebuilds by replaying its sources, is complete past `P`, takes the
//! output's content `S` at its frontier `F`, and writes the difference `S - C` at
//! time `max(F - 1, P)` (nothing below `P`), then progress `F`; from there it streams
//! every change. When the job's replay reproduces what it had written, the
//! difference is empty: nothing is written twice, nothing is lost, even when the
//! server was killed in the middle of a step.
//!
//! The read-back starts from the sink's position when it has one: the latest progress
//! `Q` that every partition acknowledged, with the offset after it in each (a
//! checkpoint keeps it; delivery reports keep it while the sink runs). What precedes
//! those offsets sums to the output's content at `Q`, so `S - C` is the output's
//! changes at times `>= Q` (its history) minus the data messages after the offsets.
//! When the history no longer reaches `Q`, the whole topic is read.
//!
//! The producer is idempotent and retries without limit, so a slow or paused broker
//! loses nothing. A sink that falls too far behind its output (or whose producer
//! fails) waits for everything it sent to be delivered, then reads the topic back
//! and resumes as above; the job never waits for it.
//!
//! One sink writes to a topic: two jobs (or servers) sharing a sink topic would
//! correct each other's messages. Do not enable compaction on sink topics: the sum
//! needs every message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::broadcast;

use super::{Sink, SinkStatus};
use crate::kafka::client::{self, Context, Role};
use crate::kafka::{SinkPosition, SinkSpec};
use crate::pipeline::{Diff, Time};
use crate::runtime::{Materialized, Step};

mod readback;

/// How long broker requests (metadata, offsets, topic creation) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a waiting sink checks whether it was stopped.
const CHECK: Duration = Duration::from_millis(200);
/// How often at most a sink writes progress after steps that changed nothing.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// How long a stopping sink waits for its messages to be delivered.
const DRAIN: Duration = Duration::from_secs(5);

/// Where a Kafka sink stands, for job status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KafkaSinkStatus {
    /// The topic.
    pub topic: String,
    /// `starting`, `reading back`, `waiting for the output`, `streaming`,
    /// `resynchronizing` or `stopped`.
    pub state: String,
    /// Data messages sent since the server started.
    pub messages: u64,
    /// Messages the broker acknowledged since the server started.
    pub delivered: u64,
    /// The latest progress sent.
    pub progress: Option<Time>,
    /// How many times the sink read the topic back and resumed.
    pub resyncs: u64,
    /// The latest read-back (none before the first).
    pub read_back: Option<ReadBack>,
    /// The latest problem (within the last 30 s), such as an unreachable broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a sink read back when it last resumed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReadBack {
    /// The progress of the position it read from (`None`: it read the whole topic).
    pub from: Option<Time>,
    /// The messages it read.
    pub messages: u64,
}

struct Shared {
    context: Context,
    read_back: Mutex<Option<ReadBack>>,
    stop: AtomicBool,
    state: Mutex<String>,
    messages: AtomicU64,
    progress: Mutex<Option<Time>>,
    resyncs: AtomicU64,
}

impl Shared {
    fn set_state(&self, state: impl Into<String>) {
        *self.state.lock().expect("state lock") = state.into();
    }
}

/// A running Kafka sink.
pub struct KafkaSink {
    topic: String,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl KafkaSink {
    /// Starts writing `output` (keyed by `key_fields`) to `spec`'s topic, from the
    /// position a checkpoint kept if given. `name` names the sink in logs.
    pub fn start(
        name: String,
        spec: SinkSpec,
        output: Arc<Materialized>,
        key_fields: Vec<String>,
        from: Option<SinkPosition>,
    ) -> KafkaSink {
        let context = Context::new(name.clone());
        context.resume_progress(0, from);
        let shared = Arc::new(Shared {
            context,
            read_back: Mutex::new(None),
            stop: AtomicBool::new(false),
            state: Mutex::new("starting".into()),
            messages: AtomicU64::new(0),
            progress: Mutex::new(None),
            resyncs: AtomicU64::new(0),
        });
        let topic = spec.topic.clone();
        let writer = Writer { name: name.clone(), spec, shared: shared.clone(), output, key_fields };
        let thread = std::thread::Builder::new()
            .name(format!("kafka-sink-{name}"))
            .spawn(move || writer.run())
            .expect("spawn a kafka sink thread");
        KafkaSink { topic, shared, thread: Mutex::new(Some(thread)) }
    }

    /// Where the sink stands.
    pub fn kafka_status(&self) -> KafkaSinkStatus {
        let shared = &self.shared;
        KafkaSinkStatus {
            topic: self.topic.clone(),
            state: shared.state.lock().expect("state lock").clone(),
            messages: shared.messages.load(Ordering::Relaxed),
            delivered: shared.context.delivered.load(Ordering::Relaxed),
            progress: *shared.progress.lock().expect("progress lock"),
            resyncs: shared.resyncs.load(Ordering::Relaxed),
            read_back: shared.read_back.lock().expect("read-back lock").clone(),
            error: shared.context.recent_trouble(Duration::from_secs(30)),
        }
    }

    /// Stops writing (what was sent is delivered for a few seconds more) and waits
    /// for the thread to finish.
    fn halt(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.lock().expect("thread lock").take() {
            let _ = thread.join();
        }
    }
}

impl Sink for KafkaSink {
    fn status(&self) -> SinkStatus {
        SinkStatus::Kafka(self.kafka_status())
    }

    fn position(&self) -> Option<super::SinkPosition> {
        self.shared.context.delivered_progress().map(super::SinkPosition::Kafka)
    }

    fn stop(&self) {
        self.halt();
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Why streaming ended.
enum Ended {
    /// Stopped, or the output closed.
    Stop,
    /// Fell behind or lost messages: read back and resume.
    Resync,
}

/// A reconciled sink: the output's later steps, and the topic's partitions.
type Resumed = (broadcast::Receiver<Arc<Step>>, i32);

/// The sink's thread.
struct Writer {
    name: String,
    spec: SinkSpec,
    shared: Arc<Shared>,
    output: Arc<Materialized>,
    key_fields: Vec<String>,
}

type KafkaProducer = ThreadedProducer<Context>;

impl Writer {
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    fn run(self) {
        let waiter = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(waiter) => waiter,
            Err(e) => return self.shared.context.trouble(format!("cannot start: {e}")),
        };
        let mut producer: Option<KafkaProducer> = None;
        while !self.stopped() {
            if self.shared.context.delivery_failed.swap(false, Ordering::SeqCst) {
                producer = None; // its state is unknown: start afresh
            }
            let current = match &producer {
                Some(p) => p,
                None => {
                    let config = client::watched(client::config(
                        &self.spec.brokers,
                        &self.name,
                        Role::Producer,
                        &self.spec.config,
                    ));
                    match config.create_with_context(self.shared.context.clone()) {
                        Ok(p) => producer.insert(p),
                        Err(e) => {
                            self.shared.context.trouble(format!("cannot create a producer: {e}"));
                            std::thread::sleep(Duration::from_secs(1));
                            continue;
                        }
                    }
                }
            };
            let resumed = match self.reconcile(current) {
                Ok(Some(resumed)) => resumed,
                Ok(None) => break,
                Err(e) => {
                    self.shared.context.trouble(e);
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            match self.stream(&waiter, current, resumed) {
                Ended::Stop => break,
                Ended::Resync => {
                    self.shared.set_state("resynchronizing");
                    self.shared.resyncs.fetch_add(1, Ordering::Relaxed);
                    self.drain(current, None);
                }
            }
        }
        if let Some(producer) = &producer {
            self.drain(producer, Some(DRAIN));
        }
        self.shared.set_state("stopped");
    }

    /// Waits until everything sent is delivered (or `limit` passes, or the sink stops).
    fn drain(&self, producer: &KafkaProducer, limit: Option<Duration>) {
        let deadline = limit.map(|l| Instant::now() + l);
        while producer.in_flight_count() > 0 {
            if deadline.is_some_and(|d| Instant::now() >= d) || (limit.is_none() && self.stopped()) {
                return;
            }
            let _ = producer.flush(CHECK);
        }
    }

    /// Streams the output's steps until stopped, closed, or behind.
    fn stream(
        &self,
        waiter: &tokio::runtime::Runtime,
        producer: &KafkaProducer,
        (mut steps, partitions): Resumed,
    ) -> Ended {
        self.shared.set_state("streaming");
        // A frontier not written yet: steps without changes (an idle input following the
        // clock makes one every 100 ms) write their progress at most every
        // PROGRESS_INTERVAL, so that an idle job's topic does not grow by the second.
        let mut pending: Option<Time> = None;
        let mut last_progress: Option<Instant> = None;
        let due = |last: Option<Instant>| last.is_none_or(|at| at.elapsed() >= PROGRESS_INTERVAL);
        loop {
            if self.stopped() {
                return Ended::Stop;
            }
            if self.shared.context.delivery_failed.load(Ordering::SeqCst) {
                return Ended::Resync;
            }
            let step = match waiter.block_on(async { tokio::time::timeout(CHECK, steps.recv()).await }) {
                Err(_) => {
                    if let Some(frontier) = pending.filter(|_| due(last_progress)) {
                        if !self.send_progress(producer, frontier, partitions) {
                            return Ended::Stop;
                        }
                        (pending, last_progress) = (None, Some(Instant::now()));
                    }
                    continue;
                }
                Ok(Ok(step)) => step,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => return Ended::Resync,
                Ok(Err(broadcast::error::RecvError::Closed)) => return Ended::Stop,
            };
            // A closing output (its job is being stopped) writes nothing more: what
            // it would flush is not part of the job's results.
            let Some(frontier) = step.frontier else { return Ended::Stop };
            let mut changed = false;
            for batch in &step.batches {
                for (row, diff) in batch.changes.iter() {
                    if !self.send_change(producer, batch.time, row, *diff) {
                        return Ended::Stop;
                    }
                    changed = true;
                }
            }
            if changed || due(last_progress) {
                if !self.send_progress(producer, frontier, partitions) {
                    return Ended::Stop;
                }
                (pending, last_progress) = (None, Some(Instant::now()));
            } else {
                pending = Some(frontier);
            }
        }
    }

    /// Sends one data message; false if the sink stopped meanwhile.
    fn send_change(&self, producer: &KafkaProducer, time: Time, row: &str, diff: Diff) -> bool {
        let value = format!(r#"{{"time":{time},"row":{row},"diff":{diff}}}"#);
        let key = self.key_of(row);
        let record = BaseRecord::with_opaque_to(&self.spec.topic, client::DATA).payload(&value).key(&key);
        let sent = self.send(producer, record);
        if sent {
            self.shared.messages.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Sends progress `frontier` to every partition; false if the sink stopped.
    fn send_progress(&self, producer: &KafkaProducer, frontier: Time, partitions: i32) -> bool {
        let value = format!(r#"{{"progress":{frontier}}}"#);
        let opaque = client::progress_opaque(frontier);
        for partition in 0..partitions.max(1) {
            let record = BaseRecord::<(), String, usize>::with_opaque_to(&self.spec.topic, opaque)
                .payload(&value)
                .partition(partition);
            if !self.send(producer, record) {
                return false;
            }
        }
        *self.shared.progress.lock().expect("progress lock") = Some(frontier);
        true
    }

    /// Hands a message to the producer, waiting while its queue is full.
    fn send<K, P>(&self, producer: &KafkaProducer, mut record: BaseRecord<'_, K, P, usize>) -> bool
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        loop {
            match producer.send(record) {
                Ok(()) => return true,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    if self.stopped() {
                        return false;
                    }
                    record = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    // Not retryable (say, a message too large): resynchronize, which
                    // reads back what did get written.
                    self.shared.context.lost_delivery(format!("cannot send: {e}"));
                    return true;
                }
            }
        }
    }

    /// The message key of a row: its key fields as a JSON object, in declared order
    /// (the whole row for an output without key fields).
    fn key_of(&self, row: &str) -> String {
        if self.key_fields.is_empty() {
            return row.to_string();
        }
        let fields: HashMap<String, &RawValue> = serde_json::from_str(row).unwrap_or_default();
        let mut key = String::from("{");
        for (i, name) in self.key_fields.iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            key.push_str(&serde_json::to_string(name).unwrap_or_default());
            key.push(':');
            key.push_str(fields.get(name).map_or("null", |v| v.get()));
        }
        key.push('}');
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_key_fields_in_declared_order() {
        let writer = Writer {
            name: "t".into(),
            spec: SinkSpec { brokers: "h:1".into(), topic: "t".into(), config: Default::default() },
            shared: Arc::new(Shared {
                context: Context::new("t".into()),
                read_back: Mutex::new(None),
                stop: AtomicBool::new(false),
                state: Mutex::new(String::new()),
                messages: AtomicU64::new(0),
                progress: Mutex::new(None),
                resyncs: AtomicU64::new(0),
            }),
            output: Materialized::new(1, crate::runtime::Keep::Changes, vec![], Default::default()),
            key_fields: vec!["start".into(), "key".into()],
        };
        assert_eq!(writer.key_of(r#"{"key":"a\"b","start":10,"n":1}"#), r#"{"start":10,"key":"a\"b"}"#);
        assert_eq!(writer.key_of(r#"{"n":1}"#), r#"{"start":null,"key":null}"#);
    }
}
