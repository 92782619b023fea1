//! Window members: each record in each of its tumbling or sliding windows, for
//! computations over a window's whole content (clustering, training).
//!
//! A record enters each of its windows its stamp allows (`end + allowed_lateness >
//! stamp`), at its own time, and leaves them all when the window is evicted
//! (`final + retention`). Until then it stays: unlike an aggregate, a member is
//! needed for as long as anything computed from the window is shown.

use std::collections::{BTreeMap, HashMap};

use super::super::keyed::{KeyedLogic, Timers};
use super::super::{Data, Diff, Time, Window, Windowing};

/// The [`KeyedLogic`] of window members, on one worker.
pub(crate) struct Members<D> {
    windowing: Windowing,
    /// Members by window, with multiplicities.
    windows: BTreeMap<Window, HashMap<D, Diff>>,
    timers: Timers<Window>,
    watermark: Time,
    changes: Vec<((Window, D), Diff)>,
}

impl<D: Data> Members<D> {
    pub(crate) fn new(windowing: Windowing) -> Self {
        Members { windowing, windows: BTreeMap::new(), timers: Timers::default(), watermark: 0, changes: Vec::new() }
    }
}

impl<D: Data> KeyedLogic for Members<D> {
    type Key = D;
    type Value = Time;
    type Out = (Window, D);

    fn update(&mut self, record: D, ts: Time, stamp: Time, diff: Diff) {
        let (w, windowing) = (self.watermark, self.windowing);
        for window in windowing.kind.windows(ts) {
            if !windowing.applicable(&window, stamp) || w >= windowing.final_at(&window) {
                continue;
            }
            let members = self.windows.entry(window).or_insert_with(|| {
                if let Some(at) = windowing.evict_at(&window) {
                    self.timers.schedule(at, window);
                }
                HashMap::new()
            });
            let count = members.entry(record.clone()).or_insert(0);
            *count += diff;
            if *count == 0 {
                members.remove(&record);
            }
            self.changes.push(((window, record.clone()), diff));
        }
    }

    fn watermark(&mut self, watermarks: &[Time]) {
        self.watermark = watermarks[0];
        for window in self.timers.take_due(self.watermark) {
            for (record, count) in self.windows.remove(&window).unwrap_or_default() {
                self.changes.push(((window, record), -count));
            }
        }
    }

    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>) {
        out.extend(self.changes.drain(..).map(|(member, diff)| (member, time, diff)));
    }
}

/// The [`KeyedLogic`] that hands records on unchanged (to re-time them per step).
pub(crate) struct PassThrough<D> {
    changes: Vec<(D, Diff)>,
}

impl<D> Default for PassThrough<D> {
    fn default() -> Self {
        PassThrough { changes: Vec::new() }
    }
}

impl<D: Data> KeyedLogic for PassThrough<D> {
    type Key = D;
    type Value = ();
    type Out = D;

    fn update(&mut self, record: D, (): (), _stamp: Time, diff: Diff) {
        self.changes.push((record, diff));
    }

    fn watermark(&mut self, _watermarks: &[Time]) {}

    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>) {
        out.extend(self.changes.drain(..).map(|(record, diff)| (record, time, diff)));
    }
}
