//! `tidemark jobs ...` against a real server: every subcommand, its JSON output and its
//! exit codes (0 success, 1 the server's error, 2 usage).

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::service::{TestOptions, TestServer};

/// Runs `tidemark jobs ARGS` against `server` (none: a closed port).
async fn jobs(server: Option<&TestServer>, args: &[&str]) -> Output {
    let base = server.map_or_else(|| "http://127.0.0.1:9".to_string(), |s| s.url(""));
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .arg("jobs")
            .args(&args)
            .env("TIDEMARK_SERVER", base)
            .env_remove("TIDEMARK_TOKEN")
            .output()
            .expect("run tidemark")
    })
    .await
    .unwrap()
}

/// The JSON a successful command printed.
#[track_caller]
fn printed(output: &Output) -> Value {
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// The exit code and stderr of a failed command.
fn failed(output: &Output) -> (Option<i32>, String) {
    assert!(output.stdout.is_empty(), "nothing on stdout: {}", String::from_utf8_lossy(&output.stdout));
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn write(dir: &Path, name: &str, spec: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, spec.to_string()).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_jobs_subcommand_against_a_server() {
    let mut server = TestServer::start_with(TestOptions { workers: 1, ..TestOptions::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = json!({"name": "w", "dataflow": "window_agg", "params": {"window": {"tumbling": {"size": 1000}}}});
    let file = write(dir.path(), "w.json", &spec);

    let created = printed(&jobs(Some(&server), &["create", &file]).await);
    assert_eq!((created["name"].as_str(), created["state"].as_str()), (Some("w"), Some("running")), "{created}");
    let events = json!([{"key": "a", "ts": 1000, "value": 1}, {"key": "a", "ts": 5000, "value": 2}]);
    assert_eq!(server.post("/api/v1/jobs/w/inputs/events", &events).await.0, 200);
    let listed = printed(&jobs(Some(&server), &["list"]).await);
    assert_eq!(listed.as_array().map(|jobs| jobs.len()), Some(1), "{listed}");
    let got = printed(&jobs(Some(&server), &["get", "w"]).await);
    assert_eq!(got["inputs"]["events"]["accepted"], 2, "{got}");
    let checkpoint = printed(&jobs(Some(&server), &["checkpoint", "w"]).await);
    assert_eq!(checkpoint["id"], 1, "{checkpoint}");
    let savepoint = printed(&jobs(Some(&server), &["savepoint", "w"]).await);
    assert_eq!(savepoint["id"], 2, "{savepoint}");
    let savepoints = printed(&jobs(Some(&server), &["savepoints", "w"]).await);
    assert_eq!(savepoints, json!([savepoint]));
    let suspended = printed(&jobs(Some(&server), &["suspend", "w"]).await);
    assert_eq!(suspended["state"], "suspended", "{suspended}");
    let resumed = printed(&jobs(Some(&server), &["resume", "w"]).await);
    assert_eq!(resumed["state"], "running", "{resumed}");
    let history = printed(&jobs(Some(&server), &["history", "w"]).await);
    let kinds: Vec<&str> = history.as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "created",
            "started",
            "checkpoint",
            "checkpoint",
            "savepoint",
            "checkpoint",
            "suspended",
            "started",
            "resumed"
        ],
        "{history:#}"
    );

    // A spec from stdin: `-`.
    let copy = json!({"name": "c", "dataflow": "chaos"});
    let piped = tokio::task::spawn_blocking({
        let base = server.url("");
        move || {
            use std::io::Write as _;
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
                .args(["jobs", "--server", &base, "create", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(copy.to_string().as_bytes()).unwrap();
            child.wait_with_output().unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(printed(&piped)["name"], "c");

    // The server's errors: exit 1, its message on stderr.
    let (code, stderr) = failed(&jobs(Some(&server), &["get", "nope"]).await);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no job named `nope`") && stderr.contains("unknown_job"), "{stderr}");
    let (code, stderr) = failed(&jobs(Some(&server), &["create", &file]).await);
    assert!(code == Some(1) && stderr.contains("job_exists"), "{code:?} {stderr}");
    let bad = write(dir.path(), "bad.json", &json!({"name": "b", "dataflow": "nope"}));
    let (code, stderr) = failed(&jobs(Some(&server), &["create", &bad]).await);
    assert!(code == Some(1) && stderr.contains("unknown_dataflow"), "{code:?} {stderr}");

    // Usage errors: exit 2.
    let (code, stderr) = failed(&jobs(Some(&server), &["create", "/nonexistent/spec.json"]).await);
    assert!(code == Some(2) && stderr.contains("cannot read"), "{code:?} {stderr}");
    let not_json = dir.path().join("x.json");
    std::fs::write(&not_json, "{").unwrap();
    let (code, stderr) = failed(&jobs(Some(&server), &["create", &not_json.display().to_string()]).await);
    assert!(code == Some(2) && stderr.contains("not JSON"), "{code:?} {stderr}");
    assert_eq!(failed(&jobs(Some(&server), &["get"]).await).0, Some(2), "a missing argument");
    assert_eq!(failed(&jobs(Some(&server), &["frobnicate"]).await).0, Some(2));
    let (code, stderr) = failed(&jobs(Some(&server), &["--server", "127.0.0.1:8080", "list"]).await);
    assert!(code == Some(2) && stderr.contains("not a server URL"), "{code:?} {stderr}");

    let deleted = printed(&jobs(Some(&server), &["delete", "w"]).await);
    assert_eq!(deleted, json!({"deleted": "w"}));
    assert_eq!(failed(&jobs(Some(&server), &["delete", "w"]).await).0, Some(1));
    server.stop().await;

    // No server: exit 1, saying where it looked.
    let (code, stderr) = failed(&jobs(None, &["list"]).await);
    assert!(code == Some(1) && stderr.contains("127.0.0.1:9"), "{code:?} {stderr}");
}

/// Every subcommand has its `--help`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_jobs_subcommand_has_help() {
    let all = [
        "list",
        "get",
        "create",
        "delete",
        "suspend",
        "resume",
        "checkpoint",
        "savepoint",
        "savepoints",
        "upgrade",
        "history",
    ];
    let top = jobs(None, &["--help"]).await;
    let text = String::from_utf8_lossy(&top.stdout).into_owned();
    for command in all {
        assert!(text.contains(command), "`tidemark jobs --help` lists {command}: {text}");
        let help = jobs(None, &[command, "--help"]).await;
        assert_eq!(help.status.code(), Some(0), "{command} --help");
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(text.contains("--server") && text.contains("Usage"), "{command}: {text}");
    }
}

/// `--token` (or `TIDEMARK_TOKEN`) is sent as the bearer token; without one a server
/// with tokens answers 401, which is exit 1 with the server's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "admin admin-cli-0123456789abcdefgh\n").unwrap();
    let security = tidemark::serve::Security { tokens_file: Some(tokens), ..Default::default() };
    let mut server = TestServer::start_with(TestOptions { security, ..TestOptions::default() }).await;
    let (code, stderr) = failed(&jobs(Some(&server), &["list"]).await);
    assert!(code == Some(1) && stderr.contains("401"), "{code:?} {stderr}");
    let listed = printed(&jobs(Some(&server), &["--token", "admin-cli-0123456789abcdefgh", "list"]).await);
    assert_eq!(listed, json!([]));
    let base = server.url("");
    let with_env = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .args(["jobs", "--server", &base, "list"])
            .env("TIDEMARK_TOKEN", "admin-cli-0123456789abcdefgh")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(printed(&with_env), json!([]));
    server.stop().await;
}
