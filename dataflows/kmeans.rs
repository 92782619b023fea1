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
//! The loop is a differential `iterate`: when a window's points change, only that
//! window's clustering runs again, and only its rows change; other windows are not
//! touched.
//!
//! ```sh
//! tidemark run kmeans --input points=points.ndjson --param k=4 --param window='{"tumbling":{"size":60000}}'
//! ```

use tidemark::pipeline::prelude::*;

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
    fn validate(&self) -> Result<(), String> {
        if self.coords.is_empty() {
            return Err("`coords` is empty".into());
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
/// Coordinates.
type Coords = Vec<Num>;

/// The state of one group's loop: the centroids, and how many rounds moved them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Centroids {
    coords: Vec<Coords>,
    moves: u64,
}

/// What the step of a round combines per group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Part {
    Previous(Centroids),
    Mean(u64, Coords),
}

/// One row of `centroids`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CentroidRow {
    start: Option<u64>,
    end: Option<u64>,
    cluster: u64,
    coords: Coords,
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

fn squared_distance(a: &[Num], b: &[Num]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x.get() - y.get()).powi(2)).sum()
}

/// The index of the centroid nearest to `point` (ties to the lower index) and the
/// squared distance to it.
fn nearest(centroids: &[Coords], point: &[Num]) -> (u64, f64) {
    let mut best = (0, f64::INFINITY);
    for (i, c) in centroids.iter().enumerate() {
        let d = squared_distance(c, point);
        if d < best.1 {
            best = (i as u64, d);
        }
    }
    best
}

/// The exact mean of `points` (with multiplicities).
fn mean(points: &[(&Coords, Diff)]) -> Option<Coords> {
    let dims = points.first()?.0.len();
    let mut sums = vec![ExactSum::default(); dims];
    let mut n: i64 = 0;
    for (coords, count) in points {
        for (sum, x) in sums.iter_mut().zip(coords.iter()) {
            sum.add(x.get(), *count as i64);
        }
        n += *count as i64;
    }
    (n > 0).then(|| sums.iter().map(|s| finite(s.value() / n as f64)).collect())
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

    fn build<'s>(&self, job: &mut Job<'s>, params: &KMeansParams) -> Result<(), BuildError> {
        let (k, max_rounds) = (params.k as usize, params.max_rounds);
        let points: Collection<'s, (Group, Point)> = match params.window {
            Some(kind) => {
                let windowing = params.time.windowing(kind);
                let stream = job.input::<Point>("points", params.time.input(windowing.lateness()))?;
                stream.windowed("points", &windowing, |p| p.ts).map(|(w, p)| (Some(w), p))
            }
            None => {
                let stream = job.input::<Point>("points", params.time.input(Lateness::Never))?;
                stream.batched("points").map(|p| (None, p))
            }
        };

        // Seeds: the k points with the smallest ids, in order.
        let initial = points.clone().map(|(g, p)| (g, (p.id, p.coords))).reduce(move |_, points, out| {
            let mut seeds = Vec::new();
            for ((_, coords), count) in points {
                for _ in 0..*count {
                    if seeds.len() < k {
                        seeds.push(coords.clone());
                    }
                }
            }
            if !seeds.is_empty() {
                out.push((Centroids { coords: seeds, moves: 0 }, 1));
            }
        });

        let coords = points.clone().map(|(g, p)| (g, p.coords));
        let fixed = iterate(initial, max_rounds, |lp, centroids| {
            let coords = lp.enter(&coords);
            let means = centroids
                .clone()
                .join_map(coords, |g, c, point| ((*g, nearest(&c.coords, point).0), point.clone()))
                .reduce(|_, points, out| {
                    if let Some(m) = mean(points) {
                        out.push((m, 1));
                    }
                })
                .map(|((g, cluster), m)| (g, Part::Mean(cluster, m)));
            centroids.map(|(g, c)| (g, Part::Previous(c))).concat(means).reduce(|_, parts, out| {
                // `Previous` sorts before every `Mean`.
                let Some((Part::Previous(previous), _)) = parts.first() else { return };
                let mut next = previous.clone();
                let mut moved = false;
                for (part, _) in &parts[1..] {
                    if let Part::Mean(cluster, m) = part
                        && let Some(slot) = next.coords.get_mut(*cluster as usize)
                        && slot != m
                    {
                        *slot = m.clone();
                        moved = true;
                    }
                }
                next.moves += u64::from(moved);
                out.push((next, 1));
            })
        });

        // Every point with its cluster and squared distance, by the final centroids.
        let assigned = fixed.clone().join_map(points.map(|(g, p)| (g, (p.id, p.coords))), |g, c, (id, coords)| {
            let (cluster, distance) = nearest(&c.coords, coords);
            (*g, id.clone(), cluster, finite(distance))
        });
        let sizes = assigned.clone().map(|(g, _, cluster, _)| (g, cluster)).reduce(|_, clusters, out| {
            let sizes: Vec<(u64, u64)> = clusters.iter().map(|(c, n)| (**c, *n as u64)).collect();
            out.push((sizes, 1));
        });
        let inertia = assigned.clone().map(|(g, _, _, d)| (g, d)).reduce(|_, distances, out| {
            let mut sum = ExactSum::default();
            for (d, n) in distances {
                sum.add(d.get(), *n as i64);
            }
            out.push((finite(sum.value()), 1));
        });

        let start = |g: &Group| g.map(|w| w.start);
        let end = |g: &Group| g.map(|w| w.end);
        let centroids = fixed.clone().join_map(sizes, move |g, c, sizes| {
            let size = |cluster: u64| sizes.iter().find(|(c, _)| *c == cluster).map_or(0, |(_, n)| *n);
            c.coords
                .iter()
                .enumerate()
                .map(|(i, coords)| CentroidRow {
                    start: start(g),
                    end: end(g),
                    cluster: i as u64,
                    coords: coords.clone(),
                    size: size(i as u64),
                })
                .collect::<Vec<_>>()
        });
        let centroids = centroids.flat_map(|rows| rows);
        let quality = fixed.join_map(inertia, move |g, c, inertia| QualityRow {
            start: start(g),
            end: end(g),
            inertia: *inertia,
            rounds: (c.moves + 1).min(max_rounds),
        });
        let assignments =
            assigned.map(move |(g, id, cluster, _)| AssignmentRow { start: g.map(|w| w.start), id, cluster });
        job.output("centroids", centroids)?;
        job.output("assignments", assignments)?;
        job.output("quality", quality)
    }
}

/// `x` as a [`Num`], saturating at the largest finite values.
fn finite(x: f64) -> Num {
    Num::new(x.clamp(f64::MIN, f64::MAX)).unwrap_or_default()
}
