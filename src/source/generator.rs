//! The built-in demo source: a deterministic, seeded stream of a small shop (product
//! views, orders and their payments), sensor readings and lines of text, so that a job
//! shows live results without any data of its own.
//!
//! A job input is fed by it with `{"source": "generator", "stream": "views", ...}`:
//!
//! | field              | default | meaning                                                        |
//! |--------------------|---------|----------------------------------------------------------------|
//! | `stream`           | —       | what to produce: `views`, `orders`, `payments`, `events`, `lines` |
//! | `rate`             | 100     | records per second of wall-clock time, `0 < rate <= 1000000`   |
//! | `seed`             | 0       | the seed of the input's random draws                          |
//! | `disorder_ms`      | 2000    | records arrive up to this much out of order                    |
//! | `late_fraction`    | 0.01    | the fraction of records that arrive late, in `[0, 1]`          |
//! | `late_ms`          | 30000   | how late those are, `disorder_ms <= late_ms <= 86400000`       |
//! | `invalid_fraction` | 0.001   | the fraction of malformed records, in `[0, 1]`                 |
//!
//! A job's spec says which stream feeds which of its inputs (in `tidemark.toml`,
//! `inputs.views = { source = "generator", stream = "views" }`); the generator knows
//! nothing of pipelines, only the shape of its records. The streams:
//!
//! - `views`: `{"product", "category", "user", "ts"}`. A catalogue of 200 products in
//!   8 categories (books, games, kitchen, garden, toys, music, sports, beauty) with
//!   Zipf-like popularity: a few products are viewed far more than the rest, and
//!   popularity drifts slowly, so the top products of a category change over minutes.
//!   1000 users (`"user-417"`), some more active than others; a user often views the
//!   same product again.
//! - `orders`: `{"order_id", "category", "amount", "ts"}`, with a fresh id `"o-<n>"`,
//!   the category of a product picked by popularity, and an amount in `[1, 300]` with
//!   at most two decimals.
//! - `payments`: `{"order_id", "ts"}`. Each order the job generates is paid once with
//!   probability 0.9, at an event time 1 to 60 s (uniform) after the order's, and the
//!   payment is emitted when the clock reaches that time plus the payments input's own
//!   disorder (below), so payments follow their orders.
//!   A payment already due when its order is made (the order was late, or its delay
//!   shorter than the order's disorder) comes in the same tick as the order: it arrives
//!   before its order if the caller feeds that tick's payments before its orders.
//!   **The `rate` of a `payments` input is ignored** when the job also generates
//!   orders: payments come at about 0.9 times the orders' rate. A job that generates
//!   payments but no orders gets payments of a hidden order stream of `rate` orders
//!   per second (so about `0.9 × rate` payments per second), whose ids no input sees.
//!   The payments to come are held in memory (about a minute's worth of orders).
//! - `events`: `{"key", "ts", "value"}` from 50 sensors `"sensor-1"` to `"sensor-50"`,
//!   each value (a temperature, two decimals) a random walk around the sensor's own
//!   level, with a rare spike.
//! - `lines`: `{"text", "ts"}`, short sentences over a vocabulary of about 100 words
//!   with Zipf-like frequencies.
//!
//! Event times follow the wall clock. A record produced at a tick at `now` (epoch ms)
//! has `ts = now - d` (at least 0), where `d` is uniform in `[0, disorder_ms]`, or, for
//! a `late_fraction` of the records, uniform in `[disorder_ms, late_ms]`: some of those
//! are too late for a job's windows and show up in its `dead_letter` output. Payments
//! take their order's time plus the delay, then arrive `d` (drawn the same way, from the
//! payments input's fields) after it, at the first tick at or past that; a payment of a
//! late order can thus be later still. An `invalid_fraction` of the records are
//! malformed in varied ways — not JSON, a missing field, a string where a number
//! belongs, a number where a string belongs, a negative `ts` — and are dead-lettered as
//! `invalid`.
//!
//! All generator-fed inputs of one job share one world (the catalogue, users, sensors,
//! popularity and the orders that payments pay), seeded by the `seed` of the input with
//! the lowest index; each input's own draws are seeded by its `seed` and its index. The
//! same specs and the same sequence of tick times always give the same records.
//! Ticks come about every 100 ms; each produces the records due since the previous one,
//! carrying fractions of a record over. After a pause of more than 5 s a tick produces
//! at most 5 s worth of records rather than a burst of the whole pause.
//!
//! The parts:
//!
//! - `spec`: [`GeneratorSpec`], what a job asks for one input, its defaults and
//!   validation, and [`GeneratorError`];
//! - `tick`: the [`Generator`] of one job and its clock;
//! - `running`: [`GeneratorSource`], the source that ticks it and feeds the job's inputs;
//! - `input`: one input's draws, rate, event times and pending payments;
//! - `world`: what a job's inputs share (popularity, recent views, order numbers);
//! - `catalog`: the categories, products, users, sensors and words, and their making;
//! - `records`: the record structs and their JSON, malformed on purpose;
//! - `random`: seed mixing and the draws `rand` does not have.

mod catalog;
mod input;
mod random;
mod records;
mod running;
mod spec;
#[cfg(test)]
mod tests;
mod tick;
mod world;

pub use input::{PAYMENT_DELAY_MS, PAYMENT_PROBABILITY};
pub use running::{GeneratorSource, TICK_PERIOD};
pub use spec::{GenStream, GeneratorError, GeneratorSpec, MAX_LATE_MS, MAX_RATE};
pub use tick::{Generator, MAX_CATCH_UP_MS};
