//! The windowed join's logic: per key, both sides' records in each window still open;
//! a window retires once neither side can add to it, its pairs staying in the stream.

use serde::{Deserialize, Serialize};

use super::super::keyed::{KeySlots, KeyedLogic, Saving, Snapshot, SnapshotBytes, Timers};
use super::super::{Data, Diff, Time, Window, Windowing};
use super::{Pairs, Side, adjust, drain_into, event_time, repeat};

/// A pair of a windowed join, with its stamp.
type Pair<K, D, E> = ((K, Window, D, E), Time);

/// The [`KeyedLogic`] of [`Stream::window_join`](super::super::Stream::window_join).
pub(super) struct WindowJoin<K, D, E> {
    windowing: Windowing,
    keys: KeySlots<K, Vec<JoinWindow<D, E>>>,
    timers: Timers<u32>,
    out: Pairs<(K, Window, D, E)>,
    /// Pairs of retired windows, for checkpoints (if tracked).
    settled: Option<Vec<Pair<K, D, E>>>,
}

/// One window of a key: each side's records with their stamps.
#[derive(Serialize, Deserialize)]
#[serde(bound = "D: Data, E: Data")]
pub(super) struct JoinWindow<D, E> {
    window: Window,
    left: Vec<(D, Time, Diff)>,
    right: Vec<(E, Time, Diff)>,
}

impl<D: Data, E: Data> JoinWindow<D, E> {
    /// Appends the pairs the window has produced: every left record with every right
    /// one, as often as both multiplicities say.
    fn pairs<K: Data>(&self, key: &K, into: &mut Vec<Pair<K, D, E>>) {
        for (d, s, n) in &self.left {
            for (e, t, m) in &self.right {
                repeat(((key.clone(), self.window, d.clone(), e.clone()), *s.max(t)), n * m, into);
            }
        }
    }
}

impl<K: Data, D: Data, E: Data> WindowJoin<K, D, E> {
    pub(super) fn new(windowing: Windowing) -> Self {
        WindowJoin { windowing, keys: KeySlots::default(), timers: Timers::default(), out: Vec::new(), settled: None }
    }
}

impl<K: Data, D: Data, E: Data> KeyedLogic for WindowJoin<K, D, E> {
    type Key = K;
    type Value = Side<D, E>;
    type Out = Pair<K, D, E>;

    fn update(&mut self, key: K, value: Side<D, E>, stamp: Time, diff: Diff) {
        let ts = event_time(&value);
        let windowing = self.windowing;
        let id = self.keys.slot(key);
        let Some((key, open)) = self.keys.get(id) else { return };
        for window in windowing.kind.windows(ts).filter(|w| windowing.applicable(w, stamp)) {
            let win = match open.iter().position(|x| x.window == window) {
                Some(i) => &mut open[i],
                None => {
                    self.timers.schedule(windowing.final_at(&window), id);
                    open.push(JoinWindow { window, left: Vec::new(), right: Vec::new() });
                    open.last_mut().expect("just pushed")
                }
            };
            match &value {
                Side::Left(_, d) => {
                    for (e, s, n) in &win.right {
                        self.out.push((((key.clone(), window, d.clone(), e.clone()), stamp.max(*s)), diff * n));
                    }
                    adjust(&mut win.left, d.clone(), stamp, diff);
                }
                Side::Right(_, e) => {
                    for (d, s, n) in &win.left {
                        self.out.push((((key.clone(), window, d.clone(), e.clone()), stamp.max(*s)), diff * n));
                    }
                    adjust(&mut win.right, e.clone(), stamp, diff);
                }
            }
        }
        if open.is_empty() {
            self.keys.release(id);
        } else {
            self.keys.mark(id);
        }
    }

    fn watermark(&mut self, watermarks: &[Time]) {
        // Retire a window once neither side can add to it.
        let w = watermarks[0].min(watermarks[1]);
        for id in self.timers.take_due(w) {
            let Some((key, open)) = self.keys.get(id) else { continue };
            let settled = &mut self.settled;
            open.retain(|win| {
                let keep = w < self.windowing.final_at(&win.window);
                if !keep && let Some(settled) = settled.as_mut() {
                    win.pairs(key, settled);
                }
                keep
            });
            let empty = open.is_empty();
            self.keys.shrunk(id, empty);
        }
    }

    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>) {
        // Marks only tell checkpoints which keys changed.
        self.keys.take_dirty();
        drain_into(&mut self.out, time, out);
    }

    fn layout(&self) -> String {
        format!("{:?}", self.windowing.kind)
    }

    fn as_snapshot(&mut self) -> Option<&mut dyn SnapshotBytes<K, Self::Out>> {
        Some(self)
    }
}

impl<K: Data, D: Data, E: Data> Snapshot for WindowJoin<K, D, E> {
    type Saved = Vec<JoinWindow<D, E>>;

    fn save(&mut self, all: bool, out: Saving<'_, K, Vec<JoinWindow<D, E>>>) {
        self.keys.save_changed(all, out, |state| Some(state));
    }

    /// A window's timer was set when it opened and it goes when the timer fires: each
    /// window held gets its timer back.
    fn restore(&mut self, key: K, saved: Vec<JoinWindow<D, E>>, shown: &mut Vec<Pair<K, D, E>>) {
        for win in &saved {
            win.pairs(&key, shown);
        }
        let due: Vec<Time> = saved.iter().map(|win| self.windowing.final_at(&win.window)).collect();
        let id = self.keys.restore(key, saved);
        for at in due {
            self.timers.schedule(at, id);
        }
    }

    fn track_settled(&mut self) {
        self.keys.track();
        self.settled.get_or_insert_with(Vec::new);
    }

    fn take_settled(&mut self) -> Vec<Pair<K, D, E>> {
        self.settled.as_mut().map(std::mem::take).unwrap_or_default()
    }
}
