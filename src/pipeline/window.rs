//! Windows: their kinds, their lateness rule, and when they close, finalise and go.
//!
//! A window is data, `(key, start, end)`, never a timestamp. With watermark `W` and
//! allowed lateness `L`:
//! - an event is applied to each of its windows with `end + L > W` (sessions: when
//!   `ts + gap + L > W`); with none, it is *too late*;
//! - a window is *closed* once `W >= end` (this is when `on_close` first emits it);
//! - a window is *final* once no applicable event can reach it any more: `W >= end + L`
//!   for tumbling and sliding windows, `W >= end + gap + L - 1` for a session, which a
//!   late event may still extend from within. Its inputs are then retired;
//! - its result is *evicted* (retracted) once `W >= final + retention`.

use serde::{Deserialize, Serialize};

pub(crate) mod fixed;
pub(crate) mod members;
pub(crate) mod session;
#[cfg(test)]
mod snapshot_tests;

use super::aggregate::Aggregate;
use super::{Diff, InputOptions, MAX_DURATION, ParamError, Time, check_duration};

/// How events are grouped into windows, as in the API: `{"tumbling": {"size": ms}}`,
/// `{"sliding": {"size": ms, "slide": ms}}` or `{"session": {"gap": ms}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows `[k·size, (k+1)·size)`.
    Tumbling {
        /// Window length in ms.
        size: Time,
    },
    /// Windows `[k·slide, k·slide + size)`; an event belongs to `size / slide` of them.
    Sliding {
        /// Window length in ms.
        size: Time,
        /// Distance between window starts in ms (at most `size`).
        slide: Time,
    },
    /// Per key, `[first ts, last ts + gap)`: events closer than `gap` share a session.
    Session {
        /// Inactivity that ends a session, in ms.
        gap: Time,
    },
}

/// When a windowed result is emitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Emit {
    /// Provisional values as soon as the frontier passes each event, then corrections.
    #[default]
    Eager,
    /// The first value once the watermark passes the window's end, then corrections.
    OnClose,
    /// One value, once the window can no longer change.
    Final,
}

/// A window of event time, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    /// First millisecond in the window.
    pub start: Time,
    /// First millisecond after the window.
    pub end: Time,
}

/// Everything a windowed operator needs to know about its windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windowing {
    /// The window kind.
    pub kind: WindowKind,
    /// How long after a window's end events may still change it, in ms.
    pub allowed_lateness: Time,
    /// How long a final result stays in the output, in ms; `None` keeps it forever.
    pub retention: Option<Time>,
    /// When results are emitted.
    pub emit: Emit,
}

impl WindowKind {
    /// Checks sizes: positive, at most [`MAX_DURATION`], and `slide <= size`.
    pub fn validate(&self) -> Result<(), ParamError> {
        let positive = |name: &str, v: Time| {
            if v == 0 || v > MAX_DURATION {
                Err(ParamError::invalid("window", format!("{name} must be between 1 and {MAX_DURATION} ms, got {v}")))
            } else {
                Ok(())
            }
        };
        match *self {
            WindowKind::Tumbling { size } => positive("size", size),
            WindowKind::Sliding { size, slide } => {
                positive("size", size)?;
                positive("slide", slide)?;
                if slide > size {
                    return Err(ParamError::invalid(
                        "window",
                        format!("slide ({slide}) must not exceed size ({size})"),
                    ));
                }
                Ok(())
            }
            WindowKind::Session { gap } => positive("gap", gap),
        }
    }

    /// The windows containing `ts`, latest first; for sessions, the event's own
    /// interval `[ts, ts + gap)` (sessions are data-dependent).
    pub fn windows(&self, ts: Time) -> impl Iterator<Item = Window> + use<> {
        let (size, slide, first) = match *self {
            WindowKind::Tumbling { size } => (size, size, ts - ts % size),
            WindowKind::Sliding { size, slide } => (size, slide, ts - ts % slide),
            WindowKind::Session { gap } => (gap, Time::MAX, ts),
        };
        std::iter::successors(Some(first), move |s| s.checked_sub(slide))
            .take_while(move |s| s + size > ts)
            .map(move |start| Window { start, end: start + size })
    }

    /// The latest end among the windows of `ts` (for sessions, `ts + gap`).
    pub fn last_end(&self, ts: Time) -> Time {
        match *self {
            WindowKind::Tumbling { size } => ts - ts % size + size,
            WindowKind::Sliding { size, slide } => ts - ts % slide + size,
            WindowKind::Session { gap } => ts + gap,
        }
    }
}

impl Windowing {
    /// Whether an event at `ts` arriving at watermark `stamp` may enter `window`.
    pub(crate) fn applicable(&self, window: &Window, stamp: Time) -> bool {
        window.end + self.allowed_lateness > stamp
    }

    /// The watermark at which `window` becomes final.
    pub(crate) fn final_at(&self, window: &Window) -> Time {
        match self.kind {
            WindowKind::Session { gap } => window.end + gap + self.allowed_lateness - 1,
            _ => window.end + self.allowed_lateness,
        }
    }

    /// The watermark at which the result of `window` is evicted.
    pub(crate) fn evict_at(&self, window: &Window) -> Option<Time> {
        self.retention.map(|r| self.final_at(window) + r)
    }

    /// The watermark at which `window` is first emitted.
    pub(crate) fn emit_at(&self, window: &Window) -> Time {
        match self.emit {
            Emit::Eager => 0,
            Emit::OnClose => window.end,
            Emit::Final => self.final_at(window),
        }
    }

    /// The lateness rule this windowing imposes on its input.
    pub fn lateness(&self) -> Lateness {
        Lateness::Windows { kind: self.kind, allowed: self.allowed_lateness }
    }
}

/// The event-time parameters windowed pipelines share, as the API names them:
/// `max_out_of_orderness`, `allowed_lateness`, `retention` and `emit`.
/// Flatten it into a pipeline's parameter struct:
///
/// ```
/// use tidemark::pipeline::prelude::*;
///
/// #[derive(Clone, Debug, Default, Serialize, Deserialize)]
/// pub struct MyParams {
///     pub window: Option<WindowKind>,
///     #[serde(flatten)]
///     pub time: EventTime,
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTime {
    /// The watermark trails the largest event time seen by this much (ms).
    pub max_out_of_orderness: Time,
    /// How long after its end a window still accepts events (ms).
    pub allowed_lateness: Time,
    /// How long a final window stays in the output (ms); `None` keeps it forever.
    pub retention: Option<Time>,
    /// When windowed results are emitted.
    pub emit: Emit,
}

impl Default for EventTime {
    fn default() -> Self {
        EventTime { max_out_of_orderness: 0, allowed_lateness: 0, retention: Some(3_600_000), emit: Emit::Eager }
    }
}

impl EventTime {
    /// Checks that the durations are in range.
    pub fn validate(&self) -> Result<(), ParamError> {
        check_duration("max_out_of_orderness", self.max_out_of_orderness)?;
        check_duration("allowed_lateness", self.allowed_lateness)?;
        check_duration("retention", self.retention.unwrap_or(0))
    }

    /// Windows of `kind` with these lateness, retention and emission settings.
    pub fn windowing(&self, kind: WindowKind) -> Windowing {
        Windowing { kind, allowed_lateness: self.allowed_lateness, retention: self.retention, emit: self.emit }
    }

    /// The options of an input with this out-of-orderness and lateness rule `lateness`.
    pub fn input(&self, lateness: Lateness) -> InputOptions {
        InputOptions { max_out_of_orderness: self.max_out_of_orderness, lateness }
    }
}

/// One window's aggregate and the row its output shows.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct WindowState<A: Aggregate> {
    /// The inputs' aggregate; `None` once the window is final (inputs retired).
    pub(crate) state: Option<A::State>,
    /// Net multiplicity of the window's events.
    pub(crate) count: Diff,
    /// The value currently in the output.
    pub(crate) shown: Option<A::Out>,
}

/// Output changes of windowed results: `((key, window, value), time, diff)`.
pub(crate) type WindowChanges<K, O> = Vec<((K, Window, O), Time, Diff)>;

/// What [`WindowState::flush`] found.
pub(crate) struct Flushed {
    /// The window must stay: it is open, or final but to be retracted at eviction.
    pub(crate) keep: bool,
    /// The window became final in this flush (its inputs may be dropped).
    pub(crate) retired: bool,
}

impl<A: Aggregate> WindowState<A> {
    /// A live window holding `state` of `count` events, not shown yet.
    pub(crate) fn new(state: A::State, count: Diff) -> Self {
        WindowState { state: Some(state), count, shown: None }
    }

    /// Folds in an update (ignored once final).
    pub(crate) fn update(&mut self, agg: &A, value: &A::In, diff: Diff) {
        if let Some(state) = self.state.as_mut() {
            agg.update(state, value, diff);
            self.count += diff;
        }
    }

    /// Brings the row shown for `window` up to date at watermark `w`, appending the
    /// changes at `time`: nothing before the window is due to emit, its live value until
    /// it is final, the frozen final value until eviction, nothing after.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn flush<K: Clone>(
        &mut self,
        agg: &A,
        windowing: &Windowing,
        w: Time,
        key: &K,
        window: Window,
        time: Time,
        out: &mut WindowChanges<K, A::Out>,
    ) -> Flushed {
        let evicted = windowing.evict_at(&window).is_some_and(|at| w >= at);
        let wanted = if evicted || w < windowing.emit_at(&window) {
            None
        } else {
            match &self.state {
                Some(state) => (self.count > 0).then(|| agg.output(state)),
                None => self.shown.clone(),
            }
        };
        if wanted != self.shown {
            if let Some(old) = self.shown.take() {
                out.push(((key.clone(), window, old), time, -1));
            }
            if let Some(new) = wanted.clone() {
                out.push(((key.clone(), window, new), time, 1));
            }
            self.shown = wanted;
        }
        let retired = w >= windowing.final_at(&window) && self.state.take().is_some();
        // A final window stays only to be retracted at eviction, if ever.
        let keep = self.state.is_some() || (self.shown.is_some() && windowing.retention.is_some());
        Flushed { keep, retired }
    }
}

/// When an input's record is too late to change anything, given the watermark `W`
/// at its arrival. The ingest router uses it to count and dead-letter records;
/// operators apply their own rules per window, which must be at least as strict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Lateness {
    /// Records are never too late (unwindowed inputs).
    #[default]
    Never,
    /// Too late when `ts + allowed < W`: a record at event time `ts` is like a window
    /// `[ts, ts + 1)`, open while `W < ts + 1 + allowed`.
    After(Time),
    /// Too late when every window of the record has `end + allowed <= W`.
    Windows {
        /// The windows the input is grouped into.
        kind: WindowKind,
        /// Their allowed lateness.
        allowed: Time,
    },
    /// Too late only when too late for each rule (an input used several ways).
    All(Vec<Lateness>),
}

impl Lateness {
    /// Whether a record at `ts` arriving at watermark `w` is too late.
    pub fn too_late(&self, ts: Time, w: Time) -> bool {
        match self {
            Lateness::Never => false,
            Lateness::After(allowed) => ts + allowed < w,
            Lateness::Windows { kind, allowed } => kind.last_end(ts) + allowed <= w,
            Lateness::All(rules) => rules.iter().all(|r| r.too_late(ts, w)),
        }
    }

    /// A rule that holds a record back only when both would.
    pub fn or(self, other: Lateness) -> Lateness {
        match (self, other) {
            (Lateness::All(mut a), Lateness::All(b)) => {
                a.extend(b);
                Lateness::All(a)
            }
            (Lateness::All(mut a), b) | (b, Lateness::All(mut a)) => {
                a.push(b);
                Lateness::All(a)
            }
            (a, b) => Lateness::All(vec![a, b]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(kind: WindowKind, ts: Time) -> Vec<(Time, Time)> {
        kind.windows(ts).map(|w| (w.start, w.end)).collect()
    }

    #[test]
    fn window_assignment() {
        assert_eq!(starts(WindowKind::Tumbling { size: 10 }, 25), vec![(20, 30)]);
        assert_eq!(starts(WindowKind::Sliding { size: 10, slide: 5 }, 25), vec![(25, 35), (20, 30)]);
        assert_eq!(starts(WindowKind::Sliding { size: 10, slide: 5 }, 3), vec![(0, 10)]);
        assert_eq!(starts(WindowKind::Sliding { size: 10, slide: 3 }, 10), vec![(9, 19), (6, 16), (3, 13)]);
        assert_eq!(starts(WindowKind::Session { gap: 7 }, 4), vec![(4, 11)]);
        assert_eq!(WindowKind::Sliding { size: 10, slide: 3 }.last_end(10), 19);
    }

    #[test]
    fn lateness_rules() {
        let tumbling = Lateness::Windows { kind: WindowKind::Tumbling { size: 10 }, allowed: 5 };
        assert!(!tumbling.too_late(25, 34)); // window [20,30) + 5 > 34
        assert!(tumbling.too_late(25, 35));
        let session = Lateness::Windows { kind: WindowKind::Session { gap: 10 }, allowed: 0 };
        assert!(session.too_late(5, 15) && !session.too_late(5, 14));
        let both = tumbling.or(Lateness::After(100));
        assert!(!both.too_late(25, 125) && both.too_late(25, 126));
    }

    #[test]
    fn window_kind_json_matches_the_api() {
        let k: WindowKind = serde_json::from_str(r#"{"sliding": {"size": 10, "slide": 5}}"#).unwrap();
        assert_eq!(k, WindowKind::Sliding { size: 10, slide: 5 });
        assert!(serde_json::from_str::<WindowKind>(r#"{"tumbling": {"size": 10, "x": 1}}"#).is_err());
        assert!(WindowKind::Sliding { size: 5, slide: 10 }.validate().is_err());
        assert!(WindowKind::Tumbling { size: 0 }.validate().is_err());
    }
}
