//! The world all generator-fed inputs of one job share: the catalogue, users and
//! sensors, the products' drifting popularity, the recent views a view may repeat,
//! and the numbering of orders (so that payments pay orders of the same job).
//!
//! The world has its own random stream, seeded by the world's seed, for its catalogue
//! and for what changes with the clock (popularity drift); the draws of a record come
//! from its input's own stream, passed in.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::catalog::{self, Product, Sensor, WORDS};
use super::random::{cumulative, mix, normal, pick};

/// The standard deviation of a product's drifting log-popularity.
const DRIFT_SIGMA: f64 = 0.7;
/// The time scale of popularity drift, in ms.
const DRIFT_TAU_MS: f64 = 180_000.0;
/// The probability that a view repeats a recent (user, product) view.
const REPEAT_VIEW: f64 = 0.2;
/// How many recent views a repeat is drawn from.
const RECENT_VIEWS: usize = 256;

/// What the inputs of one job share.
pub(super) struct World {
    rng: ChaCha8Rng,
    pub(super) products: Vec<Product>,
    /// Each product's drift of log-popularity from its base.
    heat: Vec<f64>,
    pub(super) product_cdf: Vec<f64>,
    pub(super) users: Vec<String>,
    user_cdf: Vec<f64>,
    recent_views: VecDeque<(usize, usize)>,
    pub(super) sensors: Vec<Sensor>,
    word_cdf: Vec<f64>,
    /// The number of the last order made.
    orders: u64,
}

impl World {
    pub(super) fn new(seed: u64) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ 0x7469_6465_6d61_726b));
        // The order of these draws from `rng` is part of what a seed means.
        let products = catalog::products(&mut rng);
        let heat = (0..products.len()).map(|_| DRIFT_SIGMA * normal(&mut rng)).collect();
        let users = catalog::users();
        let user_cdf = catalog::user_cdf(&mut rng);
        let sensors = catalog::sensors(&mut rng);
        let mut world = World {
            rng,
            products,
            heat,
            product_cdf: Vec::new(),
            users,
            user_cdf,
            recent_views: VecDeque::with_capacity(RECENT_VIEWS),
            sensors,
            word_cdf: catalog::word_cdf(),
            orders: 0,
        };
        world.update_popularity();
        world
    }

    /// Moves popularity on by `elapsed` ms (an Ornstein–Uhlenbeck walk per product).
    pub(super) fn drift(&mut self, elapsed: u64) {
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
    pub(super) fn view(&mut self, rng: &mut ChaCha8Rng) -> (usize, usize) {
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

    pub(super) fn next_order_id(&mut self) -> u64 {
        self.orders += 1;
        self.orders
    }

    /// A short sentence.
    pub(super) fn sentence(&self, rng: &mut ChaCha8Rng) -> String {
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
