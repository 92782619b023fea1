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

/// An output's content, maintained from its changes.
pub struct Materialized {
    state: Mutex<State>,
    moved: Condvar,
}

struct State {
    workers: Vec<Option<Time>>,
    frontier: Option<Time>,
    pending: Vec<(RowText, Time, Diff)>,
    rows: HashMap<RowText, Diff>,
    log: Option<Vec<(Time, RowText, Diff)>>,
}

impl Materialized {
    /// An empty output fed by `workers` workers; `log_changes` keeps every change.
    pub fn new(workers: usize, log_changes: bool) -> Arc<Materialized> {
        Arc::new(Materialized {
            state: Mutex::new(State {
                workers: vec![Some(0); workers],
                frontier: Some(0),
                pending: Vec::new(),
                rows: HashMap::default(),
                log: log_changes.then(Vec::new),
            }),
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

    /// The rows and their multiplicities at the frontier, and the frontier.
    pub fn snapshot(&self) -> (Option<Time>, Vec<(RowText, Diff)>) {
        let state = self.state.lock().expect("output lock");
        (state.frontier, state.rows.iter().map(|(r, d)| (r.clone(), *d)).collect())
    }

    /// The changes logged so far, emptying the log.
    pub fn take_changes(&self) -> Vec<(Time, RowText, Diff)> {
        self.state.lock().expect("output lock").log.as_mut().map(std::mem::take).unwrap_or_default()
    }
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
        let State { pending, rows, log, .. } = &mut *state;
        let (done, later): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(_, t, _)| global.is_none_or(|f| *t < f));
        *pending = later;
        for (row, time, diff) in done {
            let n = rows.entry(row.clone()).or_insert(0);
            *n += diff;
            if *n == 0 {
                rows.remove(&row);
            }
            if let Some(log) = log {
                log.push((time, row, diff));
            }
        }
        drop(state);
        self.moved.notify_all();
    }
}
