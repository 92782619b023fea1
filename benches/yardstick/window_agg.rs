//! The hand-written, single-thread yardstick for `tidemark run window_agg` (the
//! "COST" baseline of `scripts/bench.sh`; see BENCHMARKS.md).
//!
//! ```text
//! yardstick_window_agg EVENTS.ndjson [--size MS] [--max-out-of-orderness MS] [--allowed-lateness MS]
//! ```
//!
//! It does the work tidemark does for tumbling windows, and nothing more: parse each
//! NDJSON line, apply the lateness rule of API.md, aggregate, and print each window's
//! row once it is final, as `{"output":"windows","row":{...}}` like `tidemark run`.
//!
//! - W, the watermark an event is judged against, is the largest event time of the
//!   records before it minus `max_out_of_orderness` (saturating at 0, never
//!   decreasing). The event is applied to its window `[start, end)` if
//!   `end + allowed_lateness > W`; otherwise it is too late and only counted.
//! - A window is final once `W >= end + allowed_lateness`: no event can reach it any
//!   more, so its row is printed and its state dropped. At the end of the input
//!   W becomes `max_ts + 1` and every remaining window is printed.
//! - Lines that do not parse as `{"key": string, "ts": u64, "value": finite number}`
//!   are counted and skipped; blank lines are skipped.
//!
//! Counts go to stderr. Sums are plain `f64` additions, so they can differ from
//! tidemark's exactly rounded sums in the last bits.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

/// One input record. The key borrows from the line unless it contains escapes.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    ts: u64,
    value: f64,
}

/// The aggregate of one open window.
#[derive(Clone, Copy)]
struct Agg {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Agg {
    fn new(value: f64) -> Agg {
        Agg { count: 1, sum: value, min: value, max: value }
    }

    fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }
}

#[derive(Serialize)]
struct Output<'a> {
    output: &'static str,
    row: Row<'a>,
}

#[derive(Serialize)]
struct Row<'a> {
    key: &'a str,
    start: u64,
    end: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    avg: f64,
}

struct Config {
    input: String,
    size: u64,
    max_out_of_orderness: u64,
    allowed_lateness: u64,
}

fn parse_args() -> Result<Config, String> {
    let mut config = Config { input: String::new(), size: 10_000, max_out_of_orderness: 5000, allowed_lateness: 0 };
    let mut input = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse().map_err(|_| format!("{name}: not a non-negative integer: {v}"))
        };
        match arg.as_str() {
            "--size" => config.size = number("--size")?,
            "--max-out-of-orderness" => config.max_out_of_orderness = number("--max-out-of-orderness")?,
            "--allowed-lateness" => config.allowed_lateness = number("--allowed-lateness")?,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ if input.is_some() => return Err(format!("unexpected argument {arg}")),
            _ => input = Some(arg),
        }
    }
    if config.size == 0 {
        return Err("--size must be at least 1".into());
    }
    config.input = input.ok_or("missing input file")?;
    Ok(config)
}

/// The program's state: open windows and counters.
///
/// Keys are interned to a `u32` so that looking a window up needs no allocation
/// (`HashMap<(String, u64), _>` cannot be probed with a borrowed `(&str, u64)`).
struct Windows<W: Write> {
    config: Config,
    out: W,
    key_ids: HashMap<String, u32>,
    key_names: Vec<String>,
    /// Open windows by (key id, window start).
    open: HashMap<(u32, u64), Agg>,
    /// The smallest `end + allowed_lateness` of the open windows (`u64::MAX` if none):
    /// no window is final before W reaches it.
    next_final: u64,
    max_ts: Option<u64>,
    watermark: u64,
    accepted: u64,
    late: u64,
    too_late: u64,
    invalid: u64,
    rows: u64,
}

impl<W: Write> Windows<W> {
    fn new(config: Config, out: W) -> Self {
        Windows {
            config,
            out,
            key_ids: HashMap::new(),
            key_names: Vec::new(),
            open: HashMap::new(),
            next_final: u64::MAX,
            max_ts: None,
            watermark: 0,
            accepted: 0,
            late: 0,
            too_late: 0,
            invalid: 0,
            rows: 0,
        }
    }

    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        if line.trim_ascii().is_empty() {
            return Ok(());
        }
        match serde_json::from_slice::<Event>(line) {
            Ok(event) if event.value.is_finite() => self.event(event),
            _ => {
                self.invalid += 1;
                Ok(())
            }
        }
    }

    fn event(&mut self, event: Event) -> io::Result<()> {
        // Judge the event against W from the records before it.
        let start = event.ts - event.ts % self.config.size;
        let final_at = start.saturating_add(self.config.size).saturating_add(self.config.allowed_lateness);
        if final_at > self.watermark {
            self.accepted += 1;
            self.late += u64::from(event.ts < self.watermark);
            let id = self.key_id(&event.key);
            self.open
                .entry((id, start))
                .and_modify(|agg| agg.add(event.value))
                .or_insert_with(|| Agg::new(event.value));
            self.next_final = self.next_final.min(final_at);
        } else {
            self.too_late += 1;
        }
        // Then advance W, and close the windows it made final.
        let max_ts = self.max_ts.map_or(event.ts, |m| m.max(event.ts));
        self.max_ts = Some(max_ts);
        self.watermark = self.watermark.max(max_ts.saturating_sub(self.config.max_out_of_orderness));
        if self.watermark >= self.next_final { self.close_final() } else { Ok(()) }
    }

    fn key_id(&mut self, key: &str) -> u32 {
        if let Some(&id) = self.key_ids.get(key) {
            return id;
        }
        let id = u32::try_from(self.key_names.len()).expect("more than u32::MAX keys");
        self.key_ids.insert(key.to_owned(), id);
        self.key_names.push(key.to_owned());
        id
    }

    /// Prints and drops every window that is final at W.
    fn close_final(&mut self) -> io::Result<()> {
        let (size, lateness, watermark) = (self.config.size, self.config.allowed_lateness, self.watermark);
        let mut next_final = u64::MAX;
        let mut closed = Vec::new();
        self.open.retain(|&(id, start), agg| {
            let final_at = start.saturating_add(size).saturating_add(lateness);
            if watermark >= final_at {
                closed.push((start, id, *agg));
                false
            } else {
                next_final = next_final.min(final_at);
                true
            }
        });
        self.next_final = next_final;
        // Sorted only so that the output is the same from run to run.
        closed.sort_unstable_by_key(|&(start, id, _)| (start, id));
        closed.into_iter().try_for_each(|(start, id, agg)| self.print(id, start, &agg))
    }

    fn print(&mut self, id: u32, start: u64, agg: &Agg) -> io::Result<()> {
        let row = Row {
            key: &self.key_names[id as usize],
            start,
            end: start.saturating_add(self.config.size),
            count: agg.count,
            sum: agg.sum,
            min: agg.min,
            max: agg.max,
            avg: agg.sum / agg.count as f64,
        };
        serde_json::to_writer(&mut self.out, &Output { output: "windows", row })?;
        self.out.write_all(b"\n")?;
        self.rows += 1;
        Ok(())
    }

    /// End of input: W becomes `max_ts + 1`, which makes every open window final.
    fn finish(mut self) -> io::Result<Self> {
        self.watermark = self.max_ts.map_or(self.watermark, |m| self.watermark.max(m.saturating_add(1)));
        let mut rest: Vec<_> = self.open.drain().collect();
        rest.sort_unstable_by_key(|&((id, start), _)| (start, id));
        for ((id, start), agg) in rest {
            self.print(id, start, &agg)?;
        }
        self.out.flush()?;
        Ok(self)
    }
}

fn run(config: Config) -> io::Result<()> {
    let mut input = BufReader::with_capacity(1 << 20, File::open(&config.input)?);
    let mut windows = Windows::new(config, BufWriter::with_capacity(1 << 16, io::stdout().lock()));
    let mut line = Vec::with_capacity(256);
    while input.read_until(b'\n', &mut line)? > 0 {
        windows.line(&line)?;
        line.clear();
    }
    let w = windows.finish()?;
    eprintln!(
        "yardstick_window_agg: accepted={} late={} too_late={} invalid={} keys={} rows={} watermark={}",
        w.accepted,
        w.late,
        w.too_late,
        w.invalid,
        w.key_names.len(),
        w.rows,
        w.watermark
    );
    Ok(())
}

fn main() -> ExitCode {
    let config = match parse_args() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("yardstick_window_agg: {e}");
            eprintln!(
                "usage: yardstick_window_agg EVENTS.ndjson [--size MS] [--max-out-of-orderness MS] [--allowed-lateness MS]"
            );
            return ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yardstick_window_agg: {e}");
            ExitCode::FAILURE
        }
    }
}
