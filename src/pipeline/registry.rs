//! Pipelines as the runtime sees them: [`Pipeline`], a pipeline with its parameter type
//! erased ([`Dataflow`]), and the list of them ([`Registry`]).

use std::any::Any;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::params::{self, ParamError, Params};
use super::{BuildError, Description, Inputs, Job};

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
///     fn inputs(&self, _: &NoParams) -> Inputs {
///         Inputs::new().with("lines", InputOptions::default())
///     }
///     fn build<'s>(&self, job: &mut Job<'s>, _: &NoParams) -> Result<(), BuildError> {
///         let lines = job.input::<Line>("lines")?;
///         job.output("lengths", lines.collection().map(|l| l.text.len() as u64))
///     }
/// }
/// ```
pub trait Pipeline: Send + Sync + 'static {
    /// The parameter struct.
    type Params: Params;
    /// Name, inputs and outputs.
    fn description(&self) -> Description;
    /// How the ingest router treats each input (watermark and lateness rule). Called on
    /// the caller's side before the job is built, so that its routers exist first; it
    /// must agree with what [`build`](Pipeline::build) does with each input's stream.
    fn inputs(&self, params: &Self::Params) -> Inputs;
    /// Builds the dataflow on one worker. Every worker builds the same dataflow, so
    /// this must depend only on `params`.
    fn build<'s>(&self, job: &mut Job<'s>, params: &Self::Params) -> Result<(), BuildError>;
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
    /// How each input is treated under these parameters.
    pub inputs: Inputs,
}

impl std::fmt::Debug for DecodedParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedParams").field("json", &self.json).field("inputs", &self.inputs).finish()
    }
}

trait ErasedPipeline: Send + Sync {
    fn description(&self) -> &Description;
    fn defaults(&self) -> Map<String, Value>;
    fn decode(&self, given: &Map<String, Value>, also_known: &[&str]) -> Result<DecodedParams, ParamError>;
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

    fn decode(&self, given: &Map<String, Value>, also_known: &[&str]) -> Result<DecodedParams, ParamError> {
        let typed: P::Params = params::decode(given, also_known)?;
        let json = match serde_json::to_value(&typed) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let inputs = self.pipeline.inputs(&typed);
        Ok(DecodedParams { typed: Arc::new(typed), json, inputs })
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &DecodedParams) -> Result<(), BuildError> {
        match params.typed.downcast_ref::<P::Params>() {
            Some(typed) => self.pipeline.build(job, typed),
            None => Err(BuildError::operator("params", "decoded by another dataflow")),
        }
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

    /// The parameters and their defaults.
    pub fn default_params(&self) -> Map<String, Value> {
        self.0.defaults()
    }

    /// Decodes and validates parameters (missing ones take their defaults); a name
    /// of `also_known` (a parameter the caller takes itself) is listed among the known
    /// ones when an unknown parameter is refused.
    pub fn decode_params(&self, given: &Map<String, Value>, also_known: &[&str]) -> Result<DecodedParams, ParamError> {
        self.0.decode(given, also_known)
    }

    /// Output names in order, `dead_letter` last.
    pub fn output_names(&self) -> Vec<String> {
        let outputs = self.description().outputs.iter().map(|o| o.name.clone());
        outputs.chain([super::DEAD_LETTER.to_string()]).collect()
    }

    pub(crate) fn build<'s>(&self, job: &mut Job<'s>, params: &DecodedParams) -> Result<(), BuildError> {
        self.0.build(job, params)
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
}
