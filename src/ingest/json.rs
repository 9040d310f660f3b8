//! The one JSON parser for webhook bodies: a key repeated in any object refuses the body, so the
//! bytes a signature covers can never mean two things to two parsers (most keep the last value).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::IngestError;

/// Parses `body` as one JSON value with no repeated key at any depth. A repeated key is a 422
/// `duplicate_key` whose `field` is its path (`meta.id`, `[2].objectId`); anything else that
/// is not JSON is a 400 `malformed_json`.
pub fn parse(body: &[u8]) -> Result<Value, IngestError> {
    let duplicate = RefCell::new(None::<Vec<String>>);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = StrictValue {
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match (parsed, duplicate.into_inner()) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(mut path)) => {
            path.reverse();
            let path = path.concat();
            let field = path.strip_prefix('.').unwrap_or(&path);
            Err(IngestError::invalid(
                field,
                "duplicate_key",
                &format!("{field} appears more than once; each key may appear once"),
            ))
        }
        (Err(error), None) => Err(IngestError::MalformedJson {
            message: format!("body is not valid JSON: {error}"),
        }),
    }
}

/// Builds a [`Value`] like serde_json's own, but fails on a repeated key and records its path
/// (innermost segment first; each enclosing level adds its own on the way out).
#[derive(Clone, Copy)]
struct StrictValue<'a> {
    duplicate: &'a RefCell<Option<Vec<String>>>,
}

impl StrictValue<'_> {
    /// Adds `segment` to the path of a duplicate found below it, if that is why `result` failed.
    fn within<T, E>(&self, segment: impl FnOnce() -> String, result: Result<T, E>) -> Result<T, E> {
        if result.is_err()
            && let Some(path) = self.duplicate.borrow_mut().as_mut()
        {
            path.push(segment());
        }
        result
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let index = items.len();
            match self.within(|| format!("[{index}]"), seq.next_element_seed(self))? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(vec![segment(&key)]);
                return Err(de::Error::custom("duplicate key"));
            }
            let value = self.within(|| segment(&key), map.next_value_seed(self))?;
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

/// A key's path segment, `.key`; the path's leading dot is dropped, so `meta.id`, `[2].objectId`.
fn segment(key: &str) -> String {
    format!(".{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate_field(body: &str) -> String {
        match parse(body.as_bytes()) {
            Err(IngestError::Invalid {
                field,
                code: "duplicate_key",
                ..
            }) => field,
            other => panic!("{body}: expected a duplicate key, got {other:?}"),
        }
    }

    #[test]
    fn a_repeated_key_at_any_depth_is_named_by_its_path() {
        assert_eq!(
            duplicate_field(r#"{"email":"a@x.com","email":"b@x.com"}"#),
            "email"
        );
        assert_eq!(
            duplicate_field(r#"{"meta":{"id":1,"action":"added","id":2}}"#),
            "meta.id"
        );
        assert_eq!(
            duplicate_field(r#"[{"objectId":1},{"portalId":2,"objectId":3,"objectId":4}]"#),
            "[1].objectId"
        );
        assert_eq!(
            duplicate_field(r#"{"current":{"email":[{"value":"a","value":"b"}]}}"#),
            "current.email[0].value"
        );
        // serde_json unescapes keys first: two spellings of one key are one key.
        assert_eq!(duplicate_field(r#"{"email":1,"\u0065mail":2}"#), "email");
    }

    #[test]
    fn values_parse_as_serde_json_parses_them() {
        let body = r#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":"\u00e9","a2":[]}"#;
        assert_eq!(
            parse(body.as_bytes()).expect("valid"),
            serde_json::from_str::<Value>(body).expect("valid")
        );
        // The same key in sibling objects is not a repetition.
        assert!(parse(br#"[{"id":1},{"id":2}]"#).is_ok());
    }

    #[test]
    fn malformed_and_trailing_input_is_not_a_duplicate() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        for body in ["{", "{} {}", "[1,]", "1e400", deep.as_str()] {
            assert!(
                matches!(
                    parse(body.as_bytes()),
                    Err(IngestError::MalformedJson { .. })
                ),
                "{body:.20}"
            );
        }
    }
}
