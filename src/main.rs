//! The `tidemark` binary: parse arguments, set up logging, run a command.

#[path = "../dataflows/registry.rs"]
mod dataflows;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use tidemark::replay::{Replay, ReplayError, replay};

#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

/// Incremental stream computation on timely and differential dataflow.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay NDJSON files through a dataflow and print its outputs as NDJSON.
    Run {
        /// The dataflow (see `tidemark dataflows`).
        dataflow: String,
        /// An input and the NDJSON file feeding it, as NAME=FILE (repeatable).
        #[arg(long = "input", value_name = "NAME=FILE", value_parser = parse_pair)]
        inputs: Vec<(String, String)>,
        /// A parameter as K=V; V is JSON when it parses as JSON, else a string (repeatable).
        #[arg(long = "param", value_name = "K=V", value_parser = parse_pair)]
        params: Vec<(String, String)>,
        /// An output to print (repeatable; default: all).
        #[arg(long = "output", value_name = "NAME")]
        outputs: Vec<String>,
        /// Print every change (`{"output","time","row","diff"}`) instead of the final rows.
        #[arg(long)]
        changes: bool,
        /// Worker threads (default: available cores).
        #[arg(long, env = "TIDEMARK_WORKERS")]
        workers: Option<usize>,
    },
    /// List the compiled-in dataflows as JSON.
    Dataflows,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let registry = dataflows::registry();
    match cli.command {
        Command::Dataflows => {
            let listing = serde_json::to_string_pretty(&registry.listing()).expect("listing serializes");
            let _ = writeln!(std::io::stdout(), "{listing}");
            ExitCode::SUCCESS
        }
        Command::Run { dataflow, inputs, params, outputs, changes, workers } => {
            let spec = Replay {
                dataflow,
                inputs: inputs.into_iter().map(|(k, v)| (k, PathBuf::from(v))).collect(),
                params,
                outputs,
                changes,
                workers: workers.unwrap_or_else(default_workers),
                chunk_lines: 0,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            match replay(&registry, &spec, &mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    drop(out);
                    eprintln!("error: {e}");
                    ExitCode::from(if matches!(e, ReplayError::Usage(_)) { 2 } else { 1 })
                }
            }
        }
    }
}
