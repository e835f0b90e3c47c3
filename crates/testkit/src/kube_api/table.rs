//! `meta.k8s.io/v1 Table` output (what `kubectl get` asks for) and `PartialObjectMetadata`.

use serde_json::{Value, json};

use super::types::{Builtin, Column, ResourceType};

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when \
    creating resources, although some resources may allow a client to request the generation \
    of an appropriate name automatically. Name is primarily intended for creation idempotence \
    and configuration definition. Cannot be updated. More info: \
    http://kubernetes.io/docs/user-guide/identifiers#names";

const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time \
    when this object was created.";

/// The alternative representations a client may ask for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum As {
    /// The objects themselves.
    Object,
    /// `Table` of meta.k8s.io, in this version (`v1` or `v1beta1`).
    Table(&'static str),
    /// `PartialObjectMetadata` (or `...List`) of meta.k8s.io, in this version.
    Metadata(&'static str),
}

/// The representation to answer for an `Accept` header: the first acceptable entry.
pub(crate) fn negotiate(accept: &str) -> Option<As> {
    if accept.trim().is_empty() {
        return Some(As::Object);
    }
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let (mut as_, mut v, mut g) = ("", "", "");
        for p in parts {
            match p.split_once('=') {
                Some(("as", x)) => as_ = x,
                Some(("v", x)) => v = x,
                Some(("g", x)) => g = x,
                _ => {}
            }
        }
        let json_like = matches!(
            media,
            "application/json" | "*/*" | "application/*" | "application/yaml"
        );
        if !json_like {
            continue;
        }
        match (as_, g, v) {
            ("", _, _) => return Some(As::Object),
            ("Table", "meta.k8s.io", "v1") => return Some(As::Table("v1")),
            ("Table", "meta.k8s.io", "v1beta1") => return Some(As::Table("v1beta1")),
            ("PartialObjectMetadata" | "PartialObjectMetadataList", "meta.k8s.io", "v1") => {
                return Some(As::Metadata("v1"));
            }
            ("PartialObjectMetadata" | "PartialObjectMetadataList", "meta.k8s.io", "v1beta1") => {
                return Some(As::Metadata("v1beta1"));
            }
            _ => {}
        }
    }
    None
}

fn column(name: &str, type_: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description,
           "priority": priority})
}

/// The columns and a function computing a row's cells, for a type at a version.
fn columns(ty: &ResourceType, version: &str) -> Vec<Column> {
    let col = |name: &str, type_: &str, path: &str| Column {
        name: name.into(),
        type_: type_.into(),
        format: String::new(),
        description: String::new(),
        priority: 0,
        json_path: path.into(),
    };
    let age = col("Age", "date", ".metadata.creationTimestamp");
    match ty.builtin {
        Builtin::Custom => ty
            .columns_for(version)
            .map(<[Column]>::to_vec)
            .unwrap_or_default(),
        Builtin::Namespace => vec![col("Status", "string", ".status.phase"), age],
        Builtin::Secret => vec![
            col("Type", "string", ".type"),
            col("Data", "integer", "#data"),
            age,
        ],
        Builtin::ConfigMap => vec![col("Data", "integer", "#data"), age],
        Builtin::ServiceAccount => vec![col("Secrets", "integer", "#secrets"), age],
        Builtin::Lease => vec![col("Holder", "string", ".spec.holderIdentity"), age],
        Builtin::Crd => vec![col("Created At", "date", "=.metadata.creationTimestamp")],
    }
}

/// A `Table` of `objects` (already rendered at `version`).
pub(crate) fn table(
    ty: &ResourceType,
    version: &str,
    table_version: &str,
    objects: &[Value],
    list_meta: Value,
) -> Value {
    let cols = columns(ty, version);
    let mut defs = vec![column("Name", "string", "name", NAME_DESCRIPTION, 0)];
    for c in &cols {
        let description = match (c.description.as_str(), c.name.as_str()) {
            ("", "Age") => AGE_DESCRIPTION,
            (d, _) => d,
        };
        defs.push(column(
            &c.name,
            &c.type_,
            &c.format,
            description,
            c.priority,
        ));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut cells = vec![
                obj.pointer("/metadata/name")
                    .cloned()
                    .unwrap_or(Value::Null),
            ];
            cells.extend(cols.iter().map(|c| cell(c, obj)));
            json!({"cells": cells, "object": partial_metadata(obj, "v1")})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{table_version}"),
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// `PartialObjectMetadata` of an object.
pub(crate) fn partial_metadata(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or(Value::Null),
    })
}

fn cell(c: &Column, obj: &Value) -> Value {
    // Built-in columns computed rather than looked up: `#field` counts entries, `=path` is a
    // date shown as the timestamp itself.
    if let Some(field) = c.json_path.strip_prefix('#') {
        let n = match obj.get(field) {
            Some(Value::Object(m)) => m.len(),
            Some(Value::Array(a)) => a.len(),
            _ => 0,
        };
        return Value::from(n);
    }
    if let Some(path) = c.json_path.strip_prefix('=') {
        return json_path(obj, path).cloned().unwrap_or(Value::Null);
    }
    let Some(value) = json_path(obj, &c.json_path) else {
        return Value::Null;
    };
    match c.type_.as_str() {
        "date" => match value.as_str().and_then(parse_time) {
            Some(t) => Value::from(human_duration(time::OffsetDateTime::now_utc() - t)),
            None => Value::from("<invalid>"),
        },
        "integer" => match value {
            Value::Number(n) if n.is_i64() => value.clone(),
            Value::Number(n) => n
                .as_f64()
                .map(|f| Value::from(f as i64))
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "number" => match value {
            Value::Number(_) => value.clone(),
            _ => Value::Null,
        },
        "boolean" => match value {
            Value::Bool(_) => value.clone(),
            _ => Value::Null,
        },
        _ => match value {
            Value::String(s) => Value::from(s.as_str()),
            Value::Null => Value::Null,
            other => Value::from(other.to_string()),
        },
    }
}

fn parse_time(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// A simple JSONPath as printer columns use: `.a.b`, `.a['b.c']`, `.a[0]`, `{.a.b}`.
pub(crate) fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let mut current = obj;
    let mut rest = path.strip_prefix('$').unwrap_or(path);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if !key.is_empty() {
                current = current.get(key)?;
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim();
            let quoted = inner
                .strip_prefix('\'')
                .and_then(|i| i.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|i| i.strip_suffix('"')));
            current = match quoted {
                Some(key) => current.get(key)?,
                None => current.get(inner.parse::<usize>().ok()?)?,
            };
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(current)
}

/// A duration as kubectl and the server's printers show ages: `45s`, `3m20s`, `5h`, `3d`.
pub(crate) fn human_duration(d: time::Duration) -> String {
    let seconds = d.whole_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_the_first_acceptable() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(kubectl), Some(As::Table("v1")));
        assert_eq!(negotiate("application/json"), Some(As::Object));
        assert_eq!(negotiate(""), Some(As::Object));
        assert_eq!(
            negotiate("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
            Some(As::Metadata("v1"))
        );
        assert_eq!(negotiate("application/vnd.kubernetes.protobuf"), None);
        assert_eq!(
            negotiate("application/vnd.kubernetes.protobuf, */*"),
            Some(As::Object)
        );
    }

    #[test]
    fn json_paths() {
        let obj = json!({"status": {"issuccess": true, "a.b": "x", "list": [1, 2]}});
        assert_eq!(json_path(&obj, ".status.issuccess"), Some(&json!(true)));
        assert_eq!(json_path(&obj, ".status['a.b']"), Some(&json!("x")));
        assert_eq!(json_path(&obj, "{.status.list[1]}"), Some(&json!(2)));
        assert_eq!(json_path(&obj, ".status.missing"), None);
    }

    #[test]
    fn durations() {
        let d = time::Duration::seconds;
        assert_eq!(human_duration(d(5)), "5s");
        assert_eq!(human_duration(d(119)), "119s");
        assert_eq!(human_duration(d(200)), "3m20s");
        assert_eq!(human_duration(d(3600 * 5 + 60)), "5h1m");
        assert_eq!(human_duration(d(3600 * 24 * 3)), "3d");
    }
}
