//! The server's configuration file (`tidemark.toml`).
//!
//! ```toml
//! [server]                  # every key optional; command-line flags win
//! listen = "127.0.0.1:8080"
//! workers = 2               # default: available cores
//! data_dir = ".tidemark"    # where job specs persist
//! max_body_bytes = 16777216 # larger request bodies get 413
//! history = 100000          # changes each output keeps for as_of and resuming
//! tokens_file = "tokens"    # SCOPE TOKEN per line; without it: loopback only
//! insecure = false          # listen beyond loopback without tokens
//! allowed_hosts = ["tidemark.example.com"] # Host names beside localhost and IPs
//! cors_origins = ["https://app.example.com"]
//! file_root = "data"        # file sources read only below it
//! tls_cert = "cert.pem"     # HTTPS, with tls_key
//! tls_key = "key.pem"
//! max_subscribers = 1024    # per output
//! max_jobs = 256            # jobs the API may create
//! rate_limit = 100          # requests per second per token or client
//! header_timeout_ms = 10000 # to send headers or finish a TLS handshake
//! body_timeout_ms = 60000   # to send a request body
//!
//! [[jobs]]                  # created at start unless a job of that name exists
//! name = "trending"
//! dataflow = "trending"
//! params = { k = 5 }
//! inputs.views = { source = "generator", stream = "views", rate = 200 }
//! ```
//!
//! Jobs have the shape of the API's job spec. Without `--config`, the server uses the
//! repository's `tidemark.toml`, compiled in; an empty file gives a server with no jobs.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

use serde::Deserialize;

use crate::job::spec::JobSpec;

/// The `tidemark.toml` of the repository, compiled in.
pub const DEFAULT: &str = include_str!("../tidemark.toml");

/// A configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Server settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// Jobs to create at start.
    #[serde(default)]
    pub jobs: Vec<JobSpec>,
}

/// The `[server]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: Option<SocketAddr>,
    /// Timely worker threads.
    pub workers: Option<usize>,
    /// Where job specs persist.
    pub data_dir: Option<PathBuf>,
    /// Largest request body in bytes.
    pub max_body_bytes: Option<usize>,
    /// Changes each output keeps for `as_of` and resuming subscribers.
    pub history: Option<usize>,
    /// Bearer tokens, `SCOPE TOKEN` per line.
    pub tokens_file: Option<PathBuf>,
    /// Listen beyond loopback without tokens.
    #[serde(default)]
    pub insecure: bool,
    /// Host names requests may use beside `localhost` and IP addresses.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Origins whose web pages may call the API.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// The directory file sources read below.
    pub file_root: Option<PathBuf>,
    /// HTTPS certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Live subscriptions per output.
    pub max_subscribers: Option<usize>,
    /// Jobs the API may create.
    pub max_jobs: Option<usize>,
    /// Requests per second per token or client address.
    pub rate_limit: Option<NonZeroU32>,
    /// Time to send a request's headers or finish a TLS handshake, in ms.
    pub header_timeout_ms: Option<u64>,
    /// Time to send a request body, in ms.
    pub body_timeout_ms: Option<u64>,
}

/// Parses a configuration file's text (the error says where and what).
pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
    toml::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_configuration_parses_and_its_jobs_are_valid() {
        let config = parse(DEFAULT).expect("tidemark.toml parses");
        assert!(config.jobs.len() >= 3, "demo jobs");
        assert!(parse("").expect("empty").jobs.is_empty());
        assert!(parse("[server]\nlisten = 3").is_err());
        assert!(parse("[bogus]").is_err());
    }
}
