//! Served outputs: current rows indexed by key, recent history, and a broadcast.
//!
//! A served output keeps, as of its frontier:
//! - every row with its multiplicity, and an index from key to rows;
//! - the consolidated changes of recent times (the history), for `as_of` queries
//!   and for subscribers resuming from a frontier; it holds every change at times
//!   `>= since` and is bounded by a number of changes;
//! - a broadcast of each frontier step (its changes by time, then its new frontier),
//!   from which subscribers stream. A subscriber that falls a whole queue behind is
//!   told so by the channel and must resynchronize; the output never waits for it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, OnceLock};

use tokio::sync::broadcast;

use super::key::{KeyAtom, RowKey, row_key};
use super::{KeyedChange, RowText};
use crate::pipeline::{Diff, Time};

mod switch;

/// How many frontier steps a subscriber may fall behind before it must resync.
pub const SUBSCRIBER_QUEUE: usize = 256;

/// The consolidated changes of one time.
#[derive(Clone, Debug)]
pub struct Batch {
    /// When they happened.
    pub time: Time,
    /// Rows and multiplicity changes, sorted by row.
    pub changes: Arc<[(RowText, Diff)]>,
}

/// One frontier step of an output, as subscribers receive it.
#[derive(Debug)]
pub struct Step {
    /// The changes of the step, by time.
    pub batches: Vec<Batch>,
    /// The frontier after the step (`None`: the output closed).
    pub frontier: Option<Time>,
    /// The job's watermark at the step.
    pub watermark: Time,
    /// The step's batches rendered for subscribers that need them unfiltered, computed
    /// once for all of them (one text per batch).
    pub rendered: OnceLock<Arc<[String]>>,
}

/// A query for an output's content.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// `field = value` filters on top-level fields.
    pub filters: Vec<(String, String)>,
    /// Content as of this time instead of the frontier.
    pub as_of: Option<Time>,
    /// At most this many rows.
    pub limit: Option<usize>,
}

/// Where a subscription starts.
#[derive(Clone, Copy, Debug)]
pub enum Start {
    /// With the content at the current frontier.
    Snapshot,
    /// With every change at times `>= f` (resuming from frontier `f`).
    Since(Time),
}

/// What asked of an output cannot be answered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unanswerable {
    /// The history no longer goes back that far.
    #[error("history is retained from time {since} only")]
    Gone {
        /// The oldest time still covered.
        since: Time,
    },
    /// The output is not served (it keeps no rows to query).
    #[error("output is not served")]
    NotServed,
}

/// A new subscription: where it starts, then a live stream of steps.
pub struct Subscription {
    /// The frontier at subscription time.
    pub frontier: Option<Time>,
    /// With [`Start::Snapshot`]: the rows at that frontier.
    pub snapshot: Option<Vec<(RowText, Diff)>>,
    /// With [`Start::Since`]: the retained changes from the requested frontier on.
    pub backlog: Vec<Batch>,
    /// Every later step.
    pub steps: broadcast::Receiver<Arc<Step>>,
}

/// The content and history of a served output.
pub(crate) struct Served {
    key_fields: Vec<String>,
    rows: HashMap<RowText, Diff>,
    index: BTreeMap<RowKey, HashSet<RowText>>,
    history: VecDeque<Batch>,
    retained: usize,
    limit: usize,
    since: Time,
    steps: broadcast::Sender<Arc<Step>>,
    /// What checkpoints hold of the history, when they are taken.
    marks: Option<HistoryMarks>,
    /// Changes below this time rebuild a restored output's content (the history of
    /// those times came back from the checkpoint): rows, not history.
    rebuilt_below: Time,
}

/// What the checkpoints hold of an output's history: every batch up to `through`, but
/// those forgotten since.
#[derive(Debug, Default)]
struct HistoryMarks {
    through: Option<Time>,
    forgotten: Vec<Time>,
}

/// What changed in an output's history since the previous checkpoint.
#[derive(Debug, Default)]
pub struct HistoryDelta {
    /// The oldest time the history covers.
    pub since: Time,
    /// Batches added since, oldest first.
    pub added: Vec<Batch>,
    /// Times of the batches it forgot since.
    pub forgotten: Vec<Time>,
}

impl Served {
    pub(crate) fn new(key_fields: Vec<String>, history: usize) -> Served {
        Served {
            key_fields,
            rows: HashMap::new(),
            index: BTreeMap::new(),
            history: VecDeque::new(),
            retained: 0,
            limit: history,
            since: 0,
            steps: broadcast::channel(SUBSCRIBER_QUEUE).0,
            marks: None,
            rebuilt_below: 0,
        }
    }

    /// Keeps what [`Served::history_delta`] needs: checkpoints will hold the history.
    pub(crate) fn track_history(&mut self) {
        self.marks.get_or_insert_with(HistoryMarks::default);
    }

    /// The history's changes since the previous call (the first: all of it), for a
    /// checkpoint.
    pub(crate) fn history_delta(&mut self) -> HistoryDelta {
        let marks = self.marks.get_or_insert_with(HistoryMarks::default);
        let through = marks.through;
        let added: Vec<Batch> = self.history.iter().filter(|b| through.is_none_or(|t| b.time > t)).cloned().collect();
        marks.through = added.last().map(|b| b.time).or(through);
        HistoryDelta { since: self.since, added, forgotten: std::mem::take(&mut marks.forgotten) }
    }

    /// Takes back the history a checkpoint at `frontier` held (`batches`, oldest first,
    /// covering times from `since`): the changes the restored job's dataflow makes
    /// below `frontier` rebuild the rows and are not history.
    pub(crate) fn restore_history(&mut self, since: Time, batches: Vec<Batch>, frontier: Time) {
        self.retained = batches.iter().map(|b| b.changes.len()).sum();
        self.marks = Some(HistoryMarks { through: batches.last().map(|b| b.time), forgotten: Vec::new() });
        self.history = batches.into();
        self.since = since;
        self.rebuilt_below = frontier;
    }

    /// The number of rows (with multiplicities).
    pub(crate) fn len(&self) -> usize {
        self.rows.values().map(|n| (*n).max(0) as usize).sum()
    }

    /// Applies the changes of a frontier step (all at times below `frontier`).
    pub(crate) fn step(&mut self, mut changes: Vec<KeyedChange>, frontier: Option<Time>, watermark: Time) {
        self.apply_net(&changes);
        changes.retain(|c| c.time >= self.rebuilt_below);
        changes.sort_by(|a, b| (a.time, &a.row).cmp(&(b.time, &b.row)));
        let mut batches = Vec::new();
        let mut changes = changes.into_iter().peekable();
        while let Some(first) = changes.next() {
            let time = first.time;
            let mut consolidated: Vec<(RowText, Diff)> = Vec::new();
            for change in std::iter::once(first).chain(std::iter::from_fn(|| changes.next_if(|c| c.time == time))) {
                match consolidated.last_mut() {
                    Some((row, diff)) if *row == change.row => *diff += change.diff,
                    _ => consolidated.push((change.row, change.diff)),
                }
            }
            consolidated.retain(|(_, d)| *d != 0);
            if !consolidated.is_empty() {
                batches.push(Batch { time, changes: consolidated.into() });
            }
        }
        for batch in &batches {
            self.retained += batch.changes.len();
            self.history.push_back(batch.clone());
        }
        self.forget_beyond_limit();
        // No receivers is fine: nobody is subscribed.
        let _ = self.steps.send(Arc::new(Step { batches, frontier, watermark, rendered: OnceLock::new() }));
    }

    /// Forgets the oldest batches while the history holds more changes than its limit.
    fn forget_beyond_limit(&mut self) {
        while self.retained > self.limit {
            let Some(oldest) = self.history.pop_front() else { break };
            self.retained -= oldest.changes.len();
            self.since = oldest.time + 1;
            // Only what a checkpoint holds needs removing from it.
            if let Some(marks) = self.marks.as_mut().filter(|m| m.through.is_some_and(|t| oldest.time <= t)) {
                marks.forgotten.push(oldest.time);
            }
        }
    }

    /// Applies the net effect of a step's changes to the rows and the index: a row
    /// that changed at many times within the step (a window updated by each of its
    /// events) costs one update, not one per time.
    fn apply_net(&mut self, changes: &[KeyedChange]) {
        // Hashing, not sorting: rows share long prefixes (`{"key":...`), which makes
        // comparisons slow.
        let mut net: HashMap<&str, (Diff, &KeyedChange), foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(changes.len(), Default::default());
        for change in changes {
            net.entry(&change.row).or_insert((0, change)).0 += change.diff;
        }
        for (diff, change) in net.into_values() {
            if diff != 0 {
                self.apply(&change.row, change.key.as_ref(), diff);
            }
        }
    }

    fn apply(&mut self, row: &RowText, key: Option<&RowKey>, diff: Diff) {
        let n = self.rows.entry(row.clone()).or_insert(0);
        let before = *n;
        *n += diff;
        let after = *n;
        if after == 0 {
            self.rows.remove(row);
        }
        if let Some(key) = key
            && (before == 0) != (after == 0)
        {
            if after == 0 {
                if let Some(rows) = self.index.get_mut(key) {
                    rows.remove(row);
                    if rows.is_empty() {
                        self.index.remove(key);
                    }
                }
            } else {
                self.index.entry(key.clone()).or_default().insert(row.clone());
            }
        }
    }

    /// The rows matching `query`, sorted by text, as of its time (which the frontier
    /// must have passed).
    pub(crate) fn query(&self, query: &Query) -> Result<Vec<(RowText, Diff)>, Unanswerable> {
        let filters: Vec<(String, Vec<KeyAtom>)> =
            query.filters.iter().map(|(f, v)| (f.clone(), KeyAtom::candidates(v))).collect();
        let mut rows: HashMap<RowText, Diff> = match self.indexed(&filters) {
            Some(candidates) => candidates.into_iter().map(|r| (r.clone(), self.rows[r])).collect(),
            None => self.rows.iter().map(|(r, n)| (r.clone(), *n)).collect(),
        };
        if let Some(t) = query.as_of {
            if t + 1 < self.since {
                return Err(Unanswerable::Gone { since: self.since });
            }
            // Undo the changes after `t`.
            for batch in self.history.iter().rev().take_while(|b| b.time > t) {
                for (row, diff) in batch.changes.iter() {
                    *rows.entry(row.clone()).or_insert(0) -= diff;
                }
            }
        }
        let mut rows: Vec<(RowText, Diff)> =
            rows.into_iter().filter(|(row, n)| *n > 0 && matches(row, &filters)).collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(limit) = query.limit {
            let mut left = limit;
            rows.retain_mut(|(_, n)| {
                let take = (*n as usize).min(left);
                left -= take;
                *n = take as Diff;
                take > 0
            });
        }
        Ok(rows)
    }

    /// The rows whose key starts with the filtered values of a prefix of the key
    /// fields, if the filters cover at least the first key field.
    fn indexed(&self, filters: &[(String, Vec<KeyAtom>)]) -> Option<HashSet<&RowText>> {
        let prefix: Vec<&Vec<KeyAtom>> = self
            .key_fields
            .iter()
            .map_while(|k| filters.iter().find(|(f, _)| f == k).map(|(_, atoms)| atoms))
            .collect();
        if prefix.is_empty() {
            return None;
        }
        let mut found = HashSet::new();
        for combination in combinations(&prefix) {
            let range = self.index.range::<[KeyAtom], _>((Bound::Included(&combination[..]), Bound::Unbounded));
            for (_, rows) in range.take_while(|(key, _)| key.starts_with(&combination)) {
                found.extend(rows);
            }
        }
        Some(found)
    }

    /// Starts a subscription (under the output's lock, so nothing falls between).
    pub(crate) fn subscribe(&self, start: Start, frontier: Option<Time>) -> Result<Subscription, Unanswerable> {
        let (snapshot, backlog) = match start {
            Start::Snapshot => {
                let mut rows: Vec<(RowText, Diff)> = self.rows.iter().map(|(r, n)| (r.clone(), *n)).collect();
                rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                (Some(rows), Vec::new())
            }
            Start::Since(f) => {
                // A resume point beyond the frontier was never given out by this output:
                // it comes from one that was rebuilt (a restart), whose rows the client
                // holds and this one may not.
                if f < self.since || frontier.is_some_and(|now| f > now) {
                    return Err(Unanswerable::Gone { since: self.since });
                }
                (None, self.history.iter().filter(|b| b.time >= f).cloned().collect())
            }
        };
        Ok(Subscription { frontier, snapshot, backlog, steps: self.steps.subscribe() })
    }

    /// The oldest time the history covers.
    pub(crate) fn since(&self) -> Time {
        self.since
    }
}

/// Whether `row` satisfies every filter.
pub fn matches(row: &str, filters: &[(String, Vec<KeyAtom>)]) -> bool {
    if filters.is_empty() {
        return true;
    }
    let fields: Vec<String> = filters.iter().map(|(f, _)| f.clone()).collect();
    let values = row_key(row, &fields);
    values.iter().zip(filters).all(|(value, (_, atoms))| atoms.contains(value))
}

/// Every way of picking one atom per position.
fn combinations(choices: &[&Vec<KeyAtom>]) -> Vec<Vec<KeyAtom>> {
    choices.iter().fold(vec![Vec::new()], |acc, atoms| {
        acc.into_iter()
            .flat_map(|prefix| {
                atoms.iter().map(move |a| {
                    let mut next = prefix.clone();
                    next.push(a.clone());
                    next
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::output::key::row_key;

    fn change(row: &str, time: Time, diff: Diff) -> KeyedChange {
        let key = row_key(row, &["k".to_string(), "s".to_string()]);
        KeyedChange { row: row.into(), key: Some(key), time, diff }
    }

    fn texts(rows: Vec<(RowText, Diff)>) -> Vec<(String, Diff)> {
        rows.into_iter().map(|(r, n)| (r.to_string(), n)).collect()
    }

    fn served() -> Served {
        let mut s = Served::new(vec!["k".into(), "s".into()], 4);
        s.step(vec![change(r#"{"k":"a","s":0}"#, 1, 1), change(r#"{"k":"b","s":0}"#, 2, 1)], Some(3), 3);
        s.step(vec![change(r#"{"k":"a","s":0}"#, 5, -1), change(r#"{"k":"a","s":10}"#, 5, 2)], Some(6), 6);
        s
    }

    #[test]
    fn queries_use_filters_limits_and_history() {
        let s = served();
        let all = s.query(&Query::default()).unwrap();
        assert_eq!(texts(all), vec![(r#"{"k":"a","s":10}"#.into(), 2), (r#"{"k":"b","s":0}"#.into(), 1)]);
        let by_key = s.query(&Query { filters: vec![("k".into(), "a".into())], ..Query::default() }).unwrap();
        assert_eq!(texts(by_key), vec![(r#"{"k":"a","s":10}"#.into(), 2)]);
        let by_second = s.query(&Query { filters: vec![("s".into(), "0".into())], ..Query::default() }).unwrap();
        assert_eq!(texts(by_second), vec![(r#"{"k":"b","s":0}"#.into(), 1)]);
        let limited = s.query(&Query { limit: Some(1), ..Query::default() }).unwrap();
        assert_eq!(texts(limited), vec![(r#"{"k":"a","s":10}"#.into(), 1)]);
        let past = s.query(&Query { as_of: Some(2), ..Query::default() }).unwrap();
        assert_eq!(texts(past), vec![(r#"{"k":"a","s":0}"#.into(), 1), (r#"{"k":"b","s":0}"#.into(), 1)]);
        assert_eq!(s.len(), 3);
    }

    /// A checkpoint's delta holds the batches added since the previous one and removes
    /// only forgotten batches a checkpoint held; a restored output's rebuild below the
    /// checkpoint's frontier changes its rows, not its history.
    #[test]
    fn history_deltas_and_restored_history() {
        let mut s = Served::new(vec!["k".into(), "s".into()], 4);
        s.step(vec![change(r#"{"k":"a","s":0}"#, 1, 1)], Some(2), 2);
        s.track_history();
        // Forgotten before any checkpoint held it: nothing to remove.
        s.step(vec![change(r#"{"k":"b","s":0}"#, 2, 1), change(r#"{"k":"c","s":0}"#, 2, 1)], Some(3), 3);
        s.step(vec![change(r#"{"k":"d","s":0}"#, 3, 1), change(r#"{"k":"e","s":0}"#, 3, 1)], Some(4), 4);
        let first = s.history_delta();
        assert_eq!((first.since, first.forgotten.len()), (2, 0));
        assert_eq!(first.added.iter().map(|b| b.time).collect::<Vec<_>>(), vec![2, 3]);
        s.step(vec![change(r#"{"k":"f","s":0}"#, 4, 1)], Some(5), 5);
        let second = s.history_delta();
        assert_eq!((second.since, second.forgotten), (3, vec![2]));
        assert_eq!(second.added.iter().map(|b| b.time).collect::<Vec<_>>(), vec![4]);

        let mut restored = Served::new(vec!["k".into(), "s".into()], 4);
        let batches: Vec<Batch> = s.history.iter().cloned().collect();
        restored.restore_history(3, batches, 5);
        let rebuilt = ["a", "b", "c", "d", "e", "f"].map(|k| change(&format!(r#"{{"k":"{k}","s":0}}"#), 4, 1));
        restored.step(rebuilt.to_vec(), Some(5), 5);
        assert_eq!(restored.query(&Query::default()), s.query(&Query::default()));
        for as_of in 2..5 {
            let query = Query { as_of: Some(as_of), ..Query::default() };
            assert_eq!(restored.query(&query), s.query(&query), "as of {as_of}");
        }
        let backlog = |s: &Served| s.subscribe(Start::Since(3), Some(5)).unwrap().backlog;
        let times = |b: Vec<Batch>| b.iter().map(|b| (b.time, b.changes.len())).collect::<Vec<_>>();
        assert_eq!(times(backlog(&restored)), times(backlog(&s)));
        assert!(restored.history_delta().added.is_empty(), "the restored batches are held already");
    }

    #[test]
    fn bounded_history_forgets_old_times() {
        let mut s = served();
        s.step(vec![change(r#"{"k":"c","s":0}"#, 7, 1), change(r#"{"k":"d","s":0}"#, 8, 1)], Some(9), 9);
        // 6 changes retained at most 4: the batches of times 1 and 2 went.
        assert_eq!(s.since(), 3);
        assert_eq!(s.query(&Query { as_of: Some(1), ..Query::default() }), Err(Unanswerable::Gone { since: 3 }));
        assert!(s.query(&Query { as_of: Some(2), ..Query::default() }).is_ok());
        assert!(matches!(s.subscribe(Start::Since(2), Some(9)), Err(Unanswerable::Gone { .. })));
        let sub = s.subscribe(Start::Since(6), Some(9)).unwrap();
        assert_eq!(sub.backlog.iter().map(|b| b.time).collect::<Vec<_>>(), vec![7, 8]);
        // A resume point beyond the frontier comes from another (rebuilt) output.
        assert!(matches!(s.subscribe(Start::Since(10), Some(9)), Err(Unanswerable::Gone { .. })));
        assert!(s.subscribe(Start::Since(9), Some(9)).is_ok());
        assert!(s.subscribe(Start::Since(10), None).is_ok());
    }

    #[test]
    fn subscribers_get_every_later_step() {
        let mut s = served();
        let mut sub = s.subscribe(Start::Snapshot, Some(6)).unwrap();
        assert_eq!(sub.snapshot.as_ref().map(Vec::len), Some(2));
        s.step(vec![change(r#"{"k":"b","s":0}"#, 7, -1)], Some(8), 8);
        let step = sub.steps.try_recv().unwrap();
        assert_eq!((step.batches.len(), step.frontier), (1, Some(8)));
    }
}
