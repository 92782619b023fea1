//! Session window aggregation.
//!
//! Per key, the live events (by event time) and the sessions they form: maximal runs
//! of events less than `gap` apart, each the window `[first ts, last ts + gap)`. An
//! insertion merges the sessions its own interval `[ts, ts + gap)` overlaps; a
//! retraction may split a session, so its session is rebuilt from the events.
//! Sessions that disappear in a merge or a split leave their shown row to retract.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::super::aggregate::Aggregate;
use super::super::keyed::SnapshotBytes;
use super::super::keyed::{KeySlots, KeyedLogic, Saving, Snapshot, Timers};
use super::super::{Data, Diff, Time, Window, WindowKind, Windowing};
use super::WindowState;

/// The [`KeyedLogic`] of session windows.
pub(crate) struct Sessions<K, A: Aggregate> {
    windowing: Windowing,
    gap: Time,
    agg: A,
    keys: KeySlots<K, KeySessions<A>>,
    timers: Timers<u32>,
    watermark: Time,
    /// Rows of final sessions dropped without eviction, for checkpoints (if tracked).
    settled: Option<Vec<(K, Window, A::Out)>>,
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct KeySessions<A: Aggregate> {
    /// Live events of open sessions, by event time.
    events: BTreeMap<Time, Vec<(A::In, Diff)>>,
    /// Sessions by start.
    sessions: BTreeMap<Time, Session<A>>,
    /// Rows of sessions merged away or split, still to retract.
    gone: Vec<(Window, A::Out)>,
}

impl<A: Aggregate> Default for KeySessions<A> {
    fn default() -> Self {
        KeySessions { events: BTreeMap::new(), sessions: BTreeMap::new(), gone: Vec::new() }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Session<A: Aggregate> {
    end: Time,
    state: WindowState<A>,
}

impl<K: Data, A: Aggregate> Sessions<K, A> {
    pub(crate) fn new(windowing: Windowing, agg: A) -> Self {
        let WindowKind::Session { gap } = windowing.kind else { panic!("session logic for a non-session window") };
        Sessions {
            windowing,
            gap,
            agg,
            keys: KeySlots::default(),
            timers: Timers::default(),
            watermark: 0,
            settled: None,
        }
    }

    fn schedule(&mut self, id: u32, window: Window) {
        let w = &self.windowing;
        for at in [w.emit_at(&window), w.final_at(&window)].into_iter().chain(w.evict_at(&window)) {
            self.timers.schedule(at, id);
        }
    }
}

impl<A: Aggregate> KeySessions<A> {
    /// Records an event's multiplicity change.
    fn record(&mut self, ts: Time, value: &A::In, diff: Diff) {
        let at = self.events.entry(ts).or_default();
        match at.iter_mut().position(|(v, _)| v == value) {
            Some(i) => {
                at[i].1 += diff;
                if at[i].1 == 0 {
                    at.swap_remove(i);
                }
            }
            None => at.push((value.clone(), diff)),
        }
        if at.is_empty() {
            self.events.remove(&ts);
        }
    }

    /// Whether a final session overlaps `[from, to)`.
    fn overlaps_final(&self, from: Time, to: Time) -> bool {
        self.sessions.range(..to).rev().take_while(|(_, s)| s.end > from).any(|(_, s)| s.state.state.is_none())
    }

    /// Removes the sessions overlapping `[from, to)`, keeping their shown rows to retract.
    fn take_overlapping(&mut self, from: Time, to: Time) -> Vec<(Time, Session<A>)> {
        let starts: Vec<Time> =
            self.sessions.range(..to).rev().take_while(|(_, s)| s.end > from).map(|(&start, _)| start).collect();
        let mut taken = Vec::new();
        for start in starts {
            let mut session = self.sessions.remove(&start).expect("listed above");
            if let Some(shown) = session.state.shown.take() {
                self.gone.push((Window { start, end: session.end }, shown));
            }
            taken.push((start, session));
        }
        taken
    }

    /// Rebuilds the sessions of the live events in `[from, to)`; returns their windows.
    fn rebuild(&mut self, agg: &A, gap: Time, from: Time, to: Time) -> Vec<Window> {
        let mut windows = Vec::new();
        let mut current: Option<(Time, Session<A>)> = None;
        for (&ts, values) in self.events.range(from..to) {
            let count: Diff = values.iter().map(|(_, d)| d).sum();
            if count <= 0 {
                continue;
            }
            match &mut current {
                Some((_, s)) if ts < s.end => s.end = ts + gap,
                _ => {
                    if let Some((start, s)) = current.take() {
                        windows.push(Window { start, end: s.end });
                        self.sessions.insert(start, s);
                    }
                    let s = Session { end: ts + gap, state: WindowState::new(A::State::default(), 0) };
                    current = Some((ts, s));
                }
            }
            let (_, s) = current.as_mut().expect("set above");
            for (v, d) in values {
                s.state.update(agg, v, *d);
            }
        }
        if let Some((start, s)) = current {
            windows.push(Window { start, end: s.end });
            self.sessions.insert(start, s);
        }
        windows
    }
}

impl<K: Data, A: Aggregate> KeyedLogic for Sessions<K, A> {
    type Key = K;
    type Value = (Time, A::In);
    type Out = (K, Window, A::Out);

    fn update(&mut self, key: K, (ts, value): (Time, A::In), stamp: Time, diff: Diff) {
        let own = Window { start: ts, end: ts + self.gap };
        if !self.windowing.applicable(&own, stamp) {
            return;
        }
        let (gap, agg) = (self.gap, self.agg.clone());
        let id = self.keys.slot(key);
        let Some((_, key_state)) = self.keys.get(id) else { return };
        if key_state.overlaps_final(ts, ts + gap) {
            // A final session cannot be reached by an applicable event (see `clock`);
            // this only guards against stamps that break that promise.
            return;
        }
        key_state.record(ts, &value, diff);
        let taken = key_state.take_overlapping(ts, ts + gap);
        let windows = if diff > 0 {
            // Merge the overlapping sessions and the event's own interval.
            let (mut start, mut end, mut count) = (ts, ts + gap, diff);
            let mut state = A::State::default();
            for (s_start, s) in taken {
                start = start.min(s_start);
                end = end.max(s.end);
                count += s.state.count;
                agg.merge(&mut state, s.state.state.expect("checked live above"));
            }
            agg.update(&mut state, &value, diff);
            key_state.sessions.insert(start, Session { end, state: WindowState::new(state, count) });
            vec![Window { start, end }]
        } else {
            // A retraction may split its session: rebuild it from the events.
            let from = taken.iter().map(|(s, _)| *s).min().unwrap_or(ts);
            let to = taken.iter().map(|(_, s)| s.end).max().unwrap_or(ts + gap);
            key_state.rebuild(&agg, gap, from, to)
        };
        for window in windows {
            self.schedule(id, window);
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
            let Some((key, sessions)) = self.keys.get(id) else { continue };
            for (window, shown) in sessions.gone.drain(..) {
                out.push(((key.clone(), window, shown), time, -1));
            }
            let mut retired = Vec::new();
            let settled = &mut self.settled;
            sessions.sessions.retain(|&start, s| {
                let window = Window { start, end: s.end };
                let flushed = s.state.flush(&self.agg, &windowing, w, key, window, time, out);
                if flushed.retired {
                    retired.push(window);
                }
                if let (false, Some(settled), Some(row)) = (flushed.keep, settled.as_mut(), &s.state.shown) {
                    settled.push((key.clone(), window, row.clone()));
                }
                flushed.keep
            });
            // A final session's events can no longer matter.
            for window in retired {
                let keep = sessions.events.split_off(&window.end);
                sessions.events.retain(|&ts, _| ts < window.start);
                sessions.events.extend(keep);
            }
            if sessions.sessions.is_empty() && sessions.events.is_empty() {
                self.keys.release(id);
            }
        }
    }
}

impl<K: Data, A: Aggregate> Snapshot for Sessions<K, A> {
    type Saved = KeySessions<A>;

    fn save(&mut self, all: bool, out: Saving<'_, K, KeySessions<A>>) {
        self.keys.save_changed(all, out, |state| Some(state));
    }

    fn restore(&mut self, key: K, saved: KeySessions<A>, shown: &mut Vec<(K, Window, A::Out)>) {
        for (&start, session) in &saved.sessions {
            let window = Window { start, end: session.end };
            shown.extend(session.state.shown.clone().map(|row| (key.clone(), window, row)));
        }
        let windows: Vec<Window> = saved.sessions.iter().map(|(&start, s)| Window { start, end: s.end }).collect();
        let id = self.keys.restore(key, saved);
        for window in windows {
            self.schedule(id, window);
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
