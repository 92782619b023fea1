//! Load for `tidemark serve`: ingest-to-subscriber latency and HTTP ingest throughput,
//! and what tokens and limits cost of both.
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
//! - **security** (see `security.rs`): both of the above (at `--rates`, default 10000
//!   events/s here) against a plain server and against one started with `--tokens FILE
//!   --rate-limit 1000000 --max-subscribers 1024`, a fresh server for each, the pair
//!   `--repeat` times (default 3) with the order alternating, so that drift of the
//!   machine falls on both alike. Against the secure server the POSTs carry an `admin`
//!   token (`Authorization: Bearer`), the subscribers a `read` token, half of them in
//!   the header and half as `?access_token=`; the rate limit is far above the load, so
//!   it is checked on every request and never refuses one. Reported: every run, the
//!   medians, secure/plain throughput and secure − plain p99, against the targets
//!   (at most 5% of throughput, at most 1 ms of p99).
//!
//! - **checkpoints** (see `checkpoints.rs`): throughput of a job checkpointing every
//!   10 s against one that never does, a fresh server for each, `--repeat` pairs.
//!
//! ```sh
//! cargo build --release --bin tidemark --examples
//! target/release/examples/serve_load            # both, the figures of BENCHMARKS.md
//! target/release/examples/serve_load latency --rates 10000 --seconds 5
//! target/release/examples/serve_load security --seconds 5 --repeat 3   # or scripts/bench.sh --serve-security
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;

mod checkpoints;
mod security;
#[path = "../common/server.rs"]
mod server;
use serde_json::{Value, json};
use server::ServerProcess;
use tokio::sync::Mutex;

struct Args {
    mode: String,
    /// `None`: the mode's default.
    rates: Option<Vec<u64>>,
    subscribers: usize,
    seconds: u64,
    connections: usize,
    binary: String,
    workers: usize,
    repeat: usize,
}

fn args() -> Args {
    let mut args = Args {
        mode: "all".into(),
        rates: None,
        subscribers: 10,
        seconds: 10,
        connections: 4,
        binary: "target/release/tidemark".into(),
        workers: 2,
        repeat: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "latency" | "throughput" | "all" | "security" | "checkpoints" => args.mode = arg.clone(),
            "--rates" => args.rates = Some(value().split(',').map(|r| r.parse().expect("rate")).collect()),
            "--subscribers" => args.subscribers = value().parse().expect("subscribers"),
            "--seconds" => args.seconds = value().parse().expect("seconds"),
            "--connections" => args.connections = value().parse().expect("connections"),
            "--binary" => args.binary = value(),
            "--workers" => args.workers = value().parse().expect("workers"),
            "--repeat" => args.repeat = value().parse().expect("repeat"),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(args.repeat > 0, "--repeat must be at least 1");
    args
}

/// A server under test, and the tokens its clients present if it wants them.
struct Target {
    server: ServerProcess,
    tokens: Option<security::Tokens>,
}

impl Target {
    /// `request` as the load generator sends it: with the `admin` token, if any.
    fn as_admin(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.tokens {
            Some(tokens) => request.bearer_auth(&tokens.admin),
            None => request,
        }
    }

    /// The URL and `Authorization` header of subscriber `i` to `url`: with the `read`
    /// token, every other subscriber in the header, the rest in the query.
    fn subscription(&self, url: &str, i: usize) -> (String, Option<String>) {
        match &self.tokens {
            None => (url.to_string(), None),
            Some(tokens) if i.is_multiple_of(2) => (url.to_string(), Some(format!("Bearer {}", tokens.read))),
            Some(tokens) => (format!("{url}&access_token={}", tokens.read), None),
        }
    }
}

/// Latency of one rate, in milliseconds over (POST, subscriber) pairs.
#[derive(Clone, Copy)]
struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
    /// (POST, subscriber) pairs whose update never arrived.
    missed: usize,
}

/// Ingest throughput.
#[derive(Clone, Copy)]
struct Throughput {
    events_per_second: f64,
    /// The server's CPU (user + system) over the same time, in cores.
    cpu_cores: f64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

async fn create_job(client: &reqwest::Client, target: &Target, name: &str) {
    create_job_checkpointing(client, target, name, None).await;
}

/// [`create_job`] with `checkpoint_interval_ms` if given (else the default, 10 s).
async fn create_job_checkpointing(client: &reqwest::Client, target: &Target, name: &str, interval: Option<u64>) {
    let mut spec = json!({"name": name, "dataflow": "window_agg",
        "params": {"window": {"tumbling": {"size": 1000}}, "retention": 10000, "idle_timeout_ms": null}});
    if let Some(interval) = interval {
        spec["checkpoint_interval_ms"] = json!(interval);
    }
    let request = target.as_admin(client.post(format!("{}/api/v1/jobs", target.server.base)));
    let response = request.json(&spec).send().await.expect("create job");
    assert_eq!(response.status().as_u16(), 201, "{}", response.text().await.unwrap_or_default());
}

/// Reads an SSE stream; for every update carrying a marker key `m<n>`, records when
/// it arrived under `n`.
async fn subscribe((url, authorization): (String, Option<String>), seen: Arrivals, stop: Arc<AtomicBool>) {
    let client = reqwest::Client::new();
    let mut request = client.get(url);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.expect("subscribe");
    assert!(response.status().is_success(), "subscribe: {}", response.status());
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

async fn latency(target: &Target, rate: u64, subscribers: usize, seconds: u64) -> Latency {
    let client = reqwest::Client::new();
    let base = &target.server.base;
    let job = format!("latency-{rate}");
    create_job(&client, target, &job).await;
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Vec<Arrivals> = (0..subscribers).map(|_| Arc::default()).collect();
    let url = format!("{base}/api/v1/jobs/{job}/outputs/windows/subscribe?snapshot=false");
    let readers: Vec<_> = (seen.iter().enumerate())
        .map(|(i, s)| tokio::spawn(subscribe(target.subscription(&url, i), s.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let post_url = format!("{base}/api/v1/jobs/{job}/inputs/events");
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
        let response = target
            .as_admin(client.post(&post_url))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("post");
        assert!(response.status().is_success(), "post: {}", response.status());
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
    let _ = target.as_admin(client.delete(format!("{base}/api/v1/jobs/{job}"))).send().await;
    let max = latencies.last().copied().unwrap_or(f64::NAN);
    Latency { p50: pick(0.5), p99: pick(0.99), max, missed: missing }
}

async fn throughput(target: &Target, connections: usize, seconds: u64) -> Throughput {
    throughput_checkpointing(target, connections, seconds, None).await
}

/// [`throughput`] of a job checkpointing every `interval` ms if given.
async fn throughput_checkpointing(
    target: &Target,
    connections: usize,
    seconds: u64,
    interval: Option<u64>,
) -> Throughput {
    let client = reqwest::Client::new();
    let server = &target.server;
    create_job_checkpointing(&client, target, "throughput", interval).await;
    let url = format!("{}/api/v1/jobs/throughput/inputs/events", server.base);
    let accepted = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let clients: Vec<_> = (0..connections)
        .map(|c| {
            let (client, url, accepted) = (client.clone(), url.clone(), accepted.clone());
            let authorization = target.tokens.as_ref().map(|t| format!("Bearer {}", t.admin));
            tokio::spawn(async move {
                let mut batch = 0u64;
                while Instant::now() < deadline {
                    let ts = now_ms();
                    let mut body = String::with_capacity(48_000);
                    for i in 0..1000u64 {
                        let key = (c as u64 * 1000 + batch * 13 + i) % 1000;
                        body.push_str(&format!("{{\"key\":\"k{key}\",\"ts\":{ts},\"value\":{i}}}\n"));
                    }
                    let mut request = client.post(&url).header("content-type", "application/x-ndjson");
                    if let Some(authorization) = &authorization {
                        request = request.header("authorization", authorization);
                    }
                    let response = request.body(body).send().await.expect("post");
                    assert!(response.status().is_success(), "post: {}", response.status());
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
    Throughput { events_per_second: accepted.load(Ordering::Relaxed) as f64 / elapsed, cpu_cores: cpu / elapsed }
}

#[tokio::main]
async fn main() {
    let args = args();
    if args.mode == "security" {
        return security::compare(&args).await;
    }
    if args.mode == "checkpoints" {
        return checkpoints::compare(&args).await;
    }
    let rates = args.rates.clone().unwrap_or_else(|| vec![1000, 10_000, 100_000]);
    let target = Target { server: ServerProcess::start(&args.binary, args.workers, &[]), tokens: None };
    println!("server {} with {} workers", target.server.base, args.workers);
    if args.mode != "throughput" {
        println!(
            "| rate (events/s) | subscribers | p50 ms | p99 ms | max ms | missed |\n|---:|---:|---:|---:|---:|---:|"
        );
        for &rate in &rates {
            let Latency { p50, p99, max, missed } = latency(&target, rate, args.subscribers, args.seconds).await;
            println!("| {rate} | {} | {p50:.1} | {p99:.1} | {max:.1} | {missed} |", args.subscribers);
        }
    }
    if args.mode != "latency" {
        let Throughput { events_per_second, cpu_cores } = throughput(&target, args.connections, args.seconds).await;
        println!(
            "throughput: {:.0} events/s accepted ({} connections, NDJSON batches of 1000); server CPU {:.2} cores",
            events_per_second, args.connections, cpu_cores
        );
    }
}
