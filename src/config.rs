//! The server's configuration file (`tidemark.toml`).
//!
//! ```toml
//! [server]                  # every key optional; command-line flags win
//! listen = "127.0.0.1:8080"
//! workers = 2               # default: available cores
//! data_dir = ".tidemark"    # where job specs persist
//! max_body_bytes = 16777216 # larger request bodies get 413
//! history = 100000          # changes each output keeps for as_of and resuming
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
}

/// Parses a configuration file's text.
pub fn parse(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| e.to_string())
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
