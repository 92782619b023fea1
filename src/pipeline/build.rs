//! Building a job's dataflow on one worker: [`Job`] binds a pipeline's declared inputs
//! and outputs, and [`BuildError`] says why a pipeline cannot be built as written.

use std::any::TypeId;
use std::sync::Arc;

use timely::dataflow::Scope;

use super::input::{WorkerInput, new_input};
use super::output::{OutputSink, sink};
use super::{Collection, DEAD_LETTER, DeadLetter, Description, Record, Row, Stream, Time, struct_fields};

/// How output changes are timed.
///
/// In `Exact` mode every output change carries the time of the input that caused it,
/// as differential operators do. In `Compact` mode a stateful operator consolidates
/// the changes of one frontier step at its last time: the final content is the same,
/// intermediate versions are skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeMode {
    /// Every change at the time of the input that caused it.
    #[default]
    Exact,
    /// Changes consolidated per frontier step: for jobs read only at their end.
    Compact,
}

/// A pipeline that cannot be built as written.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `Job::input` or `Job::output` named something not in the description.
    #[error("`{0}` is not declared in the description")]
    Undeclared(String),
    /// `Job::input` asked for another record type than the description declares.
    #[error("input `{name}` is declared with records of type {declared}")]
    WrongType {
        /// The input.
        name: String,
        /// The declared type.
        declared: &'static str,
    },
    /// An input or output was bound twice.
    #[error("`{0}` is bound twice")]
    Rebound(String),
    /// An input or output was never bound.
    #[error("`{0}` is declared but the pipeline never binds it")]
    Unbound(String),
    /// An output's key field is not a field of its rows.
    #[error("output `{output}` is keyed by `{field}`, which its rows do not have (their fields: {fields})")]
    UnknownKey {
        /// The output.
        output: String,
        /// The key field.
        field: String,
        /// The rows' fields, or what the rows are instead.
        fields: String,
    },
    /// An operator was configured in a way it cannot run.
    #[error("operator `{operator}`: {problem}")]
    Operator {
        /// The operator's name.
        operator: String,
        /// What is wrong.
        problem: String,
    },
}

impl BuildError {
    /// An operator configured in a way it cannot run.
    pub fn operator(operator: &str, problem: impl Into<String>) -> BuildError {
        BuildError::Operator { operator: operator.into(), problem: problem.into() }
    }
}

/// Checks that the key fields of output `name` are fields of its rows `R` (else every
/// row would be indexed under `null`).
fn check_key<R: Row>(name: &str, key: &[String]) -> Result<(), BuildError> {
    let fields = struct_fields::<R>();
    for field in key {
        if !fields.is_some_and(|fields| fields.contains(&field.as_str())) {
            let shown = fields.map_or_else(|| "not a struct".to_string(), |f| f.join(", "));
            return Err(BuildError::UnknownKey { output: name.into(), field: field.clone(), fields: shown });
        }
    }
    Ok(())
}

/// The dataflow under construction for one job on one worker.
pub struct Job<'s> {
    scope: Scope<'s, Time>,
    description: &'s Description,
    mode: TimeMode,
    sinks: &'s [Arc<dyn OutputSink>],
    worker: usize,
    inputs: Vec<Option<Box<dyn WorkerInput>>>,
    dead_letters: Box<dyn WorkerInput>,
    outputs: Vec<bool>,
}

impl<'s> Job<'s> {
    pub(crate) fn new(
        scope: Scope<'s, Time>,
        description: &'s Description,
        mode: TimeMode,
        sinks: &'s [Arc<dyn OutputSink>],
        worker: usize,
    ) -> Job<'s> {
        let (dead_letters, stream) = new_input::<DeadLetter>(scope, mode);
        sink(stream.collection(), DEAD_LETTER, sinks[description.outputs.len()].clone(), worker);
        Job {
            scope,
            description,
            mode,
            sinks,
            worker,
            inputs: description.inputs.iter().map(|_| None).collect(),
            dead_letters,
            outputs: vec![false; description.outputs.len()],
        }
    }

    /// The timely scope, for operators the pipeline API does not cover.
    pub fn scope(&self) -> Scope<'s, Time> {
        super::state::JobState::outside("direct timely access (`Job::scope`)");
        self.scope
    }

    /// Binds the declared input `name` (its watermark and lateness rule come from
    /// [`Pipeline::inputs`](super::Pipeline::inputs)).
    pub fn input<R: Record>(&mut self, name: &str) -> Result<Stream<'s, R>, BuildError> {
        let i = self.description.input_index(name).ok_or_else(|| BuildError::Undeclared(name.into()))?;
        let declared = &self.description.inputs[i];
        if declared.type_id != TypeId::of::<R>() {
            return Err(BuildError::WrongType { name: name.into(), declared: declared.type_name });
        }
        if self.inputs[i].is_some() {
            return Err(BuildError::Rebound(name.into()));
        }
        let (input, stream) = new_input::<R>(self.scope, self.mode);
        self.inputs[i] = Some(input);
        Ok(stream)
    }

    /// Binds the declared output `name` to `rows`.
    pub fn output<R: Row>(&mut self, name: &str, rows: Collection<'s, R>) -> Result<(), BuildError> {
        let i = self
            .description
            .outputs
            .iter()
            .position(|d| d.name == name)
            .ok_or_else(|| BuildError::Undeclared(name.into()))?;
        if std::mem::replace(&mut self.outputs[i], true) {
            return Err(BuildError::Rebound(name.into()));
        }
        check_key::<R>(name, &self.description.outputs[i].key)?;
        sink(rows, name, self.sinks[i].clone(), self.worker);
        Ok(())
    }

    /// The worker's handles of the declared inputs, then of the dead-letter input, once
    /// every input and output is bound.
    pub(crate) fn finish(self) -> Result<Vec<Box<dyn WorkerInput>>, BuildError> {
        if let Some(i) = self.outputs.iter().position(|bound| !bound) {
            return Err(BuildError::Unbound(self.description.outputs[i].name.clone()));
        }
        let mut inputs = Vec::new();
        for (slot, desc) in self.inputs.into_iter().zip(&self.description.inputs) {
            inputs.push(slot.ok_or_else(|| BuildError::Unbound(desc.name.clone()))?);
        }
        inputs.push(self.dead_letters);
        Ok(inputs)
    }
}
