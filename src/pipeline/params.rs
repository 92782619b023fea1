//! Pipeline parameters: a serde struct with defaults, decoded with errors that name
//! the offending parameter.
//!
//! A job's `params` object is laid over the serialized defaults (one level deep: a
//! given parameter replaces its default entirely), every key must be a declared
//! parameter, and the result is deserialized into the pipeline's struct, then
//! [`Params::validate`]d. Required parameters default to `null` and are checked by
//! `validate`.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A pipeline's parameter struct.
///
/// ```
/// use tidemark::pipeline::prelude::*;
///
/// #[derive(Clone, Debug, Serialize, Deserialize)]
/// struct TopParams { k: usize }
/// impl Default for TopParams { fn default() -> Self { TopParams { k: 3 } } }
/// impl Params for TopParams {
///     fn validate(&self) -> Result<(), ParamError> {
///         if self.k == 0 { return Err(ParamError::invalid("k", "must be at least 1")); }
///         Ok(())
///     }
/// }
/// ```
pub trait Params: DeserializeOwned + Serialize + Default + Clone + Send + Sync + 'static {
    /// Checks that the values make sense together; called after decoding.
    fn validate(&self) -> Result<(), ParamError> {
        Ok(())
    }
}

/// A parameter that is unknown, missing, or has an unusable value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError {
    /// The offending parameter (a dotted path for nested values).
    pub param: String,
    /// What is wrong with it.
    pub message: String,
    /// Whether the request was malformed (unknown or ill-typed) rather than well-formed
    /// but unusable (a value out of range).
    pub malformed: bool,
}

impl ParamError {
    /// A value that has the right shape but cannot be used.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> ParamError {
        ParamError { param: param.into(), message: message.into(), malformed: false }
    }

    /// A required parameter with no value.
    pub fn missing(param: impl Into<String>, example: &str) -> ParamError {
        let param = param.into();
        let message = format!("is required, e.g. {example}");
        ParamError { param, message, malformed: false }
    }
}

/// Checks that a duration parameter is at most [`MAX_DURATION`](super::MAX_DURATION).
pub fn check_duration(param: &str, value: u64) -> Result<(), ParamError> {
    if value > super::MAX_DURATION {
        return Err(ParamError::invalid(param, format!("must be at most {} ms, got {value}", super::MAX_DURATION)));
    }
    Ok(())
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "param `{}` {}", self.param, self.message)
    }
}

impl std::error::Error for ParamError {}

/// The defaults of `P` as a JSON object.
pub(crate) fn defaults<P: Params>() -> Map<String, Value> {
    match serde_json::to_value(P::default()) {
        Ok(Value::Object(map)) => map,
        _ => panic!("pipeline params must serialize to a JSON object"),
    }
}

/// Decodes `given` over the defaults of `P`; an unknown name is refused with the known
/// ones, `also_known` (taken by the caller) among them.
pub(crate) fn decode<P: Params>(given: &Map<String, Value>, also_known: &[&str]) -> Result<P, ParamError> {
    let mut merged = defaults::<P>();
    for (name, value) in given {
        if !merged.contains_key(name) {
            let known: Vec<_> =
                merged.keys().map(String::as_str).chain(also_known.iter().copied()).map(|k| format!("`{k}`")).collect();
            return Err(ParamError {
                param: name.clone(),
                message: format!("is not a parameter of this dataflow (known: {})", known.join(", ")),
                malformed: true,
            });
        }
        merged.insert(name.clone(), value.clone());
    }
    let params: P = serde_path_to_error::deserialize(Value::Object(merged.clone())).map_err(|e| {
        let mut param = e.path().to_string();
        if param == "." {
            // Fields of flattened structs lose their path: find the parameter whose value
            // breaks decoding by putting each given one back to its default in turn.
            let defaults = defaults::<P>();
            let culprit = given.keys().find(|name| {
                let mut trial = merged.clone();
                trial.insert((*name).clone(), defaults[*name].clone());
                serde_json::from_value::<P>(Value::Object(trial)).is_ok()
            });
            param = culprit.cloned().unwrap_or(param);
        }
        ParamError { param, message: format!("has the wrong type: {}", e.inner()), malformed: true }
    })?;
    params.validate()?;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
    struct P {
        size: u64,
        name: Option<String>,
    }
    impl Params for P {
        fn validate(&self) -> Result<(), ParamError> {
            if self.name.is_none() {
                return Err(ParamError::missing("name", r#""x""#));
            }
            Ok(())
        }
    }

    fn decode_json(v: Value) -> Result<P, ParamError> {
        decode::<P>(v.as_object().unwrap(), &["job_level"])
    }

    #[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
    struct Flat {
        k: u32,
        #[serde(flatten)]
        inner: Inner,
    }
    #[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
    struct Inner {
        lateness: u64,
    }
    impl Params for Flat {}

    #[test]
    fn errors_name_flattened_parameters() {
        let e = decode::<Flat>(json!({"k": 1, "lateness": "soon"}).as_object().unwrap(), &[]).unwrap_err();
        assert_eq!(e.param, "lateness", "{e}");
        let ok = decode::<Flat>(json!({"lateness": 5}).as_object().unwrap(), &[]).unwrap();
        assert_eq!(ok, Flat { k: 0, inner: Inner { lateness: 5 } });
    }

    #[test]
    fn errors_name_the_parameter() {
        assert_eq!(decode_json(json!({"name": "a"})).unwrap(), P { size: 0, name: Some("a".into()) });
        let e = decode_json(json!({"name": "a", "sise": 3})).unwrap_err();
        assert_eq!((e.param.as_str(), e.malformed), ("sise", true));
        assert!(e.to_string().contains("`size`") && e.to_string().contains("`job_level`"), "{e}");
        let e = decode_json(json!({"name": "a", "size": "big"})).unwrap_err();
        assert_eq!(e.param, "size");
        assert!(e.to_string().contains("invalid type"), "{e}");
        let e = decode_json(json!({})).unwrap_err();
        assert_eq!((e.param.as_str(), e.malformed), ("name", false));
    }
}
