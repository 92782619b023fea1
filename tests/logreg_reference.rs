//! `logreg` against plain-Rust gradient descent on seeded data, with 1 and 2
//! workers; bad examples dead-lettered; a late example re-trains only its window's
//! model and changes only its own and the next window's evaluation.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tidemark::pipeline::ExactSum;

use crate::harness::{Run, SortedRows, assert_same_rows};
use crate::service::TestServer;

/// An example: event time, features, label, whether it is for evaluation.
#[derive(Clone)]
struct Example {
    id: String,
    ts: u64,
    x: Vec<f64>,
    y: u8,
    eval: bool,
}

impl Example {
    fn json(&self) -> Value {
        json!({"id": self.id, "ts": self.ts, "features": self.x, "label": self.y,
               "split": if self.eval { "eval" } else { "train" }})
    }
}

/// Separable-ish data whose true boundary drifts from window to window.
fn examples(seed: u64, n: usize, span: u64, dims: usize) -> Vec<Example> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let ts = i as u64 * span / n as u64;
            let x: Vec<f64> = (0..dims).map(|_| (rng.random_range(-200..=200) as f64) / 100.0).collect();
            let drift = (ts / 1000) as f64 * 0.3;
            let score = x[0] - (0.5 + drift) * x.get(1).copied().unwrap_or(0.0) + rng.random_range(-0.5..0.5);
            Example { id: format!("e{i}"), ts, x, y: u8::from(score > 0.0), eval: rng.random_range(0..4) == 0 }
        })
        .collect()
}

fn predict(w: &[f64], b: f64, x: &[f64]) -> f64 {
    let z: f64 = w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() + b;
    1.0 / (1.0 + (-z).exp())
}

/// (log loss, accuracy) of a model over examples.
fn evaluate(w: &[f64], b: f64, examples: &[&Example]) -> Option<(f64, f64)> {
    if examples.is_empty() {
        return None;
    }
    let mut loss = ExactSum::default();
    let mut right = 0;
    for e in examples {
        let p = predict(w, b, &e.x).clamp(1e-12, 1.0 - 1e-12);
        loss.add(if e.y == 1 { -p.ln() } else { -(1.0 - p).ln() }, 1);
        right += usize::from((p >= 0.5) == (e.y == 1));
    }
    let n = examples.len() as f64;
    Some((loss.value() / n, right as f64 / n))
}

struct Params {
    max_rounds: u64,
    learning_rate: f64,
    l2: f64,
    tolerance: Option<f64>,
}

/// Gradient descent as `logreg` documents it: (weights, bias, rounds, eval loss).
fn train(examples: &[&Example], p: &Params) -> Option<(Vec<f64>, f64, u64, Option<f64>)> {
    let train: Vec<&Example> = examples.iter().copied().filter(|e| !e.eval).collect();
    let eval: Vec<&Example> = examples.iter().copied().filter(|e| e.eval).collect();
    let dims = train.first()?.x.len();
    let (mut w, mut b) = (vec![0.0; dims], 0.0);
    let mut loss = evaluate(&w, b, &eval).map(|(l, _)| l);
    let mut rounds = 0;
    while rounds < p.max_rounds {
        let mut grads = vec![ExactSum::default(); dims];
        let mut grad_b = ExactSum::default();
        for e in &train {
            let error = predict(&w, b, &e.x) - f64::from(e.y);
            for (g, x) in grads.iter_mut().zip(&e.x) {
                g.add(error * x, 1);
            }
            grad_b.add(error, 1);
        }
        let n = train.len() as f64;
        w = w.iter().zip(&grads).map(|(w, g)| w - p.learning_rate * (g.value() / n + p.l2 * w)).collect();
        b -= p.learning_rate * grad_b.value() / n;
        rounds += 1;
        let after = evaluate(&w, b, &eval).map(|(l, _)| l);
        let stop = matches!((p.tolerance, loss, after), (Some(t), Some(before), Some(a)) if before - a < t);
        loss = after;
        if stop {
            break;
        }
    }
    Some((w, b, rounds, loss))
}

/// The expected rows of `models` and `evaluation`, sorted.
fn expected(all: &[Example], size: u64, p: &Params) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let last = all.iter().map(|e| e.ts).max().unwrap_or(0) / size;
    let mut previous: Option<(u64, Vec<f64>, f64)> = None;
    for k in 0..=last {
        let (start, end) = (k * size, (k + 1) * size);
        let members: Vec<&Example> = all.iter().filter(|e| start <= e.ts && e.ts < end).collect();
        if let Some((model_start, w, b)) = &previous
            && let Some((log_loss, accuracy)) = evaluate(w, *b, &members)
        {
            let row = json!({"start": start, "end": end, "model_start": model_start, "n": members.len(),
                             "accuracy": accuracy, "log_loss": log_loss});
            out.entry("evaluation".into()).or_default().push(row.to_string());
        }
        previous = None;
        if let Some((w, b, rounds, eval_loss)) = train(&members, p) {
            let eval: Vec<&Example> = members.iter().copied().filter(|e| e.eval).collect();
            let accuracy = evaluate(&w, b, &eval).map(|(_, a)| a);
            let row = json!({"start": start, "end": end, "weights": w, "bias": b, "rounds": rounds,
                             "eval_loss": eval_loss, "eval_accuracy": accuracy});
            out.entry("models".into()).or_default().push(row.to_string());
            previous = Some((start, w, b));
        }
    }
    out.values_mut().for_each(|rows| rows.sort());
    out
}

/// Replays `examples`, then the `extra` lines, through `logreg`; the printed rows of
/// each output, sorted.
fn replay(
    examples: &[Example],
    extra: &[String],
    params: &[(&str, Value)],
    workers: usize,
) -> BTreeMap<String, Vec<String>> {
    let lines: Vec<String> = examples.iter().map(|e| e.json().to_string()).chain(extra.iter().cloned()).collect();
    let run = params.iter().fold(Run::new("logreg"), |run, (k, v)| run.param(k, v.clone()));
    run.input("examples", lines).workers(workers).go().all_sorted()
}

const OUTPUTS: &[&str] = &["models", "evaluation"];

fn assert_same(what: &str, actual: &SortedRows, expected: &SortedRows) {
    assert_same_rows(what, OUTPUTS, actual, expected);
}

#[test]
fn models_and_evaluations_match_gradient_descent() {
    let data = examples(1, 800, 4000, 3);
    for workers in [1, 2] {
        for (max_rounds, learning_rate, l2, tolerance) in
            [(100, 0.5, 0.0, None), (60, 0.8, 0.01, Some(1e-3)), (5, 0.1, 0.0, Some(0.0))]
        {
            let p = Params { max_rounds, learning_rate, l2, tolerance };
            let params = [
                ("window", json!({"tumbling": {"size": 1000}})),
                ("max_rounds", json!(max_rounds)),
                ("learning_rate", json!(learning_rate)),
                ("l2", json!(l2)),
                ("tolerance", json!(tolerance)),
            ];
            let what = format!("rounds={max_rounds} lr={learning_rate} l2={l2} tol={tolerance:?} workers={workers}");
            assert_same(&what, &replay(&data, &[], &params, workers), &expected(&data, 1000, &p));
        }
    }
}

#[test]
fn bad_examples_are_dead_lettered() {
    let data = examples(2, 200, 2000, 2);
    let bad = [
        r#"{"id":"b1","ts":10,"features":[1,2,3],"label":1,"split":"train"}"#,
        r#"{"id":"b2","ts":10,"features":[1,2],"label":2,"split":"train"}"#,
        r#"{"id":"b3","ts":10,"features":[1,2],"split":"train"}"#,
        r#"{"id":"b4","ts":10,"features":[1,2],"label":1,"split":"test"}"#,
        r#"{"id":"b5","ts":10,"features":[],"label":1,"split":"eval"}"#,
        r#"{"id":"b6","ts":10,"features":[1,NaN],"label":1,"split":"eval"}"#,
    ];
    let extra: Vec<String> = bad.iter().map(|b| b.to_string()).collect();
    let params = [("window", json!({"tumbling": {"size": 1000}})), ("allowed_lateness", json!(5000))];
    let actual = replay(&data, &extra, &params, 2);
    let dead = actual.get("dead_letter").cloned().unwrap_or_default();
    assert_eq!(dead.len(), bad.len(), "{dead:#?}");
    assert!(dead.iter().all(|d| d.contains(r#""reason":"invalid""#)), "{dead:#?}");
    let p = Params { max_rounds: 100, learning_rate: 0.5, l2: 0.0, tolerance: None };
    assert_same("with bad examples", &actual, &expected(&data, 1000, &p));
}

/// A late example in window 1 re-trains window 1's model only, and changes the
/// evaluations of windows 1 and 2 only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_example_retrains_one_model_and_two_evaluations() {
    let mut server = TestServer::start().await;
    let spec = json!({"name": "lr", "dataflow": "logreg", "params": {
        "window": {"tumbling": {"size": 1000}}, "tolerance": 0.0001, "allowed_lateness": 10000, "idle_timeout_ms": null}});
    let (code, body) = server.post("/api/v1/jobs", &spec).await;
    assert_eq!(code, 201, "{body}");
    let data = examples(3, 800, 4000, 2);
    let records: Vec<Value> = data.iter().map(Example::json).collect();
    assert_eq!(server.post("/api/v1/jobs/lr/inputs/examples", &json!(records)).await.0, 200);
    assert_eq!(server.post("/api/v1/jobs/lr/inputs/examples/advance", &json!({"watermark": 6000})).await.0, 200);
    let p = Params { max_rounds: 100, learning_rate: 0.5, l2: 0.0, tolerance: Some(0.0001) };
    let before = server.snapshot("lr", OUTPUTS).await;
    assert_same("before", &before, &expected(&data, 1000, &p));

    let late = Example { id: "late".into(), ts: 1500, x: vec![1.5, -1.5], y: 0, eval: false };
    let (code, body) = server.post("/api/v1/jobs/lr/inputs/examples", &json!([late.json()])).await;
    assert_eq!((code, &body["late"]), (200, &json!(1)), "{body}");
    assert_eq!(server.post("/api/v1/jobs/lr/inputs/examples/advance", &json!({"watermark": 6001})).await.0, 200);
    let after = server.snapshot("lr", OUTPUTS).await;
    let mut all = data.clone();
    all.push(late);
    assert_same("after", &after, &expected(&all, 1000, &p));

    let changed = |output: &str| -> Vec<u64> {
        let (a, b) = (&after[output], &before[output]);
        let mut starts: Vec<u64> = a
            .iter()
            .filter(|r| !b.contains(r))
            .chain(b.iter().filter(|r| !a.contains(r)))
            .map(|r| serde_json::from_str::<Value>(r).unwrap()["start"].as_u64().unwrap())
            .collect();
        starts.sort();
        starts.dedup();
        starts
    };
    assert_eq!(changed("models"), vec![1000], "only window 1's model is re-trained");
    assert_eq!(changed("evaluation"), vec![1000, 2000], "only windows 1 and 2 are re-evaluated");
    server.stop().await;
}
