//! What a pipeline reads and writes: its description, inputs and outputs.

use std::any::TypeId;
use std::sync::Arc;

use super::Record;
use super::codec::{Codec, codec_for};

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

    /// The position of the input called `name`.
    pub fn input_index(&self, name: &str) -> Option<usize> {
        self.inputs.iter().position(|d| d.name == name)
    }
}

/// A declared input: its name and record type.
#[derive(Clone)]
pub struct InputDesc {
    /// Input name, as in `/jobs/{job}/inputs/{input}`.
    pub name: String,
    /// The record's fields and their JSON types, as declared ([`Record::FIELDS`]).
    pub fields: &'static [(&'static str, &'static str)],
    /// The record's fields as serde reads them (`None`: not a plain struct), to check
    /// the declaration against.
    pub struct_fields: Option<&'static [&'static str]>,
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
    pub(crate) codec: Arc<dyn Codec>,
}

impl InputDesc {
    /// An input of records of type `R`.
    pub fn of<R: Record>(name: &str) -> InputDesc {
        InputDesc {
            name: name.into(),
            fields: R::FIELDS,
            struct_fields: super::struct_fields::<R>(),
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
