//! Nexmark events as NDJSON lines, shared by the generator (`gen.rs`) and the
//! micro-benchmarks (`benches/operators.rs`): the `nexmark` crate's generator with its
//! default configuration at a given rate and the base time fixed at
//! 2026-01-01T00:00:00Z, so that the same arguments always give the same lines.

use nexmark::EventGenerator;
use nexmark::config::NexmarkConfig;
use nexmark::event::Event;
use serde_json::json;

/// 2026-01-01T00:00:00Z, ms.
const BASE_TIME: u64 = 1_767_225_600_000;

/// The first `n` events at `rate` events per second of event time, one JSON value per
/// event as `nexmark_q*` read them: `{"person": {...}}`, `{"auction": {...}}` or
/// `{"bid": {...}}` with the crate's field names.
pub fn events(n: usize, rate: usize) -> impl Iterator<Item = serde_json::Value> {
    let config = NexmarkConfig { base_time: BASE_TIME, first_rate: rate, next_rate: rate, ..NexmarkConfig::default() };
    EventGenerator::new(config).take(n).map(|event| line(&event))
}

fn line(event: &Event) -> serde_json::Value {
    match event {
        Event::Person(p) => json!({"person": {
            "id": p.id, "name": p.name, "email_address": p.email_address, "credit_card": p.credit_card,
            "city": p.city, "state": p.state, "date_time": p.date_time, "extra": p.extra,
        }}),
        Event::Auction(a) => json!({"auction": {
            "id": a.id, "item_name": a.item_name, "description": a.description, "initial_bid": a.initial_bid,
            "reserve": a.reserve, "date_time": a.date_time, "expires": a.expires, "seller": a.seller,
            "category": a.category, "extra": a.extra,
        }}),
        Event::Bid(b) => json!({"bid": {
            "auction": b.auction, "bidder": b.bidder, "price": b.price, "channel": b.channel, "url": b.url,
            "date_time": b.date_time, "extra": b.extra,
        }}),
    }
}
