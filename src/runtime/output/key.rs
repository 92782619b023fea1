//! Row keys: the values of an output's key fields, read from a row's JSON text.
//!
//! Served outputs index their rows by key. The key is read from the serialized row by
//! a streaming pass that keeps the key fields and skips everything else without
//! allocating, on the worker that serialized the row.

use std::cmp::Ordering;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// One key field's value: a JSON scalar (anything else is kept as its text).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyAtom {
    /// `null`, or a missing field.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A number with a fraction, in total order.
    Float(OrdF64),
    /// A string.
    Str(Box<str>),
}

/// An `f64` in total order (the key of a row may hold any float).
#[derive(Clone, Copy, Debug)]
pub struct OrdF64(pub f64);

impl PartialEq for OrdF64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0) == Ordering::Equal
    }
}
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl std::hash::Hash for OrdF64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}

/// The values of a row's key fields, in the order the output declares them.
pub type RowKey = Box<[KeyAtom]>;

impl KeyAtom {
    /// The atoms a query value (always text in a URL) may stand for: the string
    /// itself, and the number or boolean it spells.
    pub fn candidates(text: &str) -> Vec<KeyAtom> {
        let mut atoms = vec![KeyAtom::Str(text.into())];
        match text {
            "true" => atoms.push(KeyAtom::Bool(true)),
            "false" => atoms.push(KeyAtom::Bool(false)),
            "null" => atoms.push(KeyAtom::Null),
            _ => {
                if let Ok(i) = text.parse::<i128>() {
                    atoms.push(KeyAtom::Int(i));
                    atoms.push(KeyAtom::Float(OrdF64(i as f64)));
                } else if let Ok(f) = text.parse::<f64>()
                    && f.is_finite()
                {
                    atoms.push(KeyAtom::Float(OrdF64(f)));
                    if f.fract() == 0.0 && f.abs() < 1e38 {
                        atoms.push(KeyAtom::Int(f as i128));
                    }
                }
            }
        }
        atoms
    }
}

/// Reads the values of `fields` from the JSON object `row` (`Null` for a missing
/// field, and for a row that is not an object).
pub fn row_key(row: &str, fields: &[String]) -> RowKey {
    let mut deserializer = serde_json::Deserializer::from_str(row);
    KeyPicker { fields }.deserialize(&mut deserializer).unwrap_or_else(|_| vec![KeyAtom::Null; fields.len()].into())
}

struct KeyPicker<'a> {
    fields: &'a [String],
}

impl<'de> DeserializeSeed<'de> for KeyPicker<'_> {
    type Value = RowKey;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RowKey, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeyPicker<'_> {
    type Value = RowKey;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<RowKey, M::Error> {
        let mut key = vec![KeyAtom::Null; self.fields.len()];
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.fields.iter().position(|f| *f == name) {
                Some(i) => key[i] = map.next_value::<KeyAtom>()?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(key.into())
    }
}

impl<'de> de::Deserialize<'de> for KeyAtom {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<KeyAtom, D::Error> {
        deserializer.deserialize_any(AtomVisitor)
    }
}

struct AtomVisitor;

impl<'de> Visitor<'de> for AtomVisitor {
    type Value = KeyAtom;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<KeyAtom, E> {
        Ok(KeyAtom::Null)
    }
    fn visit_none<E>(self) -> Result<KeyAtom, E> {
        Ok(KeyAtom::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<KeyAtom, E> {
        Ok(KeyAtom::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<KeyAtom, E> {
        Ok(KeyAtom::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<KeyAtom, E> {
        Ok(KeyAtom::Int(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<KeyAtom, E> {
        Ok(KeyAtom::Float(OrdF64(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<KeyAtom, E> {
        Ok(KeyAtom::Str(v.into()))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<KeyAtom, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(KeyAtom::Str("[…]".into()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyAtom, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(KeyAtom::Str("{…}".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_key_fields_in_declared_order() {
        let row = r#"{"key":"a","nested":{"x":[1,2]},"start":10000,"avg":2.5,"flag":true}"#;
        let key = row_key(row, &fields(&["start", "key", "missing", "avg", "flag"]));
        assert_eq!(
            &*key,
            &[
                KeyAtom::Int(10000),
                KeyAtom::Str("a".into()),
                KeyAtom::Null,
                KeyAtom::Float(OrdF64(2.5)),
                KeyAtom::Bool(true)
            ]
        );
        assert_eq!(&*row_key("not json", &fields(&["a"])), &[KeyAtom::Null]);
    }

    #[test]
    fn query_text_stands_for_strings_and_numbers() {
        let c = KeyAtom::candidates("10000");
        assert!(c.contains(&KeyAtom::Int(10000)) && c.contains(&KeyAtom::Str("10000".into())));
        assert!(KeyAtom::candidates("2.5").contains(&KeyAtom::Float(OrdF64(2.5))));
        assert!(KeyAtom::candidates("3.0").contains(&KeyAtom::Int(3)));
        assert_eq!(KeyAtom::candidates("abc"), vec![KeyAtom::Str("abc".into())]);
    }
}
