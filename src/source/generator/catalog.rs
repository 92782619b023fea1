//! What the generated shop, sensors and text are made of: the product categories, the
//! adjectives and nouns of product names, the users, the sensors and the words of
//! `lines`, with their sizes and skews, and their construction from a world's seed.
//!
//! What changes as the clock runs (popularity drift, recent views, order numbers) is
//! the world's ([`super::world`]); a sensor's reading walk is here, with the sensor.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::random::{cumulative, normal, shuffle};

/// A product category: its name, price range in dollars and product nouns.
pub(super) struct Category {
    pub(super) name: &'static str,
    prices: (f64, f64),
    nouns: [&'static str; 8],
}

pub(super) const CATEGORIES: [Category; 8] = [
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
/// Users.
const USERS: usize = 1000;
/// The Zipf exponent of user activity.
const USER_ZIPF: f64 = 0.6;
/// Sensors.
pub(super) const SENSORS: usize = 50;
/// The probability of a spike in a sensor reading.
const SPIKE: f64 = 0.002;

/// Words of `lines`, most frequent first.
#[rustfmt::skip]
pub(super) const WORDS: [&str; 100] = [
    "the", "a", "and", "of", "to", "in", "is", "it", "that", "for", "on", "with", "as", "was", "at", "by", "this", "we",
    "you", "they", "data", "stream", "time", "window", "event", "late", "early", "river", "light", "rain", "wind",
    "city", "night", "morning", "market", "shop", "order", "price", "music", "book", "game", "garden", "kitchen",
    "sensor", "signal", "record", "watermark", "clock", "today", "tomorrow", "always", "never", "slowly", "quickly",
    "again", "still", "only", "just", "very", "new", "old", "small", "big", "quiet", "bright", "cold", "warm", "green",
    "blue", "red", "happy", "busy", "open", "closed", "flows", "runs", "falls", "grows", "moves", "waits", "counts",
    "joins", "breaks", "rises", "sings", "reads", "writes", "builds", "changes", "arrives", "don't", "it's", "we're",
    "can't", "nothing", "everything", "someone", "here", "there", "through",
];

pub(super) struct Product {
    pub(super) name: String,
    /// The index of its category in [`CATEGORIES`].
    pub(super) category: usize,
    /// The product's base log-popularity.
    pub(super) base: f64,
    pub(super) price_cents: u64,
}

/// The catalogue: [`PRODUCTS_PER_CATEGORY`] products of distinct names per category,
/// with log-uniform prices in the category's range and Zipf-like base popularity whose
/// ranks are spread over the categories at random.
pub(super) fn products(rng: &mut ChaCha8Rng) -> Vec<Product> {
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
    shuffle(rng, &mut ranks);
    for (product, rank) in products.iter_mut().zip(&ranks) {
        product.base = -PRODUCT_ZIPF * ((rank + 1) as f64).ln();
    }
    products
}

/// The users' names, `"user-1"` to `"user-1000"`.
pub(super) fn users() -> Vec<String> {
    (1..=USERS).map(|u| format!("user-{u}")).collect()
}

/// The running sums of the users' activity: Zipf-like, the ranks shuffled over the users.
pub(super) fn user_cdf(rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut activity: Vec<usize> = (0..USERS).collect();
    shuffle(rng, &mut activity);
    cumulative(activity.iter().map(|&rank| ((rank + 1) as f64).powf(-USER_ZIPF)))
}

/// The running sums of the words' frequencies (Zipf, in the order of [`WORDS`]).
pub(super) fn word_cdf() -> Vec<f64> {
    cumulative((0..WORDS.len()).map(|rank| 1.0 / (rank + 1) as f64))
}

pub(super) struct Sensor {
    pub(super) name: String,
    level: f64,
    value: f64,
}

/// The sensors, `"sensor-1"` to `"sensor-50"`, each at its own level in `[14, 28)`.
pub(super) fn sensors(rng: &mut ChaCha8Rng) -> Vec<Sensor> {
    (1..=SENSORS)
        .map(|s| {
            let level = 14.0 + 14.0 * rng.random::<f64>();
            Sensor { name: format!("sensor-{s}"), level, value: level }
        })
        .collect()
}

impl Sensor {
    /// The next reading: a step of the walk (pulled back to the level), two decimals.
    pub(super) fn read(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        self.value += 0.05 * (self.level - self.value) + 0.15 * normal(rng);
        let mut value = self.value;
        if rng.random_bool(SPIKE) {
            value += if rng.random_bool(0.5) { 15.0 } else { -15.0 };
        }
        (value * 100.0).round() / 100.0
    }
}
