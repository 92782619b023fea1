//! Window members: each record in each of its tumbling or sliding windows, for
//! computations over a window's whole content (clustering, training).
//!
//! A record enters each of its windows its stamp allows (`end + allowed_lateness >
//! stamp`), at its own time, and leaves them all when the window is evicted
//! (`final + retention`). Until then it stays: unlike an aggregate, a member is
//! needed for as long as anything computed from the window is shown.

use std::collections::BTreeMap;

use foldhash::HashSet;

use super::super::keyed::{KeySlots, KeyedLogic, Saving, Snapshot, SnapshotBytes, Timers};
use super::super::{Data, Diff, Time, Window, Windowing};

/// The [`KeyedLogic`] of window members, on one worker.
pub(crate) struct Members<D> {
    windowing: Windowing,
    /// Each record's windows, with its multiplicity in each (the state checkpoints
    /// hold, by record).
    keys: KeySlots<D, Vec<(Window, Diff)>>,
    /// The records (by slot) in each window not yet evicted.
    windows: BTreeMap<Window, HashSet<u32>>,
    timers: Timers<Window>,
    watermark: Time,
    changes: Vec<((Window, D), Diff)>,
}

impl<D: Data> Members<D> {
    pub(crate) fn new(windowing: Windowing) -> Self {
        Members {
            windowing,
            keys: KeySlots::default(),
            windows: BTreeMap::new(),
            timers: Timers::default(),
            watermark: 0,
            changes: Vec::new(),
        }
    }
}

/// The members of `window`, the window made (and its eviction scheduled) if new.
fn members<'a>(
    windows: &'a mut BTreeMap<Window, HashSet<u32>>,
    timers: &mut Timers<Window>,
    windowing: &Windowing,
    window: Window,
) -> &'a mut HashSet<u32> {
    windows.entry(window).or_insert_with(|| {
        if let Some(at) = windowing.evict_at(&window) {
            timers.schedule(at, window);
        }
        HashSet::default()
    })
}

impl<D: Data> KeyedLogic for Members<D> {
    type Key = D;
    type Value = Time;
    type Out = (Window, D);

    fn update(&mut self, record: D, ts: Time, stamp: Time, diff: Diff) {
        let (w, windowing) = (self.watermark, self.windowing);
        let windows: Vec<Window> = windowing
            .kind
            .windows(ts)
            .filter(|window| windowing.applicable(window, stamp) && w < windowing.final_at(window))
            .collect();
        if windows.is_empty() {
            return;
        }
        let id = self.keys.slot(record);
        let Some((record, entries)) = self.keys.get(id) else { return };
        for window in windows {
            let members = members(&mut self.windows, &mut self.timers, &windowing, window);
            match entries.iter().position(|(win, _)| *win == window) {
                Some(i) => {
                    entries[i].1 += diff;
                    if entries[i].1 == 0 {
                        entries.swap_remove(i);
                        members.remove(&id);
                    }
                }
                None => {
                    entries.push((window, diff));
                    members.insert(id);
                }
            }
            self.changes.push(((window, record.clone()), diff));
        }
        if entries.is_empty() {
            self.keys.release(id);
        } else {
            self.keys.mark(id);
        }
    }

    fn watermark(&mut self, watermarks: &[Time]) {
        self.watermark = watermarks[0];
        for window in self.timers.take_due(self.watermark) {
            for id in self.windows.remove(&window).unwrap_or_default() {
                let Some((record, entries)) = self.keys.get(id) else { continue };
                let Some(i) = entries.iter().position(|(win, _)| *win == window) else { continue };
                let (_, count) = entries.swap_remove(i);
                self.changes.push(((window, record.clone()), -count));
                let empty = entries.is_empty();
                self.keys.shrunk(id, empty);
            }
        }
    }

    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>) {
        // Marks only tell checkpoints which records changed.
        self.keys.take_dirty();
        out.extend(self.changes.drain(..).map(|(member, diff)| (member, time, diff)));
    }

    fn layout(&self) -> String {
        format!("{:?}", self.windowing.kind)
    }

    fn as_snapshot(&mut self) -> Option<&mut dyn SnapshotBytes<D, Self::Out>> {
        Some(self)
    }
}

/// A member stays in the state for as long as it is shown (until its window's
/// eviction, or for good without retention), so nothing is ever settled.
impl<D: Data> Snapshot for Members<D> {
    type Saved = Vec<(Window, Diff)>;

    fn save(&mut self, all: bool, out: Saving<'_, D, Vec<(Window, Diff)>>) {
        self.keys.save_changed(all, out, |state| Some(state));
    }

    /// A window's eviction is scheduled when it is first made, here by its first
    /// restored member.
    fn restore(&mut self, record: D, saved: Vec<(Window, Diff)>, shown: &mut Vec<(Window, D)>) {
        for (window, count) in &saved {
            shown.extend(std::iter::repeat_n((*window, record.clone()), (*count).max(0) as usize));
        }
        let windows: Vec<Window> = saved.iter().map(|(window, _)| *window).collect();
        let id = self.keys.restore(record, saved);
        for window in windows {
            members(&mut self.windows, &mut self.timers, &self.windowing, window).insert(id);
        }
    }

    fn track_settled(&mut self) {
        self.keys.track();
    }

    fn take_settled(&mut self) -> Vec<(Window, D)> {
        Vec::new()
    }
}

/// The [`KeyedLogic`] that hands records on unchanged (to re-time them per step).
///
/// Its output is everything it has seen and it keeps none of it, so once checkpoints
/// are on ([`Snapshot::track_settled`]) it counts each record's multiplicity: that is
/// its state. Not settled rows, which stay for good, since a record can be retracted.
pub(crate) struct PassThrough<D> {
    changes: Vec<(D, Diff)>,
    /// Each record's multiplicity so far, once checkpoints are on.
    counts: Option<KeySlots<D, Diff>>,
}

impl<D> Default for PassThrough<D> {
    fn default() -> Self {
        PassThrough { changes: Vec::new(), counts: None }
    }
}

impl<D: Data> KeyedLogic for PassThrough<D> {
    type Key = D;
    type Value = ();
    type Out = D;

    fn update(&mut self, record: D, (): (), _stamp: Time, diff: Diff) {
        if let Some(counts) = self.counts.as_mut() {
            let id = counts.slot(record.clone());
            if let Some((_, count)) = counts.get(id) {
                *count += diff;
                if *count == 0 {
                    counts.release(id);
                } else {
                    counts.mark(id);
                }
            }
        }
        self.changes.push((record, diff));
    }

    fn watermark(&mut self, _watermarks: &[Time]) {}

    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>) {
        if let Some(counts) = self.counts.as_mut() {
            // Marks only tell checkpoints which records changed.
            counts.take_dirty();
        }
        out.extend(self.changes.drain(..).map(|(record, diff)| (record, time, diff)));
    }

    fn as_snapshot(&mut self) -> Option<&mut dyn SnapshotBytes<D, D>> {
        Some(self)
    }
}

impl<D: Data> Snapshot for PassThrough<D> {
    type Saved = Diff;

    fn save(&mut self, all: bool, out: Saving<'_, D, Diff>) {
        let Some(counts) = self.counts.as_mut() else { return };
        counts.save_changed(all, out, |state| Some(state));
    }

    fn restore(&mut self, record: D, count: Diff, shown: &mut Vec<D>) {
        shown.extend(std::iter::repeat_n(record.clone(), count.max(0) as usize));
        self.counts.get_or_insert_with(KeySlots::default).restore(record, count);
    }

    fn track_settled(&mut self) {
        self.counts.get_or_insert_with(KeySlots::default).track();
    }

    fn take_settled(&mut self) -> Vec<D> {
        Vec::new()
    }
}

#[cfg(test)]
mod snapshot_tests;
