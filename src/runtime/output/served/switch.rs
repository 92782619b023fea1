//! Switching a served output from one version of a job to another (an upgrade)
//! without its subscribers noticing anything but ordinary updates.
//!
//! The new version's output is restored from the old one's checkpoint at `F` (its
//! history below `F` is the old version's) and rebuilt by the new dataflow past `F`, so
//! its rows are the new version's content. [`Served::take_over`] then takes the old
//! output's subscribers and appends, at `F`, the one batch that turns the old content
//! into the new: a subscriber that accumulated the old stream, then this batch, holds
//! the new content, and `as_of` below `F` still answers the old version's.

use std::sync::{Arc, OnceLock};

use super::{Batch, Served, Step};
use crate::pipeline::{Diff, Time};
use crate::runtime::output::RowText;

impl Served {
    /// Takes `old`'s subscribers, and records at time `at` (at least the old output's
    /// frontier, below this one's `frontier`) the change from `old`'s rows to these,
    /// which it broadcasts as a step to `frontier`. Returns that change, sorted by row.
    pub(crate) fn take_over(
        &mut self,
        old: &mut Served,
        at: Time,
        frontier: Option<Time>,
        watermark: Time,
    ) -> Vec<(RowText, Diff)> {
        let mut change: Vec<(RowText, Diff)> = self
            .rows
            .iter()
            .map(|(row, n)| (row.clone(), n - old.rows.get(row).copied().unwrap_or(0)))
            .chain(old.rows.iter().filter(|(row, _)| !self.rows.contains_key(*row)).map(|(row, n)| (row.clone(), -n)))
            .filter(|(_, d)| *d != 0)
            .collect();
        change.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        std::mem::swap(&mut self.steps, &mut old.steps);
        let mut batches = Vec::new();
        if !change.is_empty() {
            let batch = Batch { time: at, changes: change.clone().into() };
            self.retained += batch.changes.len();
            self.history.push_back(batch.clone());
            self.forget_beyond_limit();
            batches.push(batch);
        }
        let _ = self.steps.send(Arc::new(Step { batches, frontier, watermark, rendered: OnceLock::new() }));
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::output::served::{Query, Start};
    use crate::runtime::output::{KeyedChange, RowText};

    fn change(row: &str, time: Time, diff: Diff) -> KeyedChange {
        KeyedChange { row: RowText::from(row), key: None, time, diff }
    }

    fn rows(served: &Served, as_of: Option<Time>) -> Vec<(String, Diff)> {
        let query = Query { as_of, ..Query::default() };
        served.query(&query).unwrap().into_iter().map(|(r, n)| (r.to_string(), n)).collect()
    }

    /// The old version showed `a` and `b`; the new one, restored from its checkpoint at
    /// 5 and rebuilt, shows `a` twice and `c`. Its subscriber, taken over, gets one step
    /// at 5 with the difference; `as_of` below 5 is the old content, from 5 the new.
    #[test]
    fn a_taken_over_output_carries_its_subscribers_on_with_one_batch() {
        let mut old = Served::new(Vec::new(), 100);
        old.step(vec![change("a", 1, 1), change("b", 2, 1)], Some(5), 0);
        let mut subscriber = old.subscribe(Start::Snapshot, Some(5)).unwrap().steps;

        let mut new = Served::new(Vec::new(), 100);
        new.restore_history(0, old.history.iter().cloned().collect(), 5);
        new.step(vec![change("a", 1, 2), change("c", 3, 1)], Some(5), 0);
        new.step(Vec::new(), Some(6), 0);
        let taken = new.take_over(&mut old, 5, Some(6), 0);
        let taken: Vec<(String, Diff)> = taken.into_iter().map(|(r, d)| (r.to_string(), d)).collect();
        let expected = vec![("a".to_string(), 1), ("b".to_string(), -1), ("c".to_string(), 1)];
        assert_eq!(taken, expected);

        let step = subscriber.try_recv().expect("a step");
        assert_eq!(step.frontier, Some(6));
        let batches: Vec<(Time, Vec<(String, Diff)>)> = step
            .batches
            .iter()
            .map(|b| (b.time, b.changes.iter().map(|(r, d)| (r.to_string(), *d)).collect()))
            .collect();
        assert_eq!(batches, vec![(5, expected)]);
        assert_eq!(rows(&new, Some(4)), vec![("a".to_string(), 1), ("b".to_string(), 1)], "the old version below 5");
        assert_eq!(rows(&new, Some(5)), vec![("a".to_string(), 2), ("c".to_string(), 1)], "the new one from 5");
        let resumed = new.subscribe(Start::Since(3), Some(6)).unwrap();
        assert_eq!(resumed.backlog.iter().map(|b| b.time).collect::<Vec<_>>(), vec![5], "resuming finds the switch");

        // Later steps of the new version reach the same subscriber; the old output has
        // none left.
        new.step(vec![change("d", 6, 1)], Some(7), 0);
        assert_eq!(subscriber.try_recv().expect("the next step").frontier, Some(7));
        assert_eq!(old.steps.receiver_count(), 0);
    }
}
