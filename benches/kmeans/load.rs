//! Loops: how fast `kmeans` re-converges after one new point, against clustering the
//! window from scratch; and what `logreg` training costs per window as it grows.
//!
//! - **kmeans**: `--points` (default 100,000) 2-D points in 5 Gaussian blobs, all in
//!   one tumbling window, `k` = 5. *From scratch*: a new job gets all the points and
//!   is timed until its outputs reflect them (one NDJSON POST, then an advance that
//!   returns once every output is complete below the new watermark). *One new point*:
//!   the same job gets one more point in that window, timed from its POST until the
//!   advance after it returns; `--reps` times (default 5), medians. *Plain Lloyd's*:
//!   the yardstick, a single-threaded from-scratch Lloyd's in this program (same
//!   rules, exact sums) on the same points, timed without any service around it.
//!   *Floor*: one point into an empty window, the same requests with next to no
//!   computation.
//! - **logreg**: `tidemark run logreg` on one window of `n` examples (2 features,
//!   `max_rounds` 100, no tolerance) for n = 1,000, 10,000 and 100,000; wall time,
//!   and time per example-round.
//!
//! ```sh
//! cargo build --release --bin tidemark --examples
//! target/release/examples/kmeans_load
//! ```

use std::io::Write;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tidemark::pipeline::ExactSum;

#[path = "../common/server.rs"]
mod server;
use server::ServerProcess;

const WINDOW: u64 = 3_600_000;

fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller.
    let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random_range(0.0..1.0));
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Lloyd's algorithm from scratch as `kmeans` documents it (seeds: the k smallest
/// ids); the round count.
fn plain_lloyd(points: &[(String, [f64; 2])], k: usize, max_rounds: u64) -> u64 {
    let distance = |c: &[f64; 2], p: &[f64; 2]| (c[0] - p[0]).powi(2) + (c[1] - p[1]).powi(2);
    let nearest = |centroids: &[[f64; 2]], p: &[f64; 2]| {
        let mut best = (0, f64::INFINITY);
        for (j, c) in centroids.iter().enumerate() {
            let d = distance(c, p);
            if d < best.1 {
                best = (j, d);
            }
        }
        best.0
    };
    let mut seeds: Vec<&(String, [f64; 2])> = points.iter().collect();
    seeds.sort_by(|a, b| a.0.cmp(&b.0));
    let mut centroids: Vec<[f64; 2]> = seeds.iter().take(k).map(|p| p.1).collect();
    let mut rounds = max_rounds;
    for round in 1..=max_rounds {
        let mut sums = vec![[ExactSum::default(), ExactSum::default()]; centroids.len()];
        let mut sizes = vec![0u64; centroids.len()];
        for (_, p) in points {
            let j = nearest(&centroids, p);
            sums[j][0].add(p[0], 1);
            sums[j][1].add(p[1], 1);
            sizes[j] += 1;
        }
        let next: Vec<[f64; 2]> = centroids
            .iter()
            .enumerate()
            .map(|(j, c)| match sizes[j] {
                0 => *c,
                n => [sums[j][0].value() / n as f64, sums[j][1].value() / n as f64],
            })
            .collect();
        if next == centroids {
            rounds = round;
            break;
        }
        centroids = next;
    }
    let mut inertia = ExactSum::default();
    for (_, p) in points {
        inertia.add(distance(&centroids[nearest(&centroids, p)], p), 1);
    }
    std::hint::black_box(inertia.value());
    rounds
}

fn points(n: usize, seed: u64) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centers: Vec<(f64, f64)> =
        (0..5).map(|_| (rng.random_range(-50.0..50.0), rng.random_range(-50.0..50.0))).collect();
    (0..n)
        .map(|i| {
            let (cx, cy) = centers[rng.random_range(0..centers.len())];
            let coords = [cx + 8.0 * gaussian(&mut rng), cy + 8.0 * gaussian(&mut rng)];
            json!({"id": format!("p{i:07}"), "ts": i as u64 * (WINDOW / 2) / n as u64, "coords": coords}).to_string()
        })
        .collect()
}

async fn post(client: &reqwest::Client, url: &str, body: String) -> Value {
    let response =
        client.post(url).header("content-type", "application/x-ndjson").body(body).send().await.expect("POST");
    assert!(response.status().is_success(), "{}", response.text().await.unwrap_or_default());
    response.json().await.expect("JSON")
}

async fn advance(client: &reqwest::Client, base: &str, job: &str, watermark: u64) {
    let url = format!("{base}/api/v1/jobs/{job}/inputs/points/advance");
    let response = client.post(url).json(&json!({"watermark": watermark})).send().await.expect("advance");
    assert!(response.status().is_success(), "{}", response.text().await.unwrap_or_default());
}

async fn create(client: &reqwest::Client, base: &str, name: &str) {
    let spec = json!({"name": name, "dataflow": "kmeans", "params": {
        "k": 5, "window": {"tumbling": {"size": WINDOW}}, "idle_timeout_ms": null}});
    let response = client.post(format!("{base}/api/v1/jobs")).json(&spec).send().await.expect("create");
    assert_eq!(response.status().as_u16(), 201, "{}", response.text().await.unwrap_or_default());
}

async fn quality(client: &reqwest::Client, base: &str, job: &str) -> Value {
    let url = format!("{base}/api/v1/jobs/{job}/outputs/quality");
    let body: Value = client.get(url).send().await.expect("GET").json().await.expect("JSON");
    body["rows"][0].clone()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut n, mut reps, mut binary) = (100_000usize, 5usize, "target/release/tidemark".to_string());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--points" => n = args.next().expect("a number").parse().expect("a number"),
            "--reps" => reps = args.next().expect("a number").parse().expect("a number"),
            "--binary" => binary = args.next().expect("a path"),
            other => panic!("unknown argument {other}"),
        }
    }
    let server = ServerProcess::start(&binary, 2, &[]);
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let lines = points(n, 1);

    // From scratch, twice (the first warms the allocator); the second counts.
    let mut scratch = Vec::new();
    for attempt in 0..2 {
        let job = format!("scratch{attempt}");
        create(&client, &base, &job).await;
        let url = format!("{base}/api/v1/jobs/{job}/inputs/points");
        let started = Instant::now();
        // One POST (about 7 MB, under the 16 MiB limit): one step, one computation.
        post(&client, &url, lines.join("\n")).await;
        advance(&client, &base, &job, WINDOW / 2 + 1).await;
        scratch.push(started.elapsed().as_secs_f64());
        let q = quality(&client, &base, &job).await;
        println!("from scratch ({n} points): {:.3} s; quality {q}", scratch[attempt]);
        if attempt == 0 {
            let _ = client.delete(format!("{base}/api/v1/jobs/{job}")).send().await;
        }
    }
    let from_scratch = scratch[1];

    // One new point at a time, into the same window.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let url = format!("{base}/api/v1/jobs/scratch1/inputs/points");
    let mut one = Vec::new();
    for rep in 0..reps {
        let ts = WINDOW / 2 + 10 + rep as u64 * 10;
        let point = json!({"id": format!("q{rep}"), "ts": ts,
            "coords": [rng.random_range(-50.0..50.0f64), rng.random_range(-50.0..50.0f64)]});
        let started = Instant::now();
        post(&client, &url, point.to_string()).await;
        advance(&client, &base, "scratch1", ts + 1).await;
        one.push(started.elapsed().as_secs_f64());
        let q = quality(&client, &base, "scratch1").await;
        println!("one new point ({rep}): {:.4} s; quality {q}", one[rep]);
    }
    let incremental = median(one);
    // The service's floor: one point into an empty window (a trivial clustering),
    // the same requests with next to no computation.
    let mut floor = Vec::new();
    for rep in 0..reps {
        let ts = WINDOW * (2 + rep as u64);
        let point = json!({"id": format!("f{rep}"), "ts": ts, "coords": [0.0, 0.0]});
        let started = Instant::now();
        post(&client, &url, point.to_string()).await;
        advance(&client, &base, "scratch1", ts + 1).await;
        floor.push(started.elapsed().as_secs_f64());
    }
    let floor = median(floor);
    println!("one point into an empty window (the service's per-step floor): {floor:.4} s (median of {reps})");
    // The yardstick: plain Lloyd's from scratch, in this process, no service.
    let plain: Vec<(String, [f64; 2])> = lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON");
            let c = &v["coords"];
            (v["id"].as_str().expect("id").to_string(), [c[0].as_f64().expect("x"), c[1].as_f64().expect("y")])
        })
        .collect();
    let mut plain_times = Vec::new();
    let mut plain_rounds = 0;
    for _ in 0..3 {
        let started = Instant::now();
        plain_rounds = plain_lloyd(&plain, 5, 50);
        plain_times.push(started.elapsed().as_secs_f64());
    }
    let plain_time = median(plain_times);
    println!("plain Lloyd's from scratch ({n} points, {plain_rounds} rounds, one thread): {plain_time:.3} s");
    println!(
        "kmeans, {n} points, k=5: from scratch {from_scratch:.3} s; one new point {incremental:.4} s (median of {reps}); \
         speed-up x{:.1}; against plain Lloyd's from scratch x{:.1}",
        from_scratch / incremental,
        plain_time / incremental
    );
    drop(server);

    // logreg: training cost per window as the window grows.
    println!("| examples in the window | wall s | µs per example-round |");
    println!("|---:|---:|---:|");
    for size in [1_000usize, 10_000, 100_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("examples.ndjson");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("file"));
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for i in 0..size {
            let x = [rng.random_range(-2.0..2.0f64), rng.random_range(-2.0..2.0f64)];
            let y = u8::from(x[0] - 0.5 * x[1] + 0.5 * gaussian(&mut rng) > 0.0);
            let split = if i % 5 == 0 { "eval" } else { "train" };
            let line = json!({"id": format!("e{i}"), "ts": i as u64 * 1000 / size as u64, "features": x, "label": y, "split": split});
            writeln!(file, "{line}").expect("write");
        }
        drop(file);
        let started = Instant::now();
        let status = std::process::Command::new(&binary)
            .args(["run", "logreg", "--input"])
            .arg(format!("examples={}", path.display()))
            .args([
                "--param",
                r#"window={"tumbling":{"size":1000}}"#,
                "--param",
                "max_rounds=100",
                "--output",
                "models",
            ])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("tidemark run");
        assert!(status.success());
        let wall = started.elapsed().as_secs_f64();
        println!("| {size} | {wall:.3} | {:.3} |", wall * 1e6 / (size as f64 * 100.0));
    }
}
