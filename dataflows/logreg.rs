//! `logreg` — a cyclic train/evaluate loop per window, on logistic regression.
//!
//! - input `examples`: `{"id": string, "ts": int, "features": [number, ...],
//!   "label": 0|1, "split": "train"|"eval"}`: finite features, at least one, and as
//!   many in every example of the job (the first valid example fixes the number).
//! - params: `window` (tumbling, required), `max_rounds` (default 100),
//!   `learning_rate` (default 0.5), `l2` (default 0), `tolerance` (default null), plus
//!   `max_out_of_orderness`, `allowed_lateness` and `retention`.
//! - output `models` (key `start`): `{"start", "end", "weights", "bias", "rounds",
//!   "eval_loss", "eval_accuracy"}`, one per window with training examples;
//!   `eval_loss`/`eval_accuracy` are null when the window has no eval examples.
//! - output `evaluation` (key `start`): `{"start", "end", "model_start", "n",
//!   "accuracy", "log_loss"}`: the model of the window before (`model_start`)
//!   evaluated on all `n` examples of window `[start, end)` (prequential).
//! - output `dead_letter`.
//!
//! Per window, weights and bias start at 0. Each round is one full-batch gradient
//! step on the window's train examples, `g = mean((σ(w·x + b) − y)·x) + l2·w` (the
//! bias without `l2`), `w ← w − learning_rate·g`; then, inside the loop, the model's
//! log loss on the window's eval examples is computed, and with a `tolerance` the
//! loop stops after the first round whose eval loss improved by less than it (without
//! eval examples it runs `max_rounds`). `rounds` is the number of steps taken. Log
//! loss clips p to [1e-12, 1 − 1e-12]; accuracy predicts 1 when p ≥ 0.5. Sums are
//! exact, so a model does not depend on the order of its examples.
//!
//! The loop is a differential `iterate` keyed by window: a late example re-trains
//! its own window's model only, and changes two evaluations only, its window's (its
//! examples changed) and the next one's (its model changed).
//!
//! ```sh
//! tidemark run logreg --input examples=examples.ndjson --param window='{"tumbling":{"size":60000}}' --param tolerance=0.0001
//! ```

use tidemark::pipeline::prelude::*;

/// One input example.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Example {
    /// Identifies the example.
    pub id: Text,
    /// Event time, ms.
    pub ts: u64,
    /// Features.
    pub features: Vec<Num>,
    /// 0 or 1.
    pub label: u8,
    /// What the example is for.
    pub split: Split,
}

/// Training or evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Used for the gradient steps.
    Train,
    /// Used for the loss that decides when training stops.
    Eval,
}

impl Record for Example {
    const FIELDS: &'static [(&'static str, &'static str)] = &[
        ("id", "string"),
        ("ts", "int"),
        ("features", "array of numbers"),
        ("label", "0 or 1"),
        ("split", "\"train\" or \"eval\""),
    ];
    fn ts(&self) -> Time {
        self.ts
    }
    fn validate(&self) -> Result<(), RecordError> {
        if self.features.is_empty() {
            return Err(RecordError::new("`features` is empty"));
        }
        if self.label > 1 {
            return Err(RecordError::new(format!("`label` must be 0 or 1, got {}", self.label)));
        }
        Ok(())
    }
    fn shape(&self) -> Option<(&'static str, usize)> {
        Some(("features", self.features.len()))
    }
}

/// The parameters of `logreg`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct LogRegParams {
    /// Tumbling windows (required).
    pub window: Option<WindowKind>,
    /// Most gradient steps per window.
    pub max_rounds: u64,
    /// Step size.
    pub learning_rate: f64,
    /// L2 regularization of the weights.
    pub l2: f64,
    /// Stop once a round improves the eval loss by less than this.
    pub tolerance: Option<f64>,
    /// Out-of-orderness, lateness and retention (`emit` does not apply).
    #[serde(flatten)]
    pub time: EventTime,
}

impl Default for LogRegParams {
    fn default() -> Self {
        LogRegParams {
            window: None,
            max_rounds: 100,
            learning_rate: 0.5,
            l2: 0.0,
            tolerance: None,
            time: EventTime::default(),
        }
    }
}

impl Params for LogRegParams {
    fn validate(&self) -> Result<(), ParamError> {
        match self.window {
            None => return Err(ParamError::missing("window", r#"{"tumbling": {"size": 60000}}"#)),
            Some(WindowKind::Tumbling { .. }) => self.window.expect("some").validate()?,
            Some(_) => return Err(ParamError::invalid("window", "must be tumbling")),
        }
        if !(1..=10_000).contains(&self.max_rounds) {
            return Err(ParamError::invalid(
                "max_rounds",
                format!("must be between 1 and 10000, got {}", self.max_rounds),
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0 && self.learning_rate <= 100.0) {
            return Err(ParamError::invalid("learning_rate", "must be above 0 and at most 100"));
        }
        if !(self.l2.is_finite() && (0.0..=100.0).contains(&self.l2)) {
            return Err(ParamError::invalid("l2", "must be between 0 and 100"));
        }
        if let Some(t) = self.tolerance
            && !(t.is_finite() && t >= 0.0)
        {
            return Err(ParamError::invalid("tolerance", "must be a non-negative number or null"));
        }
        self.time.validate()
    }
}

/// A model as the loop carries it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Model {
    weights: Vec<Num>,
    bias: Num,
    rounds: u64,
    /// The eval loss of this model (`None` without eval examples).
    eval_loss: Option<Num>,
    /// Training has stopped (tolerance reached).
    done: bool,
}

/// What a round combines per window: the model, then the examples.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Part {
    Model(Model),
    Example(Vec<Num>, u8, Split),
}

/// One row of `models`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ModelRow {
    start: u64,
    end: u64,
    weights: Vec<Num>,
    bias: Num,
    rounds: u64,
    eval_loss: Option<Num>,
    eval_accuracy: Option<Num>,
}

/// One row of `evaluation`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EvaluationRow {
    start: u64,
    end: u64,
    model_start: u64,
    n: u64,
    accuracy: Num,
    log_loss: Num,
}

/// The model's probability that `x` is labelled 1.
fn predict(weights: &[Num], bias: Num, x: &[Num]) -> f64 {
    let z: f64 = weights.iter().zip(x).map(|(w, x)| w.get() * x.get()).sum::<f64>() + bias.get();
    1.0 / (1.0 + (-z).exp())
}

/// Log loss and accuracy of a model over examples `(features, label, count)`.
fn evaluate<'a>(
    weights: &[Num],
    bias: Num,
    examples: impl Iterator<Item = (&'a [Num], u8, Diff)>,
) -> Option<(Num, Num, u64)> {
    let (mut loss, mut right, mut n) = (ExactSum::default(), 0i64, 0i64);
    for (x, y, count) in examples {
        let p = predict(weights, bias, x).clamp(1e-12, 1.0 - 1e-12);
        loss.add(if y == 1 { -p.ln() } else { -(1.0 - p).ln() }, count as i64);
        right += i64::from((p >= 0.5) == (y == 1)) * count as i64;
        n += count as i64;
    }
    (n > 0).then(|| (finite(loss.value() / n as f64), finite(right as f64 / n as f64), n as u64))
}

/// `x` as a [`Num`], saturating at the largest finite values.
fn finite(x: f64) -> Num {
    Num::new(x.clamp(f64::MIN, f64::MAX)).unwrap_or_default()
}

/// One gradient step of `model` on the train examples; `None` without any.
fn step(model: &Model, train: &[(&[Num], u8, Diff)], learning_rate: f64, l2: f64) -> Option<(Vec<Num>, Num)> {
    let dims = model.weights.len();
    let mut grads = vec![ExactSum::default(); dims];
    let (mut grad_b, mut n) = (ExactSum::default(), 0i64);
    for (x, y, count) in train {
        let error = predict(&model.weights, model.bias, x) - f64::from(*y);
        for (g, xi) in grads.iter_mut().zip(x.iter()) {
            g.add(error * xi.get(), *count as i64);
        }
        grad_b.add(error, *count as i64);
        n += *count as i64;
    }
    if n <= 0 {
        return None;
    }
    let weights = model
        .weights
        .iter()
        .zip(&grads)
        .map(|(w, g)| finite(w.get() - learning_rate * (g.value() / n as f64 + l2 * w.get())))
        .collect();
    let bias = finite(model.bias.get() - learning_rate * grad_b.value() / n as f64);
    Some((weights, bias))
}

/// The `logreg` pipeline.
pub struct LogReg;

impl Pipeline for LogReg {
    type Params = LogRegParams;

    fn description(&self) -> Description {
        Description::new(
            "logreg",
            "logistic regression per window: a train/evaluate loop, evaluated on the next window",
        )
        .input(InputDesc::of::<Example>("examples"))
        .output(OutputDesc::new("models", &["start"]))
        .output(OutputDesc::new("evaluation", &["start"]))
    }

    fn inputs(&self, params: &LogRegParams) -> Inputs {
        let windowing = params.time.windowing(params.window.expect("validated"));
        Inputs::new().with("examples", params.time.input(windowing.lateness()))
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &LogRegParams) -> Result<(), BuildError> {
        let windowing = params.time.windowing(params.window.expect("validated"));
        let (learning_rate, l2, tolerance) = (params.learning_rate, params.l2, params.tolerance);
        let stream = job.input::<Example>("examples")?;
        let examples =
            stream.windowed("examples", &windowing, |e| e.ts)?.map(|(w, e)| (w, (e.features, e.label, e.split)));

        // Round 0: zero weights, with their eval loss, for windows with train examples.
        let initial = examples.clone().reduce(|_, examples, out| {
            let Some(((features, _, _), _)) = examples.iter().find(|((_, _, s), _)| *s == Split::Train) else {
                return;
            };
            let weights = vec![Num::default(); features.len()];
            let eval =
                examples.iter().filter(|((_, _, s), _)| *s == Split::Eval).map(|((x, y, _), n)| (&x[..], *y, *n));
            let eval_loss = evaluate(&weights, Num::default(), eval).map(|(loss, _, _)| loss);
            out.push((Model { weights, bias: Num::default(), rounds: 0, eval_loss, done: false }, 1));
        });

        let parts = examples.clone().map(|(w, (x, y, s))| (w, Part::Example(x, y, s)));
        let models = iterate(initial, params.max_rounds, |lp, models| {
            let parts = lp.enter(&parts);
            models.map(|(w, m)| (w, Part::Model(m))).concat(parts).reduce(move |_, parts, out| {
                // `Model` sorts before every `Example`.
                let Some((Part::Model(model), _)) = parts.first() else { return };
                if model.done {
                    out.push((model.clone(), 1));
                    return;
                }
                let (mut train, mut eval) = (Vec::new(), Vec::new());
                for (part, n) in &parts[1..] {
                    if let Part::Example(x, y, split) = part {
                        match split {
                            Split::Train => train.push((&x[..], *y, *n)),
                            Split::Eval => eval.push((&x[..], *y, *n)),
                        }
                    }
                }
                let Some((weights, bias)) = step(model, &train, learning_rate, l2) else { return };
                let eval_loss = evaluate(&weights, bias, eval.into_iter()).map(|(loss, _, _)| loss);
                let done = match (tolerance, model.eval_loss, eval_loss) {
                    (Some(tolerance), Some(before), Some(after)) => before.get() - after.get() < tolerance,
                    _ => false,
                };
                out.push((Model { weights, bias, rounds: model.rounds + 1, eval_loss, done }, 1));
            })
        });

        // The models, with their accuracy on their own eval examples.
        let evals = examples.clone().filter(|(_, (_, _, s))| *s == Split::Eval);
        let model_rows = models
            .clone()
            .map(|(w, m)| (w, Part::Model(m)))
            .concat(evals.map(|(w, (x, y, s))| (w, Part::Example(x, y, s))))
            .reduce(|_, parts, out| {
                let Some((Part::Model(model), _)) = parts.first() else { return };
                let eval = parts[1..].iter().filter_map(|(p, n)| match p {
                    Part::Example(x, y, _) => Some((&x[..], *y, *n)),
                    Part::Model(_) => None,
                });
                let accuracy = evaluate(&model.weights, model.bias, eval).map(|(_, accuracy, _)| accuracy);
                out.push(((model.clone(), accuracy), 1));
            })
            .map(|(w, (m, accuracy))| ModelRow {
                start: w.start,
                end: w.end,
                weights: m.weights,
                bias: m.bias,
                rounds: m.rounds,
                eval_loss: m.eval_loss,
                eval_accuracy: accuracy,
            });

        // Each model on the next window's examples, keyed by that window's start.
        let next = models.map(|(w, m)| (w.end, (w, Part::Model(m))));
        let evaluation = next
            .concat(examples.map(|(w, (x, y, s))| (w.start, (w, Part::Example(x, y, s)))))
            .reduce(|_, parts, out| {
                let Some(((trained, Part::Model(model)), _)) = parts.first() else { return };
                let mut window = None;
                let examples = parts[1..].iter().filter_map(|((w, p), n)| match p {
                    Part::Example(x, y, _) => {
                        window = Some(*w);
                        Some((&x[..], *y, *n))
                    }
                    Part::Model(_) => None,
                });
                let Some((log_loss, accuracy, n)) = evaluate(&model.weights, model.bias, examples) else { return };
                let window = window.expect("examples seen");
                out.push((
                    EvaluationRow {
                        start: window.start,
                        end: window.end,
                        model_start: trained.start,
                        n,
                        accuracy,
                        log_loss,
                    },
                    1,
                ));
            })
            .map(|(_, row)| row);

        job.output("models", model_rows)?;
        job.output("evaluation", evaluation)
    }
}
