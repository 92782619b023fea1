//! Nexmark — the standard streaming benchmark's queries over one stream of people,
//! auctions and bids, as pipelines `nexmark_q0` … `nexmark_q9` (q6 is not in the
//! suite; Flink's Nexmark does not run it either).
//!
//! - input `events`: one event per line, `{"person": {...}}`, `{"auction": {...}}` or
//!   `{"bid": {...}}`, with the fields of the `nexmark` crate's events (see
//!   [`events`]); event time is each event's `date_time` (ms).
//!   `benches/nexmark/gen.rs` writes them (`nexmark` crate, fixed base time).
//! - params (every query): `max_out_of_orderness`, `allowed_lateness`, `retention`
//!   and `emit` as for `window_agg`, except that `emit` defaults to `"on_close"`
//!   (a window's row appears once the watermark passes its end, as Nexmark's
//!   reference queries in Flink emit).
//!
//! | pipeline | query | output (key) |
//! |---|---|---|
//! | `nexmark_q0` | pass-through: every bid | `bids` (`auction`, `bidder`, `date_time`): `{"auction", "bidder", "price", "date_time", "extra"}` |
//! | `nexmark_q1` | currency conversion: `price` × 0.908 | `bids` (as q0), `price` a number |
//! | `nexmark_q2` | selection: bids on auctions whose id is a multiple of 123 | `bids` (`auction`): `{"auction", "price"}` |
//! | `nexmark_q3` | local item suggestion: sellers in OR, ID or CA of auctions in category 10 | `sellers` (`id`): `{"name", "city", "state", "id"}` (`id`: the auction's) |
//! | `nexmark_q4` | average closing price per category: the mean of each auction's winning price (q9) | `categories` (`category`): `{"category", "avg"}` |
//! | `nexmark_q5` | hot items: the auctions with the most bids per 10 s window sliding by 2 s | `hot` (`start`, `auction`): `{"start", "end", "auction", "num"}` |
//! | `nexmark_q7` | highest bid per 10 s tumbling window | `highest` (`start`, `auction`, `bidder`, `date_time`): `{"start", "end", "auction", "price", "bidder", "date_time", "extra"}` |
//! | `nexmark_q8` | new users: people who opened an auction in the 10 s tumbling window they registered in | `new_users` (`id`, `start`): `{"id", "name", "start"}` |
//! | `nexmark_q9` | winning bid of each auction: the highest (then earliest) bid with `auction.date_time <= bid.date_time <= auction.expires` | `winners` (`id`): the auction's fields, then `auction`, `bidder`, `price`, `bid_date_time`, `bid_extra` |
//!
//! Deviations from the reference queries (Flink's `nexmark` SQL):
//! - q5 and q7 add the window's `start` and `end` to each row, so that rows are keyed
//!   (the reference returns `auction, num` and the bid's fields).
//! - q7 joins each window's highest price with the bids *of that window*,
//!   `[start, end)`; the reference's `BETWEEN end - 10 s AND end` also matches a bid at
//!   exactly `end` that has the same price.
//! - Windowed queries drop a bid that arrives after its windows are final (with the
//!   default `allowed_lateness` 0 and in-order events from the generator, none does);
//!   it goes to `dead_letter` as `too_late`.
//! - With `emit` `"on_close"`, a window's rows appear once the watermark passes its
//!   end: at the end of `tidemark run` (the watermark one past the last event time),
//!   the windows still open have no rows yet.
//! - q4's `avg` is the mean as a double (`sum / count`); the reference's `AVG` of a
//!   `BIGINT` truncates to an integer.
//! - q9 breaks ties of price and time by the rest of the bid (bidder, channel, url,
//!   extra); the reference's `ROW_NUMBER` picks any.
//! - q4 and q9 drop an event more than `allowed_lateness` behind the watermark (to
//!   `dead_letter` as `too_late`; with in-order events from the generator, none is),
//!   so that an auction's winner is final once the watermark passes `expires +
//!   allowed_lateness`: its state goes then and its row stays, and what they keep is
//!   bounded by the auctions still open. The reference accepts any bid, however late,
//!   and keeps all state. An auction id is expected once (the generator's are unique).
//! - q3 is over all time, like the reference: its state grows with the people and
//!   auctions seen.
//!
//! ```sh
//! cargo run --release --example nexmark_gen -- --events 1000000 events.ndjson
//! tidemark run nexmark_q5 --input events=events.ndjson
//! ```

pub mod events;
mod q3;
mod q5;
mod q7;
mod q8;
mod stateless;
mod winning;

use tidemark::pipeline::prelude::*;

pub use events::{Auction, Bid, Event};
pub use q3::Q3;
pub use q5::Q5;
pub use q7::Q7;
pub use q8::Q8;
pub use stateless::{Q0, Q1, Q2};
pub use winning::{Q4, Q9};

/// The parameters of every Nexmark query.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct NexmarkParams {
    /// The watermark trails the largest event time seen by this much (ms).
    pub max_out_of_orderness: Time,
    /// How long after its end a window still accepts events (ms).
    pub allowed_lateness: Time,
    /// How long a final window stays in the output (ms); `None` keeps it forever.
    pub retention: Option<Time>,
    /// When windowed results are emitted (default: when the window closes).
    pub emit: Emit,
}

impl Default for NexmarkParams {
    fn default() -> Self {
        let time = EventTime::default();
        NexmarkParams {
            max_out_of_orderness: time.max_out_of_orderness,
            allowed_lateness: time.allowed_lateness,
            retention: time.retention,
            emit: Emit::OnClose,
        }
    }
}

impl Params for NexmarkParams {
    fn validate(&self) -> Result<(), ParamError> {
        self.time().validate()
    }
}

impl NexmarkParams {
    /// The event-time settings.
    fn time(&self) -> EventTime {
        EventTime {
            max_out_of_orderness: self.max_out_of_orderness,
            allowed_lateness: self.allowed_lateness,
            retention: self.retention,
            emit: self.emit,
        }
    }
}

/// The 10 s windows of q5, q7 and q8.
const WINDOW: Time = 10_000;
