//! [`Generator`]: the generator of one job — its inputs, the world they share and the
//! clock whose ticks say which records are due.
//!
//! A tick makes the records of every input but `payments` first, then schedules the
//! payments of the orders just made and emits the payments that have arrived, so that
//! a payment due at once comes in the same tick as its order.

use super::input::Input;
use super::world::World;
use super::{GenStream, GeneratorSpec};

/// The most wall-clock time one tick produces records for, in ms.
pub const MAX_CATCH_UP_MS: u64 = 5_000;

/// The generator of one job: all its generator-fed inputs share one world, so that
/// payments pay orders the same job generated.
pub struct Generator {
    world: World,
    inputs: Vec<Input>,
    /// The time of the previous tick; `None` before the first.
    clock: Option<u64>,
    /// Whether some input generates orders (else payments inputs pay hidden orders).
    has_orders: bool,
}

impl Generator {
    /// A world for `inputs`: (input index, spec) pairs. Specs are expected to be
    /// validated; out-of-range fields are forced into range.
    pub fn new(inputs: Vec<(usize, GeneratorSpec)>) -> Generator {
        let world_seed = inputs.iter().min_by_key(|(index, _)| *index).map_or(0, |(_, spec)| spec.seed);
        let inputs: Vec<Input> = inputs.into_iter().map(|(index, spec)| Input::new(index, spec.sanitized())).collect();
        let has_orders = inputs.iter().any(|i| i.spec.stream == GenStream::Orders);
        Generator { world: World::new(world_seed), inputs, clock: None, has_orders }
    }

    /// The records due between the previous call and `now_ms` (wall-clock epoch
    /// milliseconds; the first call produces nothing and starts the clock), per input,
    /// as JSON texts (one record each), in arrival order.
    ///
    /// There is one entry per input, in the order given to [`Generator::new`], empty
    /// when nothing is due. A `now_ms` below an earlier one counts as that one.
    pub fn tick(&mut self, now_ms: u64) -> Vec<(usize, Vec<String>)> {
        let mut out: Vec<(usize, Vec<String>)> = self.inputs.iter().map(|i| (i.index, Vec::new())).collect();
        let Some(last) = self.clock else {
            self.clock = Some(now_ms);
            return out;
        };
        let now = now_ms.max(last);
        self.clock = Some(now);
        let elapsed = (now - last).min(MAX_CATCH_UP_MS);
        self.world.drift(elapsed);

        let mut new_orders = Vec::new();
        for (input, (_, records)) in self.inputs.iter_mut().zip(out.iter_mut()) {
            if input.spec.stream != GenStream::Payments {
                let n = input.due(elapsed);
                records.reserve(n);
                for _ in 0..n {
                    records.push(input.record(&mut self.world, now, &mut new_orders));
                }
            }
        }
        for (input, (_, records)) in self.inputs.iter_mut().zip(out.iter_mut()) {
            if input.spec.stream == GenStream::Payments {
                if self.has_orders {
                    input.schedule_payments(&new_orders);
                } else {
                    let n = input.due(elapsed);
                    let hidden: Vec<(u64, u64)> = (0..n)
                        .map(|_| {
                            let ts = now.saturating_sub(input.lag());
                            (self.world.next_order_id(), ts)
                        })
                        .collect();
                    input.schedule_payments(&hidden);
                }
                input.emit_payments(now, records);
            }
        }
        out
    }
}
