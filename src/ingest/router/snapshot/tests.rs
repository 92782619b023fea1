//! A router restored mid-stream carries on as if never stopped: a reference test
//! against the router that was not, on seeded random steps (records out of order,
//! invalid and too late, advances, flushes, lanes and the wall clock), and a check that
//! the test notices each part of the state going missing.

use std::any::Any;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{DeadLettersState, RouterState, back, largest};
use crate::ingest::router::{DeadLetters, IngestReport, InputRouter, LaneState};
use crate::pipeline::codec::Updates;
use crate::pipeline::{DeadLetter, InputDesc, InputOptions, Lateness, MAX_TS, Record, RecordError, Time};

/// The idle timeout of the routers under test.
const IDLE_MS: u64 = 1000;

/// Runs per case: each takes a few hundred microseconds.
const SEEDS: u64 = 300;

/// A record with a shape (the length of `coords`), so that the shape fixed by the first
/// valid record is part of the state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Point {
    ts: Time,
    coords: Vec<u32>,
}

impl Record for Point {
    const FIELDS: &'static [(&'static str, &'static str)] = &[("ts", "int"), ("coords", "array")];
    fn ts(&self) -> Time {
        self.ts
    }
    fn validate(&self) -> Result<(), RecordError> {
        match self.coords.contains(&0) {
            true => Err(RecordError::new("a coordinate is 0")),
            false => Ok(()),
        }
    }
    fn shape(&self) -> Option<(&'static str, usize)> {
        Some(("coords", self.coords.len()))
    }
}

fn router(workers: usize) -> InputRouter {
    let desc = InputDesc::of::<Point>("points");
    let options = InputOptions { max_out_of_orderness: 20, lateness: Lateness::After(100) };
    InputRouter::new("points", desc.codec, options, workers, Some(Duration::from_millis(IDLE_MS)))
}

/// What the job asks of a router.
#[derive(Clone, Debug)]
enum Step {
    /// Routes records, of a lane or of an input without lanes.
    Route(Option<usize>, Vec<Vec<u8>>),
    AddLanes(usize),
    /// An explicit advance of the watermark.
    AdvanceTo(Time),
    FollowWallClock,
    /// Advances the input to a frontier of at least this, if it must move.
    Flush(Time),
}

/// Random steps, each at a time in milliseconds from the start of the run. Event time
/// keeps pace with the wall clock, lane `p` lagging `50 p` behind, so that an input
/// that was quiet and follows the wall clock meets its records again.
fn steps(rng: &mut ChaCha8Rng, lanes: usize) -> Vec<(u64, Step)> {
    let mut at = 0;
    let mut steps = Vec::new();
    for _ in 0..80 {
        at += match rng.random_range(0..10) {
            0 => rng.random_range(IDLE_MS / 2..IDLE_MS * 3),
            _ => rng.random_range(0..200),
        };
        let lane = (lanes > 0).then(|| rng.random_range(0..lanes));
        let now = 1000 + at - 50 * lane.unwrap_or(0) as u64;
        let step = match rng.random_range(0..20) {
            0..10 => Step::Route(lane, (0..rng.random_range(0..6)).map(|_| record(rng, now)).collect()),
            10..13 => Step::Flush(if rng.random_bool(0.8) { 0 } else { now }),
            13..15 => Step::AdvanceTo(now.saturating_sub(rng.random_range(0..300))),
            15..18 => Step::FollowWallClock,
            _ if lanes > 0 => Step::AddLanes(rng.random_range(1..=lanes + 1)),
            _ => Step::FollowWallClock,
        };
        steps.push((at, step));
    }
    steps
}

/// A record at about event time `now`: mostly on time or a little out of order, some
/// far behind, some of another shape, some invalid.
fn record(rng: &mut ChaCha8Rng, now: Time) -> Vec<u8> {
    let ts = match rng.random_range(0..10) {
        0 => now.saturating_sub(rng.random_range(100..1000)),
        _ => now.saturating_sub(rng.random_range(0..60)),
    };
    let coords = if rng.random_bool(0.1) { "[7,8,9]" } else { "[1,2]" };
    let text = match rng.random_range(0..25) {
        0 => "not json".to_string(),
        1 => format!(r#"{{"ts":-{ts},"coords":[1,2]}}"#),
        2 => format!(r#"{{"ts":{},"coords":[1,2]}}"#, MAX_TS + 1 + ts),
        3 => format!(r#"{{"ts":{ts},"coords":[0,2]}}"#),
        _ => format!(r#"{{"ts":{ts},"coords":{coords}}}"#),
    };
    text.into_bytes()
}

/// A router and the job's dead letters, on a timeline of their own: a step at `at`
/// happens at `start + at`.
struct Fed {
    router: InputRouter,
    letters: DeadLetters,
    start: Instant,
}

/// What a step showed: all the job reads of the router after it.
#[derive(Debug, PartialEq)]
struct Seen {
    report: Option<IngestReport>,
    dead: Vec<DeadLetter>,
    /// `(worker, record, stamp, time)` of each record placed; without the worker, and
    /// sorted, when placement is not compared.
    placed: Vec<(Option<usize>, Point, Time, Time)>,
    flushed: Option<(Time, Time)>,
    letters: (Updates<DeadLetter>, Option<Time>),
    watermark: Time,
    frontier: Time,
    max_ts: Option<Time>,
    quiet_watermark: Option<Time>,
    lanes: Vec<LaneState>,
}

impl Fed {
    fn new(workers: usize, start: Instant) -> Fed {
        Fed { router: router(workers), letters: DeadLetters::new(Some(500)), start }
    }

    fn step(&mut self, at: u64, step: &Step, by_worker: bool) -> Seen {
        let now = self.start + Duration::from_millis(at);
        let r = &mut self.router;
        let (mut report, mut dead, mut placed, mut flushed) = (None, Vec::new(), Vec::new(), None);
        match step {
            Step::Route(lane, records) => {
                let records = records.iter().map(Vec::as_slice);
                let routed = match *lane {
                    Some(lane) => r.route_lane(lane, records, now),
                    None => r.route_in(None, records, now),
                };
                placed = placements(routed.batches, by_worker);
                (report, dead) = (Some(routed.report), routed.dead);
            }
            Step::AddLanes(lanes) => r.add_lanes(*lanes, now),
            Step::AdvanceTo(watermark) => r.clock.advance_to(*watermark),
            Step::FollowWallClock => r.follow_wall_clock(now),
            Step::Flush(at_least) => flushed = r.clock.flush(*at_least),
        }
        Seen {
            letters: self.letters.place(dead.clone(), r.clock.frontier()),
            report,
            dead,
            placed,
            flushed,
            watermark: r.clock.watermark(),
            frontier: r.clock.frontier(),
            max_ts: r.max_ts,
            quiet_watermark: r.quiet_watermark(now),
            lanes: r.lanes(now),
        }
    }
}

/// The records of a routed batch, as [`Seen::placed`] has them.
fn placements(batches: Vec<Option<Box<dyn Any + Send>>>, by_worker: bool) -> Vec<(Option<usize>, Point, Time, Time)> {
    let mut placed = Vec::new();
    for (worker, batch) in batches.into_iter().enumerate() {
        let Some(batch) = batch else { continue };
        let updates = batch.downcast::<Updates<Point>>().expect("a batch of points");
        placed.extend(updates.into_iter().map(|((p, stamp), time, _)| (by_worker.then_some(worker), p, stamp, time)));
    }
    if !by_worker {
        placed.sort();
    }
    placed
}

/// How a run is set up: the lanes (0: an input without lanes) and the workers before
/// and after the restart.
#[derive(Clone, Copy, Debug)]
struct Case {
    lanes: usize,
    workers: usize,
    restored_workers: usize,
}

/// What the router that was never stopped did after the restart, to show that runs
/// exercise every verdict.
#[derive(Debug, Default)]
struct Tally {
    accepted: u64,
    late: u64,
    too_late: u64,
    rejected: usize,
    bumped: usize,
}

/// The first step where a restored router did otherwise than the one never stopped.
#[derive(Debug)]
#[allow(dead_code)] // the fields are read through Debug, in failure messages
struct Divergence {
    seed: u64,
    cut: usize,
    step: usize,
    never_stopped: Seen,
    restored: Seen,
}

/// Changes a state between snapshot and restore, to check that the test notices.
type Tamper = fn(&mut RouterState, &mut DeadLettersState);

/// Feeds the same random steps to a router never stopped and to one that is
/// snapshotted at a random step and restored (through JSON, `tamper` applied) into a
/// fresh router; compares what each step shows.
fn run(case: Case, seed: u64, tamper: Tamper) -> Result<Tally, Box<Divergence>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let steps = steps(&mut rng, case.lanes);
    let cut = rng.random_range(0..steps.len());
    let by_worker = case.workers == case.restored_workers;
    let start = Instant::now();
    let (mut never_stopped, mut restored) = (Fed::new(case.workers, start), Fed::new(case.workers, start));
    let mut tally = Tally::default();
    for (step, (at, what)) in steps.iter().enumerate() {
        if step == cut {
            tally.bumped += never_stopped.router.clock.bumped as usize;
            restored = restart(&restored, *at, case.restored_workers, tamper);
        }
        let (a, c) = (never_stopped.step(*at, what, by_worker), restored.step(*at, what, by_worker));
        if a != c {
            return Err(Box::new(Divergence { seed, cut, step, never_stopped: a, restored: c }));
        }
        if let Some(report) = a.report.filter(|_| step >= cut) {
            tally.accepted += report.accepted;
            tally.late += report.late;
            tally.too_late += report.too_late;
            tally.rejected += report.rejected.len();
        }
    }
    Ok(tally)
}

/// `fed` snapshotted at `at`, through JSON, and restored into a fresh router with
/// `workers` workers on a timeline an hour later.
fn restart(fed: &Fed, at: u64, workers: usize, tamper: Tamper) -> Fed {
    let now = fed.start + Duration::from_millis(at);
    let (router, letters) = (fed.router.snapshot(now), fed.letters.snapshot());
    let mut router_back: RouterState =
        serde_json::from_str(&serde_json::to_string(&router).expect("to json")).expect("from json");
    let mut letters_back: DeadLettersState =
        serde_json::from_value(serde_json::to_value(&letters).expect("to json")).expect("from json");
    assert_eq!((&router_back, &letters_back), (&router, &letters));
    tamper(&mut router_back, &mut letters_back);
    let mut restored = Fed::new(workers, fed.start + Duration::from_secs(3600));
    let later = restored.start + Duration::from_millis(at);
    restored.router.restore(router_back.clone(), later);
    restored.letters.restore(letters_back);
    if workers == fed.router.workers {
        assert_eq!(restored.router.snapshot(later), router_back, "restore then snapshot gives the state back");
    }
    restored
}

/// Runs `cases` for every seed; panics at the first divergence, or if the runs missed
/// some verdict.
fn check(cases: &[Case]) {
    let mut total = Tally::default();
    for case in cases {
        for seed in 0..SEEDS {
            let tally = run(*case, seed, |_, _| {}).unwrap_or_else(|d| panic!("{case:?} diverges: {d:#?}"));
            total.accepted += tally.accepted;
            total.late += tally.late;
            total.too_late += tally.too_late;
            total.rejected += tally.rejected;
            total.bumped += tally.bumped;
        }
    }
    let Tally { accepted, late, too_late, rejected, bumped } = total;
    assert!(accepted > 0 && late > 0 && too_late > 0 && rejected > 0 && bumped > 0, "{total:?}");
}

#[test]
fn a_restored_router_routes_as_if_never_stopped() {
    check(&[Case { lanes: 0, workers: 2, restored_workers: 2 }]);
}

#[test]
fn a_restored_router_with_lanes_routes_as_if_never_stopped() {
    check(&[Case { lanes: 3, workers: 2, restored_workers: 2 }]);
}

#[test]
fn a_router_restored_on_other_workers_judges_and_stamps_the_same() {
    check(&[
        Case { lanes: 0, workers: 1, restored_workers: 2 },
        Case { lanes: 0, workers: 2, restored_workers: 1 },
        Case { lanes: 3, workers: 2, restored_workers: 3 },
    ]);
}

/// The test above can fail: each part of the state, reset to a fresh router's, makes
/// some run diverge.
#[test]
fn losing_any_part_of_the_state_shows() {
    let tampers: [(&str, Tamper); 12] = [
        ("watermark", |r, _| r.watermark = 0),
        ("frontier", |r, _| r.frontier = 0),
        ("announced", |r, _| r.announced = 0),
        ("bumped", |r, _| r.bumped = false),
        ("max_ts", |r, _| r.max_ts = None),
        ("quiet_ms", |r, _| r.quiet_ms = None),
        ("lanes", |r, _| r.lanes.clear()),
        ("lanes[].watermark", |r, _| r.lanes.iter_mut().for_each(|l| l.watermark = 0)),
        ("lanes[].quiet_ms", |r, _| r.lanes.iter_mut().for_each(|l| l.quiet_ms = 0)),
        ("next_worker", |r, _| r.next_worker = 0),
        ("shape", |r, _| r.shape = None),
        ("dead letters' frontier", |_, d| d.frontier = 0),
    ];
    let cases =
        [Case { lanes: 0, workers: 2, restored_workers: 2 }, Case { lanes: 3, workers: 2, restored_workers: 2 }];
    for (part, tamper) in tampers {
        let noticed = cases.iter().any(|case| (0..SEEDS).any(|seed| run(*case, seed, tamper).is_err()));
        assert!(noticed, "no run notices the loss of `{part}`");
    }
}

/// The on-disk form, field by field; ages restored at another `now` are the same ages.
#[test]
fn the_state_is_stable_json_with_instants_as_ages() {
    let records = |texts: &'static [&'static str]| texts.iter().map(|t| t.as_bytes());
    let t0 = Instant::now();
    let mut r = router(2);
    r.route_lane(0, records(&[r#"{"ts":100,"coords":[1,2]}"#, r#"{"ts":250,"coords":[1,2]}"#]), t0);
    r.add_lanes(2, t0 + Duration::from_millis(400));
    assert_eq!(r.clock.flush(0), Some((230, 230)));
    r.route_lane(1, records(&[r#"{"ts":240,"coords":[1,2]}"#]), t0 + Duration::from_millis(600));
    let then = t0 + Duration::from_millis(1500);
    let state = r.snapshot(then);
    let json = serde_json::to_string(&state).expect("to json");
    assert_eq!(
        json,
        r#"{"watermark":230,"frontier":230,"announced":230,"bumped":false,"max_ts":250,"quiet_ms":900,"#.to_owned()
            + r#""lanes":[{"watermark":230,"quiet_ms":1500},{"watermark":220,"quiet_ms":900}],"next_worker":1,"shape":2}"#
    );
    let unknown = json.replace(r#""shape":2"#, r#""shape":2,"offsets":[]"#);
    assert!(serde_json::from_str::<RouterState>(&unknown).is_err(), "a field this build does not know is refused");

    // A day later, lane 0 is as idle as it was, and lane 1 goes idle 100 ms on.
    let later = t0 + Duration::from_secs(86_400);
    let mut c = router(2);
    c.restore(serde_json::from_str(&json).expect("from json"), later);
    assert_eq!(c.lanes(later), r.lanes(then));
    let idle = LaneState { watermark: 220, idle: true };
    assert_eq!(c.lanes(later + Duration::from_millis(100))[1], idle);
    assert_eq!(
        c.quiet_watermark(later + Duration::from_millis(100)),
        r.quiet_watermark(then + Duration::from_millis(100))
    );
}

#[test]
fn an_age_beyond_what_instants_can_express_is_the_largest_they_can() {
    let now = Instant::now();
    assert_eq!(back(now, 1500), now - Duration::from_millis(1500));
    assert!(back(now, u64::MAX) < now - Duration::from_secs(3600));
    // Where `Instant` cannot go back that far (not Linux), the search finds the limit.
    assert_eq!(largest(|ms| ms <= 12_345), 12_345);
    assert_eq!(largest(|ms| ms == 0), 0);
    assert_eq!(largest(|_| true), u64::MAX);
}
