//! A network partition between the server and a real broker: a loopback TCP proxy,
//! which the broker advertises as its address, stops forwarding for 15 s.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::*;

/// A TCP proxy on loopback that can be cut: while cut, connections stay open but no
/// byte crosses in either direction, and new connections are accepted but wait (as
/// behind a partitioned network, nothing is refused or reset); once healed, what was
/// held flows again.
struct Proxy {
    port: u16,
    cut: Arc<watch::Sender<bool>>,
    tasks: JoinSet<()>,
}

impl Proxy {
    /// A proxy on `port` in front of `127.0.0.1:upstream`.
    async fn start(port: u16, upstream: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind the proxy");
        let cut = Arc::new(watch::channel(false).0);
        let mut tasks = JoinSet::new();
        let accepting = cut.clone();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let cut = accepting.clone();
                connections.spawn(async move {
                    healed(&cut).await;
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(pump(client_read, server_write, &cut), pump(server_read, client_write, &cut));
                });
            }
        });
        Proxy { port, cut, tasks }
    }

    /// Stops forwarding (`true`) or starts again.
    fn partition(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Waits until the proxy forwards.
async fn healed(cut: &watch::Sender<bool>) {
    let mut cut = cut.subscribe();
    let _ = cut.wait_for(|cut| !cut).await;
}

/// Copies `from` to `to`, holding what it read while the proxy is cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: &watch::Sender<bool>,
) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        healed(cut).await;
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        healed(cut).await;
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The server reaches the broker only through the proxy, cut for 15 s while records
/// keep coming, to a Kafka-fed job (through the same proxy: they wait in a producer)
/// and to an HTTP-fed job with a sink on that broker. Meanwhile `/healthz` answers with
/// a p99 under 200 ms, both jobs stay running, HTTP ingest is answered, and the sink
/// delivers nothing (the cut holds). Once the network heals the Kafka-fed job catches
/// up within 30 s, its windows equal the reference, and both sink topics sum to
/// exactly their outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_partition_loses_nothing() {
    if broker().is_none() {
        return;
    }
    let (port, proxy_port) = (free_port(), free_port());
    let proxy = Proxy::start(proxy_port, port).await;
    let own = OwnBroker::start_advertising(port, proxy.port);
    let kafka = &own.kafka;
    let (topic, sink) = (unique("partitioned"), unique("partitioned-sink"));
    kafka.create_topic(&topic, 3).await;
    let first = events(14, 3, 1000, 0);
    kafka.produce(&topic, &as_messages(&first));

    let mut server = TestServer::start().await;
    let api = Api::of(&server);
    api.create_and_read(&job_spec("partitioned", &kafka.brokers, &topic, Some(&sink)), first.len()).await;
    // The HTTP-fed job: half its records before the cut, half during it.
    let fed_sink = unique("fed-sink");
    let mut fed = job_spec("fed", &kafka.brokers, "unused", Some(&fed_sink));
    fed.as_object_mut().unwrap().remove("inputs");
    let (code, body) = api.post("/api/v1/jobs", &fed).await;
    assert_eq!(code, 201, "{body}");
    let records: Vec<Value> = events(16, 1, 2000, 0).iter().map(|(_, t)| serde_json::from_str(t).unwrap()).collect();
    let (before, during) = records.split_at(records.len() / 2);
    let (code, body) = api.post("/api/v1/jobs/fed/inputs/events", &json!(before)).await;
    assert_eq!(code, 200, "{body}");
    assert_sink_exact(&api, kafka, "fed", &fed_sink).await;
    let delivered = |status: &Value| status["outputs"]["windows"]["sink"]["delivered"].clone();
    let (fed_before, sink_before) =
        (api.get("/api/v1/jobs/fed").await.1, delivered(&api.get("/api/v1/jobs/partitioned").await.1));

    proxy.partition(true);
    // Records keep coming meanwhile: a producer queues them until the network heals.
    let second = events(15, 3, 1000, 100_000);
    let mut messages = as_messages(&second);
    messages.extend(end_markers(3));
    let producing = {
        let (kafka, topic) = (Kafka { brokers: kafka.brokers.clone() }, topic.clone());
        std::thread::spawn(move || kafka.produce(&topic, &messages))
    };
    let mut latencies = Vec::new();
    let heals = Instant::now() + Duration::from_secs(15);
    for chunk in during.chunks(100) {
        let asked = Instant::now();
        let (code, body) = api.post("/api/v1/jobs/fed/inputs/events", &json!(chunk)).await;
        assert_eq!(code, 200, "{body}");
        latencies.push(asked.elapsed());
    }
    while Instant::now() < heals {
        let asked = Instant::now();
        let answer = api.client.get(format!("{}/healthz", api.base)).send().await.expect("healthz");
        assert_eq!(answer.status(), 200);
        latencies.push(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, status) = api.get("/api/v1/jobs/partitioned").await;
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["inputs"]["events"]["accepted"], json!(first.len()), "records crossed the partition: {status:#}");
    assert_eq!(delivered(&status), sink_before, "the sink crossed it: {status:#}");
    let fed_status = api.get("/api/v1/jobs/fed").await.1;
    assert_eq!(fed_status["state"], "running", "{fed_status}");
    let sent = |status: &Value| status["outputs"]["windows"]["sink"]["messages"].as_u64().unwrap();
    assert!(sent(&fed_status) > sent(&fed_before), "no output change to deliver: {fed_status:#}");
    assert_eq!(delivered(&fed_status), delivered(&fed_before), "the sink crossed it: {fed_status:#}");
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    assert!(p99 < Duration::from_millis(200), "/healthz p99 {p99:?} during the partition");

    proxy.partition(false);
    let healed_at = Instant::now();
    tokio::task::spawn_blocking(move || producing.join().expect("producer")).await.unwrap();
    api.wait_caught_up("partitioned", 3).await;
    assert!(
        healed_at.elapsed() < Duration::from_secs(30),
        "caught up {:?} after the network healed",
        healed_at.elapsed()
    );
    let (_, rows) = api.rows("partitioned", "windows").await;
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    assert_windows(&rows, &reference(&all));
    assert_sink_exact(&api, kafka, "partitioned", &sink).await;
    assert_sink_exact(&api, kafka, "fed", &fed_sink).await;
    server.stop().await;
}
