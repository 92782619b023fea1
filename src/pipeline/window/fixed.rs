//! Tumbling and sliding window aggregation.
//!
//! Per key, the open windows and their aggregate states. An update is applied to each
//! of its windows the stamp allows (`end + allowed_lateness > stamp`). Each flush
//! re-evaluates the windows of the keys touched or due, and emits the difference
//! between the row it wants shown and the row shown so far: nothing before the window
//! is due to emit, its live value until it is final, the frozen final value (inputs
//! dropped) until eviction, and nothing after.

use super::super::aggregate::Aggregate;
use super::super::keyed::{KeySlots, KeyedLogic, Timers};
use super::super::{Data, Diff, Time, Window, Windowing};
use super::WindowState;

/// The [`KeyedLogic`] of tumbling and sliding windows.
pub(crate) struct FixedWindows<K, A: Aggregate> {
    windowing: Windowing,
    agg: A,
    keys: KeySlots<K, Vec<Win<A>>>,
    timers: Timers<u32>,
    watermark: Time,
}

struct Win<A: Aggregate> {
    window: Window,
    state: WindowState<A>,
}

impl<K: Data, A: Aggregate> FixedWindows<K, A> {
    pub(crate) fn new(windowing: Windowing, agg: A) -> Self {
        FixedWindows { windowing, agg, keys: KeySlots::default(), timers: Timers::default(), watermark: 0 }
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

    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>) {
        let (w, windowing) = (self.watermark, self.windowing);
        for id in self.keys.take_dirty() {
            let Some((key, open)) = self.keys.get(id) else { continue };
            open.retain_mut(|win| win.state.flush(&self.agg, &windowing, w, key, win.window, time, out).keep);
            if open.is_empty() {
                self.keys.release(id);
            }
        }
    }
}
