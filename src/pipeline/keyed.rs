//! The keyed, watermark-driven operator under every stateful stream operator.
//!
//! [`keyed`] exchanges updates by key, holds them until the input frontier passes
//! their time, and then hands them to a [`KeyedLogic`] in time order, interleaved
//! with watermark changes read from the inputs' [`Clock`]s. At each time it asks the
//! logic to flush the output changes that time produced.
//!
//! In [`TimeMode::Exact`] every output change carries the time of the input that
//! caused it, as differential operators do. In [`TimeMode::Compact`] updates are
//! applied as they arrive and the changes of one frontier step are consolidated at
//! its last time: the content at the final frontier is the same, but content at
//! intermediate frontiers may already reflect some later input. A job that only reads
//! its final snapshot (`tidemark run` without `--changes`) uses it to skip provisional
//! versions and buffering.

use std::collections::BTreeMap;

use foldhash::HashMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

mod checkpoints;

use super::clock::{Clock, ClockReader};
use super::{Collection, Data, Diff, Time, TimeMode};
use checkpoints::Checkpoints;
pub(crate) use checkpoints::SnapshotBytes;

/// What a keyed operator does with its updates, in time order.
pub(crate) trait KeyedLogic: 'static {
    /// What updates are grouped and exchanged by.
    type Key: Data;
    /// The rest of an update.
    type Value: Data;
    /// Output records.
    type Out: Data;

    /// Applies an update that arrived at watermark `stamp`.
    fn update(&mut self, key: Self::Key, value: Self::Value, stamp: Time, diff: Diff);
    /// The watermarks of the operator's clocks (one per clock, in order) moved.
    fn watermark(&mut self, watermarks: &[Time]);
    /// Appends the output changes made since the last flush, at `time`.
    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>);
    /// The logic as checkpoints take it, if they can (see [`Snapshot`]).
    fn as_snapshot(&mut self) -> Option<&mut dyn SnapshotBytes<Self::Key, Self::Out>> {
        None
    }
    /// What its state means beyond its types (a window's kind and size): a checkpoint
    /// notes it, and a logic of another layout refuses that state (see
    /// `keyed::checkpoints`). Empty when the types say all.
    fn layout(&self) -> String {
        String::new()
    }
}

/// A [`KeyedLogic`] whose state checkpoints can hold, key by key (ARCHITECTURE.md,
/// "Durability"): saved at a frontier every update below which has been applied, and
/// restored into a fresh logic that then behaves as the saved one would have.
pub(crate) trait Snapshot: KeyedLogic {
    /// One key's state as checkpoints hold it.
    type Saved: Serialize + DeserializeOwned;

    /// Hands `out` every key whose state changed since the last call (every key if
    /// `all`) with its state now, or `None` for a key whose state is gone.
    fn save(&mut self, all: bool, out: Saving<'_, Self::Key, Self::Saved>);
    /// Takes back one key's saved state (after [`KeyedLogic::watermark`] has been given
    /// the watermarks of the checkpoint), and appends the output rows it shows, which
    /// the restored operator emits again at the checkpoint's frontier.
    fn restore(&mut self, key: Self::Key, saved: Self::Saved, shown: &mut Vec<Self::Out>);
    /// Once every key is restored from a checkpoint at `frontier`: changes beyond the
    /// rows shown, with their times (a retraction the logic had made ahead of its time
    /// and that falls at or after `frontier`, with the row it retracts shown before).
    fn take_restored(&mut self, _frontier: Time) -> Vec<(Self::Out, Time, Diff)> {
        Vec::new()
    }

    /// From now on, keeps for [`Snapshot::take_settled`] the rows that leave the
    /// logic's state while they stay in its output for good (a final window without
    /// eviction): only the checkpoint can still give them back. Off by default, so
    /// that a job without checkpoints keeps nothing of them.
    fn track_settled(&mut self);
    /// The rows settled since the last call (see [`Snapshot::track_settled`]). A
    /// checkpoint keeps them apart from the keys' state; a restore emits them again.
    fn take_settled(&mut self) -> Vec<Self::Out>;
}

/// Where [`Snapshot::save`] hands each key and its saved state (`None`: gone).
pub(crate) type Saving<'a, K, S> = &'a mut dyn FnMut(&K, Option<&S>);

/// Deadlines by watermark, for logics that act when the watermark passes a point.
pub(crate) struct Timers<K> {
    due: BTreeMap<Time, Vec<K>>,
}

impl<K: PartialEq> Timers<K> {
    /// Asks for `item` back once the watermark reaches `at`.
    pub(crate) fn schedule(&mut self, at: Time, item: K) {
        let items = self.due.entry(at).or_default();
        if items.last() != Some(&item) {
            items.push(item);
        }
    }

    /// Everything due at watermark `watermark`, earliest deadline first.
    pub(crate) fn take_due(&mut self, watermark: Time) -> Vec<K> {
        let later = self.due.split_off(&(watermark.saturating_add(1)));
        std::mem::replace(&mut self.due, later).into_values().flatten().collect()
    }
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers { due: BTreeMap::new() }
    }
}

/// Per-key state of a logic, in slots addressed by a small integer so that dirty
/// lists and timers need not clone keys. A released slot may be reused by another
/// key, so anything that refers to slots by number (timers) must re-check state
/// rather than act blindly.
///
/// Once [tracking](KeySlots::track), slots also remember which keys changed since the
/// last checkpoint ([`KeySlots::save_changed`]): every slot [marked](KeySlots::mark),
/// and every key released.
pub(crate) struct KeySlots<K, S> {
    index: HashMap<K, u32>,
    slots: Vec<Slot<K, S>>,
    free: Vec<u32>,
    dirty: Vec<u32>,
    /// Whether checkpoints are taken ([`KeySlots::track`]): only then are changed and
    /// released keys remembered.
    tracking: bool,
    changed: Vec<u32>,
    removed: Vec<K>,
}

struct Slot<K, S> {
    key: Option<K>,
    state: S,
    dirty: bool,
    changed: bool,
}

impl<K: Data, S: Default> KeySlots<K, S> {
    /// The slot of `key`, created empty if it has none.
    pub(crate) fn slot(&mut self, key: K) -> u32 {
        if let Some(&id) = self.index.get(&key) {
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(Slot { key: None, state: S::default(), dirty: false, changed: false });
                (self.slots.len() - 1) as u32
            }
        };
        self.slots[id as usize].key = Some(key.clone());
        self.index.insert(key, id);
        id
    }

    /// The key and state in slot `id`, if it is in use.
    pub(crate) fn get(&mut self, id: u32) -> Option<(&K, &mut S)> {
        let slot = self.slots.get_mut(id as usize)?;
        Some((slot.key.as_ref()?, &mut slot.state))
    }

    /// Marks slot `id` for the next [`KeySlots::take_dirty`] (and as changed for the
    /// next checkpoint).
    pub(crate) fn mark(&mut self, id: u32) {
        if let Some(slot) = self.slots.get_mut(id as usize) {
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push(id);
            }
            if self.tracking && !slot.changed {
                slot.changed = true;
                self.changed.push(id);
            }
        }
    }

    /// Keys released since the last call, then the slots in use whose state changed
    /// (every slot in use if `all`), for a checkpoint; starts tracking afresh.
    fn take_changed(&mut self, all: bool) -> (Vec<K>, Vec<u32>) {
        let removed = std::mem::take(&mut self.removed);
        let changed = std::mem::take(&mut self.changed);
        for &id in &changed {
            self.slots[id as usize].changed = false;
        }
        if all {
            let every = (0..self.slots.len() as u32).filter(|&id| self.slots[id as usize].key.is_some()).collect();
            return (Vec::new(), every);
        }
        (removed, changed.into_iter().filter(|&id| self.slots[id as usize].key.is_some()).collect())
    }

    /// Hands `out` the keys released since the last call (as gone),
    /// then those whose state changed (every key if `all`) with the part of their state
    /// `saved` picks (none: the key is left out), for a checkpoint.
    pub(crate) fn save_changed<T>(
        &mut self,
        all: bool,
        out: Saving<'_, K, T>,
        saved: impl for<'a> Fn(&'a S) -> Option<&'a T>,
    ) {
        let (removed, changed) = self.take_changed(all);
        for key in &removed {
            out(key, None);
        }
        for id in changed {
            if let Some((key, state)) = self.peek(id)
                && let Some(state) = saved(state)
            {
                out(key, Some(state));
            }
        }
    }

    /// The key and state in slot `id`, if it is in use, to read.
    pub(crate) fn peek(&self, id: u32) -> Option<(&K, &S)> {
        let slot = self.slots.get(id as usize)?;
        Some((slot.key.as_ref()?, &slot.state))
    }

    /// Sets `key`'s state (restoring it from a checkpoint: not a change); its slot.
    pub(crate) fn restore(&mut self, key: K, state: S) -> u32 {
        let id = self.slot(key);
        self.slots[id as usize].state = state;
        id
    }

    /// The slots marked since the last call.
    pub(crate) fn take_dirty(&mut self) -> Vec<u32> {
        for &id in &self.dirty {
            self.slots[id as usize].dirty = false;
        }
        std::mem::take(&mut self.dirty)
    }

    /// Frees slot `id` (its state is reset) for reuse.
    pub(crate) fn release(&mut self, id: u32) {
        let slot = &mut self.slots[id as usize];
        if let Some(key) = slot.key.take() {
            self.index.remove(&key);
            slot.state = S::default();
            self.free.push(id);
            if self.tracking {
                self.removed.push(key);
            }
        }
    }

    /// Marks slot `id` after its state shrank ([`KeySlots::mark`]), and releases it if
    /// that left it `empty`.
    pub(crate) fn shrunk(&mut self, id: u32, empty: bool) {
        self.mark(id);
        if empty {
            self.release(id);
        }
    }

    /// From now on, remembers the keys that change or are released, for
    /// [`KeySlots::save_changed`]: once checkpoints are on (a job without them would
    /// keep every key it ever released).
    pub(crate) fn track(&mut self) {
        self.tracking = true;
    }
}

impl<K, S> Default for KeySlots<K, S> {
    fn default() -> Self {
        KeySlots {
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            dirty: Vec::new(),
            tracking: false,
            changed: Vec::new(),
            removed: Vec::new(),
        }
    }
}

/// A stamped record as it travels: `((record, stamp), time, diff)`.
type Update<D> = ((D, Time), Time, Diff);
/// Updates waiting for the frontier: `(time, key, value, stamp, diff)`.
type Pending<K, V> = Vec<(Time, K, V, Time, Diff)>;

/// Runs `logic` over the stamped records of `input`, keyed and in time order.
///
/// Records are exchanged by `key_hash` and split into key and value by `split` when
/// they arrive, so no separate stage copies them. In [`TimeMode::Compact`] they are
/// applied at once: a step is flushed as one, so their order within it cannot matter,
/// and nothing waits in a buffer for the frontier.
pub(crate) fn keyed<'s, D: Data, L: KeyedLogic>(
    input: VecCollection<'s, Time, (D, Time), Diff>,
    key_hash: impl Fn(&D) -> u64 + 'static,
    split: impl Fn(D) -> (L::Key, L::Value) + 'static,
    clocks: &[Clock],
    mode: TimeMode,
    name: &str,
    mut logic: L,
) -> Collection<'s, L::Out> {
    let mut readers: Vec<ClockReader> = clocks.iter().map(Clock::reader).collect();
    let pact = Exchange::new(move |update: &Update<D>| key_hash(&update.0.0));
    let mut checkpoints = Checkpoints::join(name, &mut logic);
    input
        .inner
        .unary_frontier(pact, name, move |cap, _info| {
            let mut cap = Some(cap);
            let mut pending: Pending<L::Key, L::Value> = Vec::new();
            // What a restored operator shows, emitted at its first activation.
            let mut out: Vec<(L::Out, Time, Diff)> =
                checkpoints.as_mut().map(|c| c.restore(&mut logic)).unwrap_or_default();
            let mut seen: Time = 0;
            // A restored operator's state holds everything before the restored frontier:
            // what upstream operators emit again below it is already in.
            let floor = checkpoints.as_ref().and_then(|c| c.job.store().restored_frontier()).unwrap_or(0);
            move |(input, frontier), output| {
                input.for_each(|_cap, data| {
                    let updates =
                        data.drain(..).filter(|u| u.1 >= floor).map(|((d, stamp), t, diff)| (t, split(d), stamp, diff));
                    match mode {
                        TimeMode::Exact => pending.extend(updates.map(|(t, (k, v), stamp, d)| (t, k, v, stamp, d))),
                        TimeMode::Compact => updates.for_each(|(_, (k, v), stamp, d)| logic.update(k, v, stamp, d)),
                    }
                });
                let Some(current) = cap.as_mut() else { return };
                let Some(&now) = frontier.frontier().first() else {
                    // The input closed: the job is stopping, and nothing more is read.
                    pending.clear();
                    cap = None;
                    return;
                };
                if now == seen {
                    if !out.is_empty() {
                        output.session(&*current).give_container(&mut out);
                    }
                    return;
                }
                let changes = watermark_changes(&mut readers, now);
                match mode {
                    TimeMode::Exact => {
                        // Updates whose time the frontier has passed, in time order. Input
                        // arrives nearly sorted, so the stable sort is close to a linear scan.
                        pending.sort_by_key(|u| u.0);
                        let ready = pending.partition_point(|u| u.0 < now);
                        run_exact(&mut logic, pending.drain(..ready), changes, &mut out);
                    }
                    TimeMode::Compact => {
                        if let Some((_, watermarks)) = changes.last() {
                            logic.watermark(watermarks);
                        }
                        logic.flush(now - 1, &mut out);
                    }
                }
                if !out.is_empty() {
                    output.session(&*current).give_container(&mut out);
                }
                current.downgrade(&now);
                seen = now;
                if let Some(checkpoints) = checkpoints.as_mut() {
                    checkpoints.take(now, &mut logic, &readers);
                }
            }
        })
        .as_collection()
}

/// Feeds `ready` updates and watermark `changes` to `logic` in time order, flushing
/// after each distinct time.
fn run_exact<L: KeyedLogic>(
    logic: &mut L,
    ready: impl Iterator<Item = (Time, L::Key, L::Value, Time, Diff)>,
    changes: Vec<(Time, Vec<Time>)>,
    out: &mut Vec<(L::Out, Time, Diff)>,
) {
    let mut ready = ready.peekable();
    let mut changes = changes.into_iter().peekable();
    loop {
        let time = match (ready.peek(), changes.peek()) {
            (None, None) => break,
            (Some(u), None) => u.0,
            (None, Some(c)) => c.0,
            (Some(u), Some(c)) => u.0.min(c.0),
        };
        while let Some((_, k, v, stamp, d)) = ready.next_if(|u| u.0 == time) {
            logic.update(k, v, stamp, d);
        }
        if let Some((_, watermarks)) = changes.next_if(|c| c.0 == time) {
            logic.watermark(&watermarks);
        }
        logic.flush(time, out);
    }
}

/// The watermark changes of all `readers` up to frontier `now`, merged by time: at
/// each time where any changes, the current watermark of every reader.
fn watermark_changes(readers: &mut [ClockReader], now: Time) -> Vec<(Time, Vec<Time>)> {
    let mut current: Vec<Time> = readers.iter().map(ClockReader::watermark).collect();
    let mut points: Vec<(Time, usize, Time)> = Vec::new();
    for (i, reader) in readers.iter_mut().enumerate() {
        points.extend(reader.advance(Some(now)).into_iter().map(|(t, w)| (t, i, w)));
    }
    points.sort_unstable();
    let mut changes: Vec<(Time, Vec<Time>)> = Vec::new();
    for (t, i, w) in points {
        current[i] = w;
        match changes.last_mut() {
            Some((last, ws)) if *last == t => ws.clone_from(&current),
            _ => changes.push((t, current.clone())),
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_come_due_in_order() {
        let mut timers = Timers::default();
        timers.schedule(30, "c");
        timers.schedule(10, "a");
        timers.schedule(10, "a");
        timers.schedule(20, "b");
        assert_eq!(timers.take_due(20), vec!["a", "b"]);
        assert_eq!(timers.take_due(25), Vec::<&str>::new());
        assert_eq!(timers.take_due(Time::MAX), vec!["c"]);
    }

    /// Untracked slots remember nothing for checkpoints (a job without them would keep
    /// every key it ever released); tracked ones hand the released and changed keys.
    #[test]
    fn slots_remember_changes_only_when_tracking() {
        let mut slots: KeySlots<u64, u64> = KeySlots::default();
        for key in 0..1000 {
            let id = slots.slot(key);
            slots.mark(id);
            slots.release(id);
        }
        assert!(slots.removed.is_empty() && slots.changed.is_empty());
        slots.track();
        let kept = slots.slot(1);
        slots.mark(kept);
        let gone = slots.slot(2);
        slots.mark(gone);
        slots.release(gone);
        let mut saved = Vec::new();
        slots.save_changed(false, &mut |key, state| saved.push((*key, state.copied())), |state| Some(state));
        assert_eq!(saved, vec![(2, None), (1, Some(0))]);
    }
}
