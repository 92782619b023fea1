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
    /// The inputs' aggregate; `None` once the window is final.
    state: Option<A::State>,
    /// Net multiplicity of the window's events.
    count: Diff,
    /// The value currently in the output.
    shown: Option<A::Out>,
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
                    open.push(Win { window, state: Some(A::State::default()), count: 0, shown: None });
                    open.last_mut().expect("just pushed")
                }
            };
            if let Some(state) = win.state.as_mut() {
                self.agg.update(state, &value, diff);
                win.count += diff;
            }
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
            open.retain_mut(|win| {
                let evicted = windowing.evict_at(&win.window).is_some_and(|at| w >= at);
                let wanted = if evicted || w < windowing.emit_at(&win.window) {
                    None
                } else {
                    match &win.state {
                        Some(state) => (win.count > 0).then(|| self.agg.output(state)),
                        None => win.shown.clone(),
                    }
                };
                if wanted != win.shown {
                    if let Some(old) = win.shown.take() {
                        out.push(((key.clone(), win.window, old), time, -1));
                    }
                    if let Some(new) = wanted.clone() {
                        out.push(((key.clone(), win.window, new), time, 1));
                    }
                    win.shown = wanted;
                }
                if w >= windowing.final_at(&win.window) {
                    win.state = None;
                }
                // A final window stays only to be retracted at eviction, if ever.
                win.state.is_some() || (win.shown.is_some() && windowing.retention.is_some())
            });
            if open.is_empty() {
                self.keys.release(id);
            }
        }
    }
}
