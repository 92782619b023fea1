//! Kafka end to end, against a real Kafka-protocol broker (tansu, started by
//! `scripts/kafka-up.sh`; `scripts/test.sh` starts it before the tests).
//!
//! The broker is found at `TIDEMARK_TEST_KAFKA` (default `127.0.0.1:9092`). Without
//! one these tests say so and pass, unless `TIDEMARK_REQUIRE_KAFKA=1` (set by
//! `scripts/test.sh`), which makes a missing broker a failure. Every test makes
//! topics of its own; the test that pauses a broker starts a broker of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

mod partition;

use crate::harness::{self, Expected, Reference};
use crate::service::{Child, TestServer, spawn_in_with};

// ---------------------------------------------------------------------------
// The broker
// ---------------------------------------------------------------------------

/// A Kafka-protocol broker the tests can use.
struct Kafka {
    brokers: String,
}

/// The shared test broker, or `None` (with a note) if there is none and none is required.
fn broker() -> Option<Kafka> {
    let brokers = std::env::var("TIDEMARK_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let reachable = metadata(&brokers).is_ok();
    if !reachable {
        if std::env::var("TIDEMARK_REQUIRE_KAFKA").is_ok_and(|v| v == "1") {
            panic!("no Kafka broker at {brokers}; scripts/kafka-up.sh starts one");
        }
        eprintln!("skipped: no Kafka broker at {brokers} (scripts/kafka-up.sh starts one)");
        return None;
    }
    Some(Kafka { brokers })
}

fn metadata(brokers: &str) -> Result<(), String> {
    let consumer: BaseConsumer = client(brokers).create().map_err(|e| e.to_string())?;
    consumer.fetch_metadata(None, Duration::from_secs(3)).map(drop).map_err(|e| e.to_string())
}

fn client(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("group.id", "tidemark-tests").set("enable.auto.commit", "false");
    config
}

/// A topic name no other test (or earlier run) uses.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// A message as read back.
#[derive(Clone, Debug)]
struct Read {
    partition: i32,
    key: Option<String>,
    value: Option<String>,
}

impl Kafka {
    async fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = client(&self.brokers).create().expect("admin client");
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let results = admin.create_topics([&new], &AdminOptions::new()).await.expect("create topics");
        for result in results {
            result.expect("topic created");
        }
    }

    /// Produces `(partition, value)` messages (a `None` value is a null message), in
    /// order per partition, and waits until all are delivered.
    fn produce(&self, topic: &str, messages: &[(i32, Option<String>)]) {
        let producer: ThreadedProducer<_> =
            client(&self.brokers).set("enable.idempotence", "true").create().expect("producer");
        for (partition, value) in messages {
            let mut record = BaseRecord::<(), String>::to(topic).partition(*partition);
            if let Some(value) = value {
                record = record.payload(value);
            }
            let mut record = record;
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(60)).expect("messages delivered");
    }

    /// Every message of `topic`, partition by partition, in offset order.
    fn read_all(&self, topic: &str) -> Vec<Read> {
        let consumer: BaseConsumer = client(&self.brokers).create().expect("consumer");
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).expect("metadata");
        let partitions: Vec<i32> = metadata.topics()[0].partitions().iter().map(|p| p.id()).collect();
        let mut ends = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for p in partitions {
            let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5)).expect("watermarks");
            if high > low {
                assignment.add_partition_offset(topic, p, Offset::Offset(low)).unwrap();
                ends.insert(p, high);
            }
        }
        let mut read = Vec::new();
        if ends.is_empty() {
            return read;
        }
        consumer.assign(&assignment).expect("assign");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ends.is_empty() {
            assert!(Instant::now() < deadline, "could not read {topic} back");
            let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
            let message = message.expect("message");
            let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
            read.push(Read {
                partition: message.partition(),
                key: text(message.key()),
                value: text(message.payload()),
            });
            if ends.get(&message.partition()).is_some_and(|end| message.offset() + 1 >= *end) {
                ends.remove(&message.partition());
            }
        }
        read.sort_by_key(|r| r.partition);
        read
    }
}

/// A broker of a test's own (to pause it), started and stopped by the project's scripts.
struct OwnBroker {
    kafka: Kafka,
    port: u16,
    _data: tempfile::TempDir,
}

impl OwnBroker {
    fn start() -> OwnBroker {
        let port = free_port();
        OwnBroker::start_advertising(port, port)
    }

    /// A broker on `port` that tells clients to connect to `advertised` (a proxy in
    /// front of it); [`OwnBroker::kafka`] bootstraps from `advertised`.
    fn start_advertising(port: u16, advertised: u16) -> OwnBroker {
        let data = tempfile::tempdir().expect("temp dir");
        let status = Command::new(repo().join("scripts/kafka-up.sh"))
            .env("KAFKA_PORT", port.to_string())
            .env("KAFKA_ADVERTISED_PORT", advertised.to_string())
            .env("KAFKA_DATA_DIR", data.path())
            .status()
            .expect("run scripts/kafka-up.sh");
        assert!(status.success(), "scripts/kafka-up.sh failed");
        OwnBroker { kafka: Kafka { brokers: format!("127.0.0.1:{advertised}") }, port, _data: data }
    }

    fn pid(&self) -> String {
        let path = repo().join(format!(".tools/kafka-{}.pid", self.port));
        std::fs::read_to_string(path).expect("broker pid file").trim().to_string()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.pid()]).status().expect("kill");
        assert!(status.success());
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/kafka-down.sh"))
            .env("KAFKA_PORT", self.port.to_string())
            .stdout(Stdio::null())
            .status();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

// ---------------------------------------------------------------------------
// Events and the reference
// ---------------------------------------------------------------------------

const WINDOW: u64 = 1000;
const OUT_OF_ORDER: u64 = 500;
/// An event past all others: sent to every partition, it moves every partition's
/// watermark past every window, so that all are complete (and none is evicted yet:
/// `retention` is an hour).
const END_KEY: &str = "~end";
const END_TS: u64 = 1_000_000;

/// `n` events per partition, in event-time order within each partition but for
/// swaps within `OUT_OF_ORDER`, and with partition `p` running `p * 7000` ms behind
/// partition 0: out of order across partitions.
fn events(seed: u64, partitions: i32, n: usize, from: u64) -> Vec<(i32, String)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut all = Vec::new();
    for p in 0..partitions {
        let mut ts = from + (partitions - 1 - p) as u64 * 7000;
        let mut part: Vec<(u64, String)> = (0..n)
            .map(|_| {
                ts += rng.random_range(0..40);
                let key = format!("k{}", rng.random_range(0..12));
                (ts, format!(r#"{{"key":"{key}","ts":{ts},"value":{}}}"#, rng.random_range(-50..100)))
            })
            .collect();
        for i in 1..part.len() {
            if rng.random_range(0..20) == 0 && part[i].0 - part[i - 1].0 < OUT_OF_ORDER {
                part.swap(i - 1, i);
            }
        }
        all.extend(part.into_iter().map(|(_, text)| (p, text)));
    }
    all
}

/// Events as messages to produce.
fn as_messages(events: &[(i32, String)]) -> Vec<(i32, Option<String>)> {
    events.iter().map(|(p, t)| (*p, Some(t.clone()))).collect()
}

fn end_markers(partitions: i32) -> Vec<(i32, Option<String>)> {
    (0..partitions).map(|p| (p, Some(format!(r#"{{"key":"{END_KEY}","ts":{END_TS},"value":0}}"#)))).collect()
}

/// The windows of `events`, all on time.
fn reference(events: &[(i32, String)]) -> Vec<Expected> {
    // A watermark that never moves: nothing is late.
    let mut model = Reference::new(WINDOW, u64::MAX, 0);
    for (_, text) in events {
        let e: Value = serde_json::from_str(text).unwrap();
        model.feed(e["key"].as_str().unwrap(), e["ts"].as_u64().unwrap(), e["value"].as_f64().unwrap());
    }
    model.rows()
}

/// Checks the output rows, but the end markers', against `expected`.
#[track_caller]
fn assert_windows(rows: &[Value], expected: &[Expected]) {
    let rows: Vec<Value> = rows.iter().filter(|r| r["key"] != END_KEY).cloned().collect();
    harness::assert_windows("windows", &rows, expected);
}

fn job_spec(name: &str, brokers: &str, topic: &str, sink: Option<&str>) -> Value {
    let mut spec = json!({
        "name": name,
        "dataflow": "window_agg",
        // No processing-time advances: once caught up, the frontier stays put.
        "params": {
            "window": {"tumbling": {"size": WINDOW}}, "max_out_of_orderness": OUT_OF_ORDER, "idle_timeout_ms": null
        },
        "inputs": {"events": {"source": "kafka", "brokers": brokers, "topic": topic, "start": "earliest"}},
    });
    if let Some(sink) = sink {
        spec["outputs"] = json!({"windows": {"sink": "kafka", "brokers": brokers, "topic": sink}});
    }
    spec
}

// ---------------------------------------------------------------------------
// Reading a job over HTTP
// ---------------------------------------------------------------------------

/// A server reachable over HTTP: in-process or a child process.
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn of(server: &TestServer) -> Api {
        Api { base: server.base.clone(), client: server.client.clone() }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        match self.client.get(format!("{}{path}", self.base)).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
                let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text:.2000}"));
                (status, body)
            }
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self.client.post(format!("{}{path}", self.base)).json(body).send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits (up to 90 s) until the job's status satisfies `done`; returns it.
    async fn wait_until(&self, job: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (code, status) = self.get(&format!("/api/v1/jobs/{job}")).await;
            assert_eq!(code, 200, "{status}");
            assert_eq!(status["state"], "running", "{status}");
            if done(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {status:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every partition of input `events` is read to its end, and output
    /// `windows` has passed the end markers' watermark.
    async fn wait_caught_up(&self, job: &str, partitions: usize) -> Value {
        self.wait_until(job, "the job to catch up", |s| {
            let parts = s["inputs"]["events"]["partitions"].as_array().cloned().unwrap_or_default();
            parts.len() == partitions
                && parts.iter().all(|p| p["lag"] == 0 && p["committed"] == p["high_watermark"])
                && s["outputs"]["windows"]["frontier"].as_u64().is_some_and(|f| f >= END_TS - OUT_OF_ORDER)
        })
        .await
    }

    /// Creates the job of `spec` and waits until it has accepted `records`.
    async fn create_and_read(&self, spec: &Value, records: usize) {
        let (code, body) = self.post("/api/v1/jobs", spec).await;
        assert_eq!(code, 201, "{body}");
        let job = spec["name"].as_str().expect("a name");
        self.wait_until(job, "the first records", |s| {
            s["inputs"]["events"]["accepted"].as_u64() == Some(records as u64)
        })
        .await;
    }

    async fn rows(&self, job: &str, output: &str) -> (u64, Vec<Value>) {
        let (code, body) = self.get(&format!("/api/v1/jobs/{job}/outputs/{output}")).await;
        assert_eq!(code, 200, "{body}");
        let frontier = body["frontier"].as_u64().unwrap_or_else(|| panic!("no frontier: {body}"));
        (frontier, body["rows"].as_array().unwrap().clone())
    }
}

/// Sums the data messages of a sink topic by row; checks that each partition's
/// messages never go below a progress already written there.
fn sink_content(messages: &[Read]) -> (BTreeMap<String, i64>, Option<u64>) {
    let mut content: BTreeMap<String, i64> = BTreeMap::new();
    let mut progress: BTreeMap<i32, u64> = BTreeMap::new();
    for m in messages {
        let value: Value = serde_json::from_str(m.value.as_deref().expect("a value")).expect("JSON");
        if let Some(p) = value["progress"].as_u64() {
            let last = progress.entry(m.partition).or_default();
            assert!(p >= *last, "progress went back from {last} to {p}");
            *last = p;
            continue;
        }
        let time = value["time"].as_u64().expect("time");
        let floor = progress.get(&m.partition).copied().unwrap_or(0);
        assert!(time >= floor, "a change at {time} after progress {floor}: {value}");
        let row = &value["row"];
        let key: Value = serde_json::from_str(m.key.as_deref().expect("a key")).expect("key JSON");
        assert_eq!(key, json!({"key": row["key"], "start": row["start"]}), "key of {value}");
        *content.entry(row.to_string()).or_default() += value["diff"].as_i64().expect("diff");
    }
    content.retain(|_, n| *n != 0);
    (content, progress.values().copied().min())
}

fn multiset(rows: &[Value]) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(r.to_string()).or_default() += 1;
    }
    m
}

/// Waits until the sink has written everything up to the output's frontier, then
/// checks that the topic sums to exactly the output's content. A job still reading
/// moves on between the looks (its status, its rows, the topic): such a look is taken
/// again, for up to 30 s.
async fn assert_sink_exact(api: &Api, kafka: &Kafka, job: &str, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = api
            .wait_until(job, "the sink to catch up", |s| {
                let sink = &s["outputs"]["windows"]["sink"];
                sink["state"] == "streaming"
                    && sink["progress"] == s["outputs"]["windows"]["frontier"]
                    && sink["delivered"].as_u64() >= sink["messages"].as_u64()
            })
            .await;
        let (frontier, rows) = api.rows(job, "windows").await;
        let (content, progress) = sink_content(&kafka.read_all(topic));
        let settled = Some(frontier) == status["outputs"]["windows"]["frontier"].as_u64() && progress == Some(frontier);
        if !settled && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(progress, Some(frontier), "last progress in the topic (the output's frontier: {status:#})");
        let expected = multiset(&rows);
        let differing: Vec<_> = expected
            .iter()
            .filter(|(r, n)| content.get(*r) != Some(n))
            .chain(content.iter().filter(|(r, _)| !expected.contains_key(*r)))
            .take(5)
            .collect();
        assert!(differing.is_empty(), "the sink topic does not sum to the output; e.g. {differing:?}");
        return;
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Three partitions, out of order across them, with broken messages among the
/// events: the windows equal a reference, the broken messages are dead-lettered,
/// and the status shows each partition read to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_partitions_out_of_order_match_a_reference() {
    let Some(kafka) = broker() else { return };
    let topic = unique("three-partitions");
    kafka.create_topic(&topic, 3).await;
    let events = events(1, 3, 1500, 0);
    let broken: Vec<(i32, Option<String>)> = vec![
        (1, Some("not json".into())),
        (1, None),
        (2, Some(r#"{"key":"k1"}"#.into())),
        (0, Some(r#"{"key":"k1","ts":-1,"value":1}"#.into())),
        (2, Some(r#"{"key":"k1","ts":5,"value":1e999}"#.into())),
    ];
    let mut messages = as_messages(&events);
    // Broken messages in the middle of their partitions.
    for (i, b) in broken.iter().enumerate() {
        messages.insert(500 + 900 * i, b.clone());
    }
    messages.extend(end_markers(3));
    kafka.produce(&topic, &messages);

    let mut server = TestServer::start().await;
    let api = Api::of(&server);
    let (code, body) = api.post("/api/v1/jobs", &job_spec("k3", &kafka.brokers, &topic, None)).await;
    assert_eq!(code, 201, "{body}");
    let status = api.wait_caught_up("k3", 3).await;
    let (_, rows) = api.rows("k3", "windows").await;
    assert_windows(&rows, &reference(&events));

    let input = &status["inputs"]["events"];
    assert_eq!(input["source"]["source"], "kafka");
    assert_eq!(input["accepted"], events.len() as u64 + 3, "{input}");
    assert_eq!(input["rejected"], 5, "{input}");
    for (p, partition) in input["partitions"].as_array().unwrap().iter().enumerate() {
        let produced = messages.iter().filter(|(q, _)| *q == p as i32).count() as u64;
        assert_eq!(partition["partition"], p as u64);
        assert_eq!(
            (partition["high_watermark"].as_u64(), partition["position"].as_u64()),
            (Some(produced), Some(produced))
        );
        assert_eq!(partition["watermark"], END_TS - OUT_OF_ORDER);
    }
    let dead = api.wait_until("k3", "dead letters", |s| s["outputs"]["dead_letter"]["rows"] == 5).await;
    assert_eq!(dead["outputs"]["dead_letter"]["rows"], 5);
    let (_, letters) = api.rows("k3", "dead_letter").await;
    assert!(letters.iter().all(|l| l["reason"] == "invalid" && l["input"] == "events"), "{letters:?}");
    assert!(letters.iter().any(|l| l["record"] == "not json"), "{letters:?}");
    // A number out of a double's range is kept as text so that readers can parse the output.
    assert!(letters.iter().any(|l| l["record"] == r#"{"key":"k1","ts":5,"value":1e999}"#), "{letters:?}");
    server.stop().await;
}

/// A Kafka source's position is the next offset of each partition whose records are
/// all applied: after the job caught up, the end of every partition; a source started
/// again from it reads nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_position_is_the_next_offset_of_every_partition() {
    use tidemark::job::spec::Origin;
    use tidemark::serve::{Guard, Limits};
    use tidemark::source::Position;

    let Some(kafka) = broker() else { return };
    let topic = unique("position");
    kafka.create_topic(&topic, 2).await;
    let mut messages: Vec<(i32, Option<String>)> =
        events(5, 2, 300, 0).into_iter().map(|(p, t)| (p, Some(t))).collect();
    messages.push((1, Some("not json".into())));
    kafka.produce(&topic, &messages);
    let produced = |p: i32| messages.iter().filter(|(q, _)| *q == p).count() as i64;
    let expected = Position::Kafka { offsets: BTreeMap::from([(0, produced(0)), (1, produced(1))]) };

    let server = crate::service::InProcess::start(Limits::default(), Guard::default(), crate::dataflows::registry());
    let spec = serde_json::from_value(job_spec("pos", &kafka.brokers, &topic, None)).expect("spec");
    let jobs = server.app.clone();
    let job = tokio::task::spawn_blocking(move || jobs.jobs.create(spec, Origin::Operator))
        .await
        .expect("create")
        .expect("job");
    let deadline = Instant::now() + Duration::from_secs(60);
    while job.position(0).as_ref() != Some(&expected) {
        assert!(Instant::now() < deadline, "position {:?}, expected {expected:?}", job.position(0));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job.job.input_stats(0).accepted + job.job.input_stats(0).rejected, messages.len() as u64);
    drop(job);
    server.stop().await;

    // Started again from there, the source reads only what came after.
    let feed = std::sync::Arc::new(Counted::default());
    let source_spec = tidemark::source::SourceSpec::Kafka(tidemark::kafka::SourceSpec {
        brokers: kafka.brokers.clone(),
        topic: topic.clone(),
        start: tidemark::kafka::StartAt::Earliest,
        config: BTreeMap::new(),
    });
    let source =
        source_spec.start("again", feed.clone(), Some(expected), None).expect("starts").expect("a kafka source");
    kafka.produce(&topic, &[(0, Some(r#"{"key":"k","ts":1,"value":1}"#.into()))]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while feed.records.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the new record was not read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::spawn_blocking(move || source.stop()).await.expect("stop");
    assert_eq!(feed.records.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A feed that counts the records it is given.
#[derive(Default)]
struct Counted {
    records: std::sync::atomic::AtomicUsize,
}

impl tidemark::source::Feed for Counted {
    fn records(&self, records: &[&[u8]]) -> Result<tidemark::ingest::IngestReport, tidemark::source::FeedError> {
        self.records.fetch_add(records.len(), std::sync::atomic::Ordering::SeqCst);
        Ok(Default::default())
    }
    fn partitions(&self, _partitions: usize) {}
    fn partition_records(&self, _partition: usize, records: &[&[u8]]) -> Result<(), tidemark::source::FeedError> {
        self.records(records).map(|_| ())
    }
    fn flush(&self) -> Result<(), tidemark::source::FeedError> {
        Ok(())
    }
    fn advance(&self, watermark: u64) -> Result<u64, tidemark::source::FeedError> {
        Ok(watermark)
    }
    fn fail(&self, error: &dyn std::fmt::Display) {
        panic!("the source failed: {error}");
    }
}

/// `start: latest` reads only what is written after the job was created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_latest_skips_what_the_topic_held() {
    let Some(kafka) = broker() else { return };
    let topic = unique("latest");
    kafka.create_topic(&topic, 2).await;
    let before = events(2, 2, 200, 0);
    kafka.produce(&topic, &as_messages(&before));

    let mut server = TestServer::start().await;
    let api = Api::of(&server);
    let mut spec = job_spec("latest", &kafka.brokers, &topic, None);
    spec["inputs"]["events"]["start"] = json!("latest");
    let (code, body) = api.post("/api/v1/jobs", &spec).await;
    assert_eq!(code, 201, "{body}");
    let after = events(3, 2, 200, 100_000);
    let mut messages = as_messages(&after);
    messages.extend(end_markers(2));
    kafka.produce(&topic, &messages);
    let status = api.wait_caught_up("latest", 2).await;
    assert_eq!(status["inputs"]["events"]["accepted"], after.len() as u64 + 2);
    let (_, rows) = api.rows("latest", "windows").await;
    assert_windows(&rows, &reference(&after));
    server.stop().await;
}

/// A job may be created before its topic exists: the topic is read from its
/// beginning once it does. (Partitions added to a topic later are found the same way,
/// by looking the topic up every 5 s; neither tansu nor librdkafka's mock cluster can
/// add partitions, so that is not tested here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_appears_later_is_read() {
    let Some(kafka) = broker() else { return };
    let topic = unique("later");
    let mut server = TestServer::start().await;
    let api = Api::of(&server);
    let (code, body) = api.post("/api/v1/jobs", &job_spec("later", &kafka.brokers, &topic, None)).await;
    assert_eq!(code, 201, "{body}");
    let status = api.get("/api/v1/jobs/later").await.1;
    assert_eq!(status["inputs"]["events"]["partitions"], json!([]), "{status:#}");

    kafka.create_topic(&topic, 3).await;
    let events = events(7, 3, 300, 0);
    let mut messages = as_messages(&events);
    messages.extend(end_markers(3));
    kafka.produce(&topic, &messages);
    let status = api.wait_caught_up("later", 3).await;
    for partition in status["inputs"]["events"]["partitions"].as_array().unwrap() {
        assert_eq!(partition["start"], Value::Null, "read from the beginning: {partition}");
    }
    let (_, rows) = api.rows("later", "windows").await;
    assert_windows(&rows, &reference(&events));
    server.stop().await;
}

/// Specs are checked, and a broker that cannot be reached is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_specs_are_checked() {
    let mut server = TestServer::start().await;
    let api = Api::of(&server);
    let unreachable = format!("127.0.0.1:{}", free_port());
    let cases = [
        (job_spec("bad", "nohost", "t", None), 422, "inputs.events.brokers"),
        (job_spec("bad", "127.0.0.1:9092", "a/b", None), 422, "inputs.events.topic"),
        (job_spec("bad", "127.0.0.1:9092", "t", Some("no good")), 422, "outputs.windows.topic"),
        (job_spec("bad", &unreachable, "t", None), 503, "inputs.events"),
    ];
    for (spec, code, field) in cases {
        let (got, body) = api.post("/api/v1/jobs", &spec).await;
        assert_eq!(got, code, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(field), "{body}");
    }
    let mut spec = job_spec("bad", "127.0.0.1:9092", "t", None);
    spec["inputs"]["events"]["config"] = json!({"group.id": "mine"});
    let (got, body) = api.post("/api/v1/jobs", &spec).await;
    assert_eq!((got, body["error"]["code"].as_str()), (422, Some("invalid_source")), "{body}");
    spec["inputs"]["events"]["config"] = json!({});
    spec["outputs"] = json!({"windows": {"sink": "s3", "brokers": "127.0.0.1:9092", "topic": "t"}});
    let (got, body) = api.post("/api/v1/jobs", &spec).await;
    assert_eq!((got, body["error"]["code"].as_str()), (422, Some("invalid_sink")), "{body}");
    assert_eq!(api.get("/api/v1/jobs").await.1, json!([]));
    server.stop().await;
}

/// The server binary, as a child process with a data directory of its own.
struct Process {
    child: Child,
    api: Api,
}

impl Process {
    async fn start(data_dir: &Path) -> Process {
        Process::start_with(data_dir, &[]).await
    }

    /// A server with more arguments (`--history 0`).
    async fn start_with(data_dir: &Path, args: &[&str]) -> Process {
        let (child, base) = spawn_in_with(data_dir, &format!("server-{}", unique("run")), args).await;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Process { child, api: Api { base, client } }
    }

    fn kill(&mut self) {
        self.child.kill();
    }
}

/// kill -9 in the middle of reading, then restart on the same data directory: the
/// job comes back, rebuilds its results from the topic, and its sink topic sums to
/// exactly the output (nothing lost, nothing twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_rebuild_the_results_and_the_sink_is_exactly_once() {
    let Some(kafka) = broker() else { return };
    let (topic, sink) = (unique("restart"), unique("restart-sink"));
    kafka.create_topic(&topic, 3).await;
    let first = events(4, 3, 4000, 0);
    kafka.produce(&topic, &as_messages(&first));

    let dir = tempfile::tempdir().unwrap();
    let mut process = Process::start(dir.path()).await;
    let (code, body) =
        process.api.post("/api/v1/jobs", &job_spec("restart", &kafka.brokers, &topic, Some(&sink))).await;
    assert_eq!(code, 201, "{body}");
    // Kill once the sink has written part of the output.
    process
        .api
        .wait_until("restart", "the sink to write", |s| {
            s["outputs"]["windows"]["sink"]["delivered"].as_u64().is_some_and(|d| d > 200)
        })
        .await;
    process.kill();

    let mut process = Process::start(dir.path()).await;
    let second = events(5, 3, 1000, 200_000);
    let mut messages = as_messages(&second);
    messages.extend(end_markers(3));
    kafka.produce(&topic, &messages);
    process.api.wait_caught_up("restart", 3).await;
    let (_, rows) = process.api.rows("restart", "windows").await;
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    assert_windows(&rows, &reference(&all));
    assert_sink_exact(&process.api, &kafka, "restart", &sink).await;

    // Once more, killed while idle: the sink writes nothing new.
    let before = kafka.read_all(&sink).len();
    process.kill();
    let process = Process::start(dir.path()).await;
    process.api.wait_caught_up("restart", 3).await;
    assert_sink_exact(&process.api, &kafka, "restart", &sink).await;
    assert_eq!(kafka.read_all(&sink).len(), before, "a restart with nothing new rewrote the sink");
}

/// A job restored from a checkpoint reads only what came after it: killed after a
/// checkpoint and more input, the restarted job's status counts exactly the records
/// after the checkpoint as read again, its windows equal the reference over the whole
/// topic, and its sink reads back only what it wrote after the checkpoint, its topic
/// summing to exactly the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_job_reads_only_what_follows_its_checkpoint() {
    let Some(kafka) = broker() else { return };
    let restored = restore_from_a_checkpoint(&kafka, "checkpointed", &[]).await;
    assert!(restored.read_back["from"].is_u64(), "the sink read its whole topic back: {}", restored.read_back);
    let messages = restored.read_back["messages"].as_u64().unwrap() as usize;
    assert!(
        (1..=restored.at_kill - restored.before_checkpoint).contains(&messages),
        "read back {messages} of {} messages, {} of them written before the checkpoint",
        restored.at_kill,
        restored.before_checkpoint
    );
}

/// The same with no output history kept (`--history 0`): the output's changes since
/// the sink's position are gone, so the restored sink reads its whole topic back, and
/// its topic still sums to exactly the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_sink_without_history_reads_its_whole_topic() {
    let Some(kafka) = broker() else { return };
    let restored = restore_from_a_checkpoint(&kafka, "unhistoried", &["--history", "0"]).await;
    assert!(restored.read_back["from"].is_null(), "{}", restored.read_back);
    assert!(
        restored.read_back["messages"].as_u64().unwrap() as usize >= restored.at_kill,
        "read back {} of {} messages",
        restored.read_back,
        restored.at_kill
    );
}

/// What [`restore_from_a_checkpoint`] saw of the sink.
struct Restored {
    /// Sink topic messages before the checkpoint, and when the server was killed.
    before_checkpoint: usize,
    at_kill: usize,
    /// The sink's `read_back` after the restart.
    read_back: Value,
}

/// Runs job `name` on a server started with `args`: reads 6,000 records, checkpoints,
/// reads 1,500 more, is killed, and restarts from the checkpoint; checks what was read
/// again, the windows and the sink topic's sum.
async fn restore_from_a_checkpoint(kafka: &Kafka, name: &str, args: &[&str]) -> Restored {
    let (topic, sink) = (unique(name), unique(&format!("{name}-sink")));
    kafka.create_topic(&topic, 3).await;
    let first = events(8, 3, 2000, 0);
    kafka.produce(&topic, &as_messages(&first));
    let read_to_the_end = |read: usize| {
        move |s: &Value| {
            let parts = s["inputs"]["events"]["partitions"].as_array().cloned().unwrap_or_default();
            parts.len() == 3
                && parts.iter().all(|p| p["lag"] == 0 && p["committed"] == p["high_watermark"])
                && s["inputs"]["events"]["records_read"] == read
        }
    };

    let dir = tempfile::tempdir().unwrap();
    let mut process = Process::start_with(dir.path(), args).await;
    let mut spec = job_spec(name, &kafka.brokers, &topic, Some(&sink));
    spec["checkpoint_interval_ms"] = json!(0);
    let (code, body) = process.api.post("/api/v1/jobs", &spec).await;
    assert_eq!(code, 201, "{body}");
    process.api.wait_until(name, "the first events to be read", read_to_the_end(first.len())).await;
    assert_sink_exact(&process.api, kafka, name, &sink).await;
    let before_checkpoint = kafka.read_all(&sink).len();
    let (code, taken) = process.api.post(&format!("/api/v1/jobs/{name}/checkpoint"), &json!({})).await;
    assert_eq!(code, 200, "{taken}");

    let second = events(9, 3, 500, 100_000);
    kafka.produce(&topic, &as_messages(&second));
    process.api.wait_until(name, "the second events to be read", read_to_the_end(first.len() + second.len())).await;
    process
        .api
        .wait_until(name, "the sink to write", |s| {
            s["outputs"]["windows"]["sink"]["delivered"].as_u64().is_some_and(|d| d > 100)
        })
        .await;
    process.kill();
    let at_kill = kafka.read_all(&sink).len();
    assert!(at_kill > before_checkpoint, "the sink wrote {at_kill} messages, {before_checkpoint} before");

    let process = Process::start_with(dir.path(), args).await;
    kafka.produce(&topic, &end_markers(3));
    let status = process.api.wait_caught_up(name, 3).await;
    assert_eq!(status["checkpoint"]["id"], taken["id"], "restored from {taken}: {status:#}");
    assert_eq!(
        status["inputs"]["events"]["records_read"],
        json!(second.len() + 3),
        "read again: the records after the checkpoint and the end markers, nothing before: {status:#}"
    );
    let (_, rows) = process.api.rows(name, "windows").await;
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    assert_windows(&rows, &reference(&all));
    assert_sink_exact(&process.api, kafka, name, &sink).await;
    let status = process.api.get(&format!("/api/v1/jobs/{name}")).await.1;
    Restored { before_checkpoint, at_kill, read_back: status["outputs"]["windows"]["sink"]["read_back"].clone() }
}

/// An idle job whose input follows the wall clock steps its output every 100 ms; its
/// sink writes that progress at most once a second, and still the latest frontier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_sink_writes_progress_at_most_once_a_second() {
    let Some(kafka) = broker() else { return };
    let (topic, sink) = (unique("idle"), unique("idle-sink"));
    kafka.create_topic(&topic, 1).await;
    let events = events(9, 1, 50, 0);
    kafka.produce(&topic, &as_messages(&events));
    let mut server = TestServer::start().await;
    let api = Api::of(&server);
    let mut spec = job_spec("idle", &kafka.brokers, &topic, Some(&sink));
    spec["params"]["idle_timeout_ms"] = json!(200);
    let (code, body) = api.post("/api/v1/jobs", &spec).await;
    assert_eq!(code, 201, "{body}");
    let progress =
        |reads: &[Read]| reads.iter().filter(|m| m.value.as_deref().is_some_and(|v| v.contains("progress"))).count();
    // Caught up and idle: the frontier follows the clock.
    api.wait_until("idle", "the sink to stream", |s| s["outputs"]["windows"]["sink"]["state"] == "streaming").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = progress(&kafka.read_all(&sink));
    let frontier_before = api.get("/api/v1/jobs/idle").await.1["outputs"]["windows"]["frontier"].as_u64();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let status = api.get("/api/v1/jobs/idle").await.1;
    let written = progress(&kafka.read_all(&sink)) - before;
    assert!(status["outputs"]["windows"]["frontier"].as_u64() > frontier_before, "the clock moved nothing: {status}");
    assert!((2..=6).contains(&written), "{written} progress messages in 4 s of an idle job");
    // The frontier still reaches the topic, about once a second.
    let (_, last) = sink_content(&kafka.read_all(&sink));
    assert!(last > frontier_before, "last progress {last:?}, frontier 4 s before {frontier_before:?}");
    server.stop().await;
}

/// The broker paused (SIGSTOP) for 10 s while records keep coming, then resumed:
/// the job stays up and answers, then catches up with nothing lost, and its sink
/// topic sums to exactly the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_broker_loses_nothing() {
    if broker().is_none() {
        return;
    }
    let own = OwnBroker::start();
    let kafka = &own.kafka;
    let (topic, sink) = (unique("paused"), unique("paused-sink"));
    kafka.create_topic(&topic, 3).await;
    let first = events(6, 3, 1000, 0);
    kafka.produce(&topic, &as_messages(&first));

    let mut server = TestServer::start().await;
    let api = Api::of(&server);
    api.create_and_read(&job_spec("paused", &kafka.brokers, &topic, Some(&sink)), first.len()).await;

    own.signal("-STOP");
    // Records keep coming meanwhile: a producer queues them until the broker is back.
    let second = events(7, 3, 1000, 100_000);
    let mut messages = as_messages(&second);
    messages.extend(end_markers(3));
    let producing = {
        let brokers = kafka.brokers.clone();
        let topic = topic.clone();
        std::thread::spawn(move || Kafka { brokers }.produce(&topic, &messages))
    };
    for _ in 0..10 {
        let asked = Instant::now();
        let (code, status) = api.get("/api/v1/jobs/paused").await;
        assert_eq!((code, status["state"].as_str()), (200, Some("running")), "{status}");
        assert!(asked.elapsed() < Duration::from_secs(2), "the API stalled with the broker");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    own.signal("-CONT");
    tokio::task::spawn_blocking(move || producing.join().expect("producer")).await.unwrap();

    api.wait_caught_up("paused", 3).await;
    let (_, rows) = api.rows("paused", "windows").await;
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    assert_windows(&rows, &reference(&all));
    assert_sink_exact(&api, kafka, "paused", &sink).await;
    server.stop().await;
}

/// Broker faults injected by librdkafka's mock cluster (no real broker needed): fetch
/// and produce requests fail with `NOT_LEADER_FOR_PARTITION` and timeouts, and every
/// broker answers after 500 ms, while records keep coming. Meanwhile `/healthz`
/// answers with a p99 under 200 ms and the job stays running; once the faults end the
/// job catches up within 30 s, its windows equal the reference, and its sink topic
/// sums to exactly the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_broker_faults_lose_nothing() {
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let mock = MockCluster::new(3).expect("a mock cluster");
    let kafka = Kafka { brokers: mock.bootstrap_servers() };
    let (topic, sink) = ("faults", "faults-sink");
    mock.create_topic(topic, 3, 1).expect("topic");
    mock.create_topic(sink, 3, 1).expect("sink topic");
    let first = events(12, 3, 800, 0);
    kafka.produce(topic, &as_messages(&first));

    let mut server = TestServer::start().await;
    let api = Api::of(&server);
    api.create_and_read(&job_spec("faults", &kafka.brokers, topic, Some(sink)), first.len()).await;

    use RDKafkaRespErr::{
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION as NOT_LEADER, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT as TIMED_OUT,
    };
    // Each of the next 40 requests of a kind fails, alternately.
    let errors: Vec<RDKafkaRespErr> = (0..40).map(|i| if i % 2 == 0 { NOT_LEADER } else { TIMED_OUT }).collect();
    mock.request_errors(RDKafkaApiKey::Fetch, &errors);
    mock.request_errors(RDKafkaApiKey::Produce, &errors);
    for broker in 1..=3 {
        mock.broker_round_trip_time(broker, Duration::from_millis(500)).expect("round trip time");
    }
    let second = events(13, 3, 800, 100_000);
    let mut messages = as_messages(&second);
    messages.extend(end_markers(3));
    // Records keep coming through the faults: a chunk a second.
    let producing = {
        let (kafka, topic) = (Kafka { brokers: kafka.brokers.clone() }, topic.to_string());
        std::thread::spawn(move || {
            for chunk in messages.chunks(messages.len() / 6 + 1) {
                kafka.produce(&topic, chunk);
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let mut latencies = Vec::new();
    let faults_end = Instant::now() + Duration::from_secs(8);
    while Instant::now() < faults_end {
        let asked = Instant::now();
        let answer = api.client.get(format!("{}/healthz", api.base)).send().await.expect("healthz");
        assert_eq!(answer.status(), 200);
        latencies.push(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let (_, status) = api.get("/api/v1/jobs/faults").await;
    assert_eq!(status["state"], "running", "{status}");
    // The faults bit: the source reports them, and has not read everything yet.
    let input = &status["inputs"]["events"];
    assert!(
        input["error"].is_string() && input["accepted"].as_u64() < Some((first.len() + second.len()) as u64),
        "{input:#}"
    );
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    assert!(p99 < Duration::from_millis(200), "/healthz p99 {p99:?} during the faults");
    for broker in 1..=3 {
        mock.broker_round_trip_time(broker, Duration::ZERO).expect("round trip time");
    }
    mock.clear_request_errors(RDKafkaApiKey::Fetch);
    mock.clear_request_errors(RDKafkaApiKey::Produce);
    let ended = Instant::now();
    tokio::task::spawn_blocking(move || producing.join().expect("producer")).await.unwrap();

    api.wait_caught_up("faults", 3).await;
    assert!(ended.elapsed() < Duration::from_secs(30), "caught up {:?} after the faults ended", ended.elapsed());
    let (_, rows) = api.rows("faults", "windows").await;
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    assert_windows(&rows, &reference(&all));
    assert_sink_exact(&api, &kafka, "faults", sink).await;
    server.stop().await;
}

/// A Kafka job suspended after its first records, while more arrive, then resumed: it
/// reads nothing while suspended (its sink writes nothing), and afterwards its windows
/// equal the reference over the whole topic and its sink topic is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_kafka_job_resumes_from_its_offsets() {
    let Some(kafka) = broker() else { return };
    let (topic, sink) = (unique("suspended"), unique("suspended-sink"));
    kafka.create_topic(&topic, 3).await;
    let first = events(21, 3, 1000, 0);
    kafka.produce(&topic, &as_messages(&first));
    let mut server = TestServer::start().await;
    let api = Api::of(&server);
    api.create_and_read(&job_spec("suspended", &kafka.brokers, &topic, Some(&sink)), first.len()).await;
    assert_sink_exact(&api, &kafka, "suspended", &sink).await;
    let (code, body) = api.post("/api/v1/jobs/suspended/suspend", &json!({})).await;
    assert_eq!((code, body["state"].as_str()), (200, Some("suspended")), "{body}");
    let written = kafka.read_all(&sink).len();

    let second = events(22, 3, 1000, 100_000);
    let mut messages = as_messages(&second);
    messages.extend(end_markers(3));
    kafka.produce(&topic, &messages);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, status) = api.get("/api/v1/jobs/suspended").await;
    assert_eq!(status["state"], "suspended", "{status}");
    assert_eq!(status["inputs"]["events"]["accepted"], json!(first.len()), "read while suspended: {status:#}");
    assert_eq!(kafka.read_all(&sink).len(), written, "the sink wrote while suspended");

    let (code, body) = api.post("/api/v1/jobs/suspended/resume", &json!({})).await;
    assert_eq!((code, body["state"].as_str()), (200, Some("running")), "{body}");
    api.wait_caught_up("suspended", 3).await;
    let (_, rows) = api.rows("suspended", "windows").await;
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    assert_windows(&rows, &reference(&all));
    assert_sink_exact(&api, &kafka, "suspended", &sink).await;
    server.stop().await;
}

/// A job started from a savepoint of a Kafka job reads the topic from the savepoint's
/// offsets: it reads exactly the records after it, its windows equal the reference over
/// the whole topic, and its own sink topic (written whole) is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_from_a_kafka_savepoint_reads_on_from_its_offsets() {
    let Some(kafka) = broker() else { return };
    let (topic, sink, copy_sink) = (unique("saved"), unique("saved-sink"), unique("saved-copy-sink"));
    kafka.create_topic(&topic, 3).await;
    let first = events(23, 3, 1000, 0);
    kafka.produce(&topic, &as_messages(&first));
    let mut server = TestServer::start().await;
    let api = Api::of(&server);
    api.create_and_read(&job_spec("saved", &kafka.brokers, &topic, Some(&sink)), first.len()).await;
    let (code, savepoint) = api.post("/api/v1/jobs/saved/savepoints", &json!({})).await;
    assert_eq!(code, 201, "{savepoint}");

    let second = events(24, 3, 1000, 100_000);
    let mut messages = as_messages(&second);
    messages.extend(end_markers(3));
    kafka.produce(&topic, &messages);
    let mut copy = job_spec("copy", &kafka.brokers, &topic, Some(&copy_sink));
    copy["from_savepoint"] = json!({"job": "saved", "id": savepoint["id"]});
    let (code, body) = api.post("/api/v1/jobs", &copy).await;
    assert_eq!(code, 201, "{body}");
    let status = api.wait_caught_up("copy", 3).await;
    assert_eq!(
        status["inputs"]["events"]["records_read"],
        json!(second.len() + 3),
        "read from the savepoint's offsets on: {status:#}"
    );
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    for job in ["saved", "copy"] {
        api.wait_caught_up(job, 3).await;
        let (_, rows) = api.rows(job, "windows").await;
        assert_windows(&rows, &reference(&all));
    }
    assert_sink_exact(&api, &kafka, "copy", &copy_sink).await;
    assert_sink_exact(&api, &kafka, "saved", &sink).await;
    // Another topic cannot start from it.
    let mut other = job_spec("other", &kafka.brokers, &unique("elsewhere"), None);
    other["from_savepoint"] = json!({"job": "saved", "id": savepoint["id"]});
    let (code, body) = api.post("/api/v1/jobs", &other).await;
    assert_eq!((code, body["error"]["code"].as_str()), (422, Some("invalid_spec")), "{body}");
    server.stop().await;
}
