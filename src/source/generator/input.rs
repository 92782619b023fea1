//! One generator-fed input: its own random stream, the records due at its rate, the
//! event time of each (disorder and lateness), its malformed fraction, and — for a
//! `payments` input — the payments scheduled and not yet arrived.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::RangeInclusive;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::catalog::CATEGORIES;
use super::random::{mix, pick};
use super::records::{EventRecord, LineRecord, OrderRecord, PaymentRecord, ViewRecord, encode, order_id};
use super::world::World;
use super::{GenStream, GeneratorSpec};

/// The probability that an order is paid.
pub const PAYMENT_PROBABILITY: f64 = 0.9;
/// The event time between an order and its payment, in ms.
pub const PAYMENT_DELAY_MS: RangeInclusive<u64> = 1_000..=60_000;

/// A payment waiting for its arrival time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    arrival: u64,
    order: u64,
    ts: u64,
}

/// One generator-fed input.
pub(super) struct Input {
    /// The input's index in the job.
    pub(super) index: usize,
    pub(super) spec: GeneratorSpec,
    rng: ChaCha8Rng,
    /// The fraction of a record due but not yet produced.
    carry: f64,
    /// Payments inputs: the payments scheduled, earliest arrival first.
    pending: BinaryHeap<Reverse<Pending>>,
}

impl Input {
    pub(super) fn new(index: usize, spec: GeneratorSpec) -> Input {
        let seed = mix(mix(spec.seed) ^ index as u64);
        Input { index, spec, rng: ChaCha8Rng::seed_from_u64(seed), carry: 0.0, pending: BinaryHeap::new() }
    }

    /// How many records are due for `elapsed` ms.
    pub(super) fn due(&mut self, elapsed: u64) -> usize {
        let due = self.carry + self.spec.rate * elapsed as f64 / 1000.0;
        let n = due.floor();
        self.carry = due - n;
        n as usize
    }

    /// How far behind the clock a record's event time is.
    pub(super) fn lag(&mut self) -> u64 {
        let GeneratorSpec { disorder_ms, late_ms, late_fraction, .. } = self.spec;
        if late_fraction > 0.0 && self.rng.random_bool(late_fraction) {
            self.rng.random_range(disorder_ms..=late_ms)
        } else {
            self.rng.random_range(0..=disorder_ms)
        }
    }

    fn invalid(&mut self) -> bool {
        self.spec.invalid_fraction > 0.0 && self.rng.random_bool(self.spec.invalid_fraction)
    }

    /// One record of a views, orders, events or lines input; the valid orders made are
    /// added to `orders` as (order number, ts).
    pub(super) fn record(&mut self, world: &mut World, now: u64, orders: &mut Vec<(u64, u64)>) -> String {
        let ts = now.saturating_sub(self.lag());
        let invalid = self.invalid();
        let rng = &mut self.rng;
        match self.spec.stream {
            GenStream::Views => {
                let (user, product) = world.view(rng);
                let p = &world.products[product];
                let record = ViewRecord {
                    product: &p.name,
                    category: CATEGORIES[p.category].name,
                    user: &world.users[user],
                    ts,
                };
                encode(rng, &record, invalid)
            }
            GenStream::Orders => {
                let number = world.next_order_id();
                if !invalid {
                    orders.push((number, ts));
                }
                let p = &world.products[pick(&world.product_cdf, rng)];
                let quantity = match rng.random_range(0..20) {
                    0 => 3,
                    1..=3 => 2,
                    _ => 1,
                };
                let cents = (p.price_cents * quantity).clamp(100, 30_000);
                let order_id = order_id(number);
                let record = OrderRecord {
                    order_id: &order_id,
                    category: CATEGORIES[p.category].name,
                    amount: cents as f64 / 100.0,
                    ts,
                };
                encode(rng, &record, invalid)
            }
            GenStream::Events => {
                let key = rng.random_range(0..world.sensors.len());
                let value = world.sensors[key].read(rng);
                let name = &world.sensors[key].name;
                encode(rng, &EventRecord { key: name, ts, value }, invalid)
            }
            GenStream::Lines => {
                let text = world.sentence(rng);
                encode(rng, &LineRecord { text: &text, ts }, invalid)
            }
            GenStream::Payments => unreachable!("payments are emitted by emit_payments"),
        }
    }

    /// Decides the payments of `orders`, (order number, ts) pairs.
    pub(super) fn schedule_payments(&mut self, orders: &[(u64, u64)]) {
        for &(order, order_ts) in orders {
            if self.rng.random_bool(PAYMENT_PROBABILITY) {
                let ts = order_ts + self.rng.random_range(PAYMENT_DELAY_MS);
                let arrival = ts + self.lag();
                self.pending.push(Reverse(Pending { arrival, order, ts }));
            }
        }
    }

    /// Emits the payments that have arrived by `now`, in arrival order.
    pub(super) fn emit_payments(&mut self, now: u64, records: &mut Vec<String>) {
        while let Some(&Reverse(payment)) = self.pending.peek()
            && payment.arrival <= now
        {
            self.pending.pop();
            let invalid = self.invalid();
            let order_id = order_id(payment.order);
            records.push(encode(&mut self.rng, &PaymentRecord { order_id: &order_id, ts: payment.ts }, invalid));
        }
    }
}
