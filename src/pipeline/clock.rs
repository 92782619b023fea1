//! The watermark log: which watermark holds once a frontier is reached.
//!
//! An input's frontier `F` and its watermark `W` are different things (see
//! `DESIGN.md`): `W` decides lateness, `F` decides completeness, and `F >= W` may run
//! ahead of `W` so that late records become visible at once. Operators that retire
//! state by watermark therefore need `W`, and timely only tells them `F`.
//!
//! Every worker keeps, per input, the sequence of `(F, W)` pairs it advanced that
//! input to ([`ClockLog`]), appended *before* the input handle advances. An operator
//! that has seen its input frontier reach `f` may read every entry with `F <= f`:
//! `f` cannot exceed any worker's own input frontier, and all workers advance
//! through the same sequence, so the local log is complete up to `f`.
//!
//! A change of `W` to `w` at entry `F` takes effect at time `F - 1`, the last time
//! before `F`: records placed before `F` are all present by then, and none placed
//! later can be applicable to what `w` retires (their stamps are at least `w`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use super::Time;

/// The `(frontier, watermark)` sequence of one input on one worker.
#[derive(Default)]
pub(crate) struct ClockLog {
    entries: VecDeque<(Time, Time)>,
    readers: Vec<Weak<Cell<Time>>>,
}

impl ClockLog {
    /// Records that the input is about to advance to `frontier` with `watermark`.
    ///
    /// # Constraints
    /// - `frontier` strictly increases from call to call, and `watermark` never decreases.
    /// - Called before the input handle advances to `frontier`.
    pub(crate) fn append(&mut self, frontier: Time, watermark: Time) {
        debug_assert!(self.entries.back().is_none_or(|&(f, w)| f < frontier && w <= watermark));
        self.entries.push_back((frontier, watermark));
        // Entries every reader has consumed can go.
        self.readers.retain(|r| r.strong_count() > 0);
        let consumed = self.readers.iter().filter_map(Weak::upgrade).map(|p| p.get()).min();
        if let Some(consumed) = consumed {
            while self.entries.front().is_some_and(|&(f, _)| f <= consumed) {
                self.entries.pop_front();
            }
        } else if self.readers.is_empty() {
            // Nobody reads this clock: keep only what a future reader could start from.
            while self.entries.len() > 1 {
                self.entries.pop_front();
            }
        }
    }
}

/// The clock of a stream: the minimum of the watermarks of the inputs it derives from.
#[derive(Clone, Default)]
pub struct Clock {
    logs: Vec<Rc<RefCell<ClockLog>>>,
}

impl Clock {
    pub(crate) fn of(log: Rc<RefCell<ClockLog>>) -> Clock {
        Clock { logs: vec![log] }
    }

    /// The clock of a stream derived from both `self`'s and `other`'s inputs.
    pub(crate) fn merge(&self, other: &Clock) -> Clock {
        let mut logs = self.logs.clone();
        for log in &other.logs {
            if !logs.iter().any(|l| Rc::ptr_eq(l, log)) {
                logs.push(log.clone());
            }
        }
        Clock { logs }
    }

    /// A reader that follows the watermark as an operator's frontier advances.
    pub(crate) fn reader(&self) -> ClockReader {
        let position = Rc::new(Cell::new(0));
        for log in &self.logs {
            log.borrow_mut().readers.push(Rc::downgrade(&position));
        }
        ClockReader { logs: self.logs.iter().map(|l| (l.clone(), 0)).collect(), position }
    }
}

/// Follows a [`Clock`] for one operator.
pub(crate) struct ClockReader {
    logs: Vec<(Rc<RefCell<ClockLog>>, Time)>,
    position: Rc<Cell<Time>>,
}

impl ClockReader {
    /// The watermark at the last frontier passed to [`ClockReader::advance`].
    pub(crate) fn watermark(&self) -> Time {
        self.logs.iter().map(|(_, w)| *w).min().unwrap_or(0)
    }

    /// Moves to frontier `to` (`None`: the empty frontier) and returns each change of
    /// the combined watermark on the way, as `(time it takes effect, new watermark)`.
    pub(crate) fn advance(&mut self, to: Option<Time>) -> Vec<(Time, Time)> {
        let from = self.position.get();
        let mut points: Vec<(Time, usize, Time)> = Vec::new();
        for (i, (log, _)) in self.logs.iter().enumerate() {
            let log = log.borrow();
            for &(f, w) in log.entries.iter().filter(|(f, _)| *f > from && to.is_none_or(|to| *f <= to)) {
                points.push((f, i, w));
            }
        }
        points.sort_unstable();
        let mut changes: Vec<(Time, Time)> = Vec::new();
        let mut current = self.watermark();
        for (f, i, w) in points {
            self.logs[i].1 = w;
            let combined = self.watermark();
            if combined != current {
                current = combined;
                match changes.last_mut() {
                    Some(last) if last.0 == f - 1 => last.1 = combined,
                    _ => changes.push((f - 1, combined)),
                }
            }
        }
        if let Some(to) = to {
            self.position.set(to.max(from));
        } else {
            self.position.set(Time::MAX);
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_sees_changes_at_the_time_before_each_frontier() {
        let log = Rc::new(RefCell::new(ClockLog::default()));
        let mut reader = Clock::of(log.clone()).reader();
        log.borrow_mut().append(100, 100);
        log.borrow_mut().append(101, 100); // a bump: frontier moves, watermark does not
        log.borrow_mut().append(250, 250);
        assert_eq!(reader.advance(Some(120)), vec![(99, 100)]);
        assert_eq!(reader.watermark(), 100);
        assert_eq!(reader.advance(Some(250)), vec![(249, 250)]);
        assert_eq!(reader.advance(Some(300)), vec![]);
    }

    #[test]
    fn merged_clock_follows_the_minimum() {
        let a = Rc::new(RefCell::new(ClockLog::default()));
        let b = Rc::new(RefCell::new(ClockLog::default()));
        let mut reader = Clock::of(a.clone()).merge(&Clock::of(b.clone())).reader();
        a.borrow_mut().append(500, 500);
        b.borrow_mut().append(200, 200);
        b.borrow_mut().append(700, 700);
        assert_eq!(reader.advance(Some(600)), vec![(499, 200)]);
        assert_eq!(reader.advance(None), vec![(699, 500)]);
    }

    #[test]
    fn consumed_entries_are_pruned() {
        let log = Rc::new(RefCell::new(ClockLog::default()));
        let mut reader = Clock::of(log.clone()).reader();
        for f in 1..100 {
            log.borrow_mut().append(f, f);
        }
        reader.advance(Some(90));
        log.borrow_mut().append(100, 100);
        assert_eq!(log.borrow().entries.len(), 10);
    }
}
