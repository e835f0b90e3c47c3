//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! for the built-in kinds whose typed clients send it (kubectl ≥ 1.3x `create configmap`,
//! `create secret`, `create namespace`, `create serviceaccount`): decoded into the JSON form.
//! Responses are always JSON (those clients accept it).
//!
//! The encoding is the `k8s\0` magic, then a `runtime.Unknown` (`typeMeta` = 1, `raw` = 2)
//! whose `raw` is the object's message as in k8s.io/api's `generated.proto`. Only the fields
//! of the kinds served here are known; an unknown field is an error (400), not silently lost.

use base64::Engine as _;
use serde_json::{Map, Value};

/// What a field holds.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    /// Bytes, as base64 in JSON.
    Bytes,
    Int,
    Bool,
    /// `metav1.Time` (seconds, nanos), as RFC 3339.
    Time,
    Msg(&'static [Field]),
    /// `map<string, V>` (repeated entries: key = 1, value = 2).
    Map(&'static Kind),
    Repeated(&'static Kind),
    /// Read and dropped (managedFields).
    Skip,
}

type Field = (u64, &'static str, Kind);

const STR: Kind = Kind::Str;
const BYTES: Kind = Kind::Bytes;

const OWNER_REFERENCE: &[Field] = &[
    (1, "kind", Kind::Str),
    (3, "name", Kind::Str),
    (4, "uid", Kind::Str),
    (5, "apiVersion", Kind::Str),
    (6, "controller", Kind::Bool),
    (7, "blockOwnerDeletion", Kind::Bool),
];
const OWNER_REFERENCE_KIND: Kind = Kind::Msg(OWNER_REFERENCE);

const OBJECT_META: &[Field] = &[
    (1, "name", Kind::Str),
    (2, "generateName", Kind::Str),
    (3, "namespace", Kind::Str),
    (4, "selfLink", Kind::Str),
    (5, "uid", Kind::Str),
    (6, "resourceVersion", Kind::Str),
    (7, "generation", Kind::Int),
    (8, "creationTimestamp", Kind::Time),
    (9, "deletionTimestamp", Kind::Time),
    (10, "deletionGracePeriodSeconds", Kind::Int),
    (11, "labels", Kind::Map(&STR)),
    (12, "annotations", Kind::Map(&STR)),
    (13, "ownerReferences", Kind::Repeated(&OWNER_REFERENCE_KIND)),
    (14, "finalizers", Kind::Repeated(&STR)),
    (17, "managedFields", Kind::Skip),
];

const CONFIG_MAP: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "data", Kind::Map(&STR)),
    (3, "binaryData", Kind::Map(&BYTES)),
    (4, "immutable", Kind::Bool),
];

const SECRET: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "data", Kind::Map(&BYTES)),
    (3, "type", Kind::Str),
    (4, "stringData", Kind::Map(&STR)),
    (5, "immutable", Kind::Bool),
];

const NAMESPACE: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (
        2,
        "spec",
        Kind::Msg(&[(1, "finalizers", Kind::Repeated(&STR))]),
    ),
    (3, "status", Kind::Msg(&[(1, "phase", Kind::Str)])),
];

const OBJECT_REFERENCE: Kind = Kind::Msg(&[
    (1, "kind", Kind::Str),
    (2, "namespace", Kind::Str),
    (3, "name", Kind::Str),
    (4, "uid", Kind::Str),
    (5, "apiVersion", Kind::Str),
    (6, "resourceVersion", Kind::Str),
    (7, "fieldPath", Kind::Str),
]);
const LOCAL_OBJECT_REFERENCE: Kind = Kind::Msg(&[(1, "name", Kind::Str)]);

const SERVICE_ACCOUNT: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "secrets", Kind::Repeated(&OBJECT_REFERENCE)),
    (
        3,
        "imagePullSecrets",
        Kind::Repeated(&LOCAL_OBJECT_REFERENCE),
    ),
    (4, "automountServiceAccountToken", Kind::Bool),
];

const TYPE_META: &[Field] = &[(1, "apiVersion", Kind::Str), (2, "kind", Kind::Str)];

/// Decodes a protobuf request body into the JSON form of the object.
pub(crate) fn decode(body: &[u8]) -> Result<Value, String> {
    let unknown = body
        .strip_prefix(b"k8s\0")
        .ok_or("the body does not start with the k8s protobuf magic")?;
    let mut type_meta = Value::Null;
    let mut raw: &[u8] = &[];
    let mut reader = Reader(unknown);
    while let Some((number, value)) = reader.field()? {
        match (number, value) {
            (1, Wire::Len(bytes)) => type_meta = message(bytes, TYPE_META)?,
            (2, Wire::Len(bytes)) => raw = bytes,
            _ => {}
        }
    }
    let kind = type_meta.get("kind").and_then(Value::as_str).unwrap_or("");
    let schema = match (type_meta.get("apiVersion").and_then(Value::as_str), kind) {
        (Some("v1"), "ConfigMap") => CONFIG_MAP,
        (Some("v1"), "Secret") => SECRET,
        (Some("v1"), "Namespace") => NAMESPACE,
        (Some("v1"), "ServiceAccount") => SERVICE_ACCOUNT,
        _ => return Err(format!("no protobuf decoding for {type_meta}")),
    };
    let mut object = message(raw, schema)?;
    object["apiVersion"] = type_meta["apiVersion"].clone();
    object["kind"] = type_meta["kind"].clone();
    Ok(object)
}

enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first().ok_or("truncated varint")?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn field(&mut self) -> Result<Option<(u64, Wire<'a>)>, String> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|e| e.to_string())?;
                if len > self.0.len() {
                    return Err("truncated field".into());
                }
                let (bytes, rest) = self.0.split_at(len);
                self.0 = rest;
                Wire::Len(bytes)
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                if n > self.0.len() {
                    return Err("truncated field".into());
                }
                self.0 = &self.0[n..];
                Wire::Fixed
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        Ok(Some((key >> 3, wire)))
    }
}

fn message(bytes: &[u8], schema: &[Field]) -> Result<Value, String> {
    let mut out = Map::new();
    let mut reader = Reader(bytes);
    while let Some((number, wire)) = reader.field()? {
        let Some((_, name, kind)) = schema.iter().find(|(n, _, _)| *n == number) else {
            return Err(format!("unknown field number {number}"));
        };
        match kind {
            Kind::Skip => {}
            Kind::Map(value_kind) => {
                let Wire::Len(entry) = wire else {
                    return Err(format!("{name}: a map entry must be length-delimited"));
                };
                let mut key = String::new();
                let mut value = Value::Null;
                let mut entry_reader = Reader(entry);
                while let Some((n, w)) = entry_reader.field()? {
                    match n {
                        1 => {
                            key = scalar(w, &Kind::Str, name)?
                                .as_str()
                                .unwrap_or("")
                                .to_owned()
                        }
                        2 => value = scalar(w, value_kind, name)?,
                        _ => {}
                    }
                }
                if value.is_null() {
                    value = scalar(Wire::Len(&[]), value_kind, name)?;
                }
                out.entry(*name)
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .map(|m| m.insert(key, value));
            }
            Kind::Repeated(item_kind) => {
                let value = scalar(wire, item_kind, name)?;
                if let Some(items) = out
                    .entry(*name)
                    .or_insert_with(|| Value::Array(Vec::new()))
                    .as_array_mut()
                {
                    items.push(value);
                }
            }
            other => {
                out.insert((*name).to_owned(), scalar(wire, other, name)?);
            }
        }
    }
    Ok(Value::Object(out))
}

fn scalar(wire: Wire<'_>, kind: &Kind, name: &str) -> Result<Value, String> {
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|e| format!("{name}: {e}"));
    Ok(match (kind, wire) {
        (Kind::Str, Wire::Len(b)) => Value::from(text(b)?),
        (Kind::Bytes, Wire::Len(b)) => {
            Value::from(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Kind::Int, Wire::Varint(v)) => Value::from(v as i64),
        (Kind::Bool, Wire::Varint(v)) => Value::from(v != 0),
        (Kind::Msg(schema), Wire::Len(b)) => message(b, schema)?,
        (Kind::Time, Wire::Len(b)) => {
            let mut seconds = 0i64;
            let mut reader = Reader(b);
            while let Some((n, w)) = reader.field()? {
                if let (1, Wire::Varint(v)) = (n, w) {
                    seconds = v as i64;
                }
            }
            time::OffsetDateTime::from_unix_timestamp(seconds)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .map(Value::from)
                .unwrap_or(Value::Null)
        }
        _ => return Err(format!("{name}: unexpected wire type")),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn len(tag: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(tag << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_config_map() {
        let meta = [
            len(1, b"settings"),
            len(3, b"ns"),
            len(11, &[len(1, b"app"), len(2, b"vouch")].concat()),
        ]
        .concat();
        let raw = [
            len(1, &meta),
            len(2, &[len(1, b"k"), len(2, b"v")].concat()),
            vec![4 << 3, 1],
        ]
        .concat();
        let unknown = [
            len(1, &[len(1, b"v1"), len(2, b"ConfigMap")].concat()),
            len(2, &raw),
        ]
        .concat();
        let body = [b"k8s\0".as_slice(), &unknown].concat();
        assert_eq!(
            decode(&body),
            Ok(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "immutable": true,
                      "metadata": {"name": "settings", "namespace": "ns", "labels": {"app": "vouch"}},
                      "data": {"k": "v"}})
            )
        );
        assert!(decode(b"{}").is_err());
    }
}
