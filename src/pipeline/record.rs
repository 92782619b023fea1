//! Input records and output rows.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Data, Time};

/// A record type an input accepts: parsed from one JSON object.
///
/// Parsing is serde's: a missing field, a field of the wrong type, or a number out
/// of range makes the record `invalid`, and so does [`Record::validate`] failing.
/// Unknown fields are ignored.
///
/// ```
/// use tidemark::pipeline::prelude::*;
///
/// #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
/// struct Click { user: String, ts: u64 }
///
/// impl Record for Click {
///     const FIELDS: &'static [(&'static str, &'static str)] = &[("user", "string"), ("ts", "int")];
///     fn ts(&self) -> Time { self.ts }
/// }
/// ```
pub trait Record: Data + DeserializeOwned {
    /// The top-level fields and their JSON types, for listings and documentation.
    const FIELDS: &'static [(&'static str, &'static str)];
    /// The record's event time in milliseconds.
    fn ts(&self) -> Time;
    /// Checks beyond what serde checks; the error is shown to the sender.
    fn validate(&self) -> Result<(), RecordError> {
        Ok(())
    }
    /// The record's *shape*, which every record of one input must share: a field and
    /// its length, such as the dimension of a point (`("coords", 3)`). The first
    /// valid record of an input fixes it; a later record of another shape is
    /// `invalid`. `None` (the default): records have no shape.
    fn shape(&self) -> Option<(&'static str, usize)> {
        None
    }
}

/// Why a record cannot be used: said to its sender and kept with its dead letter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RecordError {
    message: String,
}

impl RecordError {
    /// A record that is unusable for the reason `message`.
    pub fn new(message: impl Into<String>) -> RecordError {
        RecordError { message: message.into() }
    }
}

/// A row type an output emits: serialized to one JSON object.
pub trait Row: Data + Serialize {}
impl<T: Data + Serialize> Row for T {}

/// A JSON value kept as its text: ordered, hashed and compared as text, and
/// serialized back verbatim into JSON output.
///
/// Dead letters use it to carry the offending record exactly as it was sent.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JsonText(Box<str>);

impl JsonText {
    /// Wraps text that is a valid JSON value that every JSON reader accepts:
    /// numbers out of the range of a double (`1e999`) are refused, as readers
    /// of the output would choke on them.
    pub fn from_json(text: &str) -> Option<JsonText> {
        serde_json::from_str::<serde_json::Value>(text).ok()?;
        Some(JsonText(text.trim().into()))
    }

    /// A JSON string holding `text` (for input that is not JSON at all).
    pub fn string(text: &str) -> JsonText {
        JsonText(serde_json::to_string(text).expect("strings serialize").into())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let raw: &serde_json::value::RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
            raw.serialize(s)
        } else {
            s.serialize_str(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
            Ok(JsonText(raw.get().into()))
        } else {
            let text = String::deserialize(d)?;
            JsonText::from_json(&text).ok_or_else(|| serde::de::Error::custom("not JSON"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_round_trips_verbatim() {
        let t = JsonText::from_json(r#" {"a": [1, 2.50]} "#).unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"a": [1, 2.50]}"#);
        assert_eq!(serde_json::to_string(&JsonText::string("not {json")).unwrap(), r#""not {json""#);
        assert!(JsonText::from_json("{").is_none());
        assert!(JsonText::from_json(r#"{"value": 1e999}"#).is_none(), "out of a double's range");
        let bytes = bincode_like_round_trip(&t);
        assert_eq!(bytes, t);
    }

    fn bincode_like_round_trip(t: &JsonText) -> JsonText {
        // Non-human-readable formats carry the text as a string.
        let s = t.as_str().to_string();
        JsonText::from_json(&s).unwrap()
    }
}
