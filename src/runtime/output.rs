//! The consumer side of outputs: changes from every worker, merged by frontier.
//!
//! Each worker's sink sends its output's consolidated changes for times its frontier
//! has passed, then its new frontier. The output's frontier is the least of the
//! workers' frontiers; a change becomes part of the output once that frontier passes
//! its time, so every reader sees the output exactly as of a frontier.

mod key;
mod served;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use key::{KeyAtom, OrdF64, RowKey, row_key};
pub use served::{Batch, HistoryDelta, Query, SUBSCRIBER_QUEUE, Start, Step, Subscription, Unanswerable, matches};

use crate::pipeline::{Change, Diff, OutputSink, Time};
use served::Served;

/// A row as JSON text (an object).
pub type RowText = Arc<str>;

/// Rows with their multiplicities.
pub type Rows = Vec<(RowText, Diff)>;

/// One change of an output with the values of its key fields, as a served output
/// keeps it.
#[derive(Clone, Debug)]
pub struct KeyedChange {
    /// The row.
    pub row: RowText,
    /// The values of its key fields (a served output with key fields only).
    pub key: Option<RowKey>,
    /// When it changed.
    pub time: Time,
    /// By how much its multiplicity changed.
    pub diff: Diff,
}

/// What an output keeps of its changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The current rows indexed by key, the last `history` changes, and a broadcast of
    /// every step: a served output.
    Served {
        /// How many recent changes to keep for `as_of` queries and resuming subscribers.
        history: usize,
    },
    /// Every change with its time (`tidemark run --changes`).
    Changes,
    /// Only the rows as of the end: changes are appended and consolidated by sorting
    /// now and then, which costs no hashing and leaves the rows sorted (`tidemark run`).
    Final,
}

enum Store {
    Served(Served),
    Changes(Vec<(Time, RowText, Diff)>),
    Final { log: Vec<(RowText, Diff)>, consolidated: usize },
}

/// An output's content, maintained from its changes.
pub struct Materialized {
    state: Mutex<State>,
    moved: Condvar,
    frontier_watch: watch::Sender<Option<Time>>,
    key_fields: Vec<String>,
    watermark: Arc<AtomicU64>,
}

struct State {
    workers: Vec<Option<Time>>,
    frontier: Option<Time>,
    pending: Vec<KeyedChange>,
    store: Store,
}

impl Materialized {
    /// An empty output fed by `workers` workers, keeping what `keep` says, keyed by
    /// `key_fields`; progress reports the job watermark `watermark`.
    pub fn new(workers: usize, keep: Keep, key_fields: Vec<String>, watermark: Arc<AtomicU64>) -> Arc<Materialized> {
        let store = match keep {
            Keep::Served { history } => Store::Served(Served::new(key_fields.clone(), history)),
            Keep::Changes => Store::Changes(Vec::new()),
            Keep::Final => Store::Final { log: Vec::new(), consolidated: 0 },
        };
        let key_fields = if matches!(keep, Keep::Served { .. }) { key_fields } else { Vec::new() };
        Arc::new(Materialized {
            state: Mutex::new(State { workers: vec![Some(0); workers], frontier: Some(0), pending: Vec::new(), store }),
            moved: Condvar::new(),
            frontier_watch: watch::channel(Some(0)).0,
            key_fields,
            watermark,
        })
    }

    /// The job watermark reported with this output's progress.
    pub fn watermark(&self) -> Time {
        self.watermark.load(Ordering::SeqCst)
    }

    /// Waits (asynchronously) until the frontier passes `time`; false on timeout.
    pub async fn wait_past(&self, time: Time, timeout: Duration) -> bool {
        let mut frontier = self.frontier_watch.subscribe();
        let passed = frontier.wait_for(|f| f.is_none_or(|f| f > time));
        matches!(tokio::time::timeout(timeout, passed).await, Ok(Ok(_)))
    }

    /// The content matching `query` with the frontier and watermark it is complete at.
    /// For `as_of`, the frontier must already have passed that time.
    pub fn query(&self, query: &Query) -> Result<(Option<Time>, Rows), Unanswerable> {
        let state = self.state.lock().expect("output lock");
        match &state.store {
            Store::Served(served) => Ok((state.frontier, served.query(query)?)),
            _ => Err(Unanswerable::NotServed),
        }
    }

    /// Starts a subscription, atomically with the content or history it starts from.
    pub fn subscribe(&self, start: Start) -> Result<Subscription, Unanswerable> {
        let state = self.state.lock().expect("output lock");
        match &state.store {
            Store::Served(served) => served.subscribe(start, state.frontier),
            _ => Err(Unanswerable::NotServed),
        }
    }

    /// The number of rows at the frontier (with multiplicities), for a served output.
    pub fn len(&self) -> usize {
        match &self.state.lock().expect("output lock").store {
            Store::Served(served) => served.len(),
            _ => 0,
        }
    }

    /// Whether a served output holds no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The oldest time a served output's history covers.
    pub fn since(&self) -> Time {
        match &self.state.lock().expect("output lock").store {
            Store::Served(served) => served.since(),
            _ => 0,
        }
    }

    /// A served output keeps what [`Materialized::history_delta`] needs, for the
    /// checkpoints that will hold its history.
    pub fn track_history(&self) {
        if let Store::Served(served) = &mut self.state.lock().expect("output lock").store {
            served.track_history();
        }
    }

    /// A served output's history changes since the previous call, for a checkpoint
    /// (`None` for outputs that keep no history).
    pub fn history_delta(&self) -> Option<HistoryDelta> {
        match &mut self.state.lock().expect("output lock").store {
            Store::Served(served) => Some(served.history_delta()),
            _ => None,
        }
    }

    /// Gives a served output the history a checkpoint at `frontier` held (see
    /// `Served::restore_history`); before the restored dataflow runs.
    pub fn restore_history(&self, since: Time, batches: Vec<Batch>, frontier: Time) {
        if let Store::Served(served) = &mut self.state.lock().expect("output lock").store {
            served.restore_history(since, batches, frontier);
        }
    }

    /// Takes over the subscribers of `old`, an earlier version's output of the same
    /// job whose history this one was restored from, and records at `at` (below this
    /// output's frontier) the change from `old`'s rows to these: the switch of an
    /// upgrade (see `served::switch`). Returns that change; `Gone` if this output is not
    /// complete past `at` yet, `NotServed` if either output is not served.
    pub fn take_over(&self, old: &Materialized, at: Time) -> Result<Rows, Unanswerable> {
        let mut state = self.state.lock().expect("output lock");
        let mut previous = old.state.lock().expect("output lock");
        let frontier = state.frontier;
        if frontier.is_some_and(|f| f <= at) {
            return Err(Unanswerable::Gone { since: at });
        }
        match (&mut state.store, &mut previous.store) {
            (Store::Served(new), Store::Served(old)) => Ok(new.take_over(old, at, frontier, self.watermark())),
            _ => Err(Unanswerable::NotServed),
        }
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
        let rows = match &mut state.store {
            Store::Served(served) => served.query(&Query::default()).unwrap_or_default(),
            Store::Changes(changes) => {
                let mut rows: Vec<_> = changes.iter().map(|(_, r, d)| (r.clone(), *d)).collect();
                consolidate(&mut rows);
                rows
            }
            Store::Final { log, consolidated } => {
                consolidate(log);
                *consolidated = log.len();
                log.clone()
            }
        };
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
            Store::Served(_) => unreachable!("served outputs apply whole steps"),
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
    fn changes(&self, _worker: usize, changes: Vec<Change>) {
        // Keys are read here, on the worker's thread, not under the output's lock.
        let keyed = changes.into_iter().map(|Change { row, time, diff }| {
            let key = (!self.key_fields.is_empty()).then(|| row_key(&row, &self.key_fields));
            KeyedChange { row, key, time, diff }
        });
        let keyed: Vec<KeyedChange> = keyed.collect();
        self.state.lock().expect("output lock").pending.extend(keyed);
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
        let done = pending.extract_if(.., |c| global.is_none_or(|f| c.time < f));
        match store {
            Store::Served(served) => served.step(done.collect(), global, self.watermark()),
            store => done.for_each(|c| store.apply(c.row, c.time, c.diff)),
        }
        drop(state);
        self.frontier_watch.send_replace(global);
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
        let change = |r: &str, time, diff| Change { row: row(r), time, diff };
        for keep in [Keep::Served { history: 100 }, Keep::Changes, Keep::Final] {
            let out = Materialized::new(2, keep, Vec::new(), Arc::default());
            let sink: &dyn OutputSink = &*out;
            sink.changes(0, vec![change("b", 1, 1), change("a", 2, 2), change("c", 9, 1)]);
            sink.changes(1, vec![change("b", 3, -1), change("d", 4, 1)]);
            sink.frontier(0, Some(10));
            assert_eq!(out.frontier(), Some(0), "{keep:?}: worker 1 still at 0");
            sink.frontier(1, Some(5));
            assert_eq!(out.snapshot(), (Some(5), vec![(row("a"), 2), (row("d"), 1)]), "{keep:?}");
            sink.frontier(1, None);
            assert_eq!(out.snapshot().1, vec![(row("a"), 2), (row("c"), 1), (row("d"), 1)], "{keep:?}");
        }
    }
}
