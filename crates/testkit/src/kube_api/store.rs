//! The object store: resource types, objects, one global resource version (as etcd's
//! revision) and a bounded history of changes for watches and consistent lists.

use std::collections::{BTreeMap, VecDeque};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::select::Filter;
use super::types::{self, Builtin, ResourceType};

/// Where an object lives: its resource (group and plural), namespace (`""` for cluster-scoped
/// objects) and name. Ordered as etcd orders keys, so lists come out in this order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjKey {
    pub(crate) group: String,
    pub(crate) plural: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl ObjKey {
    pub(crate) fn new(ty: &ResourceType, namespace: &str, name: &str) -> Self {
        Self {
            group: ty.group.clone(),
            plural: ty.plural.clone(),
            namespace: if ty.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }

    pub(crate) fn is_of(&self, ty: &ResourceType) -> bool {
        self.group == ty.group && self.plural == ty.plural
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One write, as watches see it.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) rv: u64,
    pub(crate) key: ObjKey,
    pub(crate) kind: ChangeKind,
    /// The object after the change; for a deletion, the last state with the deletion's
    /// resource version.
    pub(crate) object: Value,
    /// The object before the change (`None` for an addition).
    pub(crate) prev: Option<Value>,
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The main resource: `.status` is kept as it was for kinds with a status subresource.
    Main,
    /// The `status` subresource: only `.status` changes.
    Status,
    /// Everything (the test helpers' writes).
    Whole,
}

/// Options of a create or update.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WriteOptions {
    pub(crate) dry_run: bool,
    /// Create the object when it does not exist (server-side apply, the test helpers).
    pub(crate) create_missing: bool,
    /// A PUT: custom resources then need `metadata.resourceVersion`.
    pub(crate) is_put: bool,
}

/// What a delete did.
pub(crate) enum Deleted {
    /// The object is gone; its last state.
    Gone(Value),
    /// The object has finalizers: it now carries a deletionTimestamp.
    Pending(Value),
}

/// Preconditions of a delete (`DeleteOptions.preconditions`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Preconditions {
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
}

pub(crate) struct Store {
    rv: u64,
    types: Vec<ResourceType>,
    objects: BTreeMap<ObjKey, Value>,
    history: VecDeque<Change>,
    history_limit: usize,
    /// Changes up to this resource version are no longer in the history.
    compacted: u64,
    /// Incremented by `expire_history`, which ends open watches.
    epoch: u64,
}

/// Namespaces a new cluster has.
const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl Store {
    pub(crate) fn new(history_limit: usize) -> Self {
        let mut store = Self {
            rv: 0,
            types: types::builtins(),
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit,
            compacted: 0,
            epoch: 0,
        };
        let ns_type = store.types[0].clone();
        for name in INITIAL_NAMESPACES {
            let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            if let Err(e) = store.create(&ns_type, "v1", "", ns, WriteOptions::default()) {
                unreachable!("an initial namespace is valid: {e}");
            }
        }
        store
    }

    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    pub(crate) fn compacted(&self) -> u64 {
        self.compacted
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The type served at `group/version` as `plural`.
    pub(crate) fn type_for(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural && t.serves(version))
    }

    /// The type of objects of `apiVersion` and `kind` (or plural, or short name).
    pub(crate) fn type_by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        let (group, version) = split_api_version(api_version);
        self.types.iter().find(|t| {
            t.group == group
                && t.serves(version)
                && (t.kind == kind || t.plural == kind || t.short_names.iter().any(|s| s == kind))
        })
    }

    pub(crate) fn get(&self, ty: &ResourceType, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.get(&ObjKey::new(ty, namespace, name))
    }

    /// The objects of `ty` that `filter` selects, in key order, as they were at resource
    /// version `at` (now when `None`).
    pub(crate) fn select(
        &self,
        ty: &ResourceType,
        filter: &Filter,
        at: Option<u64>,
    ) -> Result<Vec<(ObjKey, Value)>, ApiError> {
        let mut objects: BTreeMap<ObjKey, Value> = self
            .objects
            .iter()
            .filter(|(k, _)| k.is_of(ty))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(at) = at {
            if at < self.compacted {
                return Err(ApiError::too_old(at, self.compacted));
            }
            if at > self.rv {
                return Err(ApiError::too_large_rv(at, self.rv));
            }
            for change in self.history.iter().rev().take_while(|c| c.rv > at) {
                if !change.key.is_of(ty) {
                    continue;
                }
                match &change.prev {
                    Some(prev) => objects.insert(change.key.clone(), prev.clone()),
                    None => objects.remove(&change.key),
                };
            }
        }
        Ok(objects
            .into_iter()
            .filter(|(_, v)| filter.matches(ty, v))
            .collect())
    }

    /// The changes after resource version `rv`, or `Err` with the 410 when they are no longer
    /// all in the history.
    pub(crate) fn changes_after(&self, rv: u64) -> Result<impl Iterator<Item = &Change>, ApiError> {
        if rv < self.compacted {
            return Err(ApiError::too_old(rv, self.compacted));
        }
        let skip = self.history.partition_point(|c| c.rv <= rv);
        Ok(self.history.iter().skip(skip))
    }

    /// Drops the history (as a compaction does) and ends open watches: a watch or list from
    /// an earlier resource version then gets 410 Gone. The resource version advances by one,
    /// as if some other object had been written.
    pub(crate) fn expire_history(&mut self) {
        self.history.clear();
        self.rv += 1;
        self.compacted = self.rv;
        self.epoch += 1;
    }

    /// Ends open watches (a restart of the server) without touching the history.
    pub(crate) fn end_watches(&mut self) {
        self.epoch += 1;
    }

    pub(crate) fn create(
        &mut self,
        ty: &ResourceType,
        version: &str,
        namespace: &str,
        mut obj: Value,
        opts: WriteOptions,
    ) -> Result<Value, ApiError> {
        check_kind(ty, version, &obj)?;
        let meta = metadata_mut(&mut obj)?;
        let body_ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if ty.namespaced {
            if !body_ns.is_empty() && body_ns != namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on \
                     the request",
                ));
            }
            meta.insert("namespace".into(), Value::from(namespace));
        } else {
            meta.remove("namespace");
        }
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if name.is_empty()
            && let Some(prefix) = meta.get("generateName").and_then(Value::as_str)
        {
            name = format!("{prefix}{}", random_suffix());
            meta.insert("name".into(), Value::from(name.as_str()));
        }
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        validate_name(ty, &name)?;
        let namespace = if ty.namespaced { namespace } else { "" };
        let key = ObjKey::new(ty, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(ty, &name));
        }
        if ty.namespaced && !self.namespace_exists(namespace) {
            return Err(ApiError::namespace_not_found(namespace));
        }
        meta.insert("uid".into(), Value::from(new_uid()));
        meta.insert("creationTimestamp".into(), Value::from(now_rfc3339()));
        for field in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(field);
        }
        if ty.has_generation() {
            meta.insert("generation".into(), Value::from(1));
        } else {
            meta.remove("generation");
        }
        if ty.status
            && let Some(map) = obj.as_object_mut()
        {
            // Create cannot set status.
            map.remove("status");
        }
        obj["apiVersion"] = Value::from(ty.api_version(version));
        obj["kind"] = Value::from(ty.kind.as_str());
        self.defaults(ty, &mut obj, None)?;
        normalize_metadata(&mut obj);
        if opts.dry_run {
            return Ok(obj);
        }
        let obj = self.commit(key, ChangeKind::Added, obj, None);
        if ty.builtin == Builtin::Crd {
            self.rebuild_types();
        }
        Ok(obj)
    }

    /// Replaces an object (PUT, and the result of a patch). Returns the stored object and
    /// whether it was created.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        &mut self,
        ty: &ResourceType,
        version: &str,
        namespace: &str,
        name: &str,
        mut obj: Value,
        target: Target,
        opts: WriteOptions,
    ) -> Result<(Value, bool), ApiError> {
        check_kind(ty, version, &obj)?;
        let meta = metadata_mut(&mut obj)?;
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            _ => {
                meta.insert("name".into(), Value::from(name));
            }
        }
        if ty.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent \
                         on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), Value::from(namespace));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let given_rv = meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let key = ObjKey::new(ty, namespace, name);
        let Some(old) = self.objects.get(&key).cloned() else {
            if opts.create_missing && target != Target::Status {
                if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("resourceVersion");
                }
                let status = obj.get("status").cloned();
                let mut created = self.create(ty, version, namespace, obj, opts)?;
                if target == Target::Whole
                    && ty.status
                    && let Some(status) = status
                {
                    created["status"] = status;
                    let (o, _) =
                        self.update(ty, version, namespace, name, created, Target::Whole, opts)?;
                    created = o;
                }
                return Ok((created, true));
            }
            return Err(ApiError::not_found(ty, name));
        };
        let old_rv = rv_of(&old);
        if given_rv.is_empty() {
            if opts.is_put && ty.is_custom() {
                return Err(ApiError::invalid(
                    ty,
                    name,
                    &[(
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update".to_owned(),
                    )],
                ));
            }
        } else if given_rv != old_rv {
            return Err(ApiError::modified(ty, name));
        }
        let mut new = match target {
            Target::Status => {
                let mut new = old.clone();
                match obj.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
                new
            }
            Target::Main | Target::Whole => {
                let mut new = obj;
                if target == Target::Main
                    && ty.status
                    && let Some(map) = new.as_object_mut()
                {
                    match old.get("status") {
                        Some(status) => map.insert("status".into(), status.clone()),
                        None => map.remove("status"),
                    };
                }
                // Fields of metadata only the server sets.
                if let (Some(meta), Some(old_meta)) = (
                    new.get_mut("metadata").and_then(Value::as_object_mut),
                    old.get("metadata").and_then(Value::as_object),
                ) {
                    for field in [
                        "uid",
                        "creationTimestamp",
                        "deletionTimestamp",
                        "deletionGracePeriodSeconds",
                        "generation",
                        "resourceVersion",
                    ] {
                        match old_meta.get(field) {
                            Some(v) => meta.insert(field.into(), v.clone()),
                            None => meta.remove(field),
                        };
                    }
                    meta.remove("managedFields");
                    meta.remove("selfLink");
                }
                new
            }
        };
        new["apiVersion"] = Value::from(ty.api_version(version));
        new["kind"] = Value::from(ty.kind.as_str());
        self.defaults(ty, &mut new, Some(&old))?;
        normalize_metadata(&mut new);
        if ty.has_generation() && spec_changed(ty, &old, &new) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            new["metadata"]["generation"] = Value::from(generation + 1);
        }
        if same_ignoring_version(&old, &new) {
            return Ok((render_stored(&old, ty, version), false));
        }
        if opts.dry_run {
            return Ok((new, false));
        }
        let finalized = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        if finalized {
            let gone = self.remove(ty, key, new, old);
            return Ok((gone, false));
        }
        let stored = self.commit(key, ChangeKind::Modified, new, Some(old));
        if ty.builtin == Builtin::Crd {
            self.rebuild_types();
        }
        Ok((stored, false))
    }

    pub(crate) fn delete(
        &mut self,
        ty: &ResourceType,
        namespace: &str,
        name: &str,
        pre: &Preconditions,
        dry_run: bool,
    ) -> Result<Deleted, ApiError> {
        let key = ObjKey::new(ty, namespace, name);
        let Some(old) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(ty, name));
        };
        let uid = old
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(want) = &pre.uid
            && want != uid
        {
            return Err(ApiError::conflict(
                ty,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
            ));
        }
        if let Some(want) = &pre.resource_version
            && *want != rv_of(&old)
        {
            return Err(ApiError::conflict(
                ty,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, \
                     ResourceVersion in object meta: {}",
                    rv_of(&old)
                ),
            ));
        }
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(Deleted::Pending(old));
            }
            let mut new = old.clone();
            new["metadata"]["deletionTimestamp"] = Value::from(now_rfc3339());
            new["metadata"]["deletionGracePeriodSeconds"] = Value::from(0);
            if dry_run {
                return Ok(Deleted::Pending(new));
            }
            return Ok(Deleted::Pending(self.commit(
                key,
                ChangeKind::Modified,
                new,
                Some(old),
            )));
        }
        let mut last = old.clone();
        if ty.delete_returns_object() {
            last["metadata"]["deletionTimestamp"] = Value::from(now_rfc3339());
            if ty.builtin == Builtin::Namespace {
                last["status"]["phase"] = Value::from("Terminating");
            }
        }
        if dry_run {
            return Ok(Deleted::Gone(last));
        }
        Ok(Deleted::Gone(self.remove(ty, key, last, old)))
    }

    /// Removes an object (and what it owns: a namespace's objects, a CRD's resources).
    fn remove(&mut self, ty: &ResourceType, key: ObjKey, last: Value, old: Value) -> Value {
        let owned: Vec<ObjKey> = match ty.builtin {
            Builtin::Namespace => self
                .objects
                .keys()
                .filter(|k| k.namespace == key.name && !k.namespace.is_empty())
                .cloned()
                .collect(),
            Builtin::Crd => match types::from_crd(&old) {
                Some(defined) => self
                    .objects
                    .keys()
                    .filter(|k| k.is_of(&defined))
                    .cloned()
                    .collect(),
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
        for k in owned {
            if let Some(o) = self.objects.get(&k).cloned() {
                self.commit(k, ChangeKind::Deleted, o.clone(), Some(o));
            }
        }
        let gone = self.commit(key, ChangeKind::Deleted, last, Some(old));
        if ty.builtin == Builtin::Crd {
            self.rebuild_types();
        }
        gone
    }

    fn namespace_exists(&self, namespace: &str) -> bool {
        self.objects.contains_key(&ObjKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: namespace.to_owned(),
        })
    }

    /// Stores a change under the next resource version and records it in the history.
    fn commit(
        &mut self,
        key: ObjKey,
        kind: ChangeKind,
        mut object: Value,
        prev: Option<Value>,
    ) -> Value {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = Value::from(self.rv.to_string());
        match kind {
            ChangeKind::Deleted => {
                self.objects.remove(&key);
            }
            _ => {
                self.objects.insert(key.clone(), object.clone());
            }
        }
        self.history.push_back(Change {
            rv: self.rv,
            key,
            kind,
            object: object.clone(),
            prev,
        });
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.rv;
            }
        }
        object
    }

    fn rebuild_types(&mut self) {
        let mut types = types::builtins();
        for (key, crd) in &self.objects {
            if key.group == "apiextensions.k8s.io"
                && key.plural == "customresourcedefinitions"
                && let Some(ty) = types::from_crd(crd)
                && !types
                    .iter()
                    .any(|t| t.group == ty.group && t.plural == ty.plural)
            {
                types.push(ty);
            }
        }
        self.types = types;
    }

    /// What the server sets or checks per kind, on create (`old` is `None`) and update.
    fn defaults(
        &self,
        ty: &ResourceType,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match ty.builtin {
            Builtin::Namespace => {
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = Value::from(name);
                if old.is_none() {
                    obj["spec"]["finalizers"] = json!(["kubernetes"]);
                    obj["status"] = json!({"phase": "Active"});
                }
            }
            Builtin::Secret => {
                if obj
                    .get("type")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    obj["type"] = Value::from("Opaque");
                }
                if let Some(Value::Object(plain)) =
                    obj.as_object_mut().and_then(|m| m.remove("stringData"))
                {
                    for (k, v) in plain {
                        let text = v.as_str().unwrap_or_default();
                        obj["data"][k] = Value::from(
                            base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
                        );
                    }
                }
                if let Some(data) = obj.get("data").and_then(Value::as_object) {
                    for value in data.values() {
                        let text = value.as_str().unwrap_or_default();
                        if let Err(e) = base64::engine::general_purpose::STANDARD.decode(text) {
                            return Err(ApiError::bad_request(format!(
                                "Secret in version \"v1\" cannot be handled as a Secret: illegal \
                                 base64 data: {e}"
                            )));
                        }
                    }
                }
            }
            Builtin::Crd => {
                let problems = types::crd_problems(obj);
                if !problems.is_empty() {
                    let causes: Vec<(&str, &str, String)> = problems
                        .into_iter()
                        .map(|(f, m)| (f, "FieldValueInvalid", m))
                        .collect();
                    return Err(ApiError::invalid(ty, &name, &causes));
                }
                if let Some(defined) = types::from_crd(obj)
                    && let Some(clash) = self.types.iter().find(|t| {
                        t.group == defined.group && t.plural == defined.plural && !t.is_custom()
                    })
                {
                    return Err(ApiError::invalid(
                        ty,
                        &name,
                        &[(
                            "spec.names.plural",
                            "FieldValueInvalid",
                            format!("Invalid value: \"{}\": a built-in resource", clash.plural),
                        )],
                    ));
                }
                crd_status(obj, old);
            }
            _ => {}
        }
        Ok(())
    }
}

/// The status the CRD controllers would write: names accepted, established.
fn crd_status(crd: &mut Value, old: Option<&Value>) {
    let now = now_rfc3339();
    let since = old
        .and_then(|o| o.pointer("/status/conditions/0/lastTransitionTime"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or(now);
    let mut accepted = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
    if let Some(names) = accepted.as_object_mut() {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        names
            .entry("singular")
            .or_insert_with(|| Value::from(kind.to_ascii_lowercase()));
        names
            .entry("listKind")
            .or_insert_with(|| Value::from(format!("{kind}List")));
    }
    let mut stored: Vec<Value> = old
        .and_then(|o| o.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(versions) = crd.pointer("/spec/versions").and_then(Value::as_array) {
        for v in versions {
            if v.get("storage").and_then(Value::as_bool) == Some(true)
                && let Some(name) = v.get("name")
                && !stored.contains(name)
            {
                stored.push(name.clone());
            }
        }
    }
    crd["status"] = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": since,
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": since,
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    });
}

/// `group` and `version` of an `apiVersion` (`v1` is the core group).
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// A stored object as served at `version`: `apiVersion` rewritten (no schema conversion).
pub(crate) fn render_stored(obj: &Value, ty: &ResourceType, version: &str) -> Value {
    let mut obj = obj.clone();
    obj["apiVersion"] = Value::from(ty.api_version(version));
    obj["kind"] = Value::from(ty.kind.as_str());
    obj
}

pub(crate) fn rv_of(obj: &Value) -> String {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn check_kind(ty: &ResourceType, version: &str, obj: &Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {})",
            ty.kind
        )));
    }
    let expected = ty.api_version(version);
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() && split_api_version(v).0 != ty.group => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version \
                 ({expected})"
            )));
        }
        None if ty.is_custom() => {
            return Err(ApiError::bad_request(format!(
                "Object 'apiVersion' is missing in '{obj}'"
            )));
        }
        _ => {}
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() && k != ty.kind => Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            ty.kind
        ))),
        None if ty.is_custom() => Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{obj}'"
        ))),
        _ => Ok(()),
    }
}

fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the object provided is not a JSON object"))?;
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if meta.is_null() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

fn validate_name(ty: &ResourceType, name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::invalid(
            ty,
            name,
            &[(
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required".to_owned(),
            )],
        ));
    }
    let label = ty.builtin == Builtin::Namespace;
    let max = if label { 63 } else { 253 };
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !p.starts_with('-')
            && !p.ends_with('-')
    };
    let ok = name.len() <= max
        && if label {
            part_ok(name)
        } else {
            name.split('.').all(part_ok)
        };
    if ok {
        return Ok(());
    }
    let what = if label {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
         and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', \
         regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    } else {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' \
         or '.', and must start and end with an alphanumeric character (e.g. 'example.com', \
         regex used for validation is \
         '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    };
    Err(ApiError::invalid(
        ty,
        name,
        &[(
            "metadata.name",
            "FieldValueInvalid",
            format!("Invalid value: \"{name}\": {what}"),
        )],
    ))
}

/// Drops what the typed `ObjectMeta` would not keep: every field of it is `omitempty`, so an
/// empty string, map or list (e.g. `annotations: {}` from a merge patch) is no field at all.
fn normalize_metadata(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|_, v| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Object(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        });
    }
}

/// Whether anything but metadata (and status, for kinds with a status subresource) changed.
fn spec_changed(ty: &ResourceType, old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("metadata");
            map.remove("apiVersion");
            map.remove("kind");
            if ty.status {
                map.remove("status");
            }
        }
        v
    };
    strip(old) != strip(new)
}

fn same_ignoring_version(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("apiVersion");
            if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
        }
        v
    };
    strip(old) == strip(new)
}

pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // A failure leaves zeros: names and uids then collide, which a test notices.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes
}

fn new_uid() -> String {
    let mut b: [u8; 16] = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Five characters as `generateName` appends (consonants and digits).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random_bytes::<5>()
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str, data: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": data}})
    }

    #[test]
    fn list_at_an_earlier_version_undoes_later_changes() {
        let mut store = Store::new(100);
        let ty = store
            .type_by_kind("v1", "ConfigMap")
            .cloned()
            .expect("configmaps");
        let all = Filter::default();
        let a = store
            .create(&ty, "v1", "default", cm("a", "1"), WriteOptions::default())
            .expect("create");
        let at = store.rv();
        store
            .update(
                &ty,
                "v1",
                "default",
                "a",
                cm("a", "2"),
                Target::Main,
                WriteOptions::default(),
            )
            .expect("update");
        store
            .create(&ty, "v1", "default", cm("b", "1"), WriteOptions::default())
            .expect("create");
        let then = store.select(&ty, &all, Some(at)).expect("in history");
        assert_eq!(then.len(), 1);
        assert_eq!(then[0].1, a);
        assert_eq!(store.select(&ty, &all, None).expect("now").len(), 2);
        store.expire_history();
        assert_eq!(
            store.select(&ty, &all, Some(at)).expect_err("gone").code,
            410
        );
        assert!(store.changes_after(at).is_err());
        assert_eq!(
            store.changes_after(store.rv()).map(Iterator::count).ok(),
            Some(0)
        );
    }

    #[test]
    fn an_unchanged_update_writes_nothing() {
        let mut store = Store::new(100);
        let ty = store
            .type_by_kind("v1", "ConfigMap")
            .cloned()
            .expect("configmaps");
        let a = store
            .create(&ty, "v1", "default", cm("a", "1"), WriteOptions::default())
            .expect("create");
        let rv = store.rv();
        let (same, _) = store
            .update(
                &ty,
                "v1",
                "default",
                "a",
                a.clone(),
                Target::Main,
                WriteOptions::default(),
            )
            .expect("update");
        assert_eq!(store.rv(), rv);
        assert_eq!(same, a);
    }
}
