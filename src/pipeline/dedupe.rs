//! Dedupe: one record per key per tumbling window.

use std::collections::BTreeMap;
use std::rc::Rc;

use differential_dataflow::Hashable;

use super::keyed::{KeySlots, KeyedLogic, Timers, keyed};
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
        let logic = Dedupe {
            size,
            lateness: allowed_lateness,
            keys: KeySlots::default(),
            timers: Timers::default(),
            watermark: 0,
            out: Vec::new(),
        };
        let inner = keyed(inner, key_hash, split, std::slice::from_ref(&clock), mode, name, logic);
        Ok(Stream { inner, clock, mode })
    }
}

struct Dedupe<K, D> {
    size: Time,
    lateness: Time,
    keys: KeySlots<K, Vec<Seen<D>>>,
    timers: Timers<u32>,
    watermark: Time,
    out: Vec<((D, Time), Diff)>,
}

/// The records of one key in one window.
struct Seen<D> {
    start: Time,
    records: BTreeMap<(Time, D), (Diff, Time)>,
    shown: Option<(D, Time)>,
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
    }

    fn watermark(&mut self, watermarks: &[Time]) {
        self.watermark = watermarks[0];
        let (w, size, lateness) = (self.watermark, self.size, self.lateness);
        for id in self.timers.take_due(w) {
            let Some((_, windows)) = self.keys.get(id) else { continue };
            windows.retain(|s| s.start + size + lateness > w);
            if windows.is_empty() {
                self.keys.release(id);
            }
        }
    }

    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>) {
        out.extend(self.out.drain(..).map(|(o, d)| (o, time, d)));
    }
}
