//! The ingest router: event time, watermarks, lateness, placement, dead letters.
//!
//! Per input, an [`InputClock`] keeps the watermark `W` (the largest event time seen
//! minus `max_out_of_orderness`, or higher if advanced explicitly; never backwards)
//! and the frontier `F >= W` the input's dataflow has been advanced to. Each record,
//! in order:
//! 1. is parsed, or dead-lettered as `invalid`;
//! 2. is judged against `W` as it stands before the record: too late (dead-lettered
//!    as `too_late`), late (`ts < W`, applied) or on time;
//! 3. is placed at time `max(ts, F)` and stamped with `W`, then raises `W`.
//!
//! After a batch, the input advances to `F' = max(W, F)`, and to at least `F + 1` when
//! a record was placed above its event time (so late records show at once) or when
//! `W` moved while `F` did not (so operators learn the new watermark). `F` may thus
//! run ahead of `W`; records placed later still take their windows from `ts` and their
//! lateness from the stamp, so results do not depend on the batching.
//!
//! ## Lanes (partitions)
//!
//! An input fed by a partitioned source (Kafka) has one *lane* per partition. A lane
//! keeps its own watermark `W_p` from its own records, and the input's watermark is
//! the least `W_p` of the lanes that are not idle (a lane is idle when it has had no
//! record for the job's idle timeout; before its first record it holds the input back
//! for that long too). A record on lane `p` is judged and stamped against
//! `max(W_p, W)`: as records keep their order within a partition but not across
//! partitions, this is the reading that does not depend on how partitions interleave,
//! so a replay of the same partitions judges every record the same way.
//!
//! For checkpoints, the `snapshot` module keeps what a router learnt, not its configuration.

mod dead_letters;
pub(crate) mod snapshot;

pub(crate) use dead_letters::DeadLetters;

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::pipeline::codec::Codec;
use crate::pipeline::{DeadLetter, InputOptions, JsonText, MAX_TS, Reason, Time};

/// The watermark and frontier of one input.
#[derive(Clone, Debug)]
pub struct InputClock {
    max_out_of_orderness: Time,
    watermark: Time,
    frontier: Time,
    announced: Time,
    bumped: bool,
}

impl InputClock {
    /// A clock at watermark and frontier 0.
    pub fn new(max_out_of_orderness: Time) -> InputClock {
        InputClock { max_out_of_orderness, watermark: 0, frontier: 0, announced: 0, bumped: false }
    }

    /// The current watermark.
    pub fn watermark(&self) -> Time {
        self.watermark
    }

    /// The frontier the input was last advanced to.
    pub fn frontier(&self) -> Time {
        self.frontier
    }

    /// The time to place a record at event time `ts`.
    fn place(&mut self, ts: Time) -> Time {
        if ts < self.frontier {
            self.bumped = true;
        }
        ts.max(self.frontier)
    }

    /// Raises the watermark after an applied record at `ts`.
    fn observe(&mut self, ts: Time) {
        self.watermark = self.watermark.max(ts.saturating_sub(self.max_out_of_orderness));
    }

    /// Raises the watermark as if event time had kept passing at the wall clock's
    /// rate for `quiet` since the largest event time `max_ts` was seen: the
    /// processing-time fallback for inputs that went quiet.
    pub fn follow_wall_clock(&mut self, max_ts: Time, quiet: Duration) {
        self.advance_to(self.wall_clock_watermark(max_ts, quiet));
    }

    /// The watermark [`follow_wall_clock`](Self::follow_wall_clock) moves towards.
    fn wall_clock_watermark(&self, max_ts: Time, quiet: Duration) -> Time {
        let elapsed = Time::try_from(quiet.as_millis()).unwrap_or(Time::MAX);
        max_ts.saturating_add(elapsed).saturating_sub(self.max_out_of_orderness)
    }

    /// Raises the watermark to at least `watermark`.
    pub fn advance_to(&mut self, watermark: Time) {
        self.watermark = self.watermark.max(watermark.min(MAX_TS));
    }

    /// The `(frontier, watermark)` to advance the input to, if it must move; the
    /// frontier is at least `at_least`.
    pub fn flush(&mut self, at_least: Time) -> Option<(Time, Time)> {
        let mut frontier = self.watermark.max(self.frontier).max(at_least);
        let news = self.bumped || self.watermark != self.announced;
        if news && frontier == self.frontier {
            frontier += 1;
        }
        if frontier == self.frontier {
            return None;
        }
        self.frontier = frontier;
        self.announced = self.watermark;
        self.bumped = false;
        Some((frontier, self.watermark))
    }
}

/// The outcome of a batch of records, as the ingest API reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    /// Records applied (on time or late but allowed).
    pub accepted: u64,
    /// Applied records with `ts < W`.
    pub late: u64,
    /// Records dead-lettered as too late.
    pub too_late: u64,
    /// Records that failed to parse or validate, by position in the batch.
    pub rejected: Vec<Rejected>,
    /// The input's watermark after the batch.
    pub watermark: Time,
}

/// A record that could not be parsed or validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// Its position in the batch, from 0.
    pub index: usize,
    /// What is wrong with it.
    pub error: String,
}

/// What the router made of a batch.
pub(crate) struct Routed {
    /// One typed batch per worker.
    pub(crate) batches: Vec<Option<Box<dyn Any + Send>>>,
    pub(crate) dead: Vec<DeadLetter>,
    pub(crate) report: IngestReport,
}

/// One partition of an input: its own watermark, from its own records.
#[derive(Clone, Copy, Debug)]
struct Lane {
    watermark: Time,
    /// When it last had a record with a valid event time, or was added.
    active_at: Instant,
}

/// Where a lane stands, for status pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LaneState {
    /// Its watermark: the largest event time seen on it minus `max_out_of_orderness`.
    pub watermark: Time,
    /// Whether it is idle, so that it does not hold the input's watermark back.
    pub idle: bool,
}

/// Routes one input's records to the workers.
pub(crate) struct InputRouter {
    name: String,
    codec: Arc<dyn Codec>,
    options: InputOptions,
    pub(crate) clock: InputClock,
    /// The largest valid event time seen.
    pub(crate) max_ts: Option<Time>,
    /// When the last record with a valid event time arrived.
    pub(crate) last_arrival: Option<Instant>,
    /// After how long without records a lane stops holding the watermark back.
    idle_timeout: Option<Duration>,
    lanes: Vec<Lane>,
    workers: usize,
    next: usize,
    /// The shape the input's records share, once a valid record fixed it.
    shape: Option<usize>,
}

impl InputRouter {
    pub(crate) fn new(
        name: &str,
        codec: Arc<dyn Codec>,
        options: InputOptions,
        workers: usize,
        idle_timeout: Option<Duration>,
    ) -> InputRouter {
        let clock = InputClock::new(options.max_out_of_orderness);
        InputRouter {
            name: name.into(),
            codec,
            options,
            clock,
            max_ts: None,
            last_arrival: None,
            idle_timeout,
            lanes: Vec::new(),
            workers,
            next: 0,
            shape: None,
        }
    }

    /// Parses, judges and places `records`, in order.
    pub(crate) fn route<'a>(&mut self, records: impl IntoIterator<Item = &'a [u8]>) -> Routed {
        self.route_in(None, records, Instant::now())
    }

    /// Makes sure the input has at least `lanes` lanes; new ones start empty, holding
    /// the watermark back until they have records or the idle timeout passes.
    pub(crate) fn add_lanes(&mut self, lanes: usize, now: Instant) {
        while self.lanes.len() < lanes {
            self.lanes.push(Lane { watermark: 0, active_at: now });
        }
    }

    /// Parses, judges and places `records` of lane `lane` (added if new), in order,
    /// then raises the input's watermark to the least watermark of its active lanes.
    pub(crate) fn route_lane<'a>(
        &mut self,
        lane: usize,
        records: impl IntoIterator<Item = &'a [u8]>,
        now: Instant,
    ) -> Routed {
        self.add_lanes(lane + 1, now);
        let mut routed = self.route_in(Some(lane), records, now);
        self.follow_lanes(now);
        routed.report.watermark = self.clock.watermark();
        routed
    }

    /// Raises the watermark to the least watermark of the lanes that are not idle at
    /// `now` (if any is not).
    pub(crate) fn follow_lanes(&mut self, now: Instant) {
        let idle = self.idle_timeout;
        let active =
            self.lanes.iter().filter(|l| idle.is_none_or(|idle| now.saturating_duration_since(l.active_at) < idle));
        if let Some(least) = active.map(|l| l.watermark).min() {
            self.clock.advance_to(least);
        }
    }

    /// The processing-time fallback at `now`: lanes idle for the idle timeout stop
    /// holding the watermark back, and an input with no records for that long moves its
    /// watermark as if event time had kept passing at the wall clock's rate since its
    /// last record.
    pub(crate) fn follow_wall_clock(&mut self, now: Instant) {
        if self.idle_timeout.is_none() {
            return;
        }
        self.follow_lanes(now);
        if let Some(watermark) = self.quiet_watermark(now) {
            self.clock.advance_to(watermark);
        }
    }

    /// The watermark the processing-time fallback gives an input without lanes that
    /// has been quiet for the idle timeout at `now`, if that raises it: what an input
    /// whose every move must be replayable logs as an advance instead.
    pub(crate) fn quiet_watermark(&self, now: Instant) -> Option<Time> {
        let idle = self.idle_timeout?;
        let (max_ts, last) = (self.max_ts?, self.last_arrival?);
        let quiet = now.saturating_duration_since(last);
        let watermark = self.clock.wall_clock_watermark(max_ts, quiet).min(MAX_TS);
        (quiet >= idle && watermark > self.clock.watermark()).then_some(watermark)
    }

    /// The state of each lane at `now`.
    pub(crate) fn lanes(&self, now: Instant) -> Vec<LaneState> {
        let idle = self.idle_timeout;
        self.lanes
            .iter()
            .map(|l| LaneState {
                watermark: l.watermark,
                idle: idle.is_some_and(|idle| now.saturating_duration_since(l.active_at) >= idle),
            })
            .collect()
    }

    fn route_in<'a>(
        &mut self,
        lane: Option<usize>,
        records: impl IntoIterator<Item = &'a [u8]>,
        now: Instant,
    ) -> Routed {
        let records = records.into_iter();
        let mut batch = self.codec.batch(self.workers, records.size_hint().1.unwrap_or(1024).min(1 << 16));
        let mut report = IngestReport::default();
        let mut dead = Vec::new();
        let mut max_ts: Option<Time> = None;
        if let Some(lane) = lane {
            // A lane's records stay together on one worker, and lanes spread over workers.
            self.next = lane % self.workers;
        }
        for (index, text) in records.into_iter().enumerate() {
            let ts = match batch.parse(text, &mut self.shape) {
                Ok(ts) => ts,
                Err(error) => {
                    dead.push(self.dead_letter(text, Reason::Invalid, event_time(text)));
                    report.rejected.push(Rejected { index, error: error.to_string() });
                    continue;
                }
            };
            max_ts = max_ts.max(Some(ts));
            let w = match lane {
                Some(lane) => self.lanes[lane].watermark.max(self.clock.watermark()),
                None => self.clock.watermark(),
            };
            if self.options.lateness.too_late(ts, w) {
                dead.push(self.dead_letter(text, Reason::TooLate, Some(ts)));
                report.too_late += 1;
                continue;
            }
            report.accepted += 1;
            report.late += (ts < w) as u64;
            let time = self.clock.place(ts);
            batch.commit(self.next, time, w);
            match lane {
                Some(lane) => {
                    let lane = &mut self.lanes[lane];
                    lane.watermark = lane.watermark.max(ts.saturating_sub(self.options.max_out_of_orderness));
                }
                None => {
                    self.next = (self.next + 1) % self.workers;
                    self.clock.observe(ts);
                }
            }
        }
        report.watermark = self.clock.watermark();
        if max_ts.is_some() {
            self.max_ts = self.max_ts.max(max_ts);
            self.last_arrival = Some(now);
            if let Some(lane) = lane {
                self.lanes[lane].active_at = now;
            }
        }
        Routed { batches: batch.finish(), dead, report }
    }

    fn dead_letter(&self, text: &[u8], reason: Reason, ts: Option<Time>) -> DeadLetter {
        let text = String::from_utf8_lossy(text);
        let record = JsonText::from_json(&text).unwrap_or_else(|| JsonText::string(&text));
        DeadLetter { input: self.name.clone(), record, reason, ts }
    }
}

/// The `ts` field of a record that failed to parse, if it is a valid event time.
/// Only that field is read, so that a bad value elsewhere (say `1e400`, which JSON
/// allows but `f64` cannot hold) does not hide it.
fn event_time(text: &[u8]) -> Option<Time> {
    #[derive(serde::Deserialize)]
    struct TsOnly {
        ts: Option<serde_json::Value>,
    }
    let record: TsOnly = serde_json::from_slice(text).ok()?;
    record.ts?.as_u64().filter(|ts| *ts <= MAX_TS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_follows_the_watermark_and_steps_past_placements() {
        let mut c = InputClock::new(5);
        c.observe(100);
        assert_eq!(c.flush(0), Some((95, 95)));
        assert_eq!(c.flush(0), None);
        // A late record is placed at the frontier, which then steps past it.
        assert_eq!(c.place(50), 95);
        assert_eq!(c.flush(0), Some((96, 95)));
        // A watermark change the frontier already covers still moves the frontier.
        c.advance_to(96);
        assert_eq!(c.flush(0), Some((97, 96)));
        c.observe(200);
        assert_eq!(c.flush(0), Some((195, 195)));
        assert_eq!(c.flush(300), Some((300, 195)));
        // A quiet input follows the wall clock from its largest event time.
        c.follow_wall_clock(200, Duration::from_millis(2000));
        assert_eq!(c.flush(0), Some((2195, 2195)));
    }

    fn router(idle_ms: u64) -> InputRouter {
        let desc = crate::pipeline::InputDesc::of::<Probe>("events");
        let options = InputOptions { max_out_of_orderness: 10, ..InputOptions::default() };
        InputRouter::new("events", desc.codec, options, 2, Some(Duration::from_millis(idle_ms)))
    }

    #[derive(Clone, Debug, serde::Deserialize, serde::Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
    struct Probe {
        ts: Time,
    }

    impl crate::pipeline::Record for Probe {
        const FIELDS: &'static [(&'static str, &'static str)] = &[("ts", "int")];
        fn ts(&self) -> Time {
            self.ts
        }
    }

    fn texts(ts: &[Time]) -> Vec<Vec<u8>> {
        ts.iter().map(|t| format!(r#"{{"ts":{t}}}"#).into_bytes()).collect()
    }

    #[test]
    fn lanes_hold_the_watermark_at_their_least_and_judge_records_by_their_own() {
        let mut r = router(1000);
        let t0 = Instant::now();
        r.add_lanes(2, t0);
        let report = r.route_lane(0, texts(&[100, 200]).iter().map(|t| t.as_slice()), t0).report;
        // Lane 1 has no records yet: it holds the input back.
        assert_eq!((report.accepted, report.watermark), (2, 0));
        let report = r.route_lane(1, texts(&[50]).iter().map(|t| t.as_slice()), t0).report;
        assert_eq!(report.watermark, 40);
        // Lane 0's watermark is 190: a record at 150 on it is late (judged by the lane),
        // while on lane 1 (watermark 40) it is on time.
        assert_eq!(r.route_lane(0, texts(&[150]).iter().map(|t| t.as_slice()), t0).report.late, 1);
        assert_eq!(r.route_lane(1, texts(&[150]).iter().map(|t| t.as_slice()), t0).report.late, 0);
        assert_eq!(r.clock.watermark(), 140);
        // Lane 1 goes idle: lane 0 alone sets the watermark.
        let later = t0 + Duration::from_millis(1500);
        r.route_lane(0, texts(&[300]).iter().map(|t| t.as_slice()), later);
        assert_eq!(r.clock.watermark(), 290);
        assert_eq!(
            r.lanes(later),
            vec![LaneState { watermark: 290, idle: false }, LaneState { watermark: 140, idle: true }]
        );
        // Back from idle, its records are judged against the input's watermark.
        assert_eq!(r.route_lane(1, texts(&[200]).iter().map(|t| t.as_slice()), later).report.late, 1);
        assert_eq!(r.clock.watermark(), 290);
    }

    #[test]
    fn dead_letters_keep_the_event_time_of_bad_records() {
        assert_eq!(event_time(br#"{"key":"a","ts":3,"value":1e400}"#), Some(3));
        assert_eq!(event_time(br#"{"ts":-3}"#), None);
        assert_eq!(event_time(br#"{"ts":1e400}"#), None);
        assert_eq!(event_time(br#"[1, 2]"#), None);
    }

    #[test]
    fn dead_letters_step_their_frontier() {
        let mut d = DeadLetters::new(Some(1000));
        let letter = DeadLetter { input: "i".into(), record: JsonText::string("x"), reason: Reason::Invalid, ts: None };
        let (updates, advance) = d.place(vec![letter.clone()], 0);
        assert_eq!(updates, vec![((letter.clone(), 0), 1000, -1), ((letter, 0), 0, 1)]);
        assert_eq!(advance, Some(1));
        assert_eq!(d.place(vec![], 50).1, Some(50));
        assert_eq!(d.place(vec![], 50).1, None);
    }
}
