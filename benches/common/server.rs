//! The release binary run as a server for benchmarks: started on a free port with no
//! demo jobs and a temporary data directory, killed when dropped. Further options of
//! `tidemark serve` (`--tokens FILE`, `--rate-limit N`, ...) go in `extra`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The server under test; killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    pub fn start(binary: &str, workers: usize, extra: &[String]) -> ServerProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("empty.toml");
        std::fs::write(&config, "").expect("config");
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", &workers.to_string(), "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e} (build it with cargo build --release)"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
        let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected: {line}"));
        ServerProcess { child, base: format!("http://{addr}"), _dir: dir }
    }

    /// User + system CPU seconds of the server so far.
    #[allow(dead_code)] // not every benchmark reports CPU
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
        ticks / 100.0
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
