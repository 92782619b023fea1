//! Dedupe: one record per key per tumbling window.

use std::collections::BTreeMap;
use std::rc::Rc;

use differential_dataflow::Hashable;
use serde::{Deserialize, Serialize};

use super::keyed::{KeySlots, KeyedLogic, Saving, Snapshot, SnapshotBytes, Timers, keyed};
use super::{BuildError, Data, Diff, Stream, Time};

impl<'s, D: Data> Stream<'s, D> {
    /// Keeps one record per key and tumbling window of `size` ms: the one with the
    /// smallest event time (ties: the smallest record), which does not depend on
    /// arrival order. A late record that precedes the kept one replaces it (the old one
    /// is retracted). Records whose window closed more than `allowed_lateness` ago when
    /// they arrived are dropped; a window's state is retired once final.
    ///
    /// # Errors
    /// When `size` is 0.
    pub fn dedupe<K: Data>(
        self,
        name: &str,
        size: Time,
        allowed_lateness: Time,
        key: impl Fn(&D) -> K + 'static,
        ts: impl Fn(&D) -> Time + 'static,
    ) -> Result<Stream<'s, D>, BuildError> {
        if size == 0 {
            return Err(BuildError::operator(name, "the window size must be positive"));
        }
        let Stream { inner, clock, mode } = self;
        let key = Rc::new(key);
        let hash_key = key.clone();
        let key_hash = move |d: &D| hash_key(d).hashed();
        let split = move |d: D| (key(&d), (ts(&d), d));
        let logic = Dedupe::new(size, allowed_lateness);
        let inner = keyed(inner, key_hash, split, std::slice::from_ref(&clock), mode, name, logic);
        Ok(Stream { inner, clock, mode })
    }
}

/// The [`KeyedLogic`] of dedupe: per key, the records of each window still open.
struct Dedupe<K, D> {
    size: Time,
    lateness: Time,
    keys: KeySlots<K, Vec<Seen<D>>>,
    timers: Timers<u32>,
    watermark: Time,
    out: Vec<((D, Time), Diff)>,
    /// Kept records of retired windows, for checkpoints (if tracked).
    settled: Option<Vec<(D, Time)>>,
}

/// The records of one key in one window.
#[derive(Serialize, Deserialize)]
#[serde(bound = "D: Data")]
struct Seen<D> {
    start: Time,
    records: BTreeMap<(Time, D), (Diff, Time)>,
    shown: Option<(D, Time)>,
}

impl<K: Data, D: Data> Dedupe<K, D> {
    fn new(size: Time, lateness: Time) -> Self {
        Dedupe {
            size,
            lateness,
            keys: KeySlots::default(),
            timers: Timers::default(),
            watermark: 0,
            out: Vec::new(),
            settled: None,
        }
    }
}

impl<K: Data, D: Data> KeyedLogic for Dedupe<K, D> {
    type Key = K;
    type Value = (Time, D);
    type Out = (D, Time);

    fn update(&mut self, key: K, (ts, d): (Time, D), stamp: Time, diff: Diff) {
        let start = ts - ts % self.size;
        let done = start + self.size + self.lateness;
        if done <= stamp || done <= self.watermark {
            return;
        }
        let id = self.keys.slot(key);
        let Some((_, windows)) = self.keys.get(id) else { return };
        let seen = match windows.iter().position(|s| s.start == start) {
            Some(i) => &mut windows[i],
            None => {
                self.timers.schedule(done, id);
                windows.push(Seen { start, records: BTreeMap::new(), shown: None });
                windows.last_mut().expect("just pushed")
            }
        };
        let entry = seen.records.entry((ts, d)).or_insert((0, stamp));
        entry.0 += diff;
        seen.records.retain(|_, (n, _)| *n != 0);
        let wanted = seen.records.iter().find(|(_, (n, _))| *n > 0).map(|((_, d), (_, s))| (d.clone(), *s));
        if wanted != seen.shown {
            self.out.extend(seen.shown.take().map(|old| (old, -1)));
            self.out.extend(wanted.clone().map(|new| (new, 1)));
            seen.shown = wanted;
        }
        self.keys.mark(id);
    }

    fn watermark(&mut self, watermarks: &[Time]) {
        self.watermark = watermarks[0];
        let (w, size, lateness) = (self.watermark, self.size, self.lateness);
        for id in self.timers.take_due(w) {
            let Some((_, windows)) = self.keys.get(id) else { continue };
            let settled = &mut self.settled;
            windows.retain_mut(|s| {
                let keep = s.start + size + lateness > w;
                // A retired window's record stays in the stream for good.
                if !keep && let Some(settled) = settled.as_mut() {
                    settled.extend(s.shown.take());
                }
                keep
            });
            let empty = windows.is_empty();
            self.keys.shrunk(id, empty);
        }
    }

    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>) {
        // Marks only tell checkpoints what changed (`KeySlots::save_changed`): the
        // logic itself has nothing to do for the keys they list.
        self.keys.take_dirty();
        out.extend(self.out.drain(..).map(|(o, d)| (o, time, d)));
    }

    fn layout(&self) -> String {
        format!("tumbling {}", self.size)
    }

    fn as_snapshot(&mut self) -> Option<&mut dyn SnapshotBytes<K, Self::Out>> {
        Some(self)
    }
}

impl<K: Data, D: Data> Snapshot for Dedupe<K, D> {
    type Saved = Vec<Seen<D>>;

    fn save(&mut self, all: bool, out: Saving<'_, K, Vec<Seen<D>>>) {
        self.keys.save_changed(all, out, |state| Some(state));
    }

    /// Every window in the state is still open (`done` above the watermark), and its
    /// timer was set when it opened: each gets it back.
    fn restore(&mut self, key: K, saved: Vec<Seen<D>>, shown: &mut Vec<(D, Time)>) {
        shown.extend(saved.iter().filter_map(|s| s.shown.clone()));
        let dones: Vec<Time> = saved.iter().map(|s| s.start + self.size + self.lateness).collect();
        let id = self.keys.restore(key, saved);
        for done in dones {
            self.timers.schedule(done, id);
        }
    }

    fn track_settled(&mut self) {
        self.keys.track();
        self.settled.get_or_insert_with(Vec::new);
    }

    fn take_settled(&mut self) -> Vec<(D, Time)> {
        self.settled.as_mut().map(std::mem::take).unwrap_or_default()
    }
}

#[cfg(test)]
mod snapshot_tests;
