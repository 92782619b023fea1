//! Job specs as users write them, and their validation.
//!
//! ```json
//! {"name": "j1", "dataflow": "window_agg",
//!  "params": {"window": {"tumbling": {"size": 10000}}},
//!  "inputs": {"events": {"source": "http"}}}
//! ```
//!
//! An input left out of `inputs` is fed over HTTP. Every error names the offending
//! field (`inputs.events.rate`, `params.window`, ...), and says whether the request
//! was malformed (a wrong type: 400) or well-formed but unusable (422).
//!
//! What a spec may name depends on who wrote it ([`Origin`]): a spec sent over the API
//! may read files only below the file root, and may not give Kafka clients
//! properties that name the server's own files or commands.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::file_root::FileRoot;
use super::params::JobParams;
use crate::kafka;
use crate::pipeline::{Dataflow, Registry};
use crate::sink::SinkSpec;
use crate::source::{GeneratorSpec, SourceSpec};

/// A job as submitted: a name, a dataflow, its parameters, and a source per input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Unique name: letters, digits, `-`, `_` and `.`, at most 64.
    pub name: String,
    /// A compiled-in dataflow.
    pub dataflow: String,
    /// Parameters of the dataflow (missing ones take their defaults).
    #[serde(default)]
    pub params: Map<String, Value>,
    /// A source per input, as `{"source": "http" | "file" | "generator" | "kafka", ...}`.
    #[serde(default)]
    pub inputs: BTreeMap<String, Value>,
    /// A sink per output, as `{"sink": "kafka", "brokers": ..., "topic": ...}`; an
    /// output left out is only served over HTTP.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, Value>,
    /// How often the job checkpoints, in ms ([`CHECKPOINT_INTERVAL`] when left out; 0:
    /// only on demand and at shutdown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval_ms: Option<u64>,
    /// A savepoint the job starts from (`{"job": J, "id": ID}`): its state, with the
    /// same inputs and the same or changed parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_savepoint: Option<SavepointRef>,
}

/// A savepoint of a job, by the job's name and its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavepointRef {
    /// The job it was taken of.
    pub job: String,
    /// Its id.
    pub id: u64,
}

/// How often a job checkpoints unless its spec says otherwise, in ms.
pub const CHECKPOINT_INTERVAL: u64 = 10_000;
/// The shortest checkpoint interval a spec may ask for (but 0), in ms.
pub const MIN_CHECKPOINT_INTERVAL: u64 = 100;

impl JobSpec {
    /// How often the job checkpoints, in ms; 0: only on demand and at shutdown.
    pub fn checkpoint_interval(&self) -> u64 {
        self.checkpoint_interval_ms.unwrap_or(CHECKPOINT_INTERVAL)
    }
}

/// Who wrote a spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client of the HTTP API: file sources only below the file root (none without
    /// one), and no Kafka properties that name local files, libraries or commands.
    Api,
    /// Whoever runs the server: its configuration file, or a job restored from its data
    /// directory. File sources anywhere the server can read, unless a file root is set.
    Operator,
}

/// What a spec may name.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    /// Who wrote it.
    pub origin: Origin,
    /// The directory file sources must read below, if any.
    pub file_root: Option<&'a FileRoot>,
}

impl Policy<'_> {
    /// The policy of the configuration file and of `tidemark run` without a root.
    pub const OPERATOR: Policy<'static> = Policy { origin: Origin::Operator, file_root: None };
}

/// A spec that cannot become a job.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The offending field, as a dotted path.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
    /// A stable code for the API (`invalid_spec`, `unknown_dataflow`, ...).
    pub code: &'static str,
    /// Malformed (a wrong type or shape: 400) rather than unusable (422).
    pub malformed: bool,
}

impl SpecError {
    pub(crate) fn new(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
        malformed: bool,
    ) -> SpecError {
        SpecError { field: field.into(), message: message.into(), code, malformed }
    }
}

/// A spec checked against the registry, ready to start.
#[derive(Clone, Debug)]
pub struct ValidSpec {
    /// The spec as submitted.
    pub spec: JobSpec,
    /// Its dataflow.
    pub dataflow: Dataflow,
    /// Its decoded parameters.
    pub params: JobParams,
    /// A source per declared input, in declaration order.
    pub sources: Vec<SourceSpec>,
    /// Sinks, by output index.
    pub sinks: Vec<(usize, SinkSpec)>,
}

/// Parses a spec from a request body (400 errors name the field).
pub fn parse(body: &[u8]) -> Result<JobSpec, SpecError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let spec: JobSpec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let code = if inner.is_syntax() || inner.is_eof() { "invalid_json" } else { "invalid_spec" };
        // The root, or an unknown field named `` at the root, is the body itself.
        let field = if field == "." || field.is_empty() { "body".to_string() } else { field };
        SpecError::new(field, code, inner.to_string(), true)
    })?;
    de.end().map_err(|e| SpecError::new("body", "invalid_json", e.to_string(), true))?;
    Ok(spec)
}

/// Checks `spec` against the dataflows of `registry`, and what it names against `policy`.
pub fn validate(spec: JobSpec, registry: &Registry, policy: &Policy) -> Result<ValidSpec, SpecError> {
    check_name(&spec.name)?;
    if let Some(interval) = spec.checkpoint_interval_ms.filter(|&i| i != 0 && i < MIN_CHECKPOINT_INTERVAL) {
        let message = format!("must be 0 (only on demand) or at least {MIN_CHECKPOINT_INTERVAL} ms, got {interval}");
        return Err(SpecError::new("checkpoint_interval_ms", "invalid_spec", message, false));
    }
    let dataflow = registry.get(&spec.dataflow).cloned().ok_or_else(|| {
        let known: Vec<&str> = registry.iter().map(|d| d.name()).collect();
        let message = format!("unknown dataflow `{}` (known: {})", spec.dataflow, known.join(", "));
        SpecError::new("dataflow", "unknown_dataflow", message, false)
    })?;
    let params = JobParams::decode(&dataflow, &spec.params).map_err(|e| {
        let field = format!("params.{}", e.param);
        SpecError::new(field, "invalid_param", e.to_string(), e.malformed)
    })?;
    let declared = &dataflow.description().inputs;
    if let Some(name) = spec.inputs.keys().find(|n| !declared.iter().any(|d| &d.name == *n)) {
        let known: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
        let message = format!("`{}` has no input `{name}` (inputs: {})", dataflow.name(), known.join(", "));
        return Err(SpecError::new(format!("inputs.{name}"), "unknown_input", message, false));
    }
    let sources = declared
        .iter()
        .map(|d| match spec.inputs.get(&d.name) {
            None => Ok(SourceSpec::Http),
            Some(source) => source_of(&format!("inputs.{}", d.name), source, policy),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = dataflow.output_names();
    let mut sinks = Vec::new();
    for (name, sink) in &spec.outputs {
        let field = format!("outputs.{name}");
        let Some(index) = outputs.iter().position(|o| o == name) else {
            let message = format!("`{}` has no output `{name}` (outputs: {})", dataflow.name(), outputs.join(", "));
            return Err(SpecError::new(field, "unknown_output", message, false));
        };
        sinks.push((index, sink_of(&field, sink, policy)?));
    }
    Ok(ValidSpec { spec, dataflow, params, sources, sinks })
}

pub(crate) fn check_name(name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        let message = format!("`{name}` is not a valid job name: use 1 to 64 letters, digits, `-`, `_` or `.`");
        Err(SpecError::new("name", "invalid_name", message, false))
    }
}

/// The source an input spec describes.
fn source_of(field: &str, spec: &Value, policy: &Policy) -> Result<SourceSpec, SpecError> {
    let Some(object) = spec.as_object() else {
        return Err(SpecError::new(field, "invalid_source", "must be an object like {\"source\": \"http\"}", true));
    };
    let mut rest = object.clone();
    let kind = rest.remove("source");
    let sub = |name: &str| format!("{field}.{name}");
    match kind.as_ref().and_then(Value::as_str) {
        Some("http") => {
            if let Some(extra) = rest.keys().next() {
                return Err(SpecError::new(sub(extra), "invalid_source", "http sources take no options", true));
            }
            Ok(SourceSpec::Http)
        }
        Some("file") => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct FileSpec {
                path: PathBuf,
            }
            let file: FileSpec = serde_path_to_error::deserialize(Value::Object(rest)).map_err(|e| {
                let path = e.path().to_string();
                SpecError::new(
                    if path == "." || path.is_empty() { sub("path") } else { sub(&path) },
                    "invalid_source",
                    e.inner().to_string(),
                    true,
                )
            })?;
            let path = readable_file(&file.path, policy)
                .map_err(|message| SpecError::new(sub("path"), "invalid_source", message.to_string(), false))?;
            Ok(SourceSpec::File { path })
        }
        Some("generator") => {
            let generator: GeneratorSpec = decode(field, rest)?;
            generator.validate().map_err(|e| SpecError::new(field, "invalid_source", e.to_string(), false))?;
            Ok(SourceSpec::Generator(generator))
        }
        Some("kafka") => {
            let kafka: kafka::SourceSpec = decode(field, rest)?;
            check_properties(field, "invalid_source", &kafka.config, policy)?;
            kafka.validate().map_err(|e| SpecError::new(sub(&e.field), "invalid_source", e.message, false))?;
            Ok(SourceSpec::Kafka(kafka))
        }
        Some(other) => {
            let message = format!("unknown source `{other}` (known: http, file, generator, kafka)");
            Err(SpecError::new(sub("source"), "invalid_source", message, false))
        }
        None => {
            Err(SpecError::new(sub("source"), "invalid_source", "is required: http, file, generator or kafka", true))
        }
    }
}

/// The path a file source reads, if `policy` lets it read `path`.
fn readable_file(path: &std::path::Path, policy: &Policy) -> Result<PathBuf, FileError> {
    match (policy.file_root, policy.origin) {
        (Some(root), _) => Ok(root.resolve(path)?),
        (None, Origin::Api) => Err(FileError::NoRoot),
        (None, Origin::Operator) => match std::fs::File::open(path) {
            Ok(_) => Ok(path.to_path_buf()),
            Err(e) => Err(FileError::Unreadable(format!("cannot read {}: {e}", path.display()))),
        },
    }
}

#[derive(Debug, thiserror::Error)]
enum FileError {
    #[error(
        "file sources are not allowed in jobs created over the API unless the server runs with --file-root DIR (they may then read below DIR)"
    )]
    NoRoot,
    #[error(transparent)]
    Root(#[from] super::file_root::FileRootError),
    #[error("{0}")]
    Unreadable(String),
}

/// Refuses, in a spec sent over the API, Kafka properties that name local files,
/// libraries or commands.
fn check_properties(
    field: &str,
    code: &'static str,
    config: &BTreeMap<String, String>,
    policy: &Policy,
) -> Result<(), SpecError> {
    if policy.origin != Origin::Api {
        return Ok(());
    }
    match config.keys().find(|key| kafka::is_local_property(key)) {
        Some(key) => Err(SpecError::new(
            format!("{field}.config.{key}"),
            code,
            "names a file, library or command of the server; only its configuration file may set it",
            false,
        )),
        None => Ok(()),
    }
}

/// The sink an output spec describes.
fn sink_of(field: &str, spec: &Value, policy: &Policy) -> Result<SinkSpec, SpecError> {
    let Some(object) = spec.as_object() else {
        return Err(SpecError::new(field, "invalid_sink", "must be an object like {\"sink\": \"kafka\", ...}", true));
    };
    let mut rest = object.clone();
    let kind = rest.remove("sink");
    match kind.as_ref().and_then(Value::as_str) {
        Some("kafka") => {
            let kafka: kafka::SinkSpec = decode(field, rest)?;
            check_properties(field, "invalid_sink", &kafka.config, policy)?;
            kafka
                .validate()
                .map_err(|e| SpecError::new(format!("{field}.{}", e.field), "invalid_sink", e.message, false))?;
            Ok(SinkSpec::Kafka(kafka))
        }
        Some(other) => Err(SpecError::new(
            format!("{field}.sink"),
            "invalid_sink",
            format!("unknown sink `{other}` (known: kafka)"),
            false,
        )),
        None => Err(SpecError::new(format!("{field}.sink"), "invalid_sink", "is required: kafka", true)),
    }
}

/// The field an error of serde_path_to_error at `path` names within `field`: the field
/// itself for the root (`.`) or a key that is empty (an unknown field named ``).
fn inside(field: &str, path: &str) -> String {
    if path == "." || path.is_empty() { field.to_string() } else { format!("{field}.{path}") }
}

/// Decodes the options of a source or sink; errors name the option.
fn decode<T: serde::de::DeserializeOwned>(field: &str, options: Map<String, Value>) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(Value::Object(options)).map_err(|e| {
        let path = e.path().to_string();
        let field = inside(field, &path);
        let code = if field.starts_with("outputs.") { "invalid_sink" } else { "invalid_source" };
        SpecError::new(field, code, e.inner().to_string(), true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::new()
    }

    #[test]
    fn parse_names_the_bad_field() {
        let e = parse(br#"{"name": "a", "dataflow": 3}"#).unwrap_err();
        assert_eq!((e.field.as_str(), e.code, e.malformed), ("dataflow", "invalid_spec", true));
        let e = parse(br#"{"name": "a", "dataflow": "x", "extra": 1}"#).unwrap_err();
        assert_eq!(e.code, "invalid_spec");
        assert!(e.message.contains("extra"), "{e}");
        let e = parse(b"{\"name\": ").unwrap_err();
        assert_eq!(e.code, "invalid_json");
        // Found by fuzzing (tests/fuzz/regressions/job_spec): an unknown field named ``.
        let e = parse(br#"{"": 1}"#).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("body", "invalid_spec"));
        let e = source_of("inputs.x", &serde_json::json!({"source": "file", "": 1}), &Policy::OPERATOR).unwrap_err();
        assert_eq!(e.field, "inputs.x.path");
    }

    #[test]
    fn names_are_safe_for_paths_and_urls() {
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert_eq!(check_name(bad).unwrap_err().code, "invalid_name", "{bad:?}");
        }
        assert!(check_name("demo-1_v2.0").is_ok());
    }

    #[test]
    fn sources_are_checked() {
        let operator = &Policy::OPERATOR;
        let e = source_of("inputs.x", &serde_json::json!({"source": "ftp"}), operator).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("inputs.x.source", "invalid_source"));
        let e = source_of("inputs.x", &serde_json::json!({"source": "http", "rate": 3}), operator).unwrap_err();
        assert_eq!(e.field, "inputs.x.rate");
        let missing = serde_json::json!({"source": "file", "path": "/nonexistent"});
        let e = source_of("inputs.x", &missing, operator).unwrap_err();
        assert_eq!((e.field.as_str(), e.malformed), ("inputs.x.path", false));
        assert_eq!(source_of("inputs.x", &serde_json::json!({"source": "http"}), operator), Ok(SourceSpec::Http));
        let e = validate(parse(br#"{"name":"a","dataflow":"nope"}"#).unwrap(), &registry(), operator).unwrap_err();
        assert_eq!(e.code, "unknown_dataflow");
    }

    #[test]
    fn api_specs_read_files_only_below_the_root() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("in.ndjson"), "").expect("file");
        let outside = tempfile::NamedTempFile::new().expect("file");
        let file = |path: &std::path::Path| serde_json::json!({"source": "file", "path": path});
        let root = FileRoot::new(dir.path()).expect("root");
        let api = Policy { origin: Origin::Api, file_root: None };
        let rooted = Policy { origin: Origin::Api, file_root: Some(&root) };

        let e = source_of("inputs.x", &file(outside.path()), &api).unwrap_err();
        assert_eq!((e.field.as_str(), e.code, e.malformed), ("inputs.x.path", "invalid_source", false));
        assert!(e.message.contains("--file-root"), "{e}");
        let anywhere = source_of("inputs.x", &file(outside.path()), &Policy::OPERATOR).expect("operator");
        assert_eq!(anywhere, SourceSpec::File { path: outside.path().to_path_buf() });
        let e = source_of("inputs.x", &file(outside.path()), &rooted).unwrap_err();
        assert_eq!(e.field, "inputs.x.path");
        let inside = source_of("inputs.x", &file(std::path::Path::new("in.ndjson")), &rooted).expect("inside");
        assert_eq!(inside, SourceSpec::File { path: root.dir().join("in.ndjson") });
        // With a root, the configuration file is confined too.
        let operator_rooted = Policy { origin: Origin::Operator, file_root: Some(&root) };
        assert!(source_of("inputs.x", &file(outside.path()), &operator_rooted).is_err());
    }

    #[test]
    fn api_specs_name_no_local_files_in_kafka_properties() {
        let api = Policy { origin: Origin::Api, file_root: None };
        for key in ["plugin.library.paths", "ssl.key.location", "sasl.kerberos.keytab", "sasl.kerberos.kinit.cmd"] {
            let spec = serde_json::json!({"source": "kafka", "brokers": "h:1", "topic": "t", "config": {key: "/x"}});
            let e = source_of("inputs.x", &spec, &api).unwrap_err();
            assert_eq!((e.field, e.code), (format!("inputs.x.config.{key}"), "invalid_source"));
            let sink = serde_json::json!({"sink": "kafka", "brokers": "h:1", "topic": "t", "config": {key: "/x"}});
            let e = sink_of("outputs.y", &sink, &api).unwrap_err();
            assert_eq!((e.field, e.code), (format!("outputs.y.config.{key}"), "invalid_sink"));
        }
        let fine = serde_json::json!({"source": "kafka", "brokers": "h:1", "topic": "t", "config": {"fetch.max.bytes": 10485760}});
        let answer = source_of("inputs.x", &fine, &api);
        assert!(answer.is_ok(), "{answer:?}");
    }
}
