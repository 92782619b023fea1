//! Tumbling and sliding window aggregation.
//!
//! Per key, the open windows and their aggregate states. An update is applied to each
//! of its windows the stamp allows (`end + allowed_lateness > stamp`). Each flush
//! re-evaluates the windows of the keys touched or due, and emits the difference
//! between the row it wants shown and the row shown so far: nothing before the window
//! is due to emit, its live value until it is final, the frozen final value (inputs
//! dropped) until eviction, and nothing after.

use super::super::aggregate::Aggregate;
use serde::{Deserialize, Serialize};

use super::super::keyed::SnapshotBytes;
use super::super::keyed::{KeySlots, KeyedLogic, Saving, Snapshot, Timers};
use super::super::{Data, Diff, Time, Window, Windowing};
use super::WindowState;

/// The [`KeyedLogic`] of tumbling and sliding windows.
pub(crate) struct FixedWindows<K, A: Aggregate> {
    windowing: Windowing,
    agg: A,
    keys: KeySlots<K, Vec<Win<A>>>,
    timers: Timers<u32>,
    watermark: Time,
    /// Rows of final windows dropped without eviction, for checkpoints (if tracked).
    settled: Option<Vec<(K, Window, A::Out)>>,
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct Win<A: Aggregate> {
    window: Window,
    state: WindowState<A>,
}

impl<K: Data, A: Aggregate> FixedWindows<K, A> {
    pub(crate) fn new(windowing: Windowing, agg: A) -> Self {
        FixedWindows {
            windowing,
            agg,
            keys: KeySlots::default(),
            timers: Timers::default(),
            watermark: 0,
            settled: None,
        }
    }
}

impl<K: Data, A: Aggregate> KeyedLogic for FixedWindows<K, A> {
    type Key = K;
    type Value = (Time, A::In);
    type Out = (K, Window, A::Out);

    fn update(&mut self, key: K, (ts, value): (Time, A::In), stamp: Time, diff: Diff) {
        let (w, windowing) = (self.watermark, self.windowing);
        let mut windows = windowing.kind.windows(ts).filter(|win| {
            // Retired windows cannot be reached by applicable events (see `clock`);
            // the second test only guards against stamps that break that promise.
            windowing.applicable(win, stamp) && w < windowing.final_at(win)
        });
        let Some(first) = windows.next() else { return };
        let id = self.keys.slot(key);
        let Some((_, open)) = self.keys.get(id) else { return };
        for window in std::iter::once(first).chain(windows) {
            // Events mostly belong to the newest window: search from the back.
            let win = match open.iter().rposition(|x| x.window == window) {
                Some(i) => &mut open[i],
                None => {
                    for at in [windowing.emit_at(&window), windowing.final_at(&window)]
                        .into_iter()
                        .chain(windowing.evict_at(&window))
                    {
                        self.timers.schedule(at, id);
                    }
                    open.push(Win { window, state: WindowState::new(A::State::default(), 0) });
                    open.last_mut().expect("just pushed")
                }
            };
            win.state.update(&self.agg, &value, diff);
        }
        self.keys.mark(id);
    }

    fn watermark(&mut self, watermarks: &[Time]) {
        self.watermark = watermarks[0];
        for id in self.timers.take_due(self.watermark) {
            self.keys.mark(id);
        }
    }

    fn layout(&self) -> String {
        format!("{:?}", self.windowing.kind)
    }

    fn as_snapshot(&mut self) -> Option<&mut dyn SnapshotBytes<K, Self::Out>> {
        Some(self)
    }

    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>) {
        let (w, windowing) = (self.watermark, self.windowing);
        for id in self.keys.take_dirty() {
            let Some((key, open)) = self.keys.get(id) else { continue };
            let settled = &mut self.settled;
            open.retain_mut(|win| {
                let keep = win.state.flush(&self.agg, &windowing, w, key, win.window, time, out).keep;
                if let (false, Some(settled), Some(row)) = (keep, settled.as_mut(), &win.state.shown) {
                    settled.push((key.clone(), win.window, row.clone()));
                }
                keep
            });
            if open.is_empty() {
                self.keys.release(id);
            }
        }
    }
}

impl<K: Data, A: Aggregate> Snapshot for FixedWindows<K, A> {
    type Saved = Vec<Win<A>>;

    fn save(&mut self, all: bool, out: Saving<'_, K, Vec<Win<A>>>) {
        self.keys.save_changed(all, out, |state| Some(state));
    }

    fn restore(&mut self, key: K, saved: Vec<Win<A>>, shown: &mut Vec<(K, Window, A::Out)>) {
        let windowing = self.windowing;
        for win in &saved {
            shown.extend(win.state.shown.clone().map(|row| (key.clone(), win.window, row)));
        }
        let id = self.keys.restore(key, saved);
        let Some((_, open)) = self.keys.peek(id) else { return };
        let due: Vec<Time> = open
            .iter()
            .flat_map(|win| {
                [windowing.emit_at(&win.window), windowing.final_at(&win.window)]
                    .into_iter()
                    .chain(windowing.evict_at(&win.window))
            })
            .filter(|&at| at > self.watermark)
            .collect();
        for at in due {
            self.timers.schedule(at, id);
        }
    }

    fn track_settled(&mut self) {
        self.keys.track();
        self.settled.get_or_insert_with(Vec::new);
    }

    fn take_settled(&mut self) -> Vec<(K, Window, A::Out)> {
        self.settled.as_mut().map(std::mem::take).unwrap_or_default()
    }
}
