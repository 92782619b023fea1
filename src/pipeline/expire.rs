//! Expire: the records of a stream as a collection in which each is retracted again at
//! a time it names ([`Stream::expire`]), as a keyed logic so that checkpoints hold the
//! records not yet retracted.

use std::collections::BTreeMap;
use std::rc::Rc;

use differential_dataflow::Hashable;

use super::keyed::{KeySlots, KeyedLogic, Saving, Snapshot, SnapshotBytes, keyed};
use super::{Collection, Data, Diff, Stream, Time};

impl<'s, D: Data> Stream<'s, D> {
    /// [`Stream::expire`] in a job that takes checkpoints.
    pub(super) fn expire_checkpointed(self, until: impl Fn(&D) -> Time + 'static) -> Collection<'s, D> {
        let Stream { inner, clock, mode } = self;
        let logic = Expire::new(Rc::new(until));
        keyed(inner, |d: &D| d.hashed(), |d: D| (d, ()), std::slice::from_ref(&clock), mode, "expire", logic)
    }
}

/// Each record's changes not yet retracted: `(until, diff)` per arrival, dropped once
/// the operator's time passes `until`.
pub(super) struct Expire<D> {
    until: Rc<dyn Fn(&D) -> Time>,
    records: KeySlots<D, Vec<(Time, Diff)>>,
    /// The slots with a retraction due at each time.
    expiring: BTreeMap<Time, Vec<u32>>,
    /// Changes made since the last flush: at the flush's time (`None`), or at a
    /// retraction time (at least the flush's).
    out: Vec<(D, Option<Time>, Diff)>,
    /// Keys restored, until [`Snapshot::take_restored`] shows them.
    restored: Vec<(D, Vec<(Time, Diff)>)>,
}

impl<D: Data> Expire<D> {
    pub(super) fn new(until: Rc<dyn Fn(&D) -> Time>) -> Self {
        Expire { until, records: KeySlots::default(), expiring: BTreeMap::new(), out: Vec::new(), restored: Vec::new() }
    }
}

impl<D: Data> KeyedLogic for Expire<D> {
    type Key = D;
    type Value = ();
    type Out = D;

    fn update(&mut self, record: D, (): (), _stamp: Time, diff: Diff) {
        let until = (self.until)(&record);
        let id = self.records.slot(record.clone());
        if let Some((_, pending)) = self.records.get(id) {
            pending.push((until, diff));
        }
        self.records.mark(id);
        self.expiring.entry(until).or_default().push(id);
        self.out.push((record.clone(), None, diff));
        self.out.push((record, Some(until), -diff));
    }

    fn watermark(&mut self, _watermarks: &[Time]) {}

    fn flush(&mut self, time: Time, out: &mut Vec<(D, Time, Diff)>) {
        out.extend(self.out.drain(..).map(|(d, at, diff)| (d, at.map_or(time, |at| at.max(time)), diff)));
        // Retracted by now: nothing of them is left to restore. A slot may have been
        // reused by another key since; dropping what is due is right for any key.
        let later = self.expiring.split_off(&time.saturating_add(1));
        for id in std::mem::replace(&mut self.expiring, later).into_values().flatten() {
            let Some((_, pending)) = self.records.get(id) else { continue };
            pending.retain(|(until, _)| *until > time);
            let empty = pending.is_empty();
            self.records.shrunk(id, empty);
        }
        self.records.take_dirty();
    }

    fn as_snapshot(&mut self) -> Option<&mut dyn SnapshotBytes<D, D>> {
        Some(self)
    }
}

impl<D: Data> Snapshot for Expire<D> {
    type Saved = Vec<(Time, Diff)>;

    fn save(&mut self, all: bool, out: Saving<'_, D, Vec<(Time, Diff)>>) {
        self.records.save_changed(all, out, |pending| Some(pending));
    }

    /// Shows nothing yet: what of `pending` is still in the collection depends on the
    /// checkpoint's frontier ([`Snapshot::take_restored`]).
    fn restore(&mut self, record: D, pending: Vec<(Time, Diff)>, _shown: &mut Vec<D>) {
        self.restored.push((record, pending));
    }

    /// Every change still in the collection at `frontier` (retracted at `until >=
    /// frontier`) is shown before it and retracted again at `until`.
    fn take_restored(&mut self, frontier: Time) -> Vec<(D, Time, Diff)> {
        let mut changes = Vec::new();
        for (record, mut pending) in std::mem::take(&mut self.restored) {
            pending.retain(|(until, _)| *until >= frontier);
            if pending.is_empty() {
                continue;
            }
            for &(until, diff) in &pending {
                changes.push((record.clone(), frontier.saturating_sub(1), diff));
                changes.push((record.clone(), until, -diff));
            }
            let untils: Vec<Time> = pending.iter().map(|(until, _)| *until).collect();
            let id = self.records.restore(record, pending);
            for until in untils {
                self.expiring.entry(until).or_default().push(id);
            }
        }
        changes
    }

    fn track_settled(&mut self) {
        self.records.track();
    }

    fn take_settled(&mut self) -> Vec<D> {
        Vec::new()
    }
}

#[cfg(test)]
mod snapshot_tests;
