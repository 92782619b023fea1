//! Load for `tidemark serve`: ingest-to-subscriber latency and HTTP ingest throughput.
//!
//! Starts the release binary (`target/release/tidemark serve --listen 127.0.0.1:0 --config
//! EMPTY`) as a child process, creates `window_agg` jobs over HTTP, and measures:
//!
//! - **latency** at each rate of `--rates` (default 1000,10000,100000 events/s): one POST
//!   every 10 ms carries `rate / 100` events at the wall-clock time, 100 keys, and one
//!   *marker* event of a fresh key one millisecond earlier (so that the frontier passes
//!   it as soon as the POST is routed). `--subscribers` (default 10) SSE subscribers
//!   read the `windows` output; the latency of a POST is the time from just before it
//!   was sent until a subscriber received the update with its marker, for every
//!   subscriber. Reported: p50, p99 and max over all (POST, subscriber) pairs, after 1 s
//!   of warm-up, over `--seconds` (default 10) per rate.
//! - **throughput**: NDJSON batches of 1,000 events posted back to back by
//!   `--connections` (default 4) concurrent clients for `--seconds`; reported: events
//!   accepted per second (wall clock), and the server's CPU seconds (from /proc).
//!
//! ```sh
//! cargo build --release --bin tidemark --examples
//! target/release/examples/serve_load            # both, the figures of BENCHMARKS.md
//! target/release/examples/serve_load latency --rates 10000 --seconds 5
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;

#[path = "../common/server.rs"]
mod server;
use serde_json::{Value, json};
use server::ServerProcess;
use tokio::sync::Mutex;

struct Args {
    mode: String,
    rates: Vec<u64>,
    subscribers: usize,
    seconds: u64,
    connections: usize,
    binary: String,
    workers: usize,
}

fn args() -> Args {
    let mut args = Args {
        mode: "all".into(),
        rates: vec![1000, 10_000, 100_000],
        subscribers: 10,
        seconds: 10,
        connections: 4,
        binary: "target/release/tidemark".into(),
        workers: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "latency" | "throughput" | "all" => args.mode = arg.clone(),
            "--rates" => args.rates = value().split(',').map(|r| r.parse().expect("rate")).collect(),
            "--subscribers" => args.subscribers = value().parse().expect("subscribers"),
            "--seconds" => args.seconds = value().parse().expect("seconds"),
            "--connections" => args.connections = value().parse().expect("connections"),
            "--binary" => args.binary = value(),
            "--workers" => args.workers = value().parse().expect("workers"),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

async fn create_job(client: &reqwest::Client, base: &str, name: &str) {
    let spec = json!({"name": name, "dataflow": "window_agg",
        "params": {"window": {"tumbling": {"size": 1000}}, "retention": 10000, "idle_timeout_ms": null}});
    let response = client.post(format!("{base}/api/v1/jobs")).json(&spec).send().await.expect("create job");
    assert_eq!(response.status().as_u16(), 201, "{}", response.text().await.unwrap_or_default());
}

/// Reads an SSE stream; for every update carrying a marker key `m<n>`, records when
/// it arrived under `n`.
async fn subscribe(url: String, seen: Arrivals, stop: Arc<AtomicBool>) {
    let client = reqwest::Client::new();
    let response = client.get(url).send().await.expect("subscribe");
    let mut body = response.bytes_stream();
    let mut buffer = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        let arrived = Instant::now();
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buffer.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&event);
            let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
            if !data.contains("\"m") {
                continue;
            }
            let Ok(value) = serde_json::from_str::<Value>(data) else { continue };
            let mut seen = seen.lock().await;
            for update in value["updates"].as_array().into_iter().flatten() {
                if update["diff"] == 1
                    && let Some(marker) = update["row"]["key"].as_str().and_then(|k| k.strip_prefix('m'))
                    && let Ok(n) = marker.parse()
                {
                    seen.push((n, arrived));
                }
            }
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// When each subscriber saw each marker.
type Arrivals = Arc<Mutex<Vec<(u64, Instant)>>>;

async fn latency(server: &ServerProcess, rate: u64, subscribers: usize, seconds: u64) -> (f64, f64, f64, usize) {
    let client = reqwest::Client::new();
    let job = format!("latency-{rate}");
    create_job(&client, &server.base, &job).await;
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Vec<Arrivals> = (0..subscribers).map(|_| Arc::default()).collect();
    let url = format!("{}/api/v1/jobs/{job}/outputs/windows/subscribe?snapshot=false", server.base);
    let readers: Vec<_> = seen.iter().map(|s| tokio::spawn(subscribe(url.clone(), s.clone(), stop.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let post_url = format!("{}/api/v1/jobs/{job}/inputs/events", server.base);
    let per_post = (rate / 100).max(1);
    let mut sent: Vec<(u64, Instant)> = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(seconds + 1) {
        ticks.tick().await;
        let ts = now_ms();
        let mut body = String::with_capacity(per_post as usize * 48);
        body.push_str(&format!("{{\"key\":\"m{n}\",\"ts\":{},\"value\":1}}\n", ts.saturating_sub(1)));
        for i in 1..per_post {
            body.push_str(&format!("{{\"key\":\"k{}\",\"ts\":{ts},\"value\":{i}}}\n", (n * 7 + i) % 100));
        }
        let at = Instant::now();
        let response = client
            .post(&post_url)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("post");
        assert!(response.status().is_success());
        sent.push((n, at));
        n += 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.abort();
    }
    // Latencies after the first second (warm-up).
    let warm = sent.iter().position(|(_, at)| at.duration_since(started) > Duration::from_secs(1)).unwrap_or(0);
    let mut latencies = Vec::new();
    let mut missing = 0;
    for subscriber in &seen {
        let seen = subscriber.lock().await;
        let mut arrival: Vec<Option<Instant>> = vec![None; sent.len()];
        for &(marker, at) in seen.iter() {
            if let Some(slot) = arrival.get_mut(marker as usize) {
                slot.get_or_insert(at);
            }
        }
        for &(marker, at) in &sent[warm..] {
            match arrival[marker as usize] {
                Some(arrived) => latencies.push(arrived.duration_since(at).as_secs_f64() * 1000.0),
                None => missing += 1,
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(f64::NAN);
    let _ = client.delete(format!("{}/api/v1/jobs/{job}", server.base)).send().await;
    (pick(0.5), pick(0.99), latencies.last().copied().unwrap_or(f64::NAN), missing)
}

async fn throughput(server: &ServerProcess, connections: usize, seconds: u64) -> (f64, f64) {
    let client = reqwest::Client::new();
    create_job(&client, &server.base, "throughput").await;
    let url = format!("{}/api/v1/jobs/throughput/inputs/events", server.base);
    let accepted = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let clients: Vec<_> = (0..connections)
        .map(|c| {
            let (client, url, accepted) = (client.clone(), url.clone(), accepted.clone());
            tokio::spawn(async move {
                let mut batch = 0u64;
                while Instant::now() < deadline {
                    let ts = now_ms();
                    let mut body = String::with_capacity(48_000);
                    for i in 0..1000u64 {
                        let key = (c as u64 * 1000 + batch * 13 + i) % 1000;
                        body.push_str(&format!("{{\"key\":\"k{key}\",\"ts\":{ts},\"value\":{i}}}\n"));
                    }
                    let response = client
                        .post(&url)
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send()
                        .await
                        .expect("post");
                    let report: Value = response.json().await.expect("report");
                    accepted.fetch_add(report["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
                    batch += 1;
                }
            })
        })
        .collect();
    for c in clients {
        c.await.expect("client");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds() - cpu_before;
    (accepted.load(Ordering::Relaxed) as f64 / elapsed, cpu / elapsed)
}

#[tokio::main]
async fn main() {
    let args = args();
    let server = ServerProcess::start(&args.binary, args.workers);
    println!("server {} with {} workers", server.base, args.workers);
    if args.mode != "throughput" {
        println!(
            "| rate (events/s) | subscribers | p50 ms | p99 ms | max ms | missed |\n|---:|---:|---:|---:|---:|---:|"
        );
        for &rate in &args.rates {
            let (p50, p99, max, missing) = latency(&server, rate, args.subscribers, args.seconds).await;
            println!("| {rate} | {} | {p50:.1} | {p99:.1} | {max:.1} | {missing} |", args.subscribers);
        }
    }
    if args.mode != "latency" {
        let (events_per_second, cpu_cores) = throughput(&server, args.connections, args.seconds).await;
        println!(
            "throughput: {:.0} events/s accepted ({} connections, NDJSON batches of 1000); server CPU {:.2} cores",
            events_per_second, args.connections, cpu_cores
        );
    }
}
