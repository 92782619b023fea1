//! Acknowledged means durable: the real binary killed (`kill -9`) at seeded random
//! moments while four writers feed it over HTTP, restarted on the same data
//! directory, three rounds; every acknowledged request is applied exactly once, every
//! request all or nothing.
//!
//! Each request carries the records of one key of its own, all in one window, so its
//! window row tells whether it was applied, and whole: the row must be absent or hold
//! exactly the request's count and sum. Acknowledged requests must have their row;
//! requests cut by the kill (sent, no answer) may have it or not; no other row may
//! exist. Lateness cannot hide a record: `max_out_of_orderness` is larger than any
//! event time, so no record is too late whatever order the writers' requests took.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::service::{Child, spawn_in};

const WRITERS: usize = 4;
const RECORDS_PER_REQUEST: usize = 20;
const WINDOW: u64 = 1_000;

/// What became of the requests sent: key -> (count, sum) for the acknowledged ones
/// and for the ones the kill cut (no answer).
#[derive(Default)]
struct Sent {
    acknowledged: BTreeMap<String, (u64, i64)>,
    cut: BTreeMap<String, (u64, i64)>,
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(dir: &Path, round: usize) -> Server {
        let (child, base) = spawn_in(dir, &format!("server-{round}")).await;
        Server { child, base }
    }
}

/// The records of request `n` of writer `w`: one key, one window, values from `rng`.
fn request(w: usize, n: usize, rng: &mut ChaCha8Rng) -> (String, Vec<Value>, (u64, i64)) {
    let key = format!("w{w}-r{n}");
    let start = rng.random_range(0..500u64) * WINDOW;
    let records: Vec<Value> = (0..RECORDS_PER_REQUEST)
        .map(|_| json!({"key": key, "ts": start + rng.random_range(0..WINDOW), "value": rng.random_range(-100..100)}))
        .collect();
    let sum = records.iter().map(|r| r["value"].as_i64().unwrap()).sum();
    (key, records, (RECORDS_PER_REQUEST as u64, sum))
}

/// Writer `w` posts requests until its client fails (the server was killed).
async fn write(base: String, w: usize, round: usize, seed: u64, sent: Arc<Mutex<Sent>>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((w as u64) << 32) ^ round as u64);
    for n in 0.. {
        let (key, records, expected) = request(w, round * 1_000_000 + n, &mut rng);
        let answer = client.post(format!("{base}/api/v1/jobs/d/inputs/events")).json(&records).send().await;
        match answer {
            Ok(response) if response.status() == 200 => {
                sent.lock().unwrap().acknowledged.insert(key, expected);
            }
            Ok(response) => panic!("writer {w}: answered {}: {:?}", response.status(), response.text().await),
            Err(_) => {
                sent.lock().unwrap().cut.insert(key, expected);
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_requests_survive_kill_9_exactly_once() {
    kill_9_rounds(0).await;
}

/// The same with a checkpoint every 150 ms: kills land before, during and after
/// checkpoints, and a restarted job comes back from its last checkpoint plus what its
/// log holds after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_requests_survive_kill_9_with_checkpoints() {
    kill_9_rounds(150).await;
}

/// Three rounds of four writers and a kill -9 at a seeded moment, on a job that
/// checkpoints every `interval` ms (never with 0); then every row is checked.
async fn kill_9_rounds(interval: u64) {
    let seed: u64 = std::env::var("TIDEMARK_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let sent = Arc::new(Mutex::new(Sent::default()));
    let client = reqwest::Client::new();

    let mut server = Server::start(dir.path(), 0).await;
    let spec = json!({
        "name": "d",
        "dataflow": "window_agg",
        "params": {
            "window": {"tumbling": {"size": WINDOW}},
            "max_out_of_orderness": 1_000_000_000u64,
            "idle_timeout_ms": null,
        },
        "checkpoint_interval_ms": interval,
    });
    let created = client.post(format!("{}/api/v1/jobs", server.base)).json(&spec).send().await.unwrap();
    assert_eq!(created.status(), 201, "{:?}", created.text().await);

    let mut checkpoints = Vec::new();
    for round in 0..3 {
        let writers: Vec<_> =
            (0..WRITERS).map(|w| tokio::spawn(write(server.base.clone(), w, round, seed, sent.clone()))).collect();
        // Kill at a seeded random moment while the writers run.
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1200))).await;
        server.child.kill();
        for writer in writers {
            writer.await.expect("writer");
        }
        server = Server::start(dir.path(), round + 1).await;
        let status: Value =
            client.get(format!("{}/api/v1/jobs/d", server.base)).send().await.unwrap().json().await.unwrap();
        checkpoints.push(status["checkpoint"]["id"].as_u64());
    }
    if interval > 0 {
        // The restarted jobs came back from checkpoints, later and later ones.
        assert!(checkpoints.iter().all(Option::is_some), "restored from checkpoints: {checkpoints:?}");
        assert!(checkpoints.windows(2).all(|w| w[0] < w[1]), "{checkpoints:?}");
    } else {
        assert!(checkpoints.iter().all(Option::is_none), "{checkpoints:?}");
    }

    // Past every event time (windows stay for `retention`, an hour of event time).
    let advance = json!({"watermark": 600_000});
    let advanced =
        client.post(format!("{}/api/v1/jobs/d/inputs/events/advance", server.base)).json(&advance).send().await;
    assert_eq!(advanced.unwrap().status(), 200);
    let answer = client.get(format!("{}/api/v1/jobs/d/outputs/windows", server.base)).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    let rows: BTreeMap<String, (u64, i64)> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let sum = r["sum"].as_f64().unwrap();
            (r["key"].as_str().unwrap().to_string(), (r["count"].as_u64().unwrap(), sum as i64))
        })
        .collect();
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    assert!(sent.acknowledged.len() > 3 * WRITERS, "too few requests got through: {}", sent.acknowledged.len());
    let mut wrong = Vec::new();
    for (key, expected) in &sent.acknowledged {
        if rows.get(key) != Some(expected) {
            wrong.push(format!("acknowledged {key}: expected {expected:?}, found {:?}", rows.get(key)));
        }
    }
    for (key, found) in &rows {
        match (sent.acknowledged.get(key), sent.cut.get(key)) {
            (Some(_), _) => {}
            (None, Some(expected)) if found == expected => {}
            (None, Some(expected)) => wrong.push(format!("cut {key}: in part, {found:?} of {expected:?}")),
            (None, None) => wrong.push(format!("{key}: never sent, found {found:?}")),
        }
    }
    assert!(wrong.is_empty(), "{} of {} rows wrong:\n{}", wrong.len(), rows.len(), wrong.join("\n"));
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
    let mut server = Server::start(dir.path(), 0).await;
    for name in ["broken", "fine"] {
        let spec =
            json!({"name": name, "dataflow": "window_agg", "params": {"window": {"tumbling": {"size": WINDOW}}}});
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

    let server = Server::start(dir.path(), 1).await;
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
    let mut server = Server::start(dir.path(), 0).await;
    let spec = json!({
        "name": "idle",
        "dataflow": "window_agg",
        "params": {"window": {"tumbling": {"size": WINDOW}}, "idle_timeout_ms": 200},
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

    let server = Server::start(dir.path(), 1).await;
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
    let mut server = Server::start(dir.path(), 0).await;
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
        server = Server::start(dir.path(), round as usize).await;
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
