//! Nexmark event generator for the Nexmark benchmark (see `scripts/bench.sh --nexmark`).
//!
//! ```text
//! cargo run --release --example nexmark_gen -- [--events N] [--rate R] [OUT.ndjson]
//! ```
//!
//! Writes the first `N` events (default 1,000,000) of the `nexmark` crate's generator
//! with its default configuration (`R` = 10,000 events per second of event time: 2%
//! people, 6% auctions, 92% bids, in event-time order) and the base time fixed at
//! 2026-01-01T00:00:00Z, so that the same arguments always give the same bytes. One
//! line per event, as `nexmark_q*` read them: `{"person": {...}}`,
//! `{"auction": {...}}` or `{"bid": {...}}` with the crate's field names.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

#[path = "lines.rs"]
mod lines;

fn generate(events: usize, rate: usize, out: &mut impl Write) -> io::Result<()> {
    for event in lines::events(events, rate) {
        serde_json::to_writer(&mut *out, &event)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn main() -> ExitCode {
    let (mut events, mut rate) = (1_000_000, 10_000);
    let mut path = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--events" | "--rate" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if arg == "--events" => events = n,
                Some(n) if n > 0 => rate = n,
                _ => {
                    eprintln!("nexmark_gen: {arg} needs a positive integer");
                    return ExitCode::from(2);
                }
            },
            s if s.starts_with("--") || path.is_some() => {
                eprintln!(
                    "nexmark_gen: unexpected argument {s}\nusage: nexmark_gen [--events N] [--rate R] [OUT.ndjson]"
                );
                return ExitCode::from(2);
            }
            _ => path = Some(arg),
        }
    }
    let result = match &path {
        Some(path) => File::create(path).and_then(|f| generate(events, rate, &mut BufWriter::new(f))),
        None => generate(events, rate, &mut BufWriter::new(io::stdout().lock())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nexmark_gen: {e}");
            ExitCode::FAILURE
        }
    }
}
