//! Pipelines, their descriptions, the registry, and the job builder.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use differential_dataflow::AsCollection;
use serde_json::{Map, Value};
use timely::dataflow::Scope;
use timely::dataflow::operators::Input as _;

use super::clock::{Clock, ClockLog};
use super::params::{self, ParamError, Params};
use super::{Collection, Lateness, Record, Row, Stream, Time};
use crate::ingest::codec::{Codec, codec_for};
use crate::ingest::router::DeadLetter;
use crate::runtime::{OutputSink, TypedInput, WorkerInput, sink};

/// A compiled-in stream pipeline: what it reads, what it writes, and how.
///
/// ```
/// use tidemark::pipeline::prelude::*;
///
/// #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
/// pub struct Line { text: String, ts: u64 }
/// impl Record for Line {
///     const FIELDS: &'static [(&'static str, &'static str)] = &[("text", "string"), ("ts", "int")];
///     fn ts(&self) -> Time { self.ts }
/// }
///
/// #[derive(Clone, Debug, Default, Serialize, Deserialize)]
/// pub struct NoParams {}
/// impl Params for NoParams {}
///
/// pub struct Lengths;
/// impl Pipeline for Lengths {
///     type Params = NoParams;
///     fn description(&self) -> Description {
///         Description::new("lengths", "the length of every line")
///             .input(InputDesc::of::<Line>("lines"))
///             .output(OutputDesc::new("lengths", &[]))
///     }
///     fn build<'s>(&self, job: &mut Job<'s>, _: &NoParams) -> Result<(), BuildError> {
///         let lines = job.input::<Line>("lines", InputOptions::default())?;
///         job.output("lengths", lines.collection().map(|l| l.text.len() as u64))
///     }
/// }
/// ```
pub trait Pipeline: Send + Sync + 'static {
    /// The parameter struct.
    type Params: Params;
    /// Name, inputs and outputs.
    fn description(&self) -> Description;
    /// Builds the dataflow on one worker. Every worker builds the same dataflow, so
    /// this must depend only on `params`.
    fn build<'s>(&self, job: &mut Job<'s>, params: &Self::Params) -> Result<(), BuildError>;
}

/// What a pipeline reads and writes.
#[derive(Clone)]
pub struct Description {
    /// Unique name, used to create jobs.
    pub name: String,
    /// One line for listings.
    pub about: String,
    /// Inputs, in order.
    pub inputs: Vec<InputDesc>,
    /// Outputs, in order (the job's `dead_letter` output is added by tidemark).
    pub outputs: Vec<OutputDesc>,
}

impl Description {
    /// A pipeline with no inputs or outputs yet.
    pub fn new(name: &str, about: &str) -> Description {
        Description { name: name.into(), about: about.into(), inputs: Vec::new(), outputs: Vec::new() }
    }

    /// Adds an input.
    pub fn input(mut self, input: InputDesc) -> Description {
        self.inputs.push(input);
        self
    }

    /// Adds an output.
    pub fn output(mut self, output: OutputDesc) -> Description {
        self.outputs.push(output);
        self
    }
}

/// A declared input: its name and record type.
#[derive(Clone)]
pub struct InputDesc {
    /// Input name, as in `/jobs/{job}/inputs/{input}`.
    pub name: String,
    /// The record's fields and their JSON types.
    pub fields: &'static [(&'static str, &'static str)],
    type_id: TypeId,
    type_name: &'static str,
    pub(crate) codec: Arc<dyn Codec>,
}

impl InputDesc {
    /// An input of records of type `R`.
    pub fn of<R: Record>(name: &str) -> InputDesc {
        InputDesc {
            name: name.into(),
            fields: R::FIELDS,
            type_id: TypeId::of::<R>(),
            type_name: std::any::type_name::<R>(),
            codec: codec_for::<R>(),
        }
    }
}

/// A declared output: its name and key fields (queries on them use an index).
#[derive(Clone, Debug)]
pub struct OutputDesc {
    /// Output name, as in `/jobs/{job}/outputs/{output}`.
    pub name: String,
    /// Top-level fields that identify a row.
    pub key: Vec<String>,
}

impl OutputDesc {
    /// An output keyed by `key`.
    pub fn new(name: &str, key: &[&str]) -> OutputDesc {
        OutputDesc { name: name.into(), key: key.iter().map(|k| k.to_string()).collect() }
    }
}

/// The name of the output every job has for records it could not use.
pub const DEAD_LETTER: &str = "dead_letter";

/// How the ingest router treats an input: its watermark and lateness rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputOptions {
    /// The watermark trails the largest event time seen by this much.
    pub max_out_of_orderness: Time,
    /// When a record is too late to change anything (it is dead-lettered).
    pub lateness: Lateness,
}

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
}

/// The dataflow under construction for one job on one worker.
pub struct Job<'s> {
    scope: Scope<'s, Time>,
    description: &'s Description,
    mode: TimeMode,
    sinks: &'s [Arc<dyn OutputSink>],
    worker: usize,
    inputs: Vec<Option<(Box<dyn WorkerInput>, InputOptions)>>,
    dead_letters: Box<dyn WorkerInput>,
    outputs: Vec<bool>,
}

/// What a built job hands to its worker.
pub(crate) struct BoundJob {
    /// Declared inputs, then the dead-letter input.
    pub(crate) inputs: Vec<Box<dyn WorkerInput>>,
    pub(crate) options: Vec<InputOptions>,
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
        self.scope
    }

    /// Binds the declared input `name`, with its watermark and lateness rule.
    pub fn input<R: Record>(&mut self, name: &str, options: InputOptions) -> Result<Stream<'s, R>, BuildError> {
        let i = self
            .description
            .inputs
            .iter()
            .position(|d| d.name == name)
            .ok_or_else(|| BuildError::Undeclared(name.into()))?;
        let declared = &self.description.inputs[i];
        if declared.type_id != TypeId::of::<R>() {
            return Err(BuildError::WrongType { name: name.into(), declared: declared.type_name });
        }
        if self.inputs[i].is_some() {
            return Err(BuildError::Rebound(name.into()));
        }
        let (input, stream) = new_input::<R>(self.scope, self.mode);
        self.inputs[i] = Some((input, options));
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
        sink(rows, name, self.sinks[i].clone(), self.worker);
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<BoundJob, BuildError> {
        if let Some(i) = self.outputs.iter().position(|bound| !bound) {
            return Err(BuildError::Unbound(self.description.outputs[i].name.clone()));
        }
        let mut inputs = Vec::new();
        let mut options = Vec::new();
        for (slot, desc) in self.inputs.into_iter().zip(&self.description.inputs) {
            let (input, opts) = slot.ok_or_else(|| BuildError::Unbound(desc.name.clone()))?;
            inputs.push(input);
            options.push(opts);
        }
        inputs.push(self.dead_letters);
        Ok(BoundJob { inputs, options })
    }
}

/// A timely input of stamped records, with its watermark log.
fn new_input<'s, D: super::Data>(scope: Scope<'s, Time>, mode: TimeMode) -> (Box<dyn WorkerInput>, Stream<'s, D>) {
    let mut handle = timely::dataflow::InputHandle::new();
    let inner = scope.input_from(&mut handle).as_collection();
    let log = Rc::new(RefCell::new(ClockLog::default()));
    let input = TypedInput::<D>::new(handle, log.clone());
    (Box::new(input), Stream { inner, clock: Clock::of(log), mode })
}

/// A registered pipeline, with its parameters' types erased.
#[derive(Clone)]
pub struct Dataflow(Arc<dyn ErasedPipeline>);

/// Decoded parameters of a [`Dataflow`].
#[derive(Clone)]
pub struct DecodedParams {
    pub(crate) typed: Arc<dyn Any + Send + Sync>,
    /// The effective parameters, defaults included.
    pub json: Map<String, Value>,
    /// After how long without records an input's watermark advances with the wall
    /// clock (`idle_timeout_ms`; `None`: never).
    pub idle_timeout: Option<Duration>,
}

impl std::fmt::Debug for DecodedParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedParams").field("json", &self.json).field("idle_timeout", &self.idle_timeout).finish()
    }
}

/// The job-level parameter every dataflow accepts: after how many milliseconds without
/// records an input's watermark follows the wall clock (`null`: never).
pub const IDLE_TIMEOUT: &str = "idle_timeout_ms";
/// Its default.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 10_000;

trait ErasedPipeline: Send + Sync {
    fn description(&self) -> &Description;
    fn defaults(&self) -> Map<String, Value>;
    fn decode(&self, given: &Map<String, Value>) -> Result<DecodedParams, ParamError>;
    fn build<'s>(&self, job: &mut Job<'s>, params: &DecodedParams) -> Result<(), BuildError>;
}

struct Erased<P: Pipeline> {
    pipeline: P,
    description: Description,
}

impl<P: Pipeline> ErasedPipeline for Erased<P> {
    fn description(&self) -> &Description {
        &self.description
    }

    fn defaults(&self) -> Map<String, Value> {
        params::defaults::<P::Params>()
    }

    fn decode(&self, given: &Map<String, Value>) -> Result<DecodedParams, ParamError> {
        let typed: P::Params = params::decode(given)?;
        let json = match serde_json::to_value(&typed) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        Ok(DecodedParams { typed: Arc::new(typed), json, idle_timeout: None })
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &DecodedParams) -> Result<(), BuildError> {
        let typed = params.typed.downcast_ref::<P::Params>().expect("params decoded by this pipeline");
        self.pipeline.build(job, typed)
    }
}

impl std::fmt::Debug for Dataflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Dataflow").field(&self.name()).finish()
    }
}

impl Dataflow {
    /// Wraps a pipeline.
    pub fn new<P: Pipeline>(pipeline: P) -> Dataflow {
        let description = pipeline.description();
        Dataflow(Arc::new(Erased { pipeline, description }))
    }

    /// The pipeline's description.
    pub fn description(&self) -> &Description {
        self.0.description()
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.description().name
    }

    /// The parameters and their defaults, including the job-level `idle_timeout_ms`.
    pub fn default_params(&self) -> Map<String, Value> {
        let mut defaults = self.0.defaults();
        defaults.insert(IDLE_TIMEOUT.into(), DEFAULT_IDLE_TIMEOUT_MS.into());
        defaults
    }

    /// Decodes and validates job parameters (missing ones take their defaults).
    pub fn decode_params(&self, given: &Map<String, Value>) -> Result<DecodedParams, ParamError> {
        let mut given = given.clone();
        let idle = match given.remove(IDLE_TIMEOUT) {
            None => Some(DEFAULT_IDLE_TIMEOUT_MS),
            Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|ms| *ms > 0).ok_or_else(|| ParamError {
                param: IDLE_TIMEOUT.into(),
                message: format!("must be a positive number of milliseconds or null, got {v}"),
                malformed: !v.is_number(),
            })?),
        };
        let mut decoded = self.0.decode(&given)?;
        decoded.json.insert(IDLE_TIMEOUT.into(), idle.map_or(Value::Null, Value::from));
        decoded.idle_timeout = idle.map(Duration::from_millis);
        Ok(decoded)
    }

    /// Output names in order, `dead_letter` last.
    pub fn output_names(&self) -> Vec<String> {
        let outputs = self.description().outputs.iter().map(|o| o.name.clone());
        outputs.chain([DEAD_LETTER.to_string()]).collect()
    }

    pub(crate) fn build<'s>(&self, job: &mut Job<'s>, params: &DecodedParams) -> Result<(), BuildError> {
        self.0.build(job, params)
    }

    /// The listing entry of the API: name, description, inputs, outputs and params.
    pub fn listing(&self) -> Value {
        let d = self.description();
        let inputs: Vec<Value> = d
            .inputs
            .iter()
            .map(|i| {
                let fields: Vec<&str> = i.fields.iter().map(|(n, _)| *n).collect();
                let schema: Map<String, Value> =
                    i.fields.iter().map(|(n, t)| (n.to_string(), Value::from(*t))).collect();
                serde_json::json!({"name": i.name, "fields": fields, "schema": schema})
            })
            .collect();
        let outputs: Vec<Value> = d
            .outputs
            .iter()
            .map(|o| serde_json::json!({"name": o.name, "key": o.key}))
            .chain([serde_json::json!({"name": DEAD_LETTER, "key": []})])
            .collect();
        serde_json::json!({
            "name": d.name,
            "description": d.about,
            "inputs": inputs,
            "outputs": outputs,
            "params": self.default_params(),
        })
    }
}

/// The compiled-in dataflows, by name.
#[derive(Clone, Default)]
pub struct Registry {
    dataflows: Vec<Dataflow>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a pipeline.
    ///
    /// # Panics
    /// If a pipeline of the same name is already registered.
    pub fn with<P: Pipeline>(mut self, pipeline: P) -> Registry {
        let dataflow = Dataflow::new(pipeline);
        assert!(self.get(dataflow.name()).is_none(), "dataflow `{}` registered twice", dataflow.name());
        self.dataflows.push(dataflow);
        self
    }

    /// The dataflow called `name`.
    pub fn get(&self, name: &str) -> Option<&Dataflow> {
        self.dataflows.iter().find(|d| d.name() == name)
    }

    /// All dataflows, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Dataflow> {
        self.dataflows.iter()
    }

    /// The API listing of every dataflow.
    pub fn listing(&self) -> Value {
        Value::Array(self.iter().map(Dataflow::listing).collect())
    }
}
