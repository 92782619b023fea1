//! File sources: over the API only below `--file-root`, never through `..` or a
//! symlink out of it, and not at all without a root; the configuration file may name
//! any file. Kafka properties that name the server's files are refused over the API.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidemark::job::file_root::FileRoot;
use tidemark::job::manager::JobSettings;

use super::{assert_error, send, within};
use crate::service::{TestOptions, TestServer};

fn file_job(name: &str, path: &Path) -> Value {
    json!({"name": name, "dataflow": "window_agg", "params": {"window": {"tumbling": {"size": 1000}}},
        "inputs": {"events": {"source": "file", "path": path}}})
}

/// POST /api/v1/jobs with `spec`.
async fn create(server: &TestServer, spec: &Value) -> (u16, Value) {
    within("create", server.post("/api/v1/jobs", spec)).await
}

/// A 422 naming the file source's path, and no job left behind.
async fn assert_refused(server: &TestServer, what: &str, spec: &Value) {
    let answer = create(server, spec).await;
    assert_error(what, &answer, 422, "invalid_source");
    let message = answer.1["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("inputs.events.path"), "{what}: {message}");
    let name = spec["name"].as_str().expect("name");
    assert_eq!(server.get(&format!("/api/v1/jobs/{name}")).await.0, 404, "{what}: the job exists");
}

/// Waits until job `name` accepted `n` records.
async fn accepted(server: &TestServer, name: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, job) = server.get(&format!("/api/v1/jobs/{name}")).await;
        if job["inputs"]["events"]["accepted"] == n {
            return;
        }
        assert!(Instant::now() < deadline, "job {name} never accepted {n} records: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sources_read_only_below_the_root() {
    let base = tempfile::tempdir().expect("temp dir");
    let root = base.path().join("root");
    std::fs::create_dir_all(root.join("sub")).expect("dirs");
    let records = "{\"key\":\"a\",\"ts\":1,\"value\":1}\n{\"key\":\"b\",\"ts\":2,\"value\":2}\n";
    std::fs::write(root.join("sub/in.ndjson"), records).expect("inside");
    let outside = base.path().join("secret.ndjson");
    std::fs::write(&outside, "the server's secret\n").expect("outside");
    std::os::unix::fs::symlink(&outside, root.join("link.ndjson")).expect("symlink out");
    std::os::unix::fs::symlink(root.join("sub/in.ndjson"), root.join("alias.ndjson")).expect("symlink in");

    let settings = JobSettings { file_root: Some(FileRoot::new(&root).expect("root")), ..JobSettings::default() };
    let mut server = TestServer::start_with(TestOptions { settings, ..TestOptions::default() }).await;
    assert_refused(&server, "outside the root", &file_job("outside", &outside)).await;
    assert_refused(&server, "/etc/passwd", &file_job("passwd", Path::new("/etc/passwd"))).await;
    assert_refused(&server, "`..`", &file_job("dotdot", Path::new("../secret.ndjson"))).await;
    assert_refused(&server, "`..` that stays inside", &file_job("dotdot2", Path::new("sub/../sub/in.ndjson"))).await;
    assert_refused(&server, "a symlink out", &file_job("link", Path::new("link.ndjson"))).await;
    assert_refused(&server, "a directory", &file_job("dir", Path::new("sub"))).await;
    assert_refused(&server, "a missing file", &file_job("missing", Path::new("nope.ndjson"))).await;

    for (name, path) in [
        ("relative", Path::new("sub/in.ndjson").to_path_buf()),
        ("absolute", root.join("sub/in.ndjson")),
        ("alias", Path::new("alias.ndjson").to_path_buf()),
    ] {
        let (status, body) = create(&server, &file_job(name, &path)).await;
        assert_eq!(status, 201, "{name}: {body}");
        accepted(&server, name, 2).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_root_only_the_configuration_names_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("in.ndjson");
    std::fs::write(&path, "{\"key\":\"a\",\"ts\":1,\"value\":1}\n").expect("file");
    let from_config = serde_json::from_value(file_job("configured", &path)).expect("spec");
    let mut server = TestServer::start_with(TestOptions { jobs: vec![from_config], ..TestOptions::default() }).await;
    accepted(&server, "configured", 1).await;

    // The example: a client reading the server's files through dead letters.
    let answer = create(&server, &file_job("passwd", Path::new("/etc/passwd"))).await;
    assert_error("no root", &answer, 422, "invalid_source");
    assert!(answer.1["error"]["message"].as_str().is_some_and(|m| m.contains("--file-root")), "{answer:?}");
    assert_refused(&server, "no root", &file_job("same", &path)).await;

    // Kafka clients may not be pointed at the server's files, libraries or commands.
    for property in ["ssl.key.location", "plugin.library.paths", "sasl.kerberos.kinit.cmd"] {
        let spec = json!({"name": "k", "dataflow": "window_agg", "params": {"window": {"tumbling": {"size": 1000}}},
            "inputs": {"events": {"source": "kafka", "brokers": "127.0.0.1:1", "topic": "t",
                "config": {property: "/etc/passwd"}}}});
        let answer = send(server.client.post(server.url("/api/v1/jobs")).json(&spec)).await;
        assert_error(property, &answer, 422, "invalid_source");
        let message = answer.1["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("inputs.events.config.{property}")), "{message}");
    }
    server.stop().await;
}
