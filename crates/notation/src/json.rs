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

#[cfg(test)]
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
}
