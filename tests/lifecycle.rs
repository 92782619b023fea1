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
