//! The field names of a serde struct, read from its `Deserialize` implementation
//! without a value: serde hands a struct's field list to `deserialize_struct`, and this
//! deserializer keeps it and stops. For checking declared names against the struct:
//! an input's [`Record::FIELDS`](super::Record::FIELDS), an output's key fields.

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The keys of `T`'s JSON objects: a plain struct's fields, or an externally tagged
/// enum's variants (`None` for tuples, primitives, maps, and structs with flattened
/// fields).
pub fn struct_fields<T: for<'de> Deserialize<'de>>() -> Option<&'static [&'static str]> {
    let mut fields = None;
    let _ = T::deserialize(Introspect(&mut fields));
    fields
}

struct Introspect<'a>(&'a mut Option<&'static [&'static str]>);

/// Stops the deserialization once the fields are known.
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("introspection only")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: std::fmt::Display>(_: M) -> Stop {
        Stop
    }
}

impl<'de> Deserializer<'de> for Introspect<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = Some(fields);
        Err(Stop)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = Some(variants);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::struct_fields;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Plain {
        key: String,
        #[serde(rename = "start")]
        begins: u64,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Tagged {
        Bid(u64),
        Auction { id: u64 },
    }

    #[test]
    fn fields_of_structs_and_variants_of_enums_only() {
        assert_eq!(struct_fields::<Plain>(), Some(&["key", "start"][..]));
        assert_eq!(struct_fields::<Tagged>(), Some(&["bid", "auction"][..]));
        assert_eq!(struct_fields::<(String, u64)>(), None);
        assert_eq!(struct_fields::<u64>(), None);
    }
}
