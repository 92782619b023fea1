//! `trending` — the most viewed products of each category, per sliding window.
//!
//! - input `views`: `{"product": string, "category": string, "user": string, "ts": int}`.
//! - params: `window` (default `{"sliding": {"size": 600000, "slide": 60000}}`: the last
//!   ten minutes, every minute), `k` (default 3), `unique_per` (ms, default `null`:
//!   when set, a user's repeated views of a product within a tumbling window of this
//!   length count once), `max_out_of_orderness`, `allowed_lateness`, `retention` and
//!   `emit` as in `window_agg`.
//! - output `top` (key `category`, `start`, `rank`):
//!   `{"category", "start", "end", "rank", "product", "views"}`, ranks 1..=k by views
//!   (ties: the greater product name ranks first).
//!
//! Late views correct the counts of their windows and so the rankings: a product may
//! move up or down, or into and out of the top k, as its views arrive.
//!
//! ```sh
//! tidemark run trending --input views=views.ndjson --param k=5
//! curl 'http://127.0.0.1:8080/api/v1/jobs/trending/outputs/top?category=books'
//! ```

use tidemark::pipeline::prelude::*;

/// One product view.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct View {
    /// The product viewed.
    pub product: String,
    /// Its category.
    pub category: String,
    /// Who viewed it.
    pub user: String,
    /// Event time, ms.
    pub ts: u64,
}

impl Record for View {
    const FIELDS: &'static [(&'static str, &'static str)] =
        &[("product", "string"), ("category", "string"), ("user", "string"), ("ts", "int")];
    fn ts(&self) -> Time {
        self.ts
    }
}

/// The parameters of `trending`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrendingParams {
    /// The windows rankings are computed over.
    pub window: WindowKind,
    /// How many products to rank per category and window.
    pub k: usize,
    /// Count a user's views of a product once per tumbling window of this length.
    pub unique_per: Option<u64>,
    /// Out-of-orderness, lateness, retention and emission.
    #[serde(flatten)]
    pub time: EventTime,
}

impl Default for TrendingParams {
    fn default() -> Self {
        TrendingParams {
            window: WindowKind::Sliding { size: 600_000, slide: 60_000 },
            k: 3,
            unique_per: None,
            time: EventTime::default(),
        }
    }
}

impl Params for TrendingParams {
    fn validate(&self) -> Result<(), ParamError> {
        self.window.validate()?;
        if self.k == 0 || self.k > 1000 {
            return Err(ParamError::invalid("k", format!("must be between 1 and 1000, got {}", self.k)));
        }
        if let Some(per) = self.unique_per {
            if per == 0 {
                return Err(ParamError::invalid("unique_per", "must be positive"));
            }
            check_duration("unique_per", per)?;
        }
        self.time.validate()
    }
}

/// One row of `top`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopRow {
    category: String,
    start: u64,
    end: u64,
    rank: u32,
    product: String,
    views: u64,
}

/// The `trending` pipeline.
pub struct Trending;

impl Pipeline for Trending {
    type Params = TrendingParams;

    fn description(&self) -> Description {
        Description::new("trending", "the k most viewed products of each category, per sliding window")
            .input(InputDesc::of::<View>("views"))
            .output(OutputDesc::new("top", &["category", "start", "rank"]))
    }

    fn inputs(&self, params: &TrendingParams) -> Inputs {
        let windowing = params.time.windowing(params.window);
        Inputs::new().with("views", params.time.input(windowing.lateness()))
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &TrendingParams) -> Result<(), BuildError> {
        let windowing = params.time.windowing(params.window);
        let mut views = job.input::<View>("views")?;
        if let Some(per) = params.unique_per {
            views = views.dedupe(
                "unique views",
                per,
                params.time.allowed_lateness,
                |v| (v.user.clone(), v.product.clone()),
                |v| v.ts,
            )?;
        }
        let counts = views.window_aggregate(
            "views per product",
            &windowing,
            |v| (v.category.clone(), v.product.clone()),
            |v| v.ts,
            |_| (),
            Count,
        );
        let ranked = top_k(counts.map(|((category, product), w, views)| ((category, w), (views, product))), params.k);
        let top = ranked.map(|((category, w), rank, (views, product))| TopRow {
            category,
            start: w.start,
            end: w.end,
            rank,
            product,
            views,
        });
        job.output("top", top)
    }
}
