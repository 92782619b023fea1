//! The consumer side of outputs: changes from every worker, merged by frontier.
//!
//! Each worker's sink sends its output's consolidated changes for times its frontier
//! has passed, then its new frontier. The output's frontier is the least of the
//! workers' frontiers; a change becomes part of the output once that frontier passes
//! its time, so every reader sees the output exactly as of a frontier.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use foldhash::HashMap;

use crate::pipeline::{Diff, Time};

/// A row as JSON text (an object).
pub type RowText = Arc<str>;

/// Receives an output's changes from the workers.
///
/// # Constraints
/// - Per worker, `changes` only carries times below the frontier reported next, and
///   frontiers only move forward (`None`: the worker's output closed).
/// - Calls come from worker threads and must not block for long.
pub trait OutputSink: Send + Sync + 'static {
    /// Consolidated changes of one worker, at times its frontier has passed.
    fn changes(&self, worker: usize, changes: Vec<(RowText, Time, Diff)>);
    /// One worker's frontier moved.
    fn frontier(&self, worker: usize, frontier: Option<Time>);
}

/// What an output keeps of its changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The current rows, for random access (a served output).
    Rows,
    /// Every change with its time (`tidemark run --changes`).
    Changes,
    /// Only the rows as of the end: changes are appended and consolidated by sorting
    /// now and then, which costs no hashing and leaves the rows sorted (`tidemark run`).
    Final,
}

enum Store {
    Rows(HashMap<RowText, Diff>),
    Changes(Vec<(Time, RowText, Diff)>),
    Final { log: Vec<(RowText, Diff)>, consolidated: usize },
}

/// An output's content, maintained from its changes.
pub struct Materialized {
    state: Mutex<State>,
    moved: Condvar,
}

struct State {
    workers: Vec<Option<Time>>,
    frontier: Option<Time>,
    pending: Vec<(RowText, Time, Diff)>,
    store: Store,
}

impl Materialized {
    /// An empty output fed by `workers` workers, keeping what `keep` says.
    pub fn new(workers: usize, keep: Keep) -> Arc<Materialized> {
        let store = match keep {
            Keep::Rows => Store::Rows(HashMap::default()),
            Keep::Changes => Store::Changes(Vec::new()),
            Keep::Final => Store::Final { log: Vec::new(), consolidated: 0 },
        };
        Arc::new(Materialized {
            state: Mutex::new(State { workers: vec![Some(0); workers], frontier: Some(0), pending: Vec::new(), store }),
            moved: Condvar::new(),
        })
    }

    /// The output frontier: complete for all times below it (`None`: closed).
    pub fn frontier(&self) -> Option<Time> {
        self.state.lock().expect("output lock").frontier
    }

    /// Waits until the frontier reaches `frontier`; false on timeout.
    pub fn wait_for(&self, frontier: Time, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().expect("output lock");
        while state.frontier.is_some_and(|f| f < frontier) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self.moved.wait_timeout(state, left.min(Duration::from_millis(100))).expect("output lock").0;
        }
        true
    }

    /// The rows with their multiplicities at the frontier, sorted by their text, and
    /// the frontier.
    pub fn snapshot(&self) -> (Option<Time>, Vec<(RowText, Diff)>) {
        let mut state = self.state.lock().expect("output lock");
        let frontier = state.frontier;
        let mut rows: Vec<_> = match &mut state.store {
            Store::Rows(rows) => rows.iter().map(|(r, d)| (r.clone(), *d)).collect(),
            Store::Changes(changes) => {
                let mut rows: Vec<_> = changes.iter().map(|(_, r, d)| (r.clone(), *d)).collect();
                consolidate(&mut rows);
                return (frontier, rows);
            }
            Store::Final { log, consolidated } => {
                consolidate(log);
                *consolidated = log.len();
                return (frontier, log.clone());
            }
        };
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        (frontier, rows)
    }

    /// The rows with their multiplicities, sorted by their text, emptying the output:
    /// for a reader that is done with it (no copy of the rows is made).
    pub fn take_rows(&self) -> Vec<(RowText, Diff)> {
        let mut state = self.state.lock().expect("output lock");
        match &mut state.store {
            Store::Final { log, consolidated } => {
                consolidate(log);
                *consolidated = 0;
                std::mem::take(log)
            }
            _ => {
                drop(state);
                self.snapshot().1
            }
        }
    }

    /// The changes kept so far (with [`Keep::Changes`]), emptying the log.
    pub fn take_changes(&self) -> Vec<(Time, RowText, Diff)> {
        match &mut self.state.lock().expect("output lock").store {
            Store::Changes(changes) => std::mem::take(changes),
            _ => Vec::new(),
        }
    }
}

impl Store {
    fn apply(&mut self, row: RowText, time: Time, diff: Diff) {
        match self {
            Store::Rows(rows) => {
                let n = rows.entry(row.clone()).or_insert(0);
                *n += diff;
                if *n == 0 {
                    rows.remove(&row);
                }
            }
            Store::Changes(changes) => changes.push((time, row, diff)),
            Store::Final { log, consolidated } => {
                log.push((row, diff));
                if log.len() >= (2 * *consolidated).max(1 << 16) {
                    consolidate(log);
                    *consolidated = log.len();
                }
            }
        }
    }
}

/// Sorts `rows` and sums the multiplicities of equal rows, dropping those that cancel.
fn consolidate(rows: &mut Vec<(RowText, Diff)>) {
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut kept = 0;
    for i in 0..rows.len() {
        if kept > 0 && rows[kept - 1].0 == rows[i].0 {
            rows[kept - 1].1 += rows[i].1;
        } else {
            rows.swap(kept, i);
            kept += 1;
        }
    }
    rows.truncate(kept);
    rows.retain(|(_, n)| *n != 0);
}

impl OutputSink for Materialized {
    fn changes(&self, _worker: usize, changes: Vec<(RowText, Time, Diff)>) {
        self.state.lock().expect("output lock").pending.extend(changes);
    }

    fn frontier(&self, worker: usize, frontier: Option<Time>) {
        let mut state = self.state.lock().expect("output lock");
        state.workers[worker] = frontier;
        let global = state.workers.iter().copied().min_by_key(|f| f.unwrap_or(Time::MAX)).flatten();
        if global == state.frontier {
            return;
        }
        state.frontier = global;
        let State { pending, store, .. } = &mut *state;
        for (row, time, diff) in pending.extract_if(.., |(_, t, _)| global.is_none_or(|f| *t < f)) {
            store.apply(row, time, diff);
        }
        drop(state);
        self.moved.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(text: &str) -> RowText {
        text.into()
    }

    #[test]
    fn every_kind_of_store_shows_the_same_rows() {
        for keep in [Keep::Rows, Keep::Changes, Keep::Final] {
            let out = Materialized::new(2, keep);
            let sink: &dyn OutputSink = &*out;
            sink.changes(0, vec![(row("b"), 1, 1), (row("a"), 2, 2), (row("c"), 9, 1)]);
            sink.changes(1, vec![(row("b"), 3, -1), (row("d"), 4, 1)]);
            sink.frontier(0, Some(10));
            assert_eq!(out.frontier(), Some(0), "{keep:?}: worker 1 still at 0");
            sink.frontier(1, Some(5));
            assert_eq!(out.snapshot(), (Some(5), vec![(row("a"), 2), (row("d"), 1)]), "{keep:?}");
            sink.frontier(1, None);
            assert_eq!(out.snapshot().1, vec![(row("a"), 2), (row("c"), 1), (row("d"), 1)], "{keep:?}");
        }
    }
}
