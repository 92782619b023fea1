//! Servers for HTTP tests: started in-process on 127.0.0.1 with a port of their own and
//! a fresh data directory, and stopped by the test that started them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tidemark::job::manager::JobSettings;
use tidemark::job::spec::JobSpec;
use tidemark::serve::{Limits, Security, ServeOptions, Server};

/// A running test server.
pub struct TestServer {
    pub server: Option<Server>,
    pub base: String,
    pub data_dir: PathBuf,
    /// Kept so the directory lives as long as the server (and restarts can reuse it).
    _dir: Option<tempfile::TempDir>,
    pub client: reqwest::Client,
}

/// Options for [`TestServer::start_with`].
#[derive(Clone)]
pub struct TestOptions {
    pub workers: usize,
    pub jobs: Vec<JobSpec>,
    pub limits: Limits,
    pub settings: JobSettings,
    pub security: Security,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            workers: 2,
            jobs: Vec::new(),
            limits: Limits::default(),
            settings: JobSettings::default(),
            security: Security::default(),
        }
    }
}

impl TestServer {
    /// A server with 2 workers, no jobs, default limits.
    pub async fn start() -> TestServer {
        TestServer::start_with(TestOptions::default()).await
    }

    pub async fn start_with(options: TestOptions) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().to_path_buf();
        let mut server = TestServer::start_in(data_dir, options).await;
        server._dir = Some(dir);
        server
    }

    /// A server on `data_dir` (e.g. that of a stopped server, to test restarts).
    pub async fn start_in(data_dir: PathBuf, options: TestOptions) -> TestServer {
        let options = ServeOptions {
            listen: "127.0.0.1:0".parse().expect("address"),
            workers: options.workers,
            data_dir: Some(data_dir.clone()),
            jobs: options.jobs,
            settings: options.settings,
            limits: options.limits,
            security: options.security,
        };
        let server = tidemark::serve::start(crate::dataflows::registry(), options).await.expect("server starts");
        let base = format!("http://{}", server.addr);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        TestServer { server: Some(server), base, data_dir, _dir: None, client }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server; the data directory stays (until the `TestServer` drops).
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// `GET path` → (status, JSON body).
    /// The rows of each of `outputs` of `job`, as sorted JSON texts.
    pub async fn snapshot(&self, job: &str, outputs: &[&str]) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut rows = std::collections::BTreeMap::new();
        for output in outputs {
            let (code, body) = self.get(&format!("/api/v1/jobs/{job}/outputs/{output}")).await;
            assert_eq!(code, 200, "{body}");
            let mut r: Vec<String> = body["rows"].as_array().expect("rows").iter().map(Value::to_string).collect();
            r.sort();
            rows.insert(output.to_string(), r);
        }
        rows
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST path` with a JSON body → (status, JSON body).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self.client.post(self.url(path)).json(body).send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST path` with raw bytes and a content type → (status, JSON body).
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `DELETE path` → status.
    pub async fn delete(&self, path: &str) -> u16 {
        self.client.delete(self.url(path)).send().await.expect("DELETE").status().as_u16()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A test that panics before `stop` still must not leave a server running.
        if let Some(server) = self.server.take() {
            server.signal_stop();
        }
    }
}

/// A child process, killed (and reaped) when dropped, also when a test fails.
pub struct Child(std::process::Child);

impl Child {
    /// Kills the process (SIGKILL, like `kill -9`) and reaps it.
    pub fn kill(&mut self) {
        self.0.kill().expect("kill -9");
        self.0.wait().expect("reaped");
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real binary, `tidemark serve`, on a free port with `config` and
/// `data_dir`, its log in `log`; returns it and its base URL.
pub async fn spawn_binary(config: &Path, data_dir: &Path, log: PathBuf) -> (Child, String) {
    spawn_binary_with(config, data_dir, log, &[], "info").await
}

/// [`spawn_binary`] with no jobs configured and its data in `dir/data`, so that a
/// server killed there can be started again on the same data; its log is
/// `dir/<log>.log`.
pub async fn spawn_in(dir: &Path, log: &str) -> (Child, String) {
    spawn_in_with(dir, log, &[]).await
}

/// [`spawn_in`] with more arguments.
pub async fn spawn_in_with(dir: &Path, log: &str, args: &[&str]) -> (Child, String) {
    let config = dir.join("empty.toml");
    std::fs::write(&config, "").expect("empty config");
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    spawn_binary_with(&config, &dir.join("data"), dir.join(format!("{log}.log")), &args, "info").await
}

/// [`spawn_binary`] with more arguments (`--listen` or `--workers` among them replaces the default)
/// and a log filter (`RUST_LOG`); the base URL is `http://ADDR` whatever the scheme.
pub async fn spawn_binary_with(
    config: &Path,
    data_dir: &Path,
    log: PathBuf,
    args: &[&std::ffi::OsStr],
    log_filter: &str,
) -> (Child, String) {
    let stderr = std::fs::File::create(&log).expect("log file");
    let listen: &[&str] = if args.iter().any(|a| *a == "--listen") { &[] } else { &["--listen", "127.0.0.1:0"] };
    let workers: &[&str] = if args.iter().any(|a| *a == "--workers") { &[] } else { &["--workers", "2"] };
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("serve")
        .args(listen)
        .args(workers)
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("RUST_LOG", log_filter)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn tidemark");
    let mut child = Child(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, so the child never blocks on a full pipe.
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            let _ = lines.send(line);
        }
    });
    let found = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        return Some(addr.trim().to_string());
                    }
                }
                Err(_) => return None,
            }
        }
    })
    .await
    .expect("reader");
    let Some(addr) = found else {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("tidemark serve did not print `listening on ADDR`; its log:\n{log}");
    };
    (child, format!("http://{addr}"))
}

/// A server's handlers without a listener: an `App` on a runtime of its own, as
/// `serve::start` builds one, for tests that drive `serve::router` in-process.
pub struct InProcess {
    pub app: std::sync::Arc<tidemark::serve::App>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl InProcess {
    /// One worker, `registry`'s dataflows, `limits` and `guard`.
    pub fn start(limits: Limits, guard: tidemark::serve::Guard, registry: tidemark::pipeline::Registry) -> InProcess {
        let jobs =
            tidemark::job::manager::JobManager::new(1, registry, None, JobSettings::default()).expect("job manager");
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        InProcess { app: std::sync::Arc::new(tidemark::serve::App::new(jobs, limits, guard, shutdown)), stop }
    }

    /// Ends the streams, stops the jobs and joins the workers off the async threads, as
    /// `serve::start` does.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let app = self.app;
        tokio::task::spawn_blocking(move || {
            app.jobs.shutdown();
            drop(app);
        })
        .await
        .expect("shutdown");
    }
}
