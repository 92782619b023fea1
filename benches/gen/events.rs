//! Deterministic event generator for the `window_agg` benchmark (see `scripts/bench.sh`).
//!
//! ```text
//! cargo run --release --example gen_events -- [--events N] [--keys K] [--seed S] [OUT.ndjson]
//! ```
//!
//! Writes one NDJSON line per event, `{"key":"k17","ts":123,"value":12.34}`, to `OUT`
//! (stdout when absent). Event `i` has event time `i * 3_600_000 / 5_000_000` ms
//! (0.72 ms per event: 5M events span one hour, 1M events twelve minutes, so the
//! number of windows grows with the number of events). 1% of the events, chosen at
//! random, are out of order: their time is moved back by 1..=5000 ms (saturating at
//! 0). Keys are uniform over `k0..k{K-1}`; values are uniform with two decimals in
//! [-1000, 1000]. The same arguments always give the same bytes.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Milliseconds of event time spanned by [`TIME_SPAN_EVENTS`] events.
const TIME_SPAN_MS: u64 = 3_600_000;
/// Number of events that span [`TIME_SPAN_MS`].
const TIME_SPAN_EVENTS: u64 = 5_000_000;
/// The largest amount an out-of-order event is moved back by.
const MAX_DISORDER_MS: u64 = 5000;

struct Args {
    events: u64,
    keys: u64,
    seed: u64,
    out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { events: 5_000_000, keys: 1000, seed: 42, out: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse().map_err(|_| format!("{name}: not a non-negative integer: {v}"))
        };
        match arg.as_str() {
            "--events" => args.events = number("--events")?,
            "--keys" => args.keys = number("--keys")?,
            "--seed" => args.seed = number("--seed")?,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ if args.out.is_some() => return Err(format!("unexpected argument {arg}")),
            _ => args.out = Some(arg),
        }
    }
    if args.keys == 0 {
        return Err("--keys must be at least 1".into());
    }
    Ok(args)
}

fn generate(args: &Args, out: &mut impl Write) -> io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    for i in 0..args.events {
        let mut ts = i * TIME_SPAN_MS / TIME_SPAN_EVENTS;
        if rng.random_bool(0.01) {
            ts = ts.saturating_sub(rng.random_range(1..=MAX_DISORDER_MS));
        }
        let key = rng.random_range(0..args.keys);
        // Whole cents, so the printed value has exactly two decimals.
        let cents: i64 = rng.random_range(-100_000..=100_000);
        let sign = if cents < 0 { "-" } else { "" };
        let (units, frac) = (cents.unsigned_abs() / 100, cents.unsigned_abs() % 100);
        writeln!(out, r#"{{"key":"k{key}","ts":{ts},"value":{sign}{units}.{frac:02}}}"#)?;
    }
    out.flush()
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("gen_events: {e}");
            eprintln!("usage: gen_events [--events N] [--keys K] [--seed S] [OUT.ndjson]");
            return ExitCode::from(2);
        }
    };
    let result = match &args.out {
        Some(path) => File::create(path).and_then(|f| generate(&args, &mut BufWriter::with_capacity(1 << 20, f))),
        None => generate(&args, &mut BufWriter::with_capacity(1 << 20, io::stdout().lock())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_events: {e}");
            ExitCode::FAILURE
        }
    }
}
