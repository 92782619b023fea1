//! `kmeans` — k-means clustering per window, re-converging incrementally as points
//! arrive, are corrected, or leave.
//!
//! - input `points`: `{"id": string, "ts": int, "coords": [number, ...]}`: finite
//!   numbers, at least one, and as many in every point of the job (the first valid
//!   point fixes the dimension; a point of another is `invalid`).
//! - params: `k` (default 3), `max_rounds` (default 50), `window`: `{"tumbling":
//!   {"size": ms}}` or `{"sliding": {"size": ms, "slide": ms}}` (absent: one
//!   clustering of all points), plus `max_out_of_orderness`, `allowed_lateness` and
//!   `retention` (a window's clustering is retracted `retention` ms after the window
//!   is final).
//! - output `centroids` (key `start`, `cluster`): `{"start", "end", "cluster",
//!   "coords", "size"}` (`start`/`end` null without a window); `assignments` (key
//!   `start`, `id`): `{"start", "id", "cluster"}`; `quality` (key `start`):
//!   `{"start", "end", "inertia", "rounds"}`; `dead_letter`.
//!
//! Per window, Lloyd's algorithm: the initial centroids are the coordinates of the `k`
//! points with the smallest `id` (string order, then coordinates; cluster index =
//! rank; fewer clusters when the window has fewer points). Each round, every point
//! joins its nearest centroid (squared Euclidean distance, ties to the lower index)
//! and every centroid moves to the mean of its points (exact sums, so the mean does
//! not depend on the order of the points); a cluster without points keeps its
//! centroid. It stops at the fixed point or after `max_rounds` rounds. `rounds` counts
//! the rounds that moved a centroid plus the one that found the fixed point (at most
//! `max_rounds`); `inertia` is the sum of squared distances from the points to their
//! centroids, and `size` a cluster's number of points.
//!
//! Each window's clustering is one group of [`stateful`]: when a window's points
//! change, only that window's clustering runs again, and only its rows that differ
//! change; other windows are not touched. Inside the window, Lloyd's algorithm
//! re-converges incrementally (`kmeans/lloyd.rs`): it keeps every round of the last
//! run, and a round re-assigns only the points whose distance margin a centroid's
//! move can overturn, so one new point among 100K re-checks a handful of points per
//! round instead of all of them — with results bit-identical to a run from scratch.
//!
//! ```sh
//! tidemark run kmeans --input points=points.ndjson --param k=4 --param window='{"tumbling":{"size":60000}}'
//! ```

mod lloyd;

use tidemark::pipeline::prelude::*;

use lloyd::Lloyd;

/// One input point.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Point {
    /// Identifies the point; the smallest ids seed the clusters.
    pub id: Text,
    /// Event time, ms.
    pub ts: u64,
    /// Coordinates.
    pub coords: Vec<Num>,
}

impl Record for Point {
    const FIELDS: &'static [(&'static str, &'static str)] =
        &[("id", "string"), ("ts", "int"), ("coords", "array of numbers")];
    fn ts(&self) -> Time {
        self.ts
    }
    fn validate(&self) -> Result<(), RecordError> {
        if self.coords.is_empty() {
            return Err(RecordError::new("`coords` is empty"));
        }
        Ok(())
    }
    fn shape(&self) -> Option<(&'static str, usize)> {
        Some(("coords", self.coords.len()))
    }
}

/// The parameters of `kmeans`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct KMeansParams {
    /// Clusters per window.
    pub k: u64,
    /// Most Lloyd rounds per window.
    pub max_rounds: u64,
    /// Tumbling or sliding windows; absent: one clustering of all points.
    pub window: Option<WindowKind>,
    /// Out-of-orderness, lateness and retention (`emit` does not apply).
    #[serde(flatten)]
    pub time: EventTime,
}

impl Default for KMeansParams {
    fn default() -> Self {
        KMeansParams { k: 3, max_rounds: 50, window: None, time: EventTime::default() }
    }
}

impl Params for KMeansParams {
    fn validate(&self) -> Result<(), ParamError> {
        if !(1..=1000).contains(&self.k) {
            return Err(ParamError::invalid("k", format!("must be between 1 and 1000, got {}", self.k)));
        }
        if !(1..=10_000).contains(&self.max_rounds) {
            return Err(ParamError::invalid(
                "max_rounds",
                format!("must be between 1 and 10000, got {}", self.max_rounds),
            ));
        }
        if let Some(window) = self.window {
            if matches!(window, WindowKind::Session { .. }) {
                return Err(ParamError::invalid("window", "must be tumbling or sliding"));
            }
            window.validate()?;
        }
        self.time.validate()
    }
}

/// A clustering's group: its window, or none.
type Group = Option<Window>;

/// One row of `centroids`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CentroidRow {
    start: Option<u64>,
    end: Option<u64>,
    cluster: u64,
    coords: Vec<Num>,
    size: u64,
}

/// One row of `assignments`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AssignmentRow {
    start: Option<u64>,
    id: Text,
    cluster: u64,
}

/// One row of `quality`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QualityRow {
    start: Option<u64>,
    end: Option<u64>,
    inertia: Num,
    rounds: u64,
}

/// A change of one of the outputs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Out {
    Centroid(CentroidRow),
    Assignment(AssignmentRow),
    Quality(QualityRow),
}

/// One group's clustering and the rows it shows.
#[derive(Serialize, Deserialize)]
struct Clustering {
    group: Group,
    lloyd: Lloyd,
    centroids: Vec<CentroidRow>,
    quality: Option<QualityRow>,
}

impl Clustering {
    fn new(group: Group, k: usize, max_rounds: u64) -> Clustering {
        Clustering { group, lloyd: Lloyd::new(k, max_rounds), centroids: Vec::new(), quality: None }
    }
}

impl GroupLogic for Clustering {
    type Value = Point;
    type Out = Out;

    fn update(&mut self, point: Point, diff: Diff) {
        self.lloyd.change(point, diff as i64);
    }

    fn settle(&mut self, out: &mut Vec<(Out, Diff)>) {
        let (start, end) = (self.group.map(|w| w.start), self.group.map(|w| w.end));
        let (centroids, quality) = match self.lloyd.run() {
            None => (Vec::new(), None),
            Some(run) => {
                let rows = run.centroids.chunks_exact(run.dims).zip(run.sizes).enumerate();
                let centroids = rows
                    .map(|(i, (coords, size))| CentroidRow {
                        start,
                        end,
                        cluster: i as u64,
                        coords: coords.iter().map(|x| finite(*x)).collect(),
                        size: *size as u64,
                    })
                    .collect();
                (centroids, Some(QualityRow { start, end, inertia: finite(run.inertia), rounds: run.rounds }))
            }
        };
        // Only the rows that differ change.
        for (i, row) in self.centroids.iter().enumerate() {
            if centroids.get(i) != Some(row) {
                out.push((Out::Centroid(row.clone()), -1));
            }
        }
        for (i, row) in centroids.iter().enumerate() {
            if self.centroids.get(i) != Some(row) {
                out.push((Out::Centroid(row.clone()), 1));
            }
        }
        if quality != self.quality {
            out.extend(self.quality.take().map(|q| (Out::Quality(q), -1)));
            out.extend(quality.clone().map(|q| (Out::Quality(q), 1)));
        }
        (self.centroids, self.quality) = (centroids, quality);
        self.lloyd.assignment_changes(|id, cluster, diff| {
            let row = AssignmentRow { start, id: id.clone(), cluster: cluster as u64 };
            out.push((Out::Assignment(row), diff as Diff));
        });
    }

    fn is_empty(&self) -> bool {
        self.lloyd.is_empty() && self.centroids.is_empty() && self.quality.is_none()
    }
}

/// The `kmeans` pipeline.
pub struct KMeans;

impl Pipeline for KMeans {
    type Params = KMeansParams;

    fn description(&self) -> Description {
        Description::new("kmeans", "k-means clustering per window, re-converging incrementally")
            .input(InputDesc::of::<Point>("points"))
            .output(OutputDesc::new("centroids", &["start", "cluster"]))
            .output(OutputDesc::new("assignments", &["start", "id"]))
            .output(OutputDesc::new("quality", &["start"]))
    }

    fn inputs(&self, params: &KMeansParams) -> Inputs {
        let lateness = params.window.map_or(Lateness::Never, |kind| params.time.windowing(kind).lateness());
        Inputs::new().with("points", params.time.input(lateness))
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &KMeansParams) -> Result<(), BuildError> {
        let (k, max_rounds) = (params.k as usize, params.max_rounds);
        let stream = job.input::<Point>("points")?;
        let points: Collection<'s, (Group, Point)> = match params.window {
            Some(kind) => {
                let windowing = params.time.windowing(kind);
                stream.windowed("points", &windowing, |p| p.ts)?.map(|(w, p)| (Some(w), p))
            }
            None => stream.batched("points").map(|p| (None, p)),
        };

        let out = stateful(points, "KMeans", move |group: &Group| Clustering::new(*group, k, max_rounds));
        let centroids = out.clone().flat_map(|o| if let Out::Centroid(row) = o { Some(row) } else { None });
        let assignments = out.clone().flat_map(|o| if let Out::Assignment(row) = o { Some(row) } else { None });
        let quality = out.flat_map(|o| if let Out::Quality(row) = o { Some(row) } else { None });
        job.output("centroids", centroids)?;
        job.output("assignments", assignments)?;
        job.output("quality", quality)
    }
}

/// `x` as a [`Num`], saturating at the largest finite values.
fn finite(x: f64) -> Num {
    Num::new(x.clamp(f64::MIN, f64::MAX)).unwrap_or_default()
}
