//! Acknowledged means durable: the real binary killed (`kill -9`) at seeded random
//! moments while four writers feed `window_agg` over HTTP, restarted on the same data
//! directory, three rounds; every acknowledged request is applied exactly once, every
//! request all or nothing, and every record judged (on time, late, too late) as
//! without the crash: the outputs equal the reference model of
//! `window_agg_reference.rs` over the acknowledged records. Tumbling, sliding and
//! session windows, 1 and 2 workers, with and without checkpoints.
//!
//! Verdicts must not depend on the order in which concurrent writers' requests were
//! applied, which the test cannot know: each round opens with an anchor record at
//! `A` (acknowledged before the writers start), which sets the watermark to
//! `A - OOO`, and the writers' records are all at or before `A`, so they never move
//! it. Each is then on time, late or too late by its event time alone, and the model
//! may take the acknowledged requests in any order. Each request has a key of its
//! own and at least one record on time, so its key's rows tell whether a request the
//! kill cut (sent, no answer) was applied; it must then be applied whole.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::service::{Child, spawn_in_with};
use crate::window_agg_reference::{Config, Window, compare_windows, model, multiset, multiset_diff};

const WRITERS: usize = 4;
const RECORDS_PER_REQUEST: usize = 8;
const OOO: u64 = 2_000;
const LATENESS: u64 = 1_000;
/// Event time between two rounds' anchors.
const ROUND: u64 = 100_000;

/// The records of the requests sent, acknowledged or cut by the kill (no answer).
#[derive(Default)]
struct Sent {
    acknowledged: Vec<(String, Vec<Value>)>,
    cut: Vec<(String, Vec<Value>)>,
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(dir: &Path, round: usize, workers: usize) -> Server {
        let workers = workers.to_string();
        let (child, base) = spawn_in_with(dir, &format!("server-{round}"), &["--workers", &workers]).await;
        Server { child, base }
    }
}

/// Round `round`'s anchor: the latest event time of the round.
fn anchor(round: usize) -> u64 {
    (round as u64 + 1) * ROUND
}

/// The records of request `n` of writer `w` in round `round`: a key of its own, one
/// record on time, the others anywhere from well too late to the anchor.
fn request(w: usize, round: usize, n: usize, rng: &mut ChaCha8Rng) -> (String, Vec<Value>) {
    let key = format!("w{w}-r{round}-n{n}");
    let (a, watermark) = (anchor(round), anchor(round) - OOO);
    let records = (0..RECORDS_PER_REQUEST)
        .map(|i| {
            let ts = if i == 0 { rng.random_range(watermark..=a) } else { rng.random_range(watermark - 4_000..=a) };
            json!({"key": key, "ts": ts, "value": rng.random_range(-100..100)})
        })
        .collect();
    (key, records)
}

/// Writer `w` posts requests until its client fails (the server was killed).
async fn write(base: String, w: usize, round: usize, seed: u64, sent: Arc<Mutex<Sent>>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((w as u64) << 32) ^ round as u64);
    for n in 0.. {
        let (key, records) = request(w, round, n, &mut rng);
        let answer = client.post(format!("{base}/api/v1/jobs/d/inputs/events")).json(&records).send().await;
        match answer {
            Ok(response) if response.status() == 200 => sent.lock().unwrap().acknowledged.push((key, records)),
            Ok(response) => panic!("writer {w}: answered {}: {:?}", response.status(), response.text().await),
            Err(_) => {
                sent.lock().unwrap().cut.push((key, records));
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumbling_windows_survive_kill_9_on_one_worker_with_checkpoints() {
    kill_9_rounds(Window::Tumbling { size: 1_000 }, 1, 150).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumbling_windows_survive_kill_9_on_two_workers() {
    kill_9_rounds(Window::Tumbling { size: 1_000 }, 2, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_windows_survive_kill_9_on_one_worker() {
    kill_9_rounds(Window::Sliding { size: 1_000, slide: 250 }, 1, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_windows_survive_kill_9_on_two_workers_with_checkpoints() {
    kill_9_rounds(Window::Sliding { size: 1_000, slide: 250 }, 2, 150).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_kill_9_on_one_worker_with_checkpoints() {
    kill_9_rounds(Window::Session { gap: 300 }, 1, 150).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_kill_9_on_two_workers() {
    kill_9_rounds(Window::Session { gap: 300 }, 2, 0).await;
}

/// Three rounds of four writers and a kill -9 at a seeded moment, on `workers`
/// workers, checkpointing every `interval` ms (never with 0); then every row of both
/// outputs is checked against the model.
async fn kill_9_rounds(window: Window, workers: usize, interval: u64) {
    let seed: u64 = std::env::var("TIDEMARK_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let sent = Arc::new(Mutex::new(Sent::default()));
    let client = reqwest::Client::new();
    let post = |base: &str, path: &str, body: Value| {
        let request = client.post(format!("{base}/api/v1/jobs/d{path}")).json(&body).send();
        let path = path.to_string();
        async move {
            let answer = request.await.expect("the server answers");
            assert_eq!(answer.status(), 200, "{path}: {:?}", answer.text().await);
        }
    };

    let mut server = Server::start(dir.path(), 0, workers).await;
    let spec = json!({
        "name": "d",
        "dataflow": "window_agg",
        "params": {
            "window": window.param(),
            "max_out_of_orderness": OOO,
            "allowed_lateness": LATENESS,
            "retention": null,
            "idle_timeout_ms": null,
        },
        "checkpoint_interval_ms": interval,
    });
    let created = client.post(format!("{}/api/v1/jobs", server.base)).json(&spec).send().await.unwrap();
    assert_eq!(created.status(), 201, "{:?}", created.text().await);

    let mut anchors = Vec::new();
    let mut checkpoints = Vec::new();
    for round in 0..3 {
        let record = json!({"key": "anchor", "ts": anchor(round), "value": 0});
        post(&server.base, "/inputs/events", json!([record])).await;
        anchors.push(record);
        let writers: Vec<_> =
            (0..WRITERS).map(|w| tokio::spawn(write(server.base.clone(), w, round, seed, sent.clone()))).collect();
        // Kill at a seeded random moment while the writers run.
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1200))).await;
        server.child.kill();
        for writer in writers {
            writer.await.expect("writer");
        }
        server = Server::start(dir.path(), round + 1, workers).await;
        let status: Value =
            client.get(format!("{}/api/v1/jobs/d", server.base)).send().await.unwrap().json().await.unwrap();
        checkpoints.push(status["checkpoint"]["id"].as_u64());
    }
    if interval > 0 {
        // The restarted jobs came back from checkpoints, later and later ones (a kill
        // early in the first round, on a loaded machine, may come before the first).
        let taken: Vec<u64> = checkpoints.iter().flatten().copied().collect();
        assert!(taken.len() >= 2 && checkpoints[2].is_some(), "restored from checkpoints: {checkpoints:?}");
        assert!(taken.windows(2).all(|w| w[0] < w[1]), "{checkpoints:?}");
    } else {
        assert!(checkpoints.iter().all(Option::is_none), "{checkpoints:?}");
    }

    // Past every event time: every window complete (none is evicted: no retention).
    let end = anchor(2) + 1;
    post(&server.base, "/inputs/events/advance", json!({"watermark": end})).await;
    let read = |output: &str| {
        let url = format!("{}/api/v1/jobs/d/outputs/{output}", server.base);
        let (client, output) = (&client, output.to_string());
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let body: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
                if body["frontier"].as_u64().is_some_and(|f| f >= end) {
                    return body["rows"].as_array().unwrap().clone();
                }
                assert!(Instant::now() < deadline, "{output} not complete up to {end}: at {}", body["frontier"]);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let (windows, dead) = (read("windows").await, read("dead_letter").await);

    let sent = std::mem::take(&mut *sent.lock().unwrap());
    assert!(sent.acknowledged.len() > 3 * WRITERS, "too few requests got through: {}", sent.acknowledged.len());
    let keys: BTreeSet<&str> = windows.iter().filter_map(|r| r["key"].as_str()).collect();
    let applied_cut: Vec<&(String, Vec<Value>)> =
        sent.cut.iter().filter(|(key, _)| keys.contains(key.as_str())).collect();
    // The model takes each round's anchor, then the round's applied requests.
    let mut lines = Vec::new();
    for (round, anchor) in anchors.iter().enumerate() {
        lines.push(anchor.to_string());
        let round_key = format!("-r{round}-");
        for (key, records) in sent.acknowledged.iter().chain(applied_cut.iter().copied()) {
            if key.contains(&round_key) {
                lines.extend(records.iter().map(Value::to_string));
            }
        }
    }
    let cfg = Config::new(window).ooo(OOO).lateness(LATENESS);
    let expected = model(&cfg, &lines);
    let mut problems = compare_windows(&expected.windows, &windows);
    if let Some(d) = multiset_diff(&multiset(&expected.dead_letter), &multiset(&dead)) {
        problems.push(format!("dead_letter differs:{d}"));
    }
    problems.truncate(20);
    assert!(
        problems.is_empty(),
        "{window:?} on {workers} workers, {} acknowledged and {} cut requests ({} applied): {}",
        sent.acknowledged.len(),
        sent.cut.len(),
        applied_cut.len(),
        problems.join("\n")
    );
    let too_late = expected.dead_letter.len();
    assert!(too_late > 0 && expected.windows.len() > 100, "too little lateness to judge: {too_late} too late");
    let status: Value =
        client.get(format!("{}/api/v1/jobs/d", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["state"], "running", "{status}");
}

/// A damaged log is the job's error, shown in its status; the server and its other
/// jobs go on, and the job can be deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_log_fails_its_job_alone() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut server = Server::start(dir.path(), 0, 2).await;
    for name in ["broken", "fine"] {
        let spec = json!({"name": name, "dataflow": "window_agg", "params": {"window": {"tumbling": {"size": 1_000}}}});
        let created = client.post(format!("{}/api/v1/jobs", server.base)).json(&spec).send().await.unwrap();
        assert_eq!(created.status(), 201);
        for n in 0..3 {
            let records = json!([{"key": "k", "ts": n * 10, "value": n}]);
            let url = format!("{}/api/v1/jobs/{name}/inputs/events", server.base);
            assert_eq!(client.post(url).json(&records).send().await.unwrap().status(), 200);
        }
    }
    server.child.kill();
    let log = dir.path().join("data").join("log").join("broken").join("events.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[20] ^= 0xff; // inside the first of three frames
    std::fs::write(&log, bytes).unwrap();

    let server = Server::start(dir.path(), 1, 2).await;
    let status: Value =
        client.get(format!("{}/api/v1/jobs/broken", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["state"], "failed", "{status}");
    let error = status["error"].as_str().unwrap_or_default();
    assert!(error.contains("input `events`") && error.contains("damaged"), "{status}");
    let refused =
        client.post(format!("{}/api/v1/jobs/broken/inputs/events", server.base)).json(&json!([])).send().await.unwrap();
    assert_eq!(refused.status(), 409);
    let fine: Value =
        client.get(format!("{}/api/v1/jobs/fine", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!((fine["state"].as_str(), fine["inputs"]["events"]["accepted"].as_u64()), (Some("running"), Some(3)));
    let deleted = client.delete(format!("{}/api/v1/jobs/broken", server.base)).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(!log.exists(), "the deleted job's log stays");
}

/// The watermark an idle input reaches by following the wall clock is in its log: after
/// a restart a record that came after such a move is judged as it was (here: too late),
/// not against the watermark its predecessors alone would give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermarks_moved_by_the_wall_clock_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut server = Server::start(dir.path(), 0, 2).await;
    let spec = json!({
        "name": "idle",
        "dataflow": "window_agg",
        "params": {"window": {"tumbling": {"size": 1_000}}, "idle_timeout_ms": 200},
    });
    let created = client.post(format!("{}/api/v1/jobs", server.base)).json(&spec).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let post = |base: String, ts: u64| {
        let client = client.clone();
        async move {
            let records = json!([{"key": "k", "ts": ts, "value": 1}]);
            let answer = client.post(format!("{base}/api/v1/jobs/idle/inputs/events")).json(&records).send().await;
            answer.unwrap().json::<Value>().await.unwrap()
        }
    };
    post(server.base.clone(), 1_000).await;
    // Quiet: the watermark follows the wall clock past the window's end.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status: Value =
            client.get(format!("{}/api/v1/jobs/idle", server.base)).send().await.unwrap().json().await.unwrap();
        if status["inputs"]["events"]["watermark"].as_u64().unwrap() >= 2_000 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the idle input did not follow the clock: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = post(server.base.clone(), 1_500).await;
    assert_eq!(report["too_late"], 1, "{report}");
    server.child.kill();

    let server = Server::start(dir.path(), 1, 2).await;
    let status: Value =
        client.get(format!("{}/api/v1/jobs/idle", server.base)).send().await.unwrap().json().await.unwrap();
    let input = &status["inputs"]["events"];
    assert_eq!((input["accepted"].as_u64(), input["too_late"].as_u64()), (Some(1), Some(1)), "{status}");
    assert!(input["watermark"].as_u64().unwrap() >= 2_000, "{status}");
}

/// kill -9 while a large checkpoint is being written (every key changed since the
/// previous one, so it rewrites them all), at seeded moments spread over the time a
/// checkpoint that large takes: the restarted job comes back from the previous
/// checkpoint or the new one, never from a part of one, and its windows equal what was
/// acknowledged. The kill lands before the commit in at least one round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_a_checkpoint_is_written_keeps_the_previous_one() {
    const KEYS: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let mut server = Server::start(dir.path(), 0, 2).await;
    let spec = json!({
        "name": "d", "dataflow": "window_agg", "checkpoint_interval_ms": 0,
        "params": {"window": {"tumbling": {"size": 3_600_000}}, "idle_timeout_ms": null},
    });
    let created = client.post(format!("{}/api/v1/jobs", server.base)).json(&spec).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let post = |base: &str, path: &str, body: Value| client.post(format!("{base}{path}")).json(&body).send();
    // Round r sets every key's value to r: each checkpoint after it rewrites every key.
    let feed = |base: String, round: i64| {
        let client = client.clone();
        async move {
            for chunk in (0..KEYS).collect::<Vec<_>>().chunks(5_000) {
                let records: Vec<Value> =
                    chunk.iter().map(|k| json!({"key": format!("k{k}"), "ts": 10, "value": round})).collect();
                let answer = client.post(format!("{base}/api/v1/jobs/d/inputs/events")).json(&records).send();
                assert_eq!(answer.await.unwrap().status(), 200);
            }
        }
    };
    feed(server.base.clone(), 1).await;
    let first: Value = post(&server.base, "/api/v1/jobs/d/checkpoint", json!({})).await.unwrap().json().await.unwrap();
    let took = first["duration_ms"].as_u64().unwrap_or_else(|| panic!("{first}")).max(5);

    let mut restored_from = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for round in 2..5i64 {
        feed(server.base.clone(), round).await;
        let base = server.base.clone();
        let checkpoint = tokio::spawn(post(&base, "/api/v1/jobs/d/checkpoint", json!({})));
        let kill_at = took * rng.random_range(10..90) / 100;
        tokio::time::sleep(Duration::from_millis(kill_at)).await;
        server.child.kill();
        let answered = checkpoint.await.unwrap().is_ok();
        server = Server::start(dir.path(), round as usize, 2).await;
        let status: Value =
            client.get(format!("{}/api/v1/jobs/d", server.base)).send().await.unwrap().json().await.unwrap();
        assert_eq!(status["state"], "running", "{status}");
        restored_from.push((status["checkpoint"]["id"].as_u64(), answered, kill_at));
        // An advance answers once the outputs reflect everything before it.
        let advanced = post(&server.base, "/api/v1/jobs/d/inputs/events/advance", json!({"watermark": 1})).await;
        assert_eq!(advanced.unwrap().status(), 200);
        // Every key once per round, each round's value summed: nothing lost, nothing twice.
        let answer = client.get(format!("{}/api/v1/jobs/d/outputs/windows", server.base)).send().await.unwrap();
        let body: Value = answer.json().await.unwrap();
        let rows = body["rows"].as_array().unwrap();
        assert_eq!(rows.len(), KEYS, "round {round}: {restored_from:?}");
        let expected_sum = (1..=round).sum::<i64>() as f64;
        let wrong: Vec<_> =
            rows.iter().filter(|r| r["count"] != round || r["sum"].as_f64() != Some(expected_sum)).take(3).collect();
        assert!(wrong.is_empty(), "round {round}, restored from {restored_from:?}: {wrong:?}");
        // Files of a checkpoint cut short are collected: the manifest names every file.
        let checkpoints = dir.path().join("data/checkpoints/d");
        let mut files: Vec<String> =
            std::fs::read_dir(&checkpoints).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        files.sort();
        let manifests: Vec<String> = files.extract_if(.., |f| f.starts_with("manifest-")).collect();
        assert_eq!(manifests.len(), 1, "{manifests:?}");
        let manifest = &manifests[0];
        let manifest: Value = serde_json::from_slice(&std::fs::read(checkpoints.join(manifest)).unwrap()).unwrap();
        let named: Vec<&str> = manifest["parts"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|chain| chain.as_array().unwrap().iter().map(|p| p["file"].as_str().unwrap()))
            .collect();
        assert!(files.iter().all(|f| named.contains(&f.as_str())), "files no manifest names: {files:?} {manifest}");
    }
    eprintln!("restored from (checkpoint, answered, killed after ms): {restored_from:?}");
    assert!(
        restored_from.iter().any(|(_, answered, _)| !answered),
        "no kill landed in a checkpoint: {restored_from:?}"
    );
    server.child.kill();
}
