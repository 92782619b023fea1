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
//! The streams, and the dataflow input each fits:
//!
//! - `views` (`trending`'s `views`): `{"product", "category", "user", "ts"}`. A
//!   catalogue of 200 products in 8 categories (books, games, kitchen, garden, toys,
//!   music, sports, beauty) with Zipf-like popularity: a few products are viewed far
//!   more than the rest, and popularity drifts slowly, so the top products of a
//!   category change over minutes. 1000 users (`"user-417"`), some more active than
//!   others; a user often views the same product again.
//! - `orders` (`orders`' `orders`): `{"order_id", "category", "amount", "ts"}`, with a
//!   fresh id `"o-<n>"`, the category of a product picked by popularity, and an amount
//!   in `[1, 300]` with at most two decimals.
//! - `payments` (`orders`' `payments`): `{"order_id", "ts"}`. Each order the job
//!   generates is paid once with probability 0.9, at an event time 1 to 60 s (uniform)
//!   after the order's, and the payment is emitted when the clock reaches that time
//!   plus the payments input's own disorder (below), so payments follow their orders.
//!   A payment already due when its order is made (the order was late, or its delay
//!   shorter than the order's disorder) comes in the same tick as the order: it arrives
//!   before its order if the caller feeds that tick's payments before its orders.
//!   **The `rate` of a `payments` input is ignored** when the job also generates
//!   orders: payments come at about 0.9 times the orders' rate. A job that generates
//!   payments but no orders gets payments of a hidden order stream of `rate` orders
//!   per second (so about `0.9 × rate` payments per second), whose ids no input sees.
//!   The payments to come are held in memory (about a minute's worth of orders).
//! - `events` (`window_agg`'s `events`): `{"key", "ts", "value"}` from 50 sensors
//!   `"sensor-1"` to `"sensor-50"`, each value (a temperature, two decimals) a random
//!   walk around the sensor's own level, with a rare spike.
//! - `lines` (`word_count`'s `lines`): `{"text", "ts"}`, short sentences over a
//!   vocabulary of about 100 words with Zipf-like frequencies.
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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::f64::consts::TAU;
use std::ops::RangeInclusive;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The largest `rate`, in records per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// The largest `disorder_ms` and `late_ms`: one day.
pub const MAX_LATE_MS: u64 = 86_400_000;
/// The most wall-clock time one tick produces records for, in ms.
pub const MAX_CATCH_UP_MS: u64 = 5_000;
/// The probability that an order is paid.
pub const PAYMENT_PROBABILITY: f64 = 0.9;
/// The event time between an order and its payment, in ms.
pub const PAYMENT_DELAY_MS: RangeInclusive<u64> = 1_000..=60_000;

fn default_rate() -> f64 {
    100.0
}
fn default_disorder_ms() -> u64 {
    2_000
}
fn default_late_fraction() -> f64 {
    0.01
}
fn default_late_ms() -> u64 {
    30_000
}
fn default_invalid_fraction() -> f64 {
    0.001
}

/// What a generator-fed input produces, as given in the job spec:
/// `{"source": "generator", "stream": "views", "rate": 200, ...}` (the `"source"` key is
/// the caller's; [`GeneratorSpec::from_json`] drops it, plain serde rejects it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSpec {
    /// What to produce (required).
    pub stream: GenStream,
    /// Records per second (default 100; `0 < rate <= 1_000_000`). Ignored by `payments`
    /// when the job generates orders (see the module docs).
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// The seed of the input's random draws (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Records arrive up to this much out of order, in ms (default 2000).
    #[serde(default = "default_disorder_ms")]
    pub disorder_ms: u64,
    /// The fraction of records that arrive late (default 0.01).
    #[serde(default = "default_late_fraction")]
    pub late_fraction: f64,
    /// How late those are: uniform in `[disorder_ms, late_ms]` behind the clock (default 30000).
    #[serde(default = "default_late_ms")]
    pub late_ms: u64,
    /// The fraction of malformed records (default 0.001).
    #[serde(default = "default_invalid_fraction")]
    pub invalid_fraction: f64,
}

impl GeneratorSpec {
    /// A spec of `stream` with every other field at its default.
    pub fn new(stream: GenStream) -> GeneratorSpec {
        GeneratorSpec {
            stream,
            rate: default_rate(),
            seed: 0,
            disorder_ms: default_disorder_ms(),
            late_fraction: default_late_fraction(),
            late_ms: default_late_ms(),
            invalid_fraction: default_invalid_fraction(),
        }
    }

    /// Parses and validates an input's source object, ignoring its `"source"` key.
    pub fn from_json(value: &Value) -> Result<GeneratorSpec, String> {
        let mut value = value.clone();
        if let Value::Object(map) = &mut value {
            map.remove("source");
        }
        let spec: GeneratorSpec = serde_json::from_value(value).map_err(|e| format!("generator source: {e}"))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the ranges of the fields; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= MAX_RATE) {
            return Err(format!("rate must be > 0 and <= {MAX_RATE} records per second, got {}", self.rate));
        }
        for (name, value) in [("late_fraction", self.late_fraction), ("invalid_fraction", self.invalid_fraction)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("{name} must be in [0, 1], got {value}"));
            }
        }
        if self.disorder_ms > MAX_LATE_MS {
            return Err(format!("disorder_ms must be at most {MAX_LATE_MS}, got {}", self.disorder_ms));
        }
        if self.late_ms > MAX_LATE_MS {
            return Err(format!("late_ms must be at most {MAX_LATE_MS}, got {}", self.late_ms));
        }
        if self.late_ms < self.disorder_ms {
            return Err(format!("late_ms must be at least disorder_ms ({}), got {}", self.disorder_ms, self.late_ms));
        }
        Ok(())
    }

    /// The spec with every field forced into its range (for specs never validated).
    fn sanitized(&self) -> GeneratorSpec {
        let fraction = |f: f64| if f.is_finite() { f.clamp(0.0, 1.0) } else { 0.0 };
        let disorder_ms = self.disorder_ms.min(MAX_LATE_MS);
        GeneratorSpec {
            stream: self.stream,
            rate: if self.rate.is_finite() { self.rate.clamp(0.0, MAX_RATE) } else { 0.0 },
            seed: self.seed,
            disorder_ms,
            late_fraction: fraction(self.late_fraction),
            late_ms: self.late_ms.clamp(disorder_ms, MAX_LATE_MS),
            invalid_fraction: fraction(self.invalid_fraction),
        }
    }
}

/// The kinds of records a generator produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenStream {
    /// Product views, for `trending`'s `views`.
    Views,
    /// Orders, for `orders`' `orders`.
    Orders,
    /// Payments of orders, for `orders`' `payments`.
    Payments,
    /// Sensor readings, for `window_agg`'s `events`.
    Events,
    /// Lines of text, for `word_count`'s `lines`.
    Lines,
}

impl GenStream {
    /// Every stream.
    pub const ALL: [GenStream; 5] =
        [GenStream::Views, GenStream::Orders, GenStream::Payments, GenStream::Events, GenStream::Lines];

    /// The stream's name in specs (`"views"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            GenStream::Views => "views",
            GenStream::Orders => "orders",
            GenStream::Payments => "payments",
            GenStream::Events => "events",
            GenStream::Lines => "lines",
        }
    }

    /// The dataflow input this stream fits: (dataflow, input), e.g. `("trending", "views")`.
    pub fn dataflow_input(&self) -> (&'static str, &'static str) {
        match self {
            GenStream::Views => ("trending", "views"),
            GenStream::Orders => ("orders", "orders"),
            GenStream::Payments => ("orders", "payments"),
            GenStream::Events => ("window_agg", "events"),
            GenStream::Lines => ("word_count", "lines"),
        }
    }

    /// The fields of the records, exactly those of the dataflow input this stream fits
    /// (e.g. `Views` → `trending`'s `views`: `product`, `category`, `user`, `ts`).
    pub fn record_fields(&self) -> &'static [&'static str] {
        match self {
            GenStream::Views => &["product", "category", "user", "ts"],
            GenStream::Orders => &["order_id", "category", "amount", "ts"],
            GenStream::Payments => &["order_id", "ts"],
            GenStream::Events => &["key", "ts", "value"],
            GenStream::Lines => &["text", "ts"],
        }
    }
}

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

/// A payment waiting for its arrival time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    arrival: u64,
    order: u64,
    ts: u64,
}

/// One generator-fed input.
struct Input {
    index: usize,
    spec: GeneratorSpec,
    rng: ChaCha8Rng,
    /// The fraction of a record due but not yet produced.
    carry: f64,
    /// Payments inputs: the payments scheduled, earliest arrival first.
    pending: BinaryHeap<Reverse<Pending>>,
}

impl Input {
    fn new(index: usize, spec: GeneratorSpec) -> Input {
        let seed = mix(mix(spec.seed) ^ index as u64);
        Input { index, spec, rng: ChaCha8Rng::seed_from_u64(seed), carry: 0.0, pending: BinaryHeap::new() }
    }

    /// How many records are due for `elapsed` ms.
    fn due(&mut self, elapsed: u64) -> usize {
        let due = self.carry + self.spec.rate * elapsed as f64 / 1000.0;
        let n = due.floor();
        self.carry = due - n;
        n as usize
    }

    /// How far behind the clock a record's event time is.
    fn lag(&mut self) -> u64 {
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
    fn record(&mut self, world: &mut World, now: u64, orders: &mut Vec<(u64, u64)>) -> String {
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
    fn schedule_payments(&mut self, orders: &[(u64, u64)]) {
        for &(order, order_ts) in orders {
            if self.rng.random_bool(PAYMENT_PROBABILITY) {
                let ts = order_ts + self.rng.random_range(PAYMENT_DELAY_MS);
                let arrival = ts + self.lag();
                self.pending.push(Reverse(Pending { arrival, order, ts }));
            }
        }
    }

    /// Emits the payments that have arrived by `now`, in arrival order.
    fn emit_payments(&mut self, now: u64, records: &mut Vec<String>) {
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

#[derive(Serialize)]
struct ViewRecord<'a> {
    product: &'a str,
    category: &'a str,
    user: &'a str,
    ts: u64,
}

#[derive(Serialize)]
struct OrderRecord<'a> {
    order_id: &'a str,
    category: &'a str,
    amount: f64,
    ts: u64,
}

#[derive(Serialize)]
struct PaymentRecord<'a> {
    order_id: &'a str,
    ts: u64,
}

#[derive(Serialize)]
struct EventRecord<'a> {
    key: &'a str,
    ts: u64,
    value: f64,
}

#[derive(Serialize)]
struct LineRecord<'a> {
    text: &'a str,
    ts: u64,
}

fn order_id(number: u64) -> String {
    format!("o-{number}")
}

/// The JSON text of `record`, malformed in one of several ways when `invalid`.
fn encode<R: Serialize>(rng: &mut ChaCha8Rng, record: &R, invalid: bool) -> String {
    let text = serde_json::to_string(record).expect("records serialize");
    if !invalid {
        return text;
    }
    let Ok(Value::Object(mut map)) = serde_json::to_value(record) else { unreachable!("records are objects") };
    match rng.random_range(0..6) {
        // Cut short: a proper prefix of an object is never JSON.
        0 => {
            let mut cut = rng.random_range(1..text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text[..cut].to_string()
        }
        // Comma-separated values instead of JSON (two or more values: never one JSON value).
        1 => map
            .values()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        // A missing field.
        2 => {
            let field = random_key(rng, &map, |_| true);
            map.remove(&field);
            Value::Object(map).to_string()
        }
        // A string where a number belongs.
        3 => {
            let field = random_key(rng, &map, Value::is_number);
            let number = map[&field].to_string();
            map.insert(field, Value::String(number));
            Value::Object(map).to_string()
        }
        // A number where a string belongs.
        4 => {
            let field = random_key(rng, &map, Value::is_string);
            map.insert(field, Value::from(rng.random_range(0..1000)));
            Value::Object(map).to_string()
        }
        // A negative event time.
        _ => {
            let ts = map["ts"].as_u64().unwrap_or(0).max(1);
            map.insert("ts".to_string(), Value::from(-(ts.min(i64::MAX as u64) as i64)));
            Value::Object(map).to_string()
        }
    }
}

/// A key of `map` whose value satisfies `wanted` (every record has a string and a number).
fn random_key(rng: &mut ChaCha8Rng, map: &Map<String, Value>, wanted: impl Fn(&Value) -> bool) -> String {
    let keys: Vec<&String> = map.iter().filter(|(_, v)| wanted(v)).map(|(k, _)| k).collect();
    keys[rng.random_range(0..keys.len())].clone()
}

/// SplitMix64's finalizer: spreads seeds over all bits.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
}

/// An index drawn with the weights whose running sums are `cdf`.
fn pick(cdf: &[f64], rng: &mut ChaCha8Rng) -> usize {
    let r = rng.random::<f64>() * cdf[cdf.len() - 1];
    cdf.partition_point(|&c| c <= r).min(cdf.len() - 1)
}

/// Puts `items` in a random order (Fisher–Yates).
fn shuffle<T>(rng: &mut ChaCha8Rng, items: &mut [T]) {
    for i in 0..items.len() {
        let j = rng.random_range(i..items.len());
        items.swap(i, j);
    }
}

/// Running sums of `weights`.
fn cumulative(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    weights
        .scan(0.0, |sum, w| {
            *sum += w;
            Some(*sum)
        })
        .collect()
}

/// A product category: its name, price range in dollars and product nouns.
struct Category {
    name: &'static str,
    prices: (f64, f64),
    nouns: [&'static str; 8],
}

const CATEGORIES: [Category; 8] = [
    Category {
        name: "books",
        prices: (5.0, 40.0),
        nouns: ["novel", "atlas", "cookbook", "memoir", "thriller", "anthology", "journal", "dictionary"],
    },
    Category {
        name: "games",
        prices: (8.0, 90.0),
        nouns: ["puzzle", "chess-set", "card-deck", "board-game", "dice-set", "console", "controller", "headset"],
    },
    Category {
        name: "kitchen",
        prices: (3.0, 100.0),
        nouns: ["kettle", "teapot", "skillet", "whisk", "blender", "knife-set", "mug", "colander"],
    },
    Category {
        name: "garden",
        prices: (4.0, 80.0),
        nouns: ["hose", "rake", "shovel", "planter", "trowel", "sprinkler", "lantern", "seed-kit"],
    },
    Category {
        name: "toys",
        prices: (3.0, 60.0),
        nouns: ["robot", "kite", "yo-yo", "train-set", "doll", "blocks", "plush-bear", "spinning-top"],
    },
    Category {
        name: "music",
        prices: (5.0, 100.0),
        nouns: ["vinyl", "guitar-strings", "ukulele", "harmonica", "metronome", "headphones", "drumsticks", "songbook"],
    },
    Category {
        name: "sports",
        prices: (6.0, 100.0),
        nouns: ["football", "yoga-mat", "racket", "dumbbell", "water-bottle", "jump-rope", "helmet", "running-shoes"],
    },
    Category {
        name: "beauty",
        prices: (2.0, 50.0),
        nouns: ["lip-balm", "face-cream", "shampoo", "perfume", "hair-brush", "nail-kit", "soap", "sunscreen"],
    },
];

const ADJECTIVES: [&str; 12] =
    ["red", "blue", "green", "classic", "deluxe", "mini", "pro", "vintage", "eco", "silver", "golden", "compact"];

/// Products per category.
const PRODUCTS_PER_CATEGORY: usize = 25;
/// The Zipf exponent of product popularity.
const PRODUCT_ZIPF: f64 = 1.1;
/// The standard deviation of a product's drifting log-popularity.
const DRIFT_SIGMA: f64 = 0.7;
/// The time scale of popularity drift, in ms.
const DRIFT_TAU_MS: f64 = 180_000.0;
/// Users.
const USERS: usize = 1000;
/// The Zipf exponent of user activity.
const USER_ZIPF: f64 = 0.6;
/// The probability that a view repeats a recent (user, product) view.
const REPEAT_VIEW: f64 = 0.2;
/// How many recent views a repeat is drawn from.
const RECENT_VIEWS: usize = 256;
/// Sensors.
const SENSORS: usize = 50;
/// The probability of a spike in a sensor reading.
const SPIKE: f64 = 0.002;

/// Words of `lines`, most frequent first.
#[rustfmt::skip]
const WORDS: [&str; 100] = [
    "the", "a", "and", "of", "to", "in", "is", "it", "that", "for", "on", "with", "as", "was", "at", "by", "this", "we",
    "you", "they", "data", "stream", "time", "window", "event", "late", "early", "river", "light", "rain", "wind",
    "city", "night", "morning", "market", "shop", "order", "price", "music", "book", "game", "garden", "kitchen",
    "sensor", "signal", "record", "watermark", "clock", "today", "tomorrow", "always", "never", "slowly", "quickly",
    "again", "still", "only", "just", "very", "new", "old", "small", "big", "quiet", "bright", "cold", "warm", "green",
    "blue", "red", "happy", "busy", "open", "closed", "flows", "runs", "falls", "grows", "moves", "waits", "counts",
    "joins", "breaks", "rises", "sings", "reads", "writes", "builds", "changes", "arrives", "don't", "it's", "we're",
    "can't", "nothing", "everything", "someone", "here", "there", "through",
];

struct Product {
    name: String,
    category: usize,
    /// The product's base log-popularity.
    base: f64,
    price_cents: u64,
}

struct Sensor {
    name: String,
    level: f64,
    value: f64,
}

impl Sensor {
    /// The next reading: a step of the walk (pulled back to the level), two decimals.
    fn read(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        self.value += 0.05 * (self.level - self.value) + 0.15 * normal(rng);
        let mut value = self.value;
        if rng.random_bool(SPIKE) {
            value += if rng.random_bool(0.5) { 15.0 } else { -15.0 };
        }
        (value * 100.0).round() / 100.0
    }
}

/// What the inputs of one job share.
struct World {
    rng: ChaCha8Rng,
    products: Vec<Product>,
    /// Each product's drift of log-popularity from its base.
    heat: Vec<f64>,
    product_cdf: Vec<f64>,
    users: Vec<String>,
    user_cdf: Vec<f64>,
    recent_views: VecDeque<(usize, usize)>,
    sensors: Vec<Sensor>,
    word_cdf: Vec<f64>,
    /// The number of the last order made.
    orders: u64,
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ 0x7469_6465_6d61_726b));
        let mut products = Vec::with_capacity(CATEGORIES.len() * PRODUCTS_PER_CATEGORY);
        for (c, category) in CATEGORIES.iter().enumerate() {
            let mut names: Vec<(usize, usize)> =
                (0..ADJECTIVES.len()).flat_map(|a| (0..category.nouns.len()).map(move |n| (a, n))).collect();
            for i in 0..PRODUCTS_PER_CATEGORY {
                let j = rng.random_range(i..names.len());
                names.swap(i, j);
                let (a, n) = names[i];
                let (low, high) = category.prices;
                let price = (low.ln() + rng.random::<f64>() * (high / low).ln()).exp();
                products.push(Product {
                    name: format!("{}-{}", ADJECTIVES[a], category.nouns[n]),
                    category: c,
                    base: 0.0,
                    price_cents: ((price * 100.0).round() as u64).max(100),
                });
            }
        }
        // Popularity ranks spread over the categories at random.
        let mut ranks: Vec<usize> = (0..products.len()).collect();
        shuffle(&mut rng, &mut ranks);
        for (product, rank) in products.iter_mut().zip(&ranks) {
            product.base = -PRODUCT_ZIPF * ((rank + 1) as f64).ln();
        }
        let heat = (0..products.len()).map(|_| DRIFT_SIGMA * normal(&mut rng)).collect();

        let mut activity: Vec<usize> = (0..USERS).collect();
        shuffle(&mut rng, &mut activity);
        let users = (1..=USERS).map(|u| format!("user-{u}")).collect();
        let user_cdf = cumulative(activity.iter().map(|&rank| ((rank + 1) as f64).powf(-USER_ZIPF)));

        let sensors = (1..=SENSORS)
            .map(|s| {
                let level = 14.0 + 14.0 * rng.random::<f64>();
                Sensor { name: format!("sensor-{s}"), level, value: level }
            })
            .collect();
        let word_cdf = cumulative((0..WORDS.len()).map(|rank| 1.0 / (rank + 1) as f64));

        let mut world = World {
            rng,
            products,
            heat,
            product_cdf: Vec::new(),
            users,
            user_cdf,
            recent_views: VecDeque::with_capacity(RECENT_VIEWS),
            sensors,
            word_cdf,
            orders: 0,
        };
        world.update_popularity();
        world
    }

    /// Moves popularity on by `elapsed` ms (an Ornstein–Uhlenbeck walk per product).
    fn drift(&mut self, elapsed: u64) {
        if elapsed == 0 {
            return;
        }
        let keep = (-(elapsed as f64) / DRIFT_TAU_MS).exp();
        let noise = DRIFT_SIGMA * (1.0 - keep * keep).sqrt();
        for heat in &mut self.heat {
            *heat = *heat * keep + noise * normal(&mut self.rng);
        }
        self.update_popularity();
    }

    fn update_popularity(&mut self) {
        self.product_cdf = cumulative(self.products.iter().zip(&self.heat).map(|(p, h)| (p.base + h).exp()));
    }

    /// A view: (user, product).
    fn view(&mut self, rng: &mut ChaCha8Rng) -> (usize, usize) {
        if !self.recent_views.is_empty() && rng.random_bool(REPEAT_VIEW) {
            return self.recent_views[rng.random_range(0..self.recent_views.len())];
        }
        let view = (pick(&self.user_cdf, rng), pick(&self.product_cdf, rng));
        if self.recent_views.len() == RECENT_VIEWS {
            self.recent_views.pop_front();
        }
        self.recent_views.push_back(view);
        view
    }

    fn next_order_id(&mut self) -> u64 {
        self.orders += 1;
        self.orders
    }

    /// A short sentence.
    fn sentence(&self, rng: &mut ChaCha8Rng) -> String {
        let words = rng.random_range(3..=10);
        let mut text = String::new();
        for i in 0..words {
            let word = WORDS[pick(&self.word_cdf, rng)];
            if i == 0 {
                let mut chars = word.chars();
                text.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                text.push_str(chars.as_str());
            } else {
                text.push(' ');
                text.push_str(word);
            }
            if i + 1 < words && rng.random_bool(0.08) {
                text.push(',');
            }
        }
        text.push(match rng.random_range(0..10) {
            0 => '!',
            1 => '?',
            _ => '.',
        });
        text
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    use serde_json::json;

    use super::*;

    /// Wall-clock start of the simulations: 2024-01-01T00:00:00Z.
    const T0: u64 = 1_704_067_200_000;

    fn spec(stream: GenStream) -> GeneratorSpec {
        GeneratorSpec::new(stream)
    }

    /// A tick of a simulation: its time and its records per input.
    struct Tick {
        now: u64,
        records: Vec<(usize, Vec<String>)>,
    }

    /// Irregular tick times (100 ms ± 40 ms) after `T0`, up to `duration` ms.
    fn tick_times(duration: u64) -> Vec<u64> {
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let mut times = vec![T0];
        let mut now = T0;
        while now < T0 + duration {
            now += rng.random_range(60..=140);
            times.push(now);
        }
        times
    }

    fn simulate(inputs: Vec<(usize, GeneratorSpec)>, times: &[u64]) -> Vec<Tick> {
        let mut generator = Generator::new(inputs);
        times.iter().map(|&now| Tick { now, records: generator.tick(now) }).collect()
    }

    /// All records of input `index`, with the time of the tick that produced them.
    fn records_of(ticks: &[Tick], index: usize) -> Vec<(u64, &str)> {
        ticks
            .iter()
            .flat_map(|t| {
                t.records
                    .iter()
                    .filter(|(i, _)| *i == index)
                    .flat_map(move |(_, r)| r.iter().map(|s| (t.now, s.as_str())))
            })
            .collect()
    }

    /// Whether `text` parses as a record of the dataflow input `stream` fits, and fits
    /// the generator's own promises (ranges, names); the parsed record if so.
    fn parse_valid(stream: GenStream, text: &str) -> Result<Map<String, Value>, String> {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else { return Err("not an object".into()) };
        let keys: BTreeSet<&str> = map.keys().map(String::as_str).collect();
        let wanted: BTreeSet<&str> = stream.record_fields().iter().copied().collect();
        if keys != wanted {
            return Err(format!("fields {keys:?}"));
        }
        for (field, value) in &map {
            let ok = match field.as_str() {
                "ts" => value.as_u64().is_some(),
                "value" | "amount" => value.is_number() && value.as_f64().is_some_and(f64::is_finite),
                _ => value.is_string(),
            };
            if !ok {
                return Err(format!("{field}: {value}"));
            }
        }
        let string = |f: &str| map[f].as_str().unwrap_or_default();
        let two_decimals = |x: f64| ((x * 100.0).round() / 100.0 - x).abs() < 1e-9;
        match stream {
            GenStream::Views => {
                assert!(CATEGORIES.iter().any(|c| c.name == string("category")), "{text}");
                assert!(string("user").starts_with("user-"), "{text}");
            }
            GenStream::Orders => {
                let amount = map["amount"].as_f64().unwrap_or_default();
                assert!((1.0..=300.0).contains(&amount) && two_decimals(amount), "{text}");
                assert!(CATEGORIES.iter().any(|c| c.name == string("category")), "{text}");
                assert!(string("order_id").strip_prefix("o-").is_some_and(|n| n.parse::<u64>().is_ok()), "{text}");
            }
            GenStream::Payments => assert!(string("order_id").starts_with("o-"), "{text}"),
            GenStream::Events => {
                let n: usize = string("key").strip_prefix("sensor-").and_then(|n| n.parse().ok()).unwrap_or(0);
                assert!((1..=SENSORS).contains(&n), "{text}");
                assert!(two_decimals(map["value"].as_f64().unwrap_or_default()), "{text}");
            }
            GenStream::Lines => assert!(string("text").split(' ').count() >= 3, "{text}"),
        }
        Ok(map)
    }

    fn ts(record: &Map<String, Value>) -> u64 {
        record["ts"].as_u64().unwrap()
    }

    #[test]
    fn the_first_tick_starts_the_clock() {
        let mut generator = Generator::new(vec![(0, spec(GenStream::Views)), (3, spec(GenStream::Lines))]);
        assert_eq!(generator.tick(T0), vec![(0, vec![]), (3, vec![])]);
        let second = generator.tick(T0 + 1000);
        assert_eq!(second.iter().map(|(i, r)| (*i, r.len())).collect::<Vec<_>>(), vec![(0, 100), (3, 100)]);
        // A clock going backwards produces nothing.
        assert!(generator.tick(T0 + 500).iter().all(|(_, r)| r.is_empty()));
        assert!(Generator::new(vec![]).tick(T0).is_empty());
    }

    #[test]
    fn rates_follow_the_clock() {
        let times = tick_times(60_000);
        let elapsed = times[times.len() - 1] - T0;
        let rates = [
            (GenStream::Views, 200.0),
            (GenStream::Orders, 1000.0),
            (GenStream::Events, 37.5),
            (GenStream::Lines, 0.7),
        ];
        let inputs = rates.iter().enumerate().map(|(i, &(s, rate))| (i, GeneratorSpec { rate, ..spec(s) })).collect();
        let ticks = simulate(inputs, &times);
        for (i, (stream, rate)) in rates.iter().enumerate() {
            let got = records_of(&ticks, i).len() as f64;
            let want = rate * elapsed as f64 / 1000.0;
            assert!((got - want).abs() <= 1.0, "{stream:?}: {got} records, want {want}");
        }
        // Every tick produces its share, not bursts.
        let per_tick = ticks.windows(2).map(|w| (w[1].now - w[0].now, w[1].records[1].1.len()));
        for (gap, n) in per_tick {
            assert!((n as f64 - gap as f64).abs() <= 1.0, "{n} orders in {gap} ms at 1000/s");
        }
    }

    #[test]
    fn generators_are_deterministic() {
        let times = tick_times(90_000);
        let inputs = |seed| -> Vec<(usize, GeneratorSpec)> {
            GenStream::ALL
                .iter()
                .enumerate()
                .map(|(i, &s)| (i, GeneratorSpec { seed, invalid_fraction: 0.05, late_fraction: 0.1, ..spec(s) }))
                .collect()
        };
        let (a, b, c) = (simulate(inputs(7), &times), simulate(inputs(7), &times), simulate(inputs(8), &times));
        assert!(records_of(&a, 2).len() > 1000, "payments were produced");
        for i in 0..GenStream::ALL.len() {
            assert_eq!(records_of(&a, i), records_of(&b, i));
            assert_ne!(records_of(&a, i), records_of(&c, i));
        }
        // Two inputs of one stream and seed differ (each input's draws are its own).
        let twins = simulate(vec![(0, spec(GenStream::Views)), (1, spec(GenStream::Views))], &times[..50]);
        let texts = |i| records_of(&twins, i).into_iter().map(|(_, r)| r).collect::<Vec<_>>();
        assert_ne!(texts(0), texts(1));
    }

    #[test]
    fn valid_records_fit_the_dataflow_inputs() {
        let inputs =
            GenStream::ALL.iter().enumerate().map(|(i, &s)| (i, GeneratorSpec { invalid_fraction: 0.0, ..spec(s) }));
        let ticks = simulate(inputs.collect(), &tick_times(120_000));
        for (i, stream) in GenStream::ALL.iter().enumerate() {
            let records = records_of(&ticks, i);
            assert!(records.len() > 5000, "{stream:?}: {}", records.len());
            for (now, text) in records {
                let record = parse_valid(*stream, text).unwrap_or_else(|e| panic!("{stream:?} {text}: {e}"));
                assert!(ts(&record) <= now);
            }
        }
        // Records are written field by field in the dataflows' order.
        let first = |i| records_of(&ticks, i)[0].1.to_string();
        assert!(first(0).starts_with(r#"{"product":""#), "{}", first(0));
        assert!(first(3).starts_with(r#"{"key":"sensor-"#), "{}", first(3));
    }

    /// The way a record is malformed.
    fn malformation(stream: GenStream, text: &str) -> &'static str {
        let Ok(value) = serde_json::from_str::<Value>(text) else { return "not json" };
        let map = value.as_object().expect("an object");
        if map.len() < stream.record_fields().len() {
            "missing field"
        } else if map["ts"].as_i64().is_some_and(|t| t < 0) {
            "negative ts"
        } else if ["ts", "value", "amount"].iter().any(|f| map.get(*f).is_some_and(Value::is_string)) {
            "string for number"
        } else if map.values().any(Value::is_number) && map.values().filter(|v| v.is_string()).count() + 1 < map.len() {
            "number for string"
        } else {
            panic!("{text} is malformed in no known way")
        }
    }

    #[test]
    fn an_invalid_fraction_is_malformed_in_varied_ways() {
        for (i, &stream) in GenStream::ALL.iter().enumerate() {
            let inputs = vec![(i, GeneratorSpec { rate: 2000.0, invalid_fraction: 0.1, ..spec(stream) })];
            let inputs = if stream == GenStream::Payments {
                let orders = GeneratorSpec { rate: 2000.0, invalid_fraction: 0.0, ..spec(GenStream::Orders) };
                vec![inputs[0].clone(), (9, orders)]
            } else {
                inputs
            };
            let ticks = simulate(inputs, &tick_times(40_000));
            let records = records_of(&ticks, i);
            let mut kinds = BTreeMap::new();
            for (_, text) in &records {
                if parse_valid(stream, text).is_err() {
                    *kinds.entry(malformation(stream, text)).or_insert(0) += 1;
                }
            }
            let invalid: usize = kinds.values().sum();
            let fraction = invalid as f64 / records.len() as f64;
            assert!((fraction - 0.1).abs() < 0.01, "{stream:?}: {invalid} of {} invalid", records.len());
            assert_eq!(kinds.len(), 5, "{stream:?}: {kinds:?}");
        }
        // None by request.
        let ticks = simulate(
            vec![(0, GeneratorSpec { invalid_fraction: 0.0, ..spec(GenStream::Events) })],
            &tick_times(60_000),
        );
        assert!(records_of(&ticks, 0).iter().all(|(_, t)| parse_valid(GenStream::Events, t).is_ok()));
    }

    #[test]
    fn event_times_are_within_the_documented_bounds() {
        let late = GeneratorSpec {
            rate: 1000.0,
            disorder_ms: 3000,
            late_fraction: 0.05,
            late_ms: 20_000,
            ..spec(GenStream::Views)
        };
        let on_time = GeneratorSpec { rate: 1000.0, late_fraction: 0.0, ..spec(GenStream::Events) };
        let ticks = simulate(vec![(0, late), (1, on_time)], &tick_times(60_000));
        let (mut behind_disorder, mut n) = (0, 0);
        for (now, text) in records_of(&ticks, 0) {
            let Ok(record) = parse_valid(GenStream::Views, text) else { continue };
            let behind = now - ts(&record);
            assert!(behind <= 20_000, "{behind}");
            behind_disorder += usize::from(behind > 3000);
            n += 1;
        }
        let fraction = behind_disorder as f64 / n as f64;
        assert!((0.04..0.06).contains(&fraction), "{fraction} beyond disorder_ms");
        let mut behinds = Vec::new();
        for (now, text) in records_of(&ticks, 1) {
            let Ok(record) = parse_valid(GenStream::Events, text) else { continue };
            behinds.push(now - ts(&record));
        }
        assert!(behinds.iter().all(|&b| b <= 2000));
        let mean = behinds.iter().sum::<u64>() as f64 / behinds.len() as f64;
        assert!((mean - 1000.0).abs() < 30.0, "mean disorder {mean}: uniform in [0, 2000]");
        // Near the epoch, times saturate at 0.
        let mut generator = Generator::new(vec![(0, spec(GenStream::Lines))]);
        generator.tick(0);
        for text in &generator.tick(1000)[0].1 {
            if let Ok(record) = parse_valid(GenStream::Lines, text) {
                assert!(ts(&record) <= 1000);
            }
        }
    }

    #[test]
    fn payments_pay_generated_orders_after_them() {
        let times = tick_times(300_000);
        let end = times[times.len() - 1];
        let orders = GeneratorSpec { rate: 100.0, ..spec(GenStream::Orders) };
        let payments = GeneratorSpec { rate: 5.0, late_fraction: 0.02, ..spec(GenStream::Payments) };
        let ticks = simulate(vec![(1, payments.clone()), (4, orders.clone())], &times);
        // Valid orders: id -> (ts, arrival).
        let mut made = HashMap::new();
        for (now, text) in records_of(&ticks, 4) {
            if let Ok(order) = parse_valid(GenStream::Orders, text) {
                made.insert(order["order_id"].as_str().unwrap().to_string(), (ts(&order), now));
            }
        }
        let mut paid = HashMap::new();
        let mut same_tick = 0;
        for (now, text) in records_of(&ticks, 1) {
            let Ok(payment) = parse_valid(GenStream::Payments, text) else { continue };
            let id = payment["order_id"].as_str().unwrap().to_string();
            let (order_ts, order_arrival) = *made.get(&id).unwrap_or_else(|| panic!("{text} pays no order"));
            let ts = ts(&payment);
            assert!(PAYMENT_DELAY_MS.contains(&(ts - order_ts)), "{text}: order at {order_ts}");
            assert!(order_arrival <= now && ts <= now, "{text}");
            assert!(now - ts <= orders.late_ms + payments.late_ms, "{text} at {now}");
            same_tick += usize::from(order_arrival == now);
            assert!(paid.insert(id, ts).is_none(), "{text}: paid twice");
        }
        // Payments of late orders come in the very tick of their order.
        assert!(same_tick > 0);
        // Of the orders old enough for their payment to have come, about 0.9 are paid.
        let old = made.iter().filter(|(_, (ts, _))| ts + 60_000 + payments.late_ms + 200 < end);
        let (n, n_paid) = old.fold((0, 0), |(n, p), (id, _)| (n + 1, p + usize::from(paid.contains_key(id))));
        let fraction = n_paid as f64 / n as f64;
        assert!(n > 20_000 && (fraction - PAYMENT_PROBABILITY).abs() < 0.01, "{n_paid} of {n} paid");
    }

    #[test]
    fn payments_alone_pay_a_hidden_order_stream() {
        let times = tick_times(200_000);
        let ticks = simulate(
            vec![(0, GeneratorSpec { rate: 50.0, invalid_fraction: 0.0, ..spec(GenStream::Payments) })],
            &times,
        );
        let mut ids = BTreeSet::new();
        let mut steady = 0;
        for (now, text) in records_of(&ticks, 0) {
            let payment = parse_valid(GenStream::Payments, text).unwrap();
            assert!(ids.insert(payment["order_id"].as_str().unwrap().to_string()), "{text}: paid twice");
            steady += usize::from(now > T0 + 100_000);
        }
        let rate = steady as f64 / ((times[times.len() - 1] - T0 - 100_000) as f64 / 1000.0);
        assert!((rate - 45.0).abs() < 2.0, "{rate} payments per second");
    }

    #[test]
    fn a_long_pause_produces_at_most_five_seconds_worth() {
        let inputs = vec![(0, spec(GenStream::Views)), (1, spec(GenStream::Orders)), (2, spec(GenStream::Payments))];
        let mut generator = Generator::new(inputs);
        let mut now = T0;
        generator.tick(now);
        for _ in 0..600 {
            now += 100;
            generator.tick(now);
        }
        now += 3_600_000;
        let after = generator.tick(now);
        assert_eq!(after[0].1.len(), 500);
        assert_eq!(after[1].1.len(), 500);
        // The payments of the orders before the pause, and of some of those after it.
        assert!(after[2].1.len() < 6000 + 500, "{}", after[2].1.len());
        for text in &after[0].1 {
            if let Ok(view) = parse_valid(GenStream::Views, text) {
                assert!(now - ts(&view) <= 30_000);
            }
        }
        let next = generator.tick(now + 100);
        assert_eq!(next[0].1.len(), 10);
    }

    #[test]
    fn popularity_is_skewed_and_drifts() {
        let times = tick_times(1_200_000);
        let views = GeneratorSpec { rate: 100.0, invalid_fraction: 0.0, ..spec(GenStream::Views) };
        let ticks = simulate(vec![(0, views)], &times);
        let top = |from: u64, to: u64| {
            let mut counts: HashMap<String, usize> = HashMap::new();
            let mut total = 0;
            for (now, text) in records_of(&ticks, 0) {
                if (T0 + from..T0 + to).contains(&now) {
                    let view = parse_valid(GenStream::Views, text).unwrap();
                    *counts.entry(view["product"].as_str().unwrap().to_string()).or_default() += 1;
                    total += 1;
                }
            }
            let mut ranked: Vec<(usize, String)> = counts.into_iter().map(|(p, n)| (n, p)).collect();
            ranked.sort_by(|a, b| b.cmp(a));
            (ranked[0].0 as f64 / total as f64, ranked.into_iter().take(5).map(|(_, p)| p).collect::<Vec<_>>())
        };
        let (share, first) = top(0, 180_000);
        let (_, last) = top(1_020_000, 1_200_000);
        assert!(share > 0.05, "the top product has {share} of the views");
        assert_ne!(first, last, "the top 5 changed over 20 minutes");
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (GeneratorSpec { rate: 0.0, ..spec(GenStream::Views) }, "rate"),
            (GeneratorSpec { rate: f64::NAN, ..spec(GenStream::Views) }, "rate"),
            (GeneratorSpec { rate: 2e6, ..spec(GenStream::Views) }, "rate"),
            (GeneratorSpec { late_fraction: 1.5, ..spec(GenStream::Views) }, "late_fraction"),
            (GeneratorSpec { invalid_fraction: -0.1, ..spec(GenStream::Views) }, "invalid_fraction"),
            (GeneratorSpec { disorder_ms: MAX_LATE_MS + 1, ..spec(GenStream::Views) }, "disorder_ms"),
            (GeneratorSpec { late_ms: MAX_LATE_MS + 1, ..spec(GenStream::Views) }, "late_ms"),
            (GeneratorSpec { disorder_ms: 5000, late_ms: 4000, ..spec(GenStream::Views) }, "late_ms"),
        ];
        for (spec, field) in cases {
            let error = spec.validate().unwrap_err();
            assert!(error.starts_with(field), "{error}");
        }
        assert_eq!(spec(GenStream::Views).validate(), Ok(()));
        assert_eq!(GeneratorSpec { rate: MAX_RATE, late_fraction: 1.0, ..spec(GenStream::Lines) }.validate(), Ok(()));
        // An unvalidated spec is forced into range rather than panicking.
        let wild = GeneratorSpec {
            rate: f64::NAN,
            late_fraction: 7.0,
            late_ms: 0,
            invalid_fraction: -1.0,
            ..spec(GenStream::Views)
        };
        let mut generator = Generator::new(vec![(0, wild)]);
        generator.tick(T0);
        assert!(generator.tick(T0 + 1000)[0].1.is_empty());
    }

    #[test]
    fn specs_parse_with_defaults_and_deny_unknown_fields() {
        let parsed = GeneratorSpec::from_json(&json!({"source": "generator", "stream": "views"})).unwrap();
        assert_eq!(parsed, spec(GenStream::Views));
        assert_eq!(
            (
                parsed.rate,
                parsed.seed,
                parsed.disorder_ms,
                parsed.late_fraction,
                parsed.late_ms,
                parsed.invalid_fraction
            ),
            (100.0, 0, 2000, 0.01, 30_000, 0.001)
        );
        let full = json!({"stream": "payments", "rate": 5.5, "seed": 3, "disorder_ms": 0, "late_fraction": 0.0,
            "late_ms": 0, "invalid_fraction": 0.5});
        let parsed: GeneratorSpec = serde_json::from_value(full.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), full);

        let error = GeneratorSpec::from_json(&json!({"source": "generator", "stream": "views", "rat": 5})).unwrap_err();
        assert!(error.contains("unknown field `rat`"), "{error}");
        assert!(serde_json::from_value::<GeneratorSpec>(json!({"source": "generator", "stream": "views"})).is_err());
        let error = GeneratorSpec::from_json(&json!({"rate": 5})).unwrap_err();
        assert!(error.contains("missing field `stream`"), "{error}");
        let error = GeneratorSpec::from_json(&json!({"stream": "clicks"})).unwrap_err();
        assert!(error.contains("clicks"), "{error}");
        let error = GeneratorSpec::from_json(&json!({"stream": "views", "rate": -1})).unwrap_err();
        assert!(error.starts_with("rate"), "{error}");
        for stream in GenStream::ALL {
            assert_eq!(serde_json::to_value(stream).unwrap(), json!(stream.name()));
            assert_eq!(stream.dataflow_input().1, stream.name());
        }
    }
}
