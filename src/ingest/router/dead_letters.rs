//! The job's dead letters: placed in its `dead_letter` input, retracted after their
//! retention.

use crate::pipeline::codec::Updates;
use crate::pipeline::{DeadLetter, Time};

/// Places dead letters in the job's `dead_letter` input.
///
/// Dead letters are placed at the dead-letter input's frontier, which follows the
/// highest frontier of the job's inputs and steps past each batch of dead letters so
/// that they show at once. With a retention, each is retracted that long after.
pub(crate) struct DeadLetters {
    pub(super) frontier: Time,
    pub(super) retention: Option<Time>,
    /// The letters still in the output, with the time each was placed at, when kept
    /// for checkpoints (see [`DeadLetters::keep_live`]).
    pub(super) live: Option<std::collections::VecDeque<(DeadLetter, Time)>>,
}

impl DeadLetters {
    pub(crate) fn new(retention: Option<Time>) -> DeadLetters {
        DeadLetters { frontier: 0, retention, live: None }
    }

    /// From now on, keeps the letters still in the output (until their retention ends),
    /// so that a checkpoint can give them back.
    pub(crate) fn keep_live(&mut self) {
        self.live.get_or_insert_with(Default::default);
    }

    /// The updates that put `live` letters (with the times they were placed at) back
    /// in the output, each retracted when its retention ends.
    pub(crate) fn replace(&mut self, live: Vec<(DeadLetter, Time)>) -> Updates<DeadLetter> {
        let mut updates = Vec::with_capacity(live.len() * 2);
        for (d, at) in &live {
            if let Some(r) = self.retention {
                updates.push(((d.clone(), *at), at + r, -1));
            }
            updates.push(((d.clone(), *at), *at, 1));
        }
        if let Some(kept) = self.live.as_mut() {
            kept.extend(live);
        }
        updates
    }

    /// The updates for `dead`, and the frontier to advance to (at least `inputs_frontier`).
    pub(crate) fn place(
        &mut self,
        dead: Vec<DeadLetter>,
        inputs_frontier: Time,
    ) -> (Updates<DeadLetter>, Option<Time>) {
        let at = self.frontier;
        let mut updates = Vec::with_capacity(dead.len() * 2);
        if let Some(live) = self.live.as_mut() {
            live.extend(dead.iter().map(|d| (d.clone(), at)));
            if let Some(r) = self.retention {
                while live.front().is_some_and(|(_, placed)| placed + r <= at) {
                    live.pop_front();
                }
            }
        }
        for d in dead {
            if let Some(r) = self.retention {
                updates.push(((d.clone(), at), at + r, -1));
            }
            updates.push(((d, at), at, 1));
        }
        let next = inputs_frontier.max(self.frontier + !updates.is_empty() as Time);
        let advance = (next > self.frontier).then(|| {
            self.frontier = next;
            next
        });
        (updates, advance)
    }
}
