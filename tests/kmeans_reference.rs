//! `kmeans` against a plain-Rust Lloyd's algorithm on seeded random points, with 1
//! and 2 workers; bad points dead-lettered; a late point changes only its window.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tidemark::pipeline::ExactSum;

use crate::harness::{Run, SortedRows, assert_same_rows};
use crate::service::TestServer;

/// A point: id, event time, coordinates.
type Point = (String, u64, Vec<f64>);

/// Points in blobs around `centers`, ids shuffled, in event-time order.
fn points(seed: u64, n: usize, span: u64, dims: usize) -> Vec<Point> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centers: Vec<Vec<f64>> =
        (0..4).map(|_| (0..dims).map(|_| rng.random_range(-50.0..50.0f64).round()).collect()).collect();
    let mut points: Vec<Point> = (0..n)
        .map(|i| {
            let c = &centers[rng.random_range(0..centers.len())];
            // Quarter units: exact in binary, so ties between centroids happen.
            let coords = c.iter().map(|x| x + (rng.random_range(-40..=40) as f64) / 4.0).collect();
            (format!("p{:05}", rng.random_range(0..100_000)), i as u64 * span / n as u64, coords)
        })
        .collect();
    points.sort_by_key(|p| p.1);
    points
}

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

fn nearest(centroids: &[Vec<f64>], p: &[f64]) -> usize {
    let mut best = (0, f64::INFINITY);
    for (i, c) in centroids.iter().enumerate() {
        let d = squared_distance(c, p);
        if d < best.1 {
            best = (i, d);
        }
    }
    best.0
}

/// What the reference computes for one window.
struct Clustering {
    centroids: Vec<(Vec<f64>, u64)>,
    assignments: Vec<(String, usize)>,
    inertia: f64,
    rounds: u64,
}

/// Lloyd's algorithm as `kmeans` documents it.
fn lloyd(points: &[&Point], k: usize, max_rounds: u64) -> Clustering {
    let mut seeds: Vec<&Point> = points.to_vec();
    seeds.sort_by(|a, b| (&a.0, &a.2).partial_cmp(&(&b.0, &b.2)).unwrap());
    let mut centroids: Vec<Vec<f64>> = seeds.iter().take(k).map(|p| p.2.clone()).collect();
    let mut rounds = max_rounds;
    for round in 1..=max_rounds {
        let mut members: Vec<Vec<&Point>> = vec![Vec::new(); centroids.len()];
        for p in points {
            members[nearest(&centroids, &p.2)].push(p);
        }
        let next: Vec<Vec<f64>> = members
            .iter()
            .zip(&centroids)
            .map(|(m, c)| {
                if m.is_empty() {
                    return c.clone();
                }
                (0..c.len())
                    .map(|d| {
                        let mut sum = ExactSum::default();
                        m.iter().for_each(|p| sum.add(p.2[d], 1));
                        sum.value() / m.len() as f64
                    })
                    .collect()
            })
            .collect();
        if next == centroids {
            rounds = round;
            break;
        }
        centroids = next;
    }
    let assignments: Vec<(String, usize)> = points.iter().map(|p| (p.0.clone(), nearest(&centroids, &p.2))).collect();
    let mut inertia = ExactSum::default();
    for p in points {
        inertia.add(squared_distance(&centroids[nearest(&centroids, &p.2)], &p.2), 1);
    }
    let centroids = centroids
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), assignments.iter().filter(|(_, a)| *a == i).count() as u64))
        .collect();
    Clustering { centroids, assignments, inertia: inertia.value(), rounds }
}

/// The expected rows of each output, as sorted JSON texts.
fn expected(points: &[Point], windows: &[(u64, u64)], k: usize, max_rounds: u64) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for &(start, end) in windows {
        let members: Vec<&Point> = points.iter().filter(|p| start <= p.1 && p.1 < end).collect();
        if members.is_empty() {
            continue;
        }
        let c = lloyd(&members, k, max_rounds);
        for (i, (coords, size)) in c.centroids.iter().enumerate() {
            let row = json!({"start": start, "end": end, "cluster": i, "coords": coords, "size": size});
            out.entry("centroids".into()).or_default().push(row.to_string());
        }
        for (id, cluster) in &c.assignments {
            let row = json!({"start": start, "id": id, "cluster": cluster});
            out.entry("assignments".into()).or_default().push(row.to_string());
        }
        let row = json!({"start": start, "end": end, "inertia": c.inertia, "rounds": c.rounds});
        out.entry("quality".into()).or_default().push(row.to_string());
    }
    out.values_mut().for_each(|rows| rows.sort());
    out
}

/// The expected rows of one clustering of all `points` (no window: `start` and `end`
/// null).
fn expected_global(points: &[Point], k: usize) -> BTreeMap<String, Vec<String>> {
    let mut expect = expected(points, &[(0, u64::MAX)], k, 50);
    for rows in expect.values_mut() {
        for row in rows.iter_mut() {
            let mut v: Value = serde_json::from_str(row).unwrap();
            v["start"] = Value::Null;
            if v.get("end").is_some() {
                v["end"] = Value::Null;
            }
            *row = v.to_string();
        }
        rows.sort();
    }
    expect
}

/// Replays `lines` through `kmeans`; the printed rows of each output, sorted.
fn replay(lines: &[String], params: &[(&str, Value)], workers: usize) -> BTreeMap<String, Vec<String>> {
    let run = params.iter().fold(Run::new("kmeans"), |run, (k, v)| run.param(k, v.clone()));
    run.input("points", lines.to_vec()).workers(workers).go().all_sorted()
}

fn lines(points: &[Point]) -> Vec<String> {
    points.iter().map(|(id, ts, coords)| json!({"id": id, "ts": ts, "coords": coords}).to_string()).collect()
}

const OUTPUTS: &[&str] = &["centroids", "assignments", "quality"];

fn assert_same(what: &str, actual: &SortedRows, expected: &SortedRows) {
    assert_same_rows(what, OUTPUTS, actual, expected);
}

#[test]
fn tumbling_windows_match_lloyd() {
    let pts = points(1, 600, 3000, 2);
    for workers in [1, 2] {
        for (k, max_rounds) in [(3, 50), (4, 2), (1, 50)] {
            let params =
                [("k", json!(k)), ("max_rounds", json!(max_rounds)), ("window", json!({"tumbling": {"size": 1000}}))];
            let windows = [(0, 1000), (1000, 2000), (2000, 3000)];
            let what = format!("k={k} max_rounds={max_rounds} workers={workers}");
            assert_same(&what, &replay(&lines(&pts), &params, workers), &expected(&pts, &windows, k, max_rounds));
        }
    }
}

#[test]
fn sliding_windows_and_one_global_clustering_match_lloyd() {
    let pts = points(2, 400, 2000, 3);
    for workers in [1, 2] {
        let params = [("k", json!(3)), ("window", json!({"sliding": {"size": 1000, "slide": 500}}))];
        let windows = [(0, 1000), (500, 1500), (1000, 2000), (1500, 2500)];
        let actual = replay(&lines(&pts), &params, workers);
        assert_same(&format!("sliding, workers={workers}"), &actual, &expected(&pts, &windows, 3, 50));

        // No window: one clustering of everything.
        let actual = replay(&lines(&pts), &[("k", json!(5))], workers);
        let expect = expected_global(&pts, 5);
        assert_same(&format!("global, workers={workers}"), &actual, &expect);
    }
}

/// Fed a few points per frontier step, the one clustering re-converges from its last
/// run dozens of times (the incremental path); the end result is still Lloyd's from
/// scratch.
#[test]
fn a_clustering_fed_in_small_steps_matches_lloyd() {
    let pts = points(3, 300, 2000, 2);
    for workers in [1, 2] {
        for chunk in [7, 60] {
            let run = Run::new("kmeans").param("k", json!(4)).input("points", lines(&pts));
            let actual = run.workers(workers).chunk_lines(chunk).go().all_sorted();
            let expect = expected_global(&pts, 4);
            assert_same(&format!("chunks of {chunk}, workers={workers}"), &actual, &expect);
        }
    }
}

#[test]
fn bad_points_are_dead_lettered() {
    let mut input = lines(&points(3, 50, 900, 2));
    let bad = [
        r#"{"id":"x1","ts":10,"coords":[1,2,3]}"#,
        r#"{"id":"x2","ts":10,"coords":[]}"#,
        r#"{"id":"x3","ts":10,"coords":[1,NaN]}"#,
        r#"{"id":"x4","ts":10,"coords":[1,"a"]}"#,
        r#"{"id":"x5","ts":10}"#,
        r#"{"ts":10,"coords":[1,2]}"#,
    ];
    for (i, b) in bad.iter().enumerate() {
        input.insert(5 + 7 * i, b.to_string());
    }
    let params = [("k", json!(2)), ("window", json!({"tumbling": {"size": 1000}}))];
    let actual = replay(&input, &params, 2);
    let dead = actual.get("dead_letter").cloned().unwrap_or_default();
    assert_eq!(dead.len(), bad.len(), "{dead:#?}");
    assert!(dead.iter().all(|d| d.contains(r#""reason":"invalid""#)), "{dead:#?}");
    // The good points are clustered as if the bad ones had never been sent.
    assert_same("with bad points", &actual, &expected(&points(3, 50, 900, 2), &[(0, 1000)], 2, 50));
}

/// A late point re-clusters its own window only: every row that changes is of that
/// window, and other windows' rows stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_point_changes_only_its_window() {
    let mut server = TestServer::start().await;
    let spec = json!({"name": "km", "dataflow": "kmeans", "params": {
        "k": 3, "window": {"tumbling": {"size": 1000}}, "allowed_lateness": 10000, "idle_timeout_ms": null}});
    let (code, body) = server.post("/api/v1/jobs", &spec).await;
    assert_eq!(code, 201, "{body}");
    let pts = points(4, 600, 3000, 2);
    let records: Vec<Value> = lines(&pts).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (code, body) = server.post("/api/v1/jobs/km/inputs/points", &json!(records)).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = server.post("/api/v1/jobs/km/inputs/points/advance", &json!({"watermark": 5000})).await;
    assert_eq!(code, 200, "{body}");
    let before = server.snapshot("km", OUTPUTS).await;
    assert_same("before", &before, &expected(&pts, &[(0, 1000), (1000, 2000), (2000, 3000)], 3, 50));

    let late: Point = ("late".into(), 1500, vec![30.0, -30.0]);
    let record = json!([{"id": "late", "ts": 1500, "coords": [30, -30]}]);
    let (code, body) = server.post("/api/v1/jobs/km/inputs/points", &record).await;
    assert_eq!((code, &body["late"]), (200, &json!(1)), "{body}");
    let (code, body) = server.post("/api/v1/jobs/km/inputs/points/advance", &json!({"watermark": 5001})).await;
    assert_eq!(code, 200, "{body}");
    let after = server.snapshot("km", OUTPUTS).await;
    let mut all = pts.clone();
    all.push(late);
    assert_same("after", &after, &expected(&all, &[(0, 1000), (1000, 2000), (2000, 3000)], 3, 50));
    let mut changed = 0;
    for (output, rows) in &after {
        let old = &before[output];
        for row in rows.iter().filter(|r| !old.contains(r)).chain(old.iter().filter(|r| !rows.contains(r))) {
            let v: Value = serde_json::from_str(row).unwrap();
            assert_eq!(v["start"], 1000, "{output}: a row of another window changed: {row}");
            changed += 1;
        }
    }
    assert!(changed >= 2, "the late point changed nothing");
    server.stop().await;
}
