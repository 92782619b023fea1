//! Failure isolation: a job whose pipeline panics (`chaos` with a poisoned key) goes to
//! `restarting`, is started again with backoff, and stays `failed` after 5 failures in
//! a row; meanwhile a healthy job on the same server keeps ingesting and answering, and
//! the failed job can be deleted.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::service::{TestOptions, TestServer};

fn events(key: &str, n: usize) -> Value {
    Value::Array((0..n).map(|i| json!({"key": key, "ts": i, "value": 1})).collect())
}

async fn state(server: &TestServer, job: &str) -> (String, u64, String) {
    let (status, body) = server.get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(status, 200, "{body}");
    let error = body["error"].as_str().unwrap_or_default().to_string();
    (body["state"].as_str().unwrap().to_string(), body["restarts"].as_u64().unwrap(), error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_restarts_alone_then_fails() {
    let mut server = TestServer::start_with(TestOptions { workers: 2, ..TestOptions::default() }).await;
    for (name, params) in [("healthy", json!({})), ("poisoned", json!({"panic_on_key": "boom"}))] {
        let (status, body) =
            server.post("/api/v1/jobs", &json!({"name": name, "dataflow": "chaos", "params": params})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, _) = server.post("/api/v1/jobs/poisoned/inputs/events", &events("fine", 3)).await;
    assert_eq!(status, 200);
    assert_eq!(state(&server, "poisoned").await.0, "running");
    // The poisoned record is acknowledged (it is durable): the pipeline fails on it
    // when it is applied, and again each time the job comes back and replays it.
    let (status, body) = server.post("/api/v1/jobs/poisoned/inputs/events", &events("boom", 1)).await;
    assert_eq!(status, 200, "{body}");

    let started = Instant::now();
    let mut healthy_sent = 0u64;
    let mut seen_restarting = false;
    let mut refused_while_restarting = false;
    let mut restarts_seen = 0;
    loop {
        // The healthy job notices nothing: every request is answered, and at once.
        let asked = Instant::now();
        let (status, body) = server.post("/api/v1/jobs/healthy/inputs/events", &events("a", 10)).await;
        assert_eq!(status, 200, "healthy job refused a request: {body}");
        healthy_sent += 10;
        let (status, body) = server.get("/api/v1/jobs/healthy/outputs/counts?key=a").await;
        assert_eq!(status, 200, "{body}");
        assert!(asked.elapsed() < Duration::from_secs(5), "the healthy job took {:?}", asked.elapsed());
        assert_eq!(state(&server, "healthy").await.0, "running");

        let (job_state, restarts, error) = state(&server, "poisoned").await;
        restarts_seen = restarts_seen.max(restarts);
        match job_state.as_str() {
            "restarting" => {
                seen_restarting = true;
                assert!(error.contains("boom"), "the error says why: {error}");
                if !refused_while_restarting {
                    let (status, body) = server.post("/api/v1/jobs/poisoned/inputs/events", &events("x", 1)).await;
                    assert_eq!(status, 503, "{body}");
                    assert_eq!(body["error"]["code"], "job_restarting", "{body}");
                    refused_while_restarting = true;
                }
            }
            "failed" => {
                assert!(error.contains("boom") && error.contains("5 failures"), "{error}");
                break;
            }
            "running" => {}
            other => panic!("unexpected state {other}"),
        }
        // Backoffs of 1, 2, 4 and 8 s before the fifth failure.
        assert!(started.elapsed() < Duration::from_secs(60), "not failed after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_restarting && refused_while_restarting);
    let (_, restarts, _) = state(&server, "poisoned").await;
    assert_eq!(restarts, 4, "four restarts, the fifth failure is final");
    assert!(restarts_seen >= 1);
    // Backoff: at least 1 + 2 + 4 + 8 s passed.
    assert!(started.elapsed() >= Duration::from_secs(15), "backoff too short: {:?}", started.elapsed());
    // The failed job keeps what it had before the poison, readable.
    let (status, body) = server.get("/api/v1/jobs/poisoned/outputs/counts?key=fine").await;
    assert_eq!(status, 200, "{body}");

    // Its history tells the story: four restarts, each after a failure, then failed.
    let (status, history) = server.get("/api/v1/jobs/poisoned/history").await;
    assert_eq!(status, 200, "{history}");
    let events: Vec<&str> = history.as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events.iter().filter(|e| **e == "restarting").count(), 4, "{history:#}");
    assert_eq!(events.last(), Some(&"failed"), "{history:#}");
    let restarting = history.as_array().unwrap().iter().find(|e| e["event"] == "restarting").unwrap();
    assert!(restarting["error"].as_str().unwrap().contains("boom"), "{restarting}");

    assert_eq!(server.delete("/api/v1/jobs/poisoned").await, 204);
    let (status, _) = server.get("/api/v1/jobs/poisoned").await;
    assert_eq!(status, 404);
    let (status, body) =
        server.post("/api/v1/jobs/healthy/inputs/events/advance", &json!({"watermark": 1_000_000})).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = server.get("/api/v1/jobs/healthy/outputs/counts?key=a").await;
    assert_eq!(body["rows"][0]["count"], healthy_sent, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_interval_is_a_job_spec_field() {
    let server = TestServer::start_with(TestOptions { workers: 1, ..TestOptions::default() }).await;
    let (status, body) =
        server.post("/api/v1/jobs", &json!({"name": "fine", "dataflow": "chaos", "checkpoint_interval_ms": 0})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        server.post("/api/v1/jobs", &json!({"name": "bad", "dataflow": "chaos", "checkpoint_interval_ms": 50})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("checkpoint_interval_ms: "), "{body}");
    let (_, body) = server.get("/api/v1/jobs/fine").await;
    assert_eq!(body["restarts"], 0, "{body}");
}

/// A persisted job whose pipeline panics while it is built when the server starts (here
/// its spec was edited to `panic_on_build`, as a new build of a dataflow might) is
/// listed as `restarting` with the panic in its `error`, is tried again with backoff,
/// and can be deleted, files and all; the other job comes back as it was. Created so,
/// a job is refused (422 `build_failed`) and nothing is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_panics_while_built_at_a_restart_is_listed_and_can_be_deleted() {
    let options = || TestOptions { workers: 1, ..TestOptions::default() };
    let mut server = TestServer::start_with(options()).await;
    let spec = json!({"name": "refused", "dataflow": "chaos", "params": {"panic_on_build": true}});
    let (status, body) = server.post("/api/v1/jobs", &spec).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("build_failed")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("panic_on_build"), "{body}");
    assert_eq!(server.get("/api/v1/jobs/refused").await.0, 404);
    for name in ["fragile", "healthy"] {
        let (status, body) = server.post("/api/v1/jobs", &json!({"name": name, "dataflow": "chaos"})).await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = server.post(&format!("/api/v1/jobs/{name}/inputs/events"), &events("a", 5)).await;
        assert_eq!(status, 200, "{body}");
    }
    server.stop().await;
    let persisted = server.data_dir.join("jobs/fragile.json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&persisted).unwrap()).unwrap();
    spec["params"]["panic_on_build"] = json!(true);
    std::fs::write(&persisted, serde_json::to_vec(&spec).unwrap()).unwrap();

    let mut server = TestServer::start_in(server.data_dir.clone(), options()).await;
    let (status, list) = server.get("/api/v1/jobs").await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["fragile", "healthy"], "{list}");
    let (job_state, _, error) = state(&server, "fragile").await;
    assert_eq!(job_state, "restarting", "{error}");
    assert!(error.contains("panic_on_build"), "the error says why: {error}");
    let (status, body) = server.post("/api/v1/jobs/fragile/inputs/events", &events("b", 1)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("job_restarting")), "{body}");
    // Tried again after its backoff (1 s), failing the same way.
    let deadline = Instant::now() + Duration::from_secs(20);
    while state(&server, "fragile").await.1 == 0 {
        assert!(Instant::now() < deadline, "not tried again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(state(&server, "fragile").await.0, "running");

    assert_eq!(server.delete("/api/v1/jobs/fragile").await, 204);
    assert_eq!(server.get("/api/v1/jobs/fragile").await.0, 404);
    assert!(!persisted.exists(), "its spec stays on disk");
    let (status, body) =
        server.post("/api/v1/jobs/healthy/inputs/events/advance", &json!({"watermark": 1_000_000})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.get("/api/v1/jobs/healthy/outputs/counts?key=a").await;
    assert_eq!((status, &body["rows"][0]["count"]), (200, &json!(5)), "{body}");
    server.stop().await;

    // Gone for good: a restart does not bring it back.
    let mut server = TestServer::start_in(server.data_dir.clone(), options()).await;
    assert_eq!(server.get("/api/v1/jobs/fragile").await.0, 404);
    assert_eq!(state(&server, "healthy").await.0, "running");
    server.stop().await;
}

/// A persisted job whose spec no longer validates (its dataflow is gone from a new build)
/// is not restored, but deleting it removes what it left, and it stays gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_cannot_be_restored_can_be_deleted() {
    let options = || TestOptions { workers: 1, ..TestOptions::default() };
    let mut server = TestServer::start_with(options()).await;
    let (status, body) = server.post("/api/v1/jobs", &json!({"name": "gone", "dataflow": "chaos"})).await;
    assert_eq!(status, 201, "{body}");
    server.stop().await;
    let persisted = server.data_dir.join("jobs/gone.json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&persisted).unwrap()).unwrap();
    spec["dataflow"] = json!("removed_dataflow");
    std::fs::write(&persisted, serde_json::to_vec(&spec).unwrap()).unwrap();

    let mut server = TestServer::start_in(server.data_dir.clone(), options()).await;
    assert_eq!(server.get("/api/v1/jobs/gone").await.0, 404, "not restored");
    assert_eq!(server.delete("/api/v1/jobs/gone").await, 204, "what it left is deleted");
    assert!(!persisted.exists() && !server.data_dir.join("history/gone.ndjson").exists());
    assert_eq!(server.delete("/api/v1/jobs/gone").await, 404);
    assert_eq!(server.delete("/api/v1/jobs/..").await, 404);
    server.stop().await;
}
