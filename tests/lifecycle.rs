//! Job lifecycle over HTTP (API.md, "Lifecycle"): suspend and resume, across a
//! restart of the server, against a job that was never suspended; the job's history.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::service::{TestOptions, TestServer};

/// Batches of `window_agg` events, time moving on, some late and some too late.
fn batches(seed: u64) -> Vec<Value> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut now = 10_000u64;
    (0..30)
        .map(|_| {
            let events: Vec<Value> = (0..rng.random_range(1..40))
                .map(|_| {
                    now += rng.random_range(0..100);
                    let ts = match rng.random_range(0..20) {
                        0 => now.saturating_sub(rng.random_range(2_000..4_000)),
                        1 => now.saturating_sub(rng.random_range(8_000..20_000)),
                        _ => now.saturating_sub(rng.random_range(0..1_000)),
                    };
                    let key = ["a", "b", "c", "d", "e"][rng.random_range(0..5)];
                    json!({"key": key, "ts": ts, "value": rng.random_range(-50..50)})
                })
                .collect();
            Value::Array(events)
        })
        .collect()
}

fn spec(name: &str) -> Value {
    json!({
        "name": name,
        "dataflow": "window_agg",
        "params": {"window": {"tumbling": {"size": 1000}}, "max_out_of_orderness": 500, "allowed_lateness": 2000,
                   "idle_timeout_ms": null},
        "checkpoint_interval_ms": 0,
    })
}

async fn feed(server: &TestServer, job: &str, batches: &[Value]) {
    for batch in batches {
        let (status, body) = server.post(&format!("/api/v1/jobs/{job}/inputs/events"), batch).await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn state(server: &TestServer, job: &str) -> String {
    let (status, body) = server.get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(status, 200, "{body}");
    body["state"].as_str().unwrap().to_string()
}

/// Job `s` is suspended after a third of the input, the server restarted while it is,
/// and resumed; job `u` gets the same input and the same checkpoint, uninterrupted.
/// Suspended, `s` refuses ingest with 409 and serves its outputs as they were; at the
/// end both have the same windows and dead letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_then_resume_equals_an_uninterrupted_run() {
    let batches = batches(3);
    let (first, second) = (10, 20);
    let mut server = TestServer::start_with(TestOptions { workers: 2, ..TestOptions::default() }).await;
    for job in ["s", "u"] {
        assert_eq!(server.post("/api/v1/jobs", &spec(job)).await.0, 201);
        feed(&server, job, &batches[..first]).await;
    }
    let (status, suspended) = server.post("/api/v1/jobs/s/suspend", &json!({})).await;
    assert_eq!((status, suspended["state"].as_str()), (200, Some("suspended")), "{suspended}");
    // The same checkpoint for the uninterrupted job: a checkpoint moves the frontier.
    assert_eq!(server.post("/api/v1/jobs/u/checkpoint", &json!({})).await.0, 200);
    let at_suspend = server.snapshot("s", &["windows", "dead_letter"]).await;
    assert!(at_suspend["windows"].len() > 5, "{at_suspend:?}");

    let (status, body) = server.post("/api/v1/jobs/s/inputs/events", &batches[first]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("job_suspended")), "{body}");
    let (status, again) = server.post("/api/v1/jobs/s/suspend", &json!({})).await;
    assert_eq!((status, again["state"].as_str()), (200, Some("suspended")), "suspending twice: {again}");
    feed(&server, "u", &batches[first..second]).await;
    server.stop().await;

    let mut server =
        TestServer::start_in(server.data_dir.clone(), TestOptions { workers: 1, ..TestOptions::default() }).await;
    assert_eq!(state(&server, "s").await, "suspended", "suspended across a restart");
    let metrics = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"tidemark_job_state{job="s",state="suspended"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"tidemark_job_state{job="s",state="running"} 0"#), "{metrics}");
    assert_eq!(server.snapshot("s", &["windows", "dead_letter"]).await, at_suspend, "its outputs as they were");
    let (status, body) = server.post("/api/v1/jobs/s/inputs/events/advance", &json!({"watermark": 1})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("job_suspended")), "{body}");

    let (status, resumed) = server.post("/api/v1/jobs/s/resume", &json!({})).await;
    assert_eq!((status, resumed["state"].as_str()), (200, Some("running")), "{resumed}");
    let (status, again) = server.post("/api/v1/jobs/s/resume", &json!({})).await;
    assert_eq!((status, again["state"].as_str()), (200, Some("running")), "resuming twice: {again}");
    feed(&server, "s", &batches[first..second]).await;
    for job in ["s", "u"] {
        feed(&server, job, &batches[second..]).await;
        let settle = json!({"watermark": 1_000_000});
        assert_eq!(server.post(&format!("/api/v1/jobs/{job}/inputs/events/advance"), &settle).await.0, 200);
    }
    let (resumed, steady) = (
        server.snapshot("s", &["windows", "dead_letter"]).await,
        server.snapshot("u", &["windows", "dead_letter"]).await,
    );
    assert!(steady["dead_letter"].len() > 3, "some records were too late: {steady:?}");
    assert_eq!(resumed, steady, "suspended and resumed, as if never suspended");

    // What happened, oldest first, kept across the restart.
    let (status, history) = server.get("/api/v1/jobs/s/history").await;
    assert_eq!(status, 200, "{history}");
    let events: Vec<&str> = history.as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["created", "started", "checkpoint", "suspended", "started", "resumed"], "{history:#}");
    let at: Vec<u64> = history.as_array().unwrap().iter().map(|e| e["at"].as_u64().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "{history:#}");
    assert_eq!(history[3]["checkpoint"], history[2]["id"], "{history:#}");
    server.stop().await;
}

/// Suspending asks for a running job that can be checkpointed; unknown jobs are 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_resume_errors() {
    let mut server = TestServer::start().await;
    assert_eq!(server.post("/api/v1/jobs/nope/suspend", &json!({})).await.0, 404);
    assert_eq!(server.post("/api/v1/jobs/nope/resume", &json!({})).await.0, 404);
    assert_eq!(server.get("/api/v1/jobs/nope/history").await.0, 404);
    let generated = json!({"name": "g", "dataflow": "window_agg", "params": {"window": {"tumbling": {"size": 1000}}},
        "inputs": {"events": {"source": "generator", "stream": "events", "rate": 10}}});
    assert_eq!(server.post("/api/v1/jobs", &generated).await.0, 201);
    let (status, body) = server.post("/api/v1/jobs/g/suspend", &json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("not_checkpointable")), "{body}");
    assert_eq!(state(&server, "g").await, "running", "a job that cannot be suspended runs on");
    server.stop().await;
}

/// Savepoints: taken (201), listed, and a new job started from one (the same
/// parameters, or changed ones) and fed the same later input equals the original.
/// The savepoint outlives the original's later checkpoints and their compaction, and
/// goes when deleted; its job's deletion takes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_from_a_savepoint_equals_the_original() {
    let batches = batches(5);
    let split = 12;
    let mut server = TestServer::start_with(TestOptions { workers: 2, ..TestOptions::default() }).await;
    assert_eq!(server.post("/api/v1/jobs", &spec("o")).await.0, 201);
    feed(&server, "o", &batches[..split]).await;
    let (status, taken) = server.post("/api/v1/jobs/o/savepoints", &json!({})).await;
    assert_eq!(status, 201, "{taken}");
    assert!(taken["bytes"].as_u64() > Some(0) && taken["frontier"].as_u64() > Some(0), "{taken}");
    let id = taken["id"].as_u64().unwrap();
    // The original goes on, checkpointing (and compacting) past the savepoint.
    for batch in &batches[split..] {
        feed(&server, "o", std::slice::from_ref(batch)).await;
        assert_eq!(server.post("/api/v1/jobs/o/checkpoint", &json!({})).await.0, 200);
    }

    let mut copy = spec("c");
    copy["from_savepoint"] = json!({"job": "o", "id": id});
    let (status, body) = server.post("/api/v1/jobs", &copy).await;
    assert_eq!(status, 201, "{body}");
    let mut changed = spec("e");
    changed["params"]["emit"] = json!("final");
    changed["from_savepoint"] = json!({"job": "o", "id": id});
    assert_eq!(server.post("/api/v1/jobs", &changed).await.0, 201);
    for job in ["c", "e"] {
        feed(&server, job, &batches[split..]).await;
    }
    for job in ["o", "c", "e"] {
        let settle = json!({"watermark": 1_000_000});
        assert_eq!(server.post(&format!("/api/v1/jobs/{job}/inputs/events/advance"), &settle).await.0, 200);
    }
    let original = server.snapshot("o", &["windows", "dead_letter"]).await;
    assert!(original["windows"].len() > 10, "{original:?}");
    assert_eq!(server.snapshot("c", &["windows", "dead_letter"]).await, original, "from the savepoint");
    // Past every window's end all are final: `emit: final` shows the same rows.
    assert_eq!(server.snapshot("e", &["windows"]).await["windows"], original["windows"], "changed params");
    let (_, history) = server.get("/api/v1/jobs/c/history").await;
    assert_eq!(history[0]["from_savepoint"], json!({"job": "o", "id": id}), "{history:#}");

    let (status, listed) = server.get("/api/v1/jobs/o/savepoints").await;
    assert_eq!((status, listed.as_array().map(Vec::len)), (200, Some(1)), "{listed}");
    assert_eq!(listed[0], taken);
    assert_eq!(server.delete(&format!("/api/v1/jobs/o/savepoints/{id}")).await, 204);
    assert_eq!(server.delete(&format!("/api/v1/jobs/o/savepoints/{id}")).await, 404);
    assert_eq!(server.delete("/api/v1/jobs/o/savepoints/x").await, 404);
    assert_eq!(server.get("/api/v1/jobs/o/savepoints").await.1, json!([]));
    let (status, body) = server
        .post("/api/v1/jobs", &{
            let mut gone = spec("g");
            gone["from_savepoint"] = json!({"job": "o", "id": id});
            gone
        })
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_spec")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("from_savepoint"), "{body}");

    // State of another layout does not fit: windows of another size are refused.
    let (_, fresh) = server.post("/api/v1/jobs/o/savepoints", &json!({})).await;
    let mut resized = spec("r");
    resized["params"]["window"] = json!({"tumbling": {"size": 2000}});
    resized["from_savepoint"] = json!({"job": "o", "id": fresh["id"]});
    let (status, body) = server.post("/api/v1/jobs", &resized).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("build_failed")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("does not fit"), "{body}");
    assert_eq!(server.get("/api/v1/jobs/r").await.0, 404);

    // Parameters that build other operators do not fit either: word counts over
    // everything, then per window.
    let words = json!({"name": "wc", "dataflow": "word_count", "checkpoint_interval_ms": 0});
    assert_eq!(server.post("/api/v1/jobs", &words).await.0, 201);
    let lines = json!([{"text": "a b a", "ts": 1}, {"text": "b", "ts": 2}]);
    assert_eq!(server.post("/api/v1/jobs/wc/inputs/lines", &lines).await.0, 200);
    let (status, words_saved) = server.post("/api/v1/jobs/wc/savepoints", &json!({})).await;
    assert_eq!(status, 201, "{words_saved}");
    let windowed = json!({"name": "wcw", "dataflow": "word_count", "params": {"window": {"tumbling": {"size": 1000}}},
        "from_savepoint": {"job": "wc", "id": words_saved["id"]}});
    let (status, body) = server.post("/api/v1/jobs", &windowed).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("state_does_not_fit")), "{body}");
    assert_eq!(server.get("/api/v1/jobs/wcw").await.0, 404);
    let same =
        json!({"name": "wc2", "dataflow": "word_count", "from_savepoint": {"job": "wc", "id": words_saved["id"]}});
    assert_eq!(server.post("/api/v1/jobs", &same).await.0, 201, "the same operators fit");
    let settle = json!({"watermark": 1_000_000});
    assert_eq!(server.post("/api/v1/jobs/wc2/inputs/lines/advance", &settle).await.0, 200);
    assert_eq!(server.post("/api/v1/jobs/wc/inputs/lines/advance", &settle).await.0, 200);
    assert_eq!(server.snapshot("wc2", &["counts"]).await, server.snapshot("wc", &["counts"]).await);

    // A savepoint names a job, never a path.
    let mut escaping = spec("x");
    escaping["from_savepoint"] = json!({"job": "../../..", "id": 1});
    let (status, body) = server.post("/api/v1/jobs", &escaping).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_spec")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("not a job's name"), "{body}");

    // Another dataflow cannot start from it.
    let (_, again) = server.post("/api/v1/jobs/o/savepoints", &json!({})).await;
    let other = json!({"name": "w", "dataflow": "chaos", "from_savepoint": {"job": "o", "id": again["id"]}});
    let (status, body) = server.post("/api/v1/jobs", &other).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(server.delete("/api/v1/jobs/o").await, 204);
    assert!(!server.data_dir.join("savepoints/o").exists(), "the job's savepoints went with it");
    server.stop().await;
}
