//! Resource types: the built-in kinds the double serves and those learnt from CRDs.

use std::cmp::Ordering;

use serde_json::Value;

/// Built-in kinds with behaviour of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    /// A custom resource (from a CRD).
    Custom,
    Namespace,
    Secret,
    ConfigMap,
    ServiceAccount,
    Lease,
    Crd,
}

/// A printer column of a CRD version (`additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) type_: String,
    pub(crate) format: String,
    pub(crate) description: String,
    pub(crate) priority: i64,
    pub(crate) json_path: String,
}

/// One resource (a plural within a group) and how it is served.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResourceType {
    pub(crate) group: String,
    /// Served versions, highest Kubernetes version priority first.
    pub(crate) versions: Vec<String>,
    pub(crate) plural: String,
    pub(crate) singular: String,
    pub(crate) kind: String,
    pub(crate) list_kind: String,
    pub(crate) short_names: Vec<String>,
    pub(crate) categories: Vec<String>,
    pub(crate) namespaced: bool,
    /// Has a `status` subresource.
    pub(crate) status: bool,
    pub(crate) builtin: Builtin,
    /// Printer columns by version (custom resources only).
    pub(crate) columns: Vec<(String, Vec<Column>)>,
}

impl ResourceType {
    #[allow(clippy::too_many_arguments)]
    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        short: &[&str],
        namespaced: bool,
        status: bool,
        builtin: Builtin,
    ) -> Self {
        Self {
            group: group.to_owned(),
            versions: vec![version.to_owned()],
            plural: plural.to_owned(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.to_owned(),
            list_kind: format!("{kind}List"),
            short_names: short.iter().map(|s| (*s).to_owned()).collect(),
            categories: Vec::new(),
            namespaced,
            status,
            builtin,
            columns: Vec::new(),
        }
    }

    /// `apiVersion` for one of its versions: `v1` or `group/version`.
    pub(crate) fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// `plural` or `plural.group`, as error messages name a resource.
    pub(crate) fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Kind` or `Kind.group`, as Invalid messages name a kind.
    pub(crate) fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub(crate) fn is_custom(&self) -> bool {
        self.builtin == Builtin::Custom
    }

    /// Whether `metadata.generation` is kept (custom resources and CRDs).
    pub(crate) fn has_generation(&self) -> bool {
        matches!(self.builtin, Builtin::Custom | Builtin::Crd)
    }

    /// Whether an immediate delete answers the deleted object (objects deleted through a
    /// finalizer: namespaces, CRDs) rather than a `Success` Status.
    pub(crate) fn delete_returns_object(&self) -> bool {
        matches!(self.builtin, Builtin::Namespace | Builtin::Crd)
    }

    pub(crate) fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    pub(crate) fn columns_for(&self, version: &str) -> Option<&[Column]> {
        self.columns
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, c)| c.as_slice())
    }
}

/// The built-in resources, in discovery order.
pub(crate) fn builtins() -> Vec<ResourceType> {
    use Builtin::*;
    vec![
        ResourceType::builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            &["ns"],
            false,
            true,
            Namespace,
        ),
        ResourceType::builtin("", "v1", "secrets", "Secret", &[], true, false, Secret),
        ResourceType::builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            &["sa"],
            true,
            false,
            ServiceAccount,
        ),
        ResourceType::builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            &["cm"],
            true,
            false,
            ConfigMap,
        ),
        ResourceType::builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            &[],
            true,
            false,
            Lease,
        ),
        ResourceType::builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            &["crd", "crds"],
            false,
            true,
            Crd,
        ),
    ]
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings_at(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The problems of a CRD that the real server's validation would refuse, as (field,
/// message) pairs; empty when it is acceptable.
pub(crate) fn crd_problems(crd: &Value) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let group = str_at(crd, "/spec/group");
    let plural = str_at(crd, "/spec/names/plural");
    let kind = str_at(crd, "/spec/names/kind");
    let name = str_at(crd, "/metadata/name");
    if group.is_empty() {
        problems.push(("spec.group", "Required value".to_owned()));
    } else if !group.contains('.') {
        problems.push((
            "spec.group",
            format!("Invalid value: \"{group}\": should be a domain with at least one dot"),
        ));
    }
    if plural.is_empty() {
        problems.push(("spec.names.plural", "Required value".to_owned()));
    } else if plural.to_ascii_lowercase() != plural {
        problems.push((
            "spec.names.plural",
            format!("Invalid value: \"{plural}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"),
        ));
    }
    if kind.is_empty() {
        problems.push(("spec.names.kind", "Required value".to_owned()));
    }
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        problems.push((
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    match str_at(crd, "/spec/scope") {
        "Namespaced" | "Cluster" => {}
        other => problems.push((
            "spec.scope",
            format!(
                "Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
            ),
        )),
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        problems.push((
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version".to_owned(),
        ));
    } else {
        let storage = versions
            .iter()
            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .count();
        if storage != 1 {
            problems.push((
                "spec.versions",
                "Invalid value: must have exactly one version marked as storage version".to_owned(),
            ));
        }
        if !versions
            .iter()
            .any(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        {
            problems.push((
                "spec.versions",
                "Invalid value: must have at least one version marked as served".to_owned(),
            ));
        }
    }
    problems
}

/// The resource a (valid) CRD defines.
pub(crate) fn from_crd(crd: &Value) -> Option<ResourceType> {
    if !crd_problems(crd).is_empty() {
        return None;
    }
    let kind = str_at(crd, "/spec/names/kind").to_owned();
    let singular = match str_at(crd, "/spec/names/singular") {
        "" => kind.to_ascii_lowercase(),
        s => s.to_owned(),
    };
    let list_kind = match str_at(crd, "/spec/names/listKind") {
        "" => format!("{kind}List"),
        s => s.to_owned(),
    };
    let mut versions = Vec::new();
    let mut columns = Vec::new();
    let mut status = false;
    for v in crd.pointer("/spec/versions")?.as_array()? {
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let name = v.get("name")?.as_str()?.to_owned();
        if v.pointer("/subresources/status").is_some() {
            status = true;
        }
        let cols = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| Column {
                        name: str_at(c, "/name").to_owned(),
                        type_: str_at(c, "/type").to_owned(),
                        format: str_at(c, "/format").to_owned(),
                        description: str_at(c, "/description").to_owned(),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        json_path: str_at(c, "/jsonPath").to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_else(|| {
                vec![Column {
                    name: "Age".into(),
                    type_: "date".into(),
                    format: String::new(),
                    description: String::new(),
                    priority: 0,
                    json_path: ".metadata.creationTimestamp".into(),
                }]
            });
        columns.push((name.clone(), cols));
        versions.push(name);
    }
    versions.sort_by(|a, b| version_priority(a, b));
    Some(ResourceType {
        group: str_at(crd, "/spec/group").to_owned(),
        versions,
        plural: str_at(crd, "/spec/names/plural").to_owned(),
        singular,
        kind,
        list_kind,
        short_names: strings_at(crd, "/spec/names/shortNames"),
        categories: strings_at(crd, "/spec/names/categories"),
        namespaced: str_at(crd, "/spec/scope") == "Namespaced",
        status,
        builtin: Builtin::Custom,
        columns,
    })
}

/// Kubernetes' version priority: GA before beta before alpha, higher numbers first, versions
/// of another form last in alphabetical order. `Less` means `a` comes first.
pub(crate) fn version_priority(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((2, major, 0));
        }
        let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        Some((level, major, num.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_priority_orders_as_kubernetes() {
        let mut v = vec![
            "v1alpha1",
            "foo",
            "v1beta1",
            "v2",
            "v1",
            "v1beta2",
            "v10alpha3",
        ];
        v.sort_by(|a, b| version_priority(a, b));
        assert_eq!(
            v,
            [
                "v2",
                "v1",
                "v1beta2",
                "v1beta1",
                "v10alpha3",
                "v1alpha1",
                "foo"
            ]
        );
    }
}
