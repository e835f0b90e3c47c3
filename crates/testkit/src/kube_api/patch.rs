//! Patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and an approximation of
//! Kubernetes' strategic merge patch.

use serde_json::{Map, Value};

/// Applies a JSON merge patch (RFC 7386) to `target`.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { return };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Why a JSON patch failed: the patch is malformed (400) or does not apply (422).
#[derive(Debug)]
pub(crate) enum JsonPatchError {
    Malformed(String),
    Failed(String),
}

/// Applies a JSON patch (RFC 6902) to `target`.
pub(crate) fn json_patch(target: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let ops = patch.as_array().ok_or_else(|| {
        JsonPatchError::Malformed(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch".into(),
        )
    })?;
    for op in ops {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| JsonPatchError::Malformed("missing op".into()))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| JsonPatchError::Failed(format!("missing path in {name} operation")))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| JsonPatchError::Failed(format!("missing value in {name} operation")))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| JsonPatchError::Failed(format!("missing from in {name} operation")))
        };
        match name {
            "add" => add(target, path, value()?)?,
            "remove" => {
                remove(target, path)?;
            }
            "replace" => {
                remove(target, path)?;
                add(target, path, value()?)?;
            }
            "move" => {
                let v = remove(target, from()?)?;
                add(target, path, v)?;
            }
            "copy" => {
                let v = target.pointer(from()?).cloned().ok_or_else(|| {
                    JsonPatchError::Failed(format!(
                        "copy from {} does not exist",
                        from().unwrap_or("")
                    ))
                })?;
                add(target, path, v)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value()?) {
                    return Err(JsonPatchError::Failed(format!(
                        "testing value {path} failed: test failed"
                    )));
                }
            }
            other => {
                return Err(JsonPatchError::Failed(format!("Unexpected kind: {other}")));
            }
        }
    }
    Ok(())
}

fn split(path: &str) -> Result<(String, String), JsonPatchError> {
    if path.is_empty() {
        return Err(JsonPatchError::Failed("the root cannot be replaced".into()));
    }
    let at = path
        .rfind('/')
        .ok_or_else(|| JsonPatchError::Failed(format!("invalid path {path}")))?;
    let last = path[at + 1..].replace("~1", "/").replace("~0", "~");
    Ok((path[..at].to_owned(), last))
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), JsonPatchError> {
    let (parent, last) = split(path)?;
    let missing = || {
        JsonPatchError::Failed(format!(
            "add operation does not apply: doc is missing path: \"{path}\""
        ))
    };
    match target.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(map) => {
            map.insert(last, value);
        }
        Value::Array(items) => {
            let at = if last == "-" {
                items.len()
            } else {
                last.parse::<usize>().map_err(|_| missing())?
            };
            if at > items.len() {
                return Err(missing());
            }
            items.insert(at, value);
        }
        _ => return Err(missing()),
    }
    Ok(())
}

fn remove(target: &mut Value, path: &str) -> Result<Value, JsonPatchError> {
    let (parent, last) = split(path)?;
    let missing = || {
        JsonPatchError::Failed(format!(
            "remove operation does not apply: doc is missing path: \"{path}\""
        ))
    };
    match target.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(map) => map.remove(&last).ok_or_else(missing),
        Value::Array(items) => {
            let at: usize = last.parse().map_err(|_| missing())?;
            if at >= items.len() {
                return Err(missing());
            }
            Ok(items.remove(at))
        }
        _ => Err(missing()),
    }
}

/// How a list field merges in a strategic merge patch of the built-in kinds served here.
enum ListStrategy {
    /// Replaced whole (the default, and `atomic` lists).
    Replace,
    /// Merged by the value of this key.
    MergeKey(&'static str),
    /// A set of primitives: union.
    PrimitiveMerge,
}

fn list_strategy(path: &str) -> ListStrategy {
    match path {
        "metadata.ownerReferences" => ListStrategy::MergeKey("uid"),
        "metadata.finalizers" => ListStrategy::PrimitiveMerge,
        // ServiceAccount.secrets: patchStrategy merge, patchMergeKey name.
        "secrets" => ListStrategy::MergeKey("name"),
        _ => ListStrategy::Replace,
    }
}

/// Applies a strategic merge patch to an object of a built-in kind. An approximation: maps
/// merge as in a JSON merge patch; the lists of the kinds served here that declare a merge
/// strategy (`metadata.ownerReferences` by `uid`, `metadata.finalizers` as a set,
/// ServiceAccount `secrets` by `name`) merge, every other list is replaced; the directives
/// `$patch: replace|delete`, `$retainKeys`, `$deleteFromPrimitiveList/<field>` are honoured and
/// `$setElementOrder/<field>` is accepted and ignored.
pub(crate) fn strategic(target: &mut Value, patch: &Value) {
    strategic_at(target, patch, "");
}

fn strategic_at(target: &mut Value, patch: &Value, path: &str) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        replacement.remove("$patch");
        *target = Value::Object(replacement);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { return };
    let mut retain: Option<Vec<String>> = None;
    for (key, value) in patch {
        let child_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if key == "$patch" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if key == "$retainKeys" {
            retain = value.as_array().map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            });
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(gone)) = (map.get_mut(field), value.as_array())
            {
                items.retain(|item| !gone.contains(item));
            }
            continue;
        }
        if value.is_null() || value.get("$patch").and_then(Value::as_str) == Some("delete") {
            map.remove(key);
            continue;
        }
        match value {
            Value::Object(_) => {
                strategic_at(
                    map.entry(key.clone()).or_insert(Value::Null),
                    value,
                    &child_path,
                );
            }
            Value::Array(items) => {
                let existing = map.entry(key.clone()).or_insert(Value::Array(Vec::new()));
                merge_list(existing, items, &child_path);
            }
            _ => {
                map.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(keys) = retain {
        map.retain(|k, _| keys.contains(k));
    }
}

fn merge_list(existing: &mut Value, items: &[Value], path: &str) {
    let strategy = list_strategy(path);
    let Value::Array(current) = existing else {
        *existing = Value::Array(items.to_vec());
        return;
    };
    match strategy {
        ListStrategy::Replace => *current = items.to_vec(),
        ListStrategy::PrimitiveMerge => {
            for item in items {
                if !current.contains(item) {
                    current.push(item.clone());
                }
            }
        }
        ListStrategy::MergeKey(merge_key) => {
            if items
                .iter()
                .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
            {
                *current = items
                    .iter()
                    .filter(|i| i.get("$patch").is_none())
                    .cloned()
                    .collect();
                return;
            }
            for item in items {
                let key = item.get(merge_key);
                let at = current.iter().position(|c| c.get(merge_key) == key);
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (at, delete) {
                    (Some(i), true) => {
                        current.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => strategic_at(&mut current[i], item, path),
                    (None, false) => current.push(item.clone()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        merge(&mut doc, &json!({"a": [1]}));
        assert_eq!(doc["a"], json!([1]));
    }

    #[test]
    fn json_patch_operations() {
        let mut doc = json!({"a": {"b": [1, 2]}});
        json_patch(
            &mut doc,
            &json!([
                {"op": "add", "path": "/a/b/-", "value": 3},
                {"op": "replace", "path": "/a/b/0", "value": 0},
                {"op": "copy", "from": "/a/b", "path": "/c"},
                {"op": "remove", "path": "/a/b/1"},
                {"op": "test", "path": "/c/2", "value": 3},
                {"op": "move", "from": "/c", "path": "/d~1e"},
            ]),
        )
        .expect("applies");
        assert_eq!(doc, json!({"a": {"b": [0, 3]}, "d/e": [0, 2, 3]}));
        assert!(matches!(
            json_patch(&mut doc, &json!([{"op": "test", "path": "/a", "value": 1}])),
            Err(JsonPatchError::Failed(_))
        ));
        assert!(matches!(
            json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])),
            Err(JsonPatchError::Failed(_))
        ));
    }

    #[test]
    fn strategic_merge_directives() {
        let mut doc = json!({
            "metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
            "secrets": [{"name": "s1"}, {"name": "s2"}],
            "data": {"k": "v"},
        });
        strategic(
            &mut doc,
            &json!({
                "$setElementOrder/secrets": [{"name": "s1"}, {"name": "s3"}],
                "metadata": {"finalizers": ["b"], "labels": {"y": null}},
                "secrets": [{"name": "s3"}, {"name": "s2", "$patch": "delete"}],
                "data": {"$patch": "replace", "n": "w"},
            }),
        );
        assert_eq!(
            doc,
            json!({
                "metadata": {"finalizers": ["a", "b"], "labels": {"x": "1"}},
                "secrets": [{"name": "s1"}, {"name": "s3"}],
                "data": {"n": "w"},
            })
        );
    }
}
