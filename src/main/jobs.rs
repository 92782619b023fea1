//! `tidemark jobs ...`: the jobs of a running server, over its HTTP API
//! ([`tidemark::client`]). Every answer is printed as JSON on stdout; exit codes as
//! `run`: 0 success, 2 usage error (arguments, an unreadable spec file), 1 failure (the
//! server unreachable, or its error answer, whose message goes to stderr).

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{Value, json};
use tidemark::client::{Client, ClientError};

/// Where the server is, and what to do there.
#[derive(clap::Args)]
pub struct JobsArgs {
    /// The server's base URL.
    #[arg(long, env = "TIDEMARK_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    server: String,
    /// A bearer token for the server's API.
    #[arg(long, env = "TIDEMARK_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Certificates to trust for an `https://` server (PEM; a bundle such as
    /// /etc/ssl/certs/ca-certificates.crt for public authorities).
    #[arg(long, env = "TIDEMARK_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// How long to wait for an answer, in seconds.
    #[arg(long, default_value_t = 300, global = true)]
    timeout_s: u64,
    #[command(subcommand)]
    command: JobsCommand,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// List the jobs.
    List,
    /// Show a job.
    Get {
        /// The job.
        job: String,
    },
    /// Create a job from a spec (a JSON file; `-` reads stdin).
    Create {
        /// The spec.
        file: PathBuf,
    },
    /// Delete a job, with its logs, checkpoints, savepoints and history.
    Delete {
        /// The job.
        job: String,
    },
    /// Checkpoint a job and stop its sources: it takes no input until resumed.
    Suspend {
        /// The job.
        job: String,
    },
    /// Start a suspended (or failed) job again from its last checkpoint.
    Resume {
        /// The job.
        job: String,
    },
    /// Take a checkpoint of a job now.
    Checkpoint {
        /// The job.
        job: String,
    },
    /// Take a savepoint of a job: a checkpoint kept until deleted.
    Savepoint {
        /// The job.
        job: String,
    },
    /// List a job's savepoints.
    Savepoints {
        /// The job.
        job: String,
    },
    /// Switch a job to a new spec (a JSON file; `-` reads stdin), from its state.
    Upgrade {
        /// The job.
        job: String,
        /// The new spec.
        file: PathBuf,
        /// Answer what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show what happened to a job, oldest first.
    History {
        /// The job.
        job: String,
    },
}

/// Runs `tidemark jobs ...`.
pub fn run(args: JobsArgs) -> ExitCode {
    let client =
        match Client::new(&args.server, args.token, args.ca_cert.as_deref(), Duration::from_secs(args.timeout_s)) {
            Ok(client) => client,
            Err(e) => return usage(e),
        };
    let (a, v, jobs) = ("api", "v1", "jobs");
    let answer = match args.command {
        JobsCommand::List => client.get(&[a, v, jobs], &[]),
        JobsCommand::Get { job } => client.get(&[a, v, jobs, &job], &[]),
        JobsCommand::Create { file } => match read_spec(&file) {
            Ok(spec) => client.post(&[a, v, jobs], &spec),
            Err(e) => return usage(e),
        },
        JobsCommand::Delete { job } => client.delete(&[a, v, jobs, &job]).map(|_| json!({"deleted": job})),
        JobsCommand::Suspend { job } => client.post(&[a, v, jobs, &job, "suspend"], &json!({})),
        JobsCommand::Resume { job } => client.post(&[a, v, jobs, &job, "resume"], &json!({})),
        JobsCommand::Checkpoint { job } => client.post(&[a, v, jobs, &job, "checkpoint"], &json!({})),
        JobsCommand::Savepoint { job } => client.post(&[a, v, jobs, &job, "savepoints"], &json!({})),
        JobsCommand::Savepoints { job } => client.get(&[a, v, jobs, &job, "savepoints"], &[]),
        JobsCommand::Upgrade { job, file, dry_run } => match read_spec(&file) {
            Ok(spec) => client.put(&[a, v, jobs, &job], &[("dry_run", if dry_run { "true" } else { "false" })], &spec),
            Err(e) => return usage(e),
        },
        JobsCommand::History { job } => client.get(&[a, v, jobs, &job, "history"], &[]),
    };
    match answer {
        Ok(value) => {
            let text = serde_json::to_string_pretty(&value).expect("JSON prints");
            let _ = writeln!(std::io::stdout(), "{text}");
            ExitCode::SUCCESS
        }
        Err(e @ ClientError::Url(_) | e @ ClientError::Certificates { .. }) => usage(e),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why a spec file was not read.
#[derive(Debug, thiserror::Error)]
enum SpecFileError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not JSON: {source}")]
    Json { path: String, source: serde_json::Error },
}

/// A spec file's JSON (`-`: stdin).
fn read_spec(file: &PathBuf) -> Result<Value, SpecFileError> {
    let path = file.display().to_string();
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(drop)
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    read.map_err(|source| SpecFileError::Read { path: path.clone(), source })?;
    serde_json::from_str(&text).map_err(|source| SpecFileError::Json { path, source })
}

fn usage(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(2)
}
