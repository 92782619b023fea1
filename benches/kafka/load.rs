//! Kafka → `window_agg` throughput: how fast a served job reads a topic to its end.
//!
//! Produces the events of an NDJSON file (`bench-data/events-5m.ndjson`, from
//! `gen_events`) to a new topic of `--partitions` (default 3) partitions, round robin,
//! with one end marker per partition (event time past every event). Then, `--reps`
//! times (default 3), interleaved:
//!
//! - **tidemark**: the release binary serves (`tidemark serve --workers 2`); a
//!   `window_agg` job reads the topic from `earliest` (10 s tumbling windows,
//!   `max_out_of_orderness` 5000). Timed from the job's creation until its `windows`
//!   output has passed the end markers' watermark: every event read, parsed, routed,
//!   aggregated and served. Also the server's CPU seconds meanwhile.
//! - **bare consumer** (the broker's ceiling): one librdkafka consumer, configured as
//!   tidemark's sources are, reads every partition to its end and parses each value
//!   into a `{key, ts, value}` struct with serde, on one thread, nothing else.
//! - **file replay** (the engine without Kafka): `tidemark run window_agg --workers 2`
//!   on the same file, wall time including printing its result.
//!
//! Reported: medians, events per second, and tidemark's ratio to each baseline. The
//! served job's output is checked against the file replay's (same windows, same
//! aggregates) before anything is reported.
//!
//! ```sh
//! scripts/kafka-up.sh && cargo build --release --bin tidemark --examples
//! target/release/examples/kafka_load --data bench-data/events-5m.ndjson
//! ```

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use serde_json::{Value, json};

#[path = "../common/server.rs"]
mod server;
use server::ServerProcess;

/// Event time of the end markers past the largest event time.
const END_AFTER: u64 = 100_000;
const OUT_OF_ORDER: u64 = 5000;
const WINDOW: u64 = 10_000;

struct Args {
    brokers: String,
    data: String,
    partitions: i32,
    workers: usize,
    reps: usize,
    binary: String,
    mock: bool,
    compression: String,
}

fn args() -> Args {
    let mut args = Args {
        brokers: "127.0.0.1:9092".into(),
        data: "bench-data/events-5m.ndjson".into(),
        partitions: 3,
        workers: 2,
        reps: 3,
        binary: "target/release/tidemark".into(),
        mock: false,
        compression: "zstd".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--brokers" => args.brokers = value(),
            "--data" => args.data = value(),
            "--partitions" => args.partitions = value().parse().expect("partitions"),
            "--workers" => args.workers = value().parse().expect("workers"),
            "--reps" => args.reps = value().parse().expect("reps"),
            "--binary" => args.binary = value(),
            "--mock" => args.mock = true,
            "--compression" => args.compression = value(),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// An event as the bare consumer parses it.
#[derive(Deserialize)]
#[allow(dead_code)] // parsed, not used: the bare consumer's work is reading and parsing
struct Event {
    key: String,
    ts: u64,
    value: f64,
}

/// Tidemark's consumer settings (src/kafka/client.rs), for the bare consumer.
fn consumer_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", "tidemark-bench-bare")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("isolation.level", "read_committed")
        .set("fetch.queue.backoff.ms", "10");
    config
}

async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for result in admin.create_topics([&new], &AdminOptions::new()).await.expect("create topic") {
        result.expect("topic created");
    }
}

/// Produces the lines round robin over the partitions, then an end marker to each;
/// returns the seconds it took until all were delivered.
fn produce(args: &Args, topic: &str, lines: &[String], end_ts: u64) -> f64 {
    let (brokers, partitions) = (&args.brokers, args.partitions);
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "50")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        // As topics in production usually are; it also keeps a topic of millions of
        // events within what the mock cluster holds (5 MB per partition).
        .set("compression.type", &args.compression)
        .create()
        .expect("producer");
    let started = Instant::now();
    let end = format!(r#"{{"key":"~end","ts":{end_ts},"value":0}}"#);
    let messages = lines.iter().enumerate().map(|(i, l)| (i as i32 % partitions, l.as_str()));
    for (partition, line) in messages.chain((0..partitions).map(|p| (p, end.as_str()))) {
        let mut record = BaseRecord::<(), str>::to(topic).partition(partition).payload(line);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(600)).expect("all delivered");
    started.elapsed().as_secs_f64()
}

/// The bare consumer: reads every partition to its end, parsing each value; returns
/// (seconds, messages).
fn bare_consumer(brokers: &str, topic: &str, partitions: i32) -> (f64, u64) {
    let consumer: BaseConsumer = consumer_config(brokers).create().expect("consumer");
    let started = Instant::now();
    let mut assignment = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5)).expect("watermarks");
        assignment.add_partition_offset(topic, p, Offset::Beginning).expect("assignment");
        ends.insert(p, high);
    }
    consumer.assign(&assignment).expect("assign");
    let mut read = 0u64;
    while !ends.is_empty() {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
        let message = message.expect("message");
        if let Ok(event) = serde_json::from_slice::<Event>(message.payload().unwrap_or_default()) {
            std::hint::black_box(event);
        }
        read += 1;
        if ends.get(&message.partition()).is_some_and(|end| message.offset() + 1 >= *end) {
            ends.remove(&message.partition());
        }
    }
    (started.elapsed().as_secs_f64(), read)
}

/// `tidemark run window_agg` on the file; returns (seconds, its `windows` rows).
fn file_replay(binary: &str, data: &str, workers: usize) -> (f64, Vec<String>) {
    let started = Instant::now();
    let output = Command::new(binary)
        .args(["run", "window_agg", "--input", &format!("events={data}"), "--output", "windows"])
        .args(["--param", &format!(r#"window={{"tumbling":{{"size":{WINDOW}}}}}"#)])
        .args(["--param", &format!("max_out_of_orderness={OUT_OF_ORDER}")])
        .args(["--workers", &workers.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .expect("tidemark run");
    let seconds = started.elapsed().as_secs_f64();
    assert!(output.status.success(), "tidemark run failed");
    let rows = String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["row"].to_string())
        .collect();
    (seconds, rows)
}

/// The served job: creation until its output passes the end markers; returns
/// (seconds, server CPU seconds, its `windows` rows but the end marker's).
async fn served_job(
    server: &ServerProcess,
    brokers: &str,
    topic: &str,
    name: &str,
    end_ts: u64,
) -> (f64, f64, Vec<String>) {
    let client = reqwest::Client::new();
    let spec = json!({
        "name": name, "dataflow": "window_agg",
        "params": {"window": {"tumbling": {"size": WINDOW}}, "max_out_of_orderness": OUT_OF_ORDER, "idle_timeout_ms": null},
        "inputs": {"events": {"source": "kafka", "brokers": brokers, "topic": topic, "start": "earliest"}},
    });
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let response = client.post(format!("{}/api/v1/jobs", server.base)).json(&spec).send().await.expect("create");
    assert_eq!(response.status().as_u16(), 201, "{}", response.text().await.unwrap_or_default());
    let status_url = format!("{}/api/v1/jobs/{name}", server.base);
    loop {
        let status: Value = client.get(&status_url).send().await.expect("status").json().await.expect("JSON");
        if status["outputs"]["windows"]["frontier"].as_u64().is_some_and(|f| f >= end_ts - OUT_OF_ORDER) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the job did not finish: {status:#}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds() - cpu_before;
    let status: Value = client.get(&status_url).send().await.expect("status").json().await.expect("JSON");
    assert_eq!(status["inputs"]["events"]["rejected"], 0, "{status:#}");
    assert_eq!(status["inputs"]["events"]["too_late"], 0, "{status:#}");
    let body: Value = client
        .get(format!("{}/api/v1/jobs/{name}/outputs/windows", server.base))
        .send()
        .await
        .expect("snapshot")
        .json()
        .await
        .expect("JSON");
    let rows =
        body["rows"].as_array().expect("rows").iter().filter(|r| r["key"] != "~end").map(Value::to_string).collect();
    let deleted = client.delete(&status_url).send().await.expect("delete");
    assert_eq!(deleted.status().as_u16(), 204);
    (seconds, cpu, rows)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let text = std::fs::read_to_string(&args.data).unwrap_or_else(|e| panic!("cannot read {}: {e}", args.data));
    let lines: Vec<String> = text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
    drop(text);
    let events = lines.len() as f64;
    let max_ts = lines.iter().map(|l| serde_json::from_str::<Event>(l).expect("an event").ts).max().expect("events");
    let end_ts = max_ts + END_AFTER;
    let unique = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    let topic = format!("tidemark-bench-{}-{unique}", std::process::id());
    // The mock cluster lives until the end of main.
    let mock = args.mock.then(|| MockCluster::new(1).expect("a mock cluster"));
    let brokers = match &mock {
        Some(mock) => {
            mock.create_topic(&topic, args.partitions, 1).expect("mock topic");
            println!("broker: librdkafka's mock cluster (in this process, in memory) at {}", mock.bootstrap_servers());
            mock.bootstrap_servers()
        }
        None => {
            create_topic(&args.brokers, &topic, args.partitions).await;
            println!("broker: {}", args.brokers);
            args.brokers.clone()
        }
    };
    let args = Args { brokers, ..args };
    let produced = produce(&args, &topic, &lines, end_ts);
    drop(lines);
    println!(
        "topic {topic}: {events} events + {} end markers over {} partitions, produced in {produced:.1} s ({:.0} events/s)",
        args.partitions,
        args.partitions,
        events / produced
    );

    let server = ServerProcess::start(&args.binary, args.workers, &[]);
    let (mut served, mut cpus, mut bare, mut replay) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rep in 0..args.reps {
        let (seconds, read) = bare_consumer(&args.brokers, &topic, args.partitions);
        assert_eq!(read as f64, events + f64::from(args.partitions), "the bare consumer read everything");
        bare.push(seconds);
        let (seconds, replayed) = file_replay(&args.binary, &args.data, args.workers);
        replay.push(seconds);
        let (seconds, cpu, rows) = served_job(&server, &args.brokers, &topic, &format!("bench-{rep}"), end_ts).await;
        served.push(seconds);
        cpus.push(cpu);
        let (mut a, mut b) = (rows, replayed);
        a.sort();
        b.sort();
        assert!(a == b, "the served job's windows differ from the file replay's ({} vs {} rows)", a.len(), b.len());
        eprintln!(
            "  repetition {}/{}: tidemark {:.2} s ({:.2} CPU s), bare consumer {:.2} s, file replay {:.2} s; {} windows equal",
            rep + 1,
            args.reps,
            served[rep],
            cpus[rep],
            bare[rep],
            replay[rep],
            a.len()
        );
    }
    let (served, cpu, bare, replay) = (median(served), median(cpus), median(bare), median(replay));
    println!("medians of {} repetitions, {} workers:", args.reps, args.workers);
    println!("| program | seconds | events/s | tidemark's events/s ÷ this one's |");
    println!("|---|---:|---:|---:|");
    println!("| tidemark: Kafka → window_agg job | {served:.2} | {:.0} | 1 |", events / served);
    println!("| bare consumer (read + parse, 1 thread) | {bare:.2} | {:.0} | {:.2} |", events / bare, bare / served);
    println!("| file replay (tidemark run) | {replay:.2} | {:.0} | {:.2} |", events / replay, replay / served);
    println!("tidemark server CPU: {cpu:.2} s ({:.2} cores, {:.0} events per CPU-second)", cpu / served, events / cpu);
}
