//! The server's defences, against `/work/shared/API.md` ("Security"), over real TCP:
//! tokens and scopes (`auth`), what a web page could do (`browser`), file sources
//! (`files`), HTTPS (`tls`), limits and slow clients (`limits`), and random requests
//! thrown at the router (`props`).
//!
//! Every wait has a timeout, so a hang fails the test instead of blocking.

mod auth;
mod browser;
mod files;
mod limits;
mod props;
mod tls;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidemark::serve::Security;

use crate::service::{TestOptions, TestServer};

/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(20);

/// `future`, or a panic naming `what` after [`WAIT`].
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// Three tokens, one per scope, long and distinct enough to find in a log.
const READ: &str = "read-Zq8vN2kL5pR7tW1xY4bC6dF9";
const WRITE: &str = "write-Hj3mK8nQ2sV5wX7zA1cE4gI6";
const ADMIN: &str = "admin-Lo9pR2tU5vY8xB1dG3fJ6hM4";

/// A tokens file with [`READ`], [`WRITE`] and [`ADMIN`] in `dir`.
fn tokens_file(dir: &Path) -> PathBuf {
    let path = dir.join("tokens");
    let text = format!("# scopes of the test\nread {READ}\nwrite {WRITE}\n\nadmin {ADMIN}\n");
    std::fs::write(&path, text).expect("tokens file");
    path
}

/// A server with tokens (kept in `dir`) and `options`.
async fn with_tokens(dir: &Path, mut options: TestOptions) -> TestServer {
    options.security = Security { tokens_file: Some(tokens_file(dir)), ..options.security };
    TestServer::start_with(options).await
}

/// `host:port` of the test server.
fn addr(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// A request to the test server, with `token` as bearer if any.
fn request(server: &TestServer, method: &str, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let builder = server.client.request(method, server.url(path));
    match token {
        Some(token) => builder.bearer_auth(token),
        None => builder,
    }
}

/// Sends `builder`; its status and JSON body (`Null` if it has none).
async fn send(builder: reqwest::RequestBuilder) -> (u16, Value) {
    let response = within("an answer", builder.send()).await.expect("the server answers");
    let status = response.status().as_u16();
    (status, within("its body", response.json()).await.unwrap_or(Value::Null))
}

/// `{"error": {"code": code, ...}}` with `status`, or a panic saying what came instead.
fn assert_error(what: &str, (status, body): &(u16, Value), expected: u16, code: &str) {
    assert_eq!((*status, body["error"]["code"].as_str()), (expected, Some(code)), "{what}: {status} {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
}

/// A `window_agg` job spec fed over HTTP.
fn window_job(name: &str) -> Value {
    json!({"name": name, "dataflow": "window_agg",
        "params": {"window": {"tumbling": {"size": 1000}}, "idle_timeout_ms": null}})
}

fn event(key: &str, ts: u64, value: f64) -> Value {
    json!({"key": key, "ts": ts, "value": value})
}

/// Runs `tidemark serve` with `args` (on 127.0.0.1:0 unless they say `--listen`) and an
/// empty configuration until it exits (or 20 s); its exit code and stderr.
fn run_binary(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").expect("config");
    let listen: &[&str] = if args.contains(&"--listen") { &[] } else { &["--listen", "127.0.0.1:0"] };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("serve")
        .args(listen)
        .args(args)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (None, "still running".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}
