//! The reference models: each operator's final rows (and dead letters) computed from the
//! input records and the *documented* semantics alone, in plain Rust, with no dataflow.
//!
//! A model replays each input in order to find the watermark every record arrives at
//! ([`arrivals`]), applies the operator's lateness rule against it, and computes the
//! result over the applied records; the rules are listed in the docs of `operators`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tidemark::pipeline::prelude::WindowKind;

use super::ev_json;
use super::pipelines::{Ev, OpParams};

/// Each record with the watermark of its input when it arrives: the largest event time
/// before it on that input, less `max_out_of_orderness`, and never below 0.
fn arrivals(records: &[Ev], max_out_of_orderness: u64) -> Vec<(Ev, u64)> {
    let mut max_ts: Option<u64> = None;
    records
        .iter()
        .map(|e| {
            let w = max_ts.map_or(0, |m| m.saturating_sub(max_out_of_orderness));
            max_ts = max_ts.max(Some(e.ts));
            (e.clone(), w)
        })
        .collect()
}

/// The windows `[start, end)` containing `ts`: starts are multiples of the slide.
fn windows_of(kind: WindowKind, ts: u64) -> Vec<(u64, u64)> {
    let (size, slide) = match kind {
        WindowKind::Tumbling { size } => (size, size),
        WindowKind::Sliding { size, slide } => (size, slide),
        WindowKind::Session { .. } => panic!("no sessions here"),
    };
    (0..=ts / slide).map(|j| j * slide).filter(|&s| s <= ts && ts < s + size).map(|s| (s, s + size)).collect()
}

/// The windows of a record arriving at watermark `w` that it is applied to.
fn open_windows(kind: WindowKind, lateness: u64, ts: u64, w: u64) -> Vec<(u64, u64)> {
    windows_of(kind, ts).into_iter().filter(|&(_, end)| end + lateness > w).collect()
}

/// Whether a record at `ts` arriving at watermark `w` is applied by an interval or
/// as-of join with `lateness`: like a window `[ts, ts + 1)`, `ts + 1 + lateness > w`.
fn in_time(lateness: u64, ts: u64, w: u64) -> bool {
    ts + lateness >= w
}

pub(super) fn dead_letter(input: &str, e: &Ev) -> Value {
    json!({"input": input, "record": ev_json(e), "reason": "too_late", "ts": e.ts})
}

/// The final rows a replay must print, per output (`dead_letter` included).
pub(super) type Expected = Vec<(&'static str, Vec<Value>)>;

pub(super) fn model_window_join(p: &OpParams, left: &[Ev], right: &[Ev]) -> Expected {
    let (kind, lateness) = (p.window, p.allowed_lateness);
    let applied = |records: &[Ev], moo| -> Vec<(Ev, Vec<(u64, u64)>)> {
        arrivals(records, moo)
            .into_iter()
            .map(|(e, w)| {
                let open = open_windows(kind, lateness, e.ts, w);
                (e, open)
            })
            .collect()
    };
    let (l, r) = (applied(left, p.left_moo()), applied(right, p.right_moo()));
    let mut rows = Vec::new();
    for (le, lw) in &l {
        for (re, rw) in r.iter().filter(|(re, _)| re.k == le.k) {
            for &(start, end) in lw.iter().filter(|w| rw.contains(w)) {
                rows.push(json!({"k": le.k, "start": start, "end": end, "left": ev_json(le), "right": ev_json(re)}));
            }
        }
    }
    let mut dead: Vec<Value> = l.iter().filter(|(_, ws)| ws.is_empty()).map(|(e, _)| dead_letter("left", e)).collect();
    dead.extend(r.iter().filter(|(_, ws)| ws.is_empty()).map(|(e, _)| dead_letter("right", e)));
    vec![("joined", rows), ("dead_letter", dead)]
}

/// The applied records of an input of an interval or as-of join, and its dead letters.
fn split_in_time(input: &str, records: &[Ev], moo: u64, lateness: u64, dead: &mut Vec<Value>) -> Vec<Ev> {
    let mut applied = Vec::new();
    for (e, w) in arrivals(records, moo) {
        if in_time(lateness, e.ts, w) {
            applied.push(e);
        } else {
            dead.push(dead_letter(input, &e));
        }
    }
    applied
}

pub(super) fn model_interval_join(p: &OpParams, left: &[Ev], right: &[Ev]) -> Expected {
    let mut dead = Vec::new();
    let l = split_in_time("left", left, p.left_moo(), p.allowed_lateness, &mut dead);
    let r = split_in_time("right", right, p.right_moo(), p.allowed_lateness, &mut dead);
    let mut rows = Vec::new();
    for le in &l {
        for re in r.iter().filter(|re| re.k == le.k) {
            let d = re.ts as i64 - le.ts as i64;
            if p.lower <= d && d <= p.upper {
                rows.push(json!({"k": le.k, "left": ev_json(le), "right": ev_json(re)}));
            }
        }
    }
    vec![("joined", rows), ("dead_letter", dead)]
}

pub(super) fn model_as_of_join(p: &OpParams, stream: &[Ev], table: &[Ev]) -> Expected {
    let mut dead = Vec::new();
    let s = split_in_time("stream", stream, p.left_moo(), p.allowed_lateness, &mut dead);
    let t = split_in_time("table", table, p.right_moo(), p.allowed_lateness, &mut dead);
    let rows = s
        .iter()
        .map(|d| {
            let version = t.iter().filter(|v| v.k == d.k && v.ts <= d.ts).max_by_key(|v| (v.ts, (*v).clone()));
            json!({"record": ev_json(d), "version": version.map(ev_json)})
        })
        .collect();
    vec![("enriched", rows), ("dead_letter", dead)]
}

pub(super) fn model_dedupe(p: &OpParams, events: &[Ev]) -> Expected {
    let kind = WindowKind::Tumbling { size: p.size };
    let mut kept: BTreeMap<(String, u64), (u64, Ev)> = BTreeMap::new();
    let mut dead = Vec::new();
    for (e, w) in arrivals(events, p.left_moo()) {
        let open = open_windows(kind, p.allowed_lateness, e.ts, w);
        if open.is_empty() {
            dead.push(dead_letter("events", &e));
        }
        for (start, _) in open {
            let candidate = (e.ts, e.clone());
            let slot = kept.entry((e.k.clone(), start)).or_insert_with(|| candidate.clone());
            if candidate < *slot {
                *slot = candidate;
            }
        }
    }
    vec![("kept", kept.values().map(|(_, e)| ev_json(e)).collect()), ("dead_letter", dead)]
}

pub(super) fn model_top_k(p: &OpParams, events: &[Ev]) -> Expected {
    let mut counts: BTreeMap<(String, u64, u64), BTreeMap<i64, u64>> = BTreeMap::new();
    let mut values: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut dead = Vec::new();
    for (e, w) in arrivals(events, p.left_moo()) {
        let open = open_windows(p.window, p.allowed_lateness, e.ts, w);
        if open.is_empty() {
            dead.push(dead_letter("events", &e));
            continue;
        }
        values.entry(e.k.clone()).or_default().push(e.v);
        for (start, end) in open {
            *counts.entry((e.k.clone(), start, end)).or_default().entry(e.v).or_default() += 1;
        }
    }
    let mut top = Vec::new();
    for ((k, start, end), items) in counts {
        let mut ranked: Vec<(u64, i64)> = items.into_iter().map(|(item, count)| (count, item)).collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        for (i, (count, item)) in ranked.into_iter().take(p.k).enumerate() {
            top.push(json!({"k": k, "start": start, "end": end, "rank": i + 1, "item": item, "count": count}));
        }
    }
    let mut top_all = Vec::new();
    for (k, mut vs) in values {
        vs.sort_unstable_by(|a, b| b.cmp(a));
        for (i, v) in vs.into_iter().take(p.k).enumerate() {
            top_all.push(json!({"k": k, "rank": i + 1, "v": v}));
        }
    }
    vec![("top", top), ("top_all", top_all), ("dead_letter", dead)]
}

/// `stateful`'s summaries, from the windowed counts of `top_k`'s model (every item
/// ranked).
pub(super) fn model_stateful(p: &OpParams, events: &[Ev]) -> Expected {
    let mut model: BTreeMap<&str, Vec<Value>> =
        model_top_k(&OpParams { k: usize::MAX, ..p.clone() }, events).into_iter().collect();
    let mut summaries: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for row in &model["top"] {
        let count = row["count"].as_u64().expect("count");
        let s = summaries.entry(row["k"].as_str().expect("k").to_string()).or_default();
        *s = (s.0 + 1, s.1 + count, s.2.max(count));
    }
    let summary = summaries
        .into_iter()
        .map(|(k, (counts, total, max))| json!({"k": k, "counts": counts, "total": total, "max": max}))
        .collect();
    vec![("summary", summary), ("dead_letter", model.remove("dead_letter").expect("dead letters"))]
}

/// `retiring`'s rows: per key, its applied opener and the greatest `v` of its applied
/// records in `[open, open + size]`; records are applied when `ts + allowed_lateness >= W`.
pub(super) fn model_retiring(p: &OpParams, events: &[Ev]) -> Expected {
    let mut dead = Vec::new();
    let applied = split_in_time("events", events, p.max_out_of_orderness, p.allowed_lateness, &mut dead);
    let mut rows = Vec::new();
    let opens: BTreeMap<&str, u64> = applied.iter().filter(|e| e.v == 0).map(|e| (e.k.as_str(), e.ts)).collect();
    for (k, open) in opens {
        let best =
            applied.iter().filter(|e| e.k == k && e.v > 0 && (open..=open + p.size).contains(&e.ts)).map(|e| e.v);
        if let Some(best) = best.max() {
            rows.push(json!({"k": k, "open": open, "best": best}));
        }
    }
    vec![("auctions", rows), ("dead_letter", dead)]
}
