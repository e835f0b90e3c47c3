//! A JSON object reader that rejects duplicate keys, for security-relevant objects (the JWS
//! protected header, trust-policy overrides) where serde_json would silently keep the last
//! value.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// A JSON object's members in document order, keys unique.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StrictObject(pub(crate) Vec<(String, Value)>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrictVisitor;

        impl<'de> Visitor<'de> for StrictVisitor {
            type Value = StrictObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictObject, A::Error> {
                let mut seen = BTreeSet::new();
                let mut members = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("duplicate key \"{key}\"")));
                    }
                    let value: Value = map.next_value()?;
                    members.push((key, value));
                }
                Ok(StrictObject(members))
            }
        }

        deserializer.deserialize_map(StrictVisitor)
    }
}

/// Checks that no JSON object anywhere in `json` repeats a key.
pub(crate) fn check_no_duplicate_keys(json: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<NoDuplicates>(json).map(|_| ())
}

/// Deserializes any JSON value, failing on duplicate object keys at any depth.
struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key \"{key}\"")));
            }
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicates_keeps_order() {
        let o: StrictObject = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
        assert_eq!(o.0[0].0, "b");
        assert!(serde_json::from_str::<StrictObject>(r#"{"a":1,"a":2}"#).is_err());
        assert!(serde_json::from_str::<StrictObject>(r#"[1]"#).is_err());
        let v = serde_json::json!({"x": {"y": 1}});
        let o: StrictObject = serde_json::from_value(v).unwrap();
        assert_eq!(o.0.len(), 1);
    }

    #[test]
    fn finds_nested_duplicates() {
        assert!(check_no_duplicate_keys(br#"{"a":[{"b":1,"c":{"d":1}}],"e":null}"#).is_ok());
        assert!(check_no_duplicate_keys(br#"{"a":[{"b":1,"c":{"d":1,"d":2}}]}"#).is_err());
        assert!(check_no_duplicate_keys(br#"{"a":1,"a":1}"#).is_err());
        assert!(check_no_duplicate_keys(b"{").is_err());
    }
}
