//! The HTTP side: routing, verbs, discovery, watch streams, authentication, faults.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::error::ApiError;
use super::patch::{self, JsonPatchError};
use super::proto;
use super::select::Filter;
use super::store::{
    ChangeKind, Deleted, ObjKey, Preconditions, Store, Target, WriteOptions, render_stored, rv_of,
};
use super::table::{self, As};
use super::types::{self, ResourceType};
use super::{FaultAction, Request, Shared};

/// The largest request body the server reads (the API server's default, 3 MiB).
pub(crate) const MAX_BODY: usize = 3 * 1024 * 1024;

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Who the connection is: whether it presented a client certificate the CA issued.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Peer {
    pub(crate) client_cert: bool,
}

/// Serves one HTTP/1.1 connection.
pub(crate) async fn serve<S>(shared: Arc<Shared>, io: S, peer: Peer)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(shared, req, peer).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
}

fn json_response(status: u16, value: &Value) -> Response<Body> {
    full(
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        "application/json",
        value.to_string(),
    )
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut response = json_response(e.code, &e.to_status());
    if matches!(e.code, 429 | 503 | 504) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The parts of a request path naming a resource.
#[derive(Debug, Clone, Default)]
struct ResourcePath {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn is_true(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true" | "1"))
}

async fn handle(shared: Arc<Shared>, req: hyper::Request<Incoming>, peer: Peer) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query());
    let mut record = Request {
        verb: String::new(),
        group: String::new(),
        version: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
        path: path.clone(),
        code: 0,
    };
    let response = match route(&shared, req, &method, &path, &query, peer, &mut record).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    record.code = response.status().as_u16();
    shared.log(record);
    response
}

#[allow(clippy::too_many_arguments)]
async fn route(
    shared: &Arc<Shared>,
    req: hyper::Request<Incoming>,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    peer: Peer,
    record: &mut Request,
) -> Result<Response<Body>, ApiError> {
    record.verb = match *method {
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
    .to_owned();
    if !authenticated(shared, &req, peer) {
        return Err(ApiError::unauthorized());
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let target = match segments.as_slice() {
        [] => return non_resource(shared, method, path, &accept),
        ["api"]
        | ["apis"]
        | ["version"]
        | ["openapi", ..]
        | ["healthz"]
        | ["livez"]
        | ["readyz"] => return non_resource(shared, method, path, &accept),
        ["api", version] => return discovery_resources(shared, method, "", version),
        ["apis", group] => return discovery_group(shared, method, group),
        ["apis", group, version] => return discovery_resources(shared, method, group, version),
        ["api", version, rest @ ..] => parse_target("", version, rest)?,
        ["apis", group, version, rest @ ..] => parse_target(group, version, rest)?,
        _ => return Err(ApiError::no_such_path()),
    };
    let ty = {
        let store = shared.store();
        store
            .type_for(&target.group, &target.version, &target.plural)
            .cloned()
            .ok_or_else(ApiError::no_such_path)?
    };
    if ty.namespaced != target.namespace.is_some() && (target.name.is_some() || !ty.namespaced) {
        return Err(ApiError::no_such_path());
    }
    match target.subresource.as_deref() {
        None => {}
        Some("status") if ty.status => {}
        Some(_) => return Err(ApiError::no_such_path()),
    }
    if ty.namespaced && target.namespace.is_none() && *method != Method::GET {
        // Only lists and watches span namespaces.
        return Err(ApiError::no_such_path());
    }
    let watching = is_true(query.get("watch"));
    let verb = match (method, target.name.is_some()) {
        (&Method::GET | &Method::HEAD, true) if watching && target.subresource.is_none() => "watch",
        (&Method::GET | &Method::HEAD, true) => "get",
        (&Method::GET | &Method::HEAD, false) if watching => "watch",
        (&Method::GET | &Method::HEAD, false) => "list",
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => return Err(ApiError::method_not_allowed()),
    };
    *record = Request {
        verb: verb.to_owned(),
        group: target.group.clone(),
        version: target.version.clone(),
        resource: target.plural.clone(),
        subresource: target.subresource.clone().unwrap_or_default(),
        namespace: target.namespace.clone().unwrap_or_default(),
        name: target.name.clone().unwrap_or_default(),
        path: path.to_owned(),
        code: 0,
    };
    if let Some(action) = shared.take_fault(record) {
        match action {
            FaultAction::Status(code) => return Err(ApiError::injected(code)),
            FaultAction::Hang => std::future::pending::<()>().await,
        }
    }
    let body = read_body(req).await?;
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let version = target.version.as_str();
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    match verb {
        "get" => {
            let as_ = table::negotiate(&accept).ok_or_else(|| ApiError::not_acceptable(&accept))?;
            let store = shared.store();
            let obj = store
                .get(&ty, &ns, &name)
                .ok_or_else(|| ApiError::not_found(&ty, &name))?;
            let obj = render_stored(obj, &ty, version);
            let out = match as_ {
                As::Object => obj,
                As::Table(tv) => table::table(
                    &ty,
                    version,
                    tv,
                    std::slice::from_ref(&obj),
                    json!({"resourceVersion": rv_of(&obj)}),
                ),
                As::Metadata(mv) => table::partial_metadata(&obj, mv),
            };
            Ok(json_response(200, &out))
        }
        "list" => {
            let as_ = table::negotiate(&accept).ok_or_else(|| ApiError::not_acceptable(&accept))?;
            list(shared, &ty, version, target.namespace.clone(), query, as_)
        }
        "watch" => {
            let as_ = table::negotiate(&accept).ok_or_else(|| ApiError::not_acceptable(&accept))?;
            let mut query = query.clone();
            if let Some(name) = &target.name {
                // A watch of one object's path: the collection's watch, selected by name.
                let fields = match query.get("fieldSelector") {
                    Some(f) if !f.is_empty() => format!("{f},metadata.name={name}"),
                    _ => format!("metadata.name={name}"),
                };
                query.insert("fieldSelector".into(), fields);
            }
            watch(shared, &ty, version, target.namespace.clone(), &query, as_)
        }
        "create" => {
            let obj = parse_body(&ty, &body, &content_type)?;
            let created = shared.write(|store| {
                store.create(
                    &ty,
                    version,
                    &ns,
                    obj,
                    WriteOptions {
                        dry_run,
                        ..Default::default()
                    },
                )
            })?;
            Ok(json_response(201, &created))
        }
        "update" => {
            let obj = parse_body(&ty, &body, &content_type)?;
            let opts = WriteOptions {
                dry_run,
                is_put: true,
                create_missing: ty.builtin == types::Builtin::Lease,
            };
            let target = subresource_target(&target);
            let (obj, created) =
                shared.write(|store| store.update(&ty, version, &ns, &name, obj, target, opts))?;
            Ok(json_response(if created { 201 } else { 200 }, &obj))
        }
        "patch" => {
            let (obj, created) = patch(shared, &ty, &target, query, &content_type, &body, dry_run)?;
            Ok(json_response(if created { 201 } else { 200 }, &obj))
        }
        "delete" => {
            let options: Value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body)
                    .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
            };
            let pre = Preconditions {
                uid: options
                    .pointer("/preconditions/uid")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                resource_version: options
                    .pointer("/preconditions/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            };
            let dry_run = dry_run
                || options
                    .get("dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|v| v == "All"));
            let deleted = shared.write(|store| store.delete(&ty, &ns, &name, &pre, dry_run))?;
            Ok(json_response(200, &deleted_answer(&ty, version, deleted)))
        }
        "deletecollection" => {
            let filter = Filter::new(
                &ty,
                target.namespace.clone(),
                query.get("labelSelector").map(String::as_str),
                query.get("fieldSelector").map(String::as_str),
            )?;
            let items = shared.write(|store| {
                let selected = store.select(&ty, &filter, None)?;
                let mut items = Vec::new();
                for (key, _) in selected {
                    match store.delete(
                        &ty,
                        &key.namespace,
                        &key.name,
                        &Preconditions::default(),
                        dry_run,
                    )? {
                        Deleted::Gone(o) | Deleted::Pending(o) => {
                            items.push(render_stored(&o, &ty, version))
                        }
                    }
                }
                Ok::<_, ApiError>((items, store.rv()))
            })?;
            Ok(json_response(
                200,
                &json!({"kind": ty.list_kind, "apiVersion": ty.api_version(version),
                        "metadata": {"resourceVersion": items.1.to_string()}, "items": items.0}),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn subresource_target(target: &ResourcePath) -> Target {
    match target.subresource.as_deref() {
        Some("status") => Target::Status,
        _ => Target::Main,
    }
}

fn parse_target(group: &str, version: &str, rest: &[&str]) -> Result<ResourcePath, ApiError> {
    let mut rest = rest;
    let mut namespace = None;
    // `/api/v1/namespaces/<name>/status` is the namespace's own subresource.
    let namespace_subresource =
        group.is_empty() && rest.len() == 3 && matches!(rest[2], "status" | "finalize");
    if rest.len() >= 3 && rest[0] == "namespaces" && !namespace_subresource {
        namespace = Some(rest[1].to_owned());
        rest = &rest[2..];
    }
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return Err(ApiError::no_such_path()),
    };
    Ok(ResourcePath {
        group: group.to_owned(),
        version: version.to_owned(),
        namespace,
        plural: plural.to_owned(),
        name: name.map(percent_decode),
        subresource: subresource.map(str::to_owned),
    })
}

fn authenticated(shared: &Shared, req: &hyper::Request<Incoming>, peer: Peer) -> bool {
    let options = &shared.options;
    if options.token.is_none() && !options.client_certificates {
        return true;
    }
    if options.client_certificates && peer.client_cert {
        return true;
    }
    let Some(token) = &options.token else {
        return false;
    };
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == token)
}

async fn read_body(req: hyper::Request<Incoming>) -> Result<Bytes, ApiError> {
    // Past the limit the rest is read and dropped (up to a bound), so that the client,
    // still sending, gets the 413 rather than a broken pipe.
    const DRAIN: usize = 16 * 1024 * 1024;
    let mut body = req.into_body();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= MAX_BODY {
                kept.extend_from_slice(&data);
            } else if seen > MAX_BODY + DRAIN {
                break;
            }
        }
    }
    if seen > MAX_BODY {
        return Err(ApiError::entity_too_large(MAX_BODY));
    }
    Ok(Bytes::from(kept))
}

fn parse_body(ty: &ResourceType, body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    match content_type {
        "" | "application/json" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}"))),
        "application/yaml" => parse_yaml(body),
        "application/vnd.kubernetes.protobuf" if !ty.is_custom() => {
            proto::decode(body).map_err(|e| {
                ApiError::bad_request(format!("the protobuf body cannot be decoded: {e}"))
            })
        }
        other if ty.is_custom() => Err(ApiError::unsupported_media_type(
            other,
            &["application/json", "application/yaml"],
        )),
        other => Err(ApiError::unsupported_media_type(
            other,
            &[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
            ],
        )),
    }
}

fn parse_yaml(body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not UTF-8: {e}")))?;
    yaml_serde::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("the body is not YAML: {e}")))
}

fn deleted_answer(ty: &ResourceType, version: &str, deleted: Deleted) -> Value {
    match deleted {
        Deleted::Pending(obj) => render_stored(&obj, ty, version),
        Deleted::Gone(obj) if ty.delete_returns_object() => render_stored(&obj, ty, version),
        Deleted::Gone(obj) => {
            let mut details = json!({
                "name": obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
                "kind": ty.plural,
                "uid": obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
            });
            if !ty.group.is_empty() {
                details["group"] = Value::from(ty.group.as_str());
            }
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                   "details": details})
        }
    }
}

fn patch(
    shared: &Shared,
    ty: &ResourceType,
    target: &ResourcePath,
    query: &HashMap<String, String>,
    content_type: &str,
    body: &[u8],
    dry_run: bool,
) -> Result<(Value, bool), ApiError> {
    const CUSTOM_PATCHES: [&str; 3] = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    const ALL_PATCHES: [&str; 4] = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ];
    let accepted: &[&str] = if ty.is_custom() {
        &CUSTOM_PATCHES
    } else {
        &ALL_PATCHES
    };
    if !accepted.contains(&content_type) {
        return Err(ApiError::unsupported_media_type(content_type, accepted));
    }
    let apply = content_type == "application/apply-patch+yaml";
    let patch_doc: Value = if apply {
        parse_yaml(body)?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the patch is not JSON: {e}")))?
    };
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let version = target.version.as_str();
    let write_target = subresource_target(target);
    if apply {
        if query.get("fieldManager").is_none_or(String::is_empty) {
            return Err(ApiError::new(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is \
                 required for apply patch",
            ));
        }
        for field in ["apiVersion", "kind"] {
            if patch_doc
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(ApiError::bad_request(format!(
                    "invalid object type: {field} is missing from the applied configuration"
                )));
            }
        }
        match patch_doc.pointer("/metadata/name").and_then(Value::as_str) {
            Some(n) if n == name => {}
            _ => {
                return Err(ApiError::bad_request(
                    "metadata.name: the name of the applied configuration must match the name on \
                     the URL",
                ));
            }
        }
    }
    shared.write(|store: &mut Store| {
        let Some(current) = store.get(ty, &ns, &name).cloned() else {
            if apply && write_target == Target::Main {
                let opts = WriteOptions {
                    dry_run,
                    create_missing: true,
                    is_put: false,
                };
                return store.update(ty, version, &ns, &name, patch_doc, Target::Main, opts);
            }
            return Err(ApiError::not_found(ty, &name));
        };
        let mut patched = render_stored(&current, ty, version);
        match content_type {
            "application/merge-patch+json" | "application/apply-patch+yaml" => {
                patch::merge(&mut patched, &patch_doc);
            }
            "application/strategic-merge-patch+json" => patch::strategic(&mut patched, &patch_doc),
            _ => patch::json_patch(&mut patched, &patch_doc).map_err(|e| match e {
                JsonPatchError::Malformed(m) => ApiError::bad_request(m),
                JsonPatchError::Failed(m) => ApiError::new(422, "Invalid", m),
            })?,
        }
        let opts = WriteOptions {
            dry_run,
            ..Default::default()
        };
        store.update(ty, version, &ns, &name, patched, write_target, opts)
    })
}

/// The continue token of a page: where the next starts and at which resource version.
fn encode_continue(rv: u64, last: &ObjKey) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{}/{}\u{0}", last.namespace, last.name)});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String, String), ApiError> {
    let bad = |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|e| bad(&e.to_string()))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| bad(&e.to_string()))?;
    if value.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
        return Err(bad(
            "incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        ));
    }
    let rv = value
        .get("rv")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("no resource version"))?;
    let start = value
        .get("start")
        .and_then(Value::as_str)
        .and_then(|s| s.strip_suffix('\u{0}'))
        .ok_or_else(|| bad("no start key"))?;
    let (ns, name) = start.split_once('/').ok_or_else(|| bad("bad start key"))?;
    Ok((rv, ns.to_owned(), name.to_owned()))
}

fn parse_rv(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {text:?}")))
}

fn list(
    shared: &Shared,
    ty: &ResourceType,
    version: &str,
    namespace: Option<String>,
    query: &HashMap<String, String>,
    as_: As,
) -> Result<Response<Body>, ApiError> {
    let label_sel = query.get("labelSelector").map(String::as_str);
    let field_sel = query.get("fieldSelector").map(String::as_str);
    let filter = Filter::new(ty, namespace, label_sel, field_sel)?;
    let rv = query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let rv_match = query
        .get("resourceVersionMatch")
        .map(String::as_str)
        .unwrap_or("");
    let token = query.get("continue").map(String::as_str).unwrap_or("");
    let mut limit: usize = match query.get("limit") {
        Some(l) if !l.is_empty() => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?,
        _ => 0,
    };
    if !rv_match.is_empty() && rv.is_empty() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless \
             resourceVersion is provided",
        ));
    }
    if !token.is_empty() && !rv.is_empty() && rv != "0" {
        return Err(ApiError::new(
            422,
            "Invalid",
            "resourceVersion: Forbidden: specifying resource version is not allowed when using \
             continue",
        ));
    }
    let store = shared.store();
    let (at, start_after) = if !token.is_empty() {
        let (at, ns, name) = decode_continue(token)?;
        if at < store.compacted() {
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. \
                 You can start a new list without the continue parameter, or use the continue \
                 token in this response to retrieve the remainder of the results. Continuing \
                 with the provided token results in an inconsistent list - objects that were \
                 created, modified, or deleted between the time the first chunk was returned \
                 and now may show up in the list.",
            ));
        }
        (Some(at), Some((ns, name)))
    } else {
        match (rv, rv_match) {
            ("", _) => (None, None),
            ("0", _) => {
                // Served from the watch cache: the limit is ignored.
                limit = 0;
                (None, None)
            }
            (n, "Exact") => (Some(parse_rv(n)?), None),
            (n, "NotOlderThan") => {
                let n = parse_rv(n)?;
                if n > store.rv() {
                    return Err(ApiError::too_large_rv(n, store.rv()));
                }
                (None, None)
            }
            (n, "") if limit > 0 => (Some(parse_rv(n)?), None),
            (n, "") => {
                let n = parse_rv(n)?;
                if n > store.rv() {
                    return Err(ApiError::too_large_rv(n, store.rv()));
                }
                (None, None)
            }
            (_, other) => {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "resourceVersionMatch: Unsupported value: \"{other}\": supported values: \
                         \"Exact\", \"NotOlderThan\", \"\""
                    ),
                ));
            }
        }
    };
    let list_rv = at.unwrap_or(store.rv());
    let mut items = store.select(ty, &filter, at)?;
    drop(store);
    if let Some((ns, name)) = start_after {
        items.retain(|(k, _)| {
            (k.namespace.as_str(), k.name.as_str()) > (ns.as_str(), name.as_str())
        });
    }
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if limit > 0 && items.len() > limit {
        let remaining = items.len() - limit;
        items.truncate(limit);
        if let Some((last, _)) = items.last() {
            meta["continue"] = Value::from(encode_continue(list_rv, last));
        }
        if label_sel.is_none_or(str::is_empty) && field_sel.is_none_or(str::is_empty) {
            meta["remainingItemCount"] = Value::from(remaining);
        }
    }
    let objects: Vec<Value> = items
        .into_iter()
        .map(|(_, o)| render_stored(&o, ty, version))
        .collect();
    let out = match as_ {
        As::Object => {
            let items: Vec<Value> = objects
                .into_iter()
                .map(|mut o| {
                    // Lists of built-in kinds carry no apiVersion and kind per item.
                    if !ty.is_custom()
                        && let Some(map) = o.as_object_mut()
                    {
                        map.remove("apiVersion");
                        map.remove("kind");
                    }
                    o
                })
                .collect();
            json!({"kind": ty.list_kind, "apiVersion": ty.api_version(version), "metadata": meta,
                   "items": items})
        }
        As::Table(tv) => table::table(ty, version, tv, &objects, meta),
        As::Metadata(mv) => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": format!("meta.k8s.io/{mv}"),
            "metadata": meta,
            "items": objects.iter().map(|o| table::partial_metadata(o, mv)).collect::<Vec<_>>(),
        }),
    };
    Ok(json_response(200, &out))
}

/// One watch event line.
fn event(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn watch(
    shared: &Arc<Shared>,
    ty: &ResourceType,
    version: &str,
    namespace: Option<String>,
    query: &HashMap<String, String>,
    as_: As,
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::new(
        ty,
        namespace,
        query.get("labelSelector").map(String::as_str),
        query.get("fieldSelector").map(String::as_str),
    )?;
    let rv = query.get("resourceVersion").cloned().unwrap_or_default();
    let rv_match = query
        .get("resourceVersionMatch")
        .cloned()
        .unwrap_or_default();
    let send_initial = match query.get("sendInitialEvents").map(String::as_str) {
        None | Some("") => None,
        Some("true" | "1") => Some(true),
        Some(_) => Some(false),
    };
    let bookmarks = is_true(query.get("allowWatchBookmarks"));
    if let Some(send) = send_initial {
        if rv_match != "NotOlderThan" {
            return Err(ApiError::new(
                422,
                "Invalid",
                "resourceVersionMatch: Forbidden: sendInitialEvents requires setting \
                 resourceVersionMatch to NotOlderThan",
            ));
        }
        if send && !bookmarks {
            return Err(ApiError::new(
                422,
                "Invalid",
                "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting \
                 allowWatchBookmarks to true",
            ));
        }
    } else if !rv_match.is_empty() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless \
             sendInitialEvents is provided",
        ));
    }
    let timeout = match query.get("timeoutSeconds") {
        Some(t) if !t.is_empty() => {
            Some(Duration::from_secs(t.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid timeoutSeconds: {t:?}"))
            })?))
        }
        _ => None,
    };
    let render = {
        let ty = ty.clone();
        let version = version.to_owned();
        move |obj: &Value| -> Value {
            let obj = render_stored(obj, &ty, &version);
            match as_ {
                As::Object => obj,
                As::Table(tv) => {
                    let rv = rv_of(&obj);
                    table::table(&ty, &version, tv, &[obj], json!({"resourceVersion": rv}))
                }
                As::Metadata(mv) => table::partial_metadata(&obj, mv),
            }
        }
    };
    let bookmark = {
        let kind = ty.kind.clone();
        let api_version = ty.api_version(version);
        move |rv: u64, end_of_initial: bool| -> Bytes {
            let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
            if end_of_initial {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            event(
                "BOOKMARK",
                &json!({"kind": kind, "apiVersion": api_version, "metadata": meta}),
            )
        }
    };

    // What to send first, and from which resource version to follow changes.
    let mut first: Vec<Bytes> = Vec::new();
    let (start, epoch, finished) = {
        let store = shared.store();
        let initial = |first: &mut Vec<Bytes>| -> Result<(), ApiError> {
            for (_, obj) in store.select(ty, &filter, None)? {
                first.push(event("ADDED", &render(&obj)));
            }
            Ok(())
        };
        match (send_initial, rv.as_str()) {
            (Some(true), _) => {
                initial(&mut first)?;
                first.push(bookmark(store.rv(), true));
                (store.rv(), store.epoch(), false)
            }
            (_, "" | "0") => {
                initial(&mut first)?;
                (store.rv(), store.epoch(), false)
            }
            (_, n) => {
                let n = parse_rv(n)?;
                match store.changes_after(n) {
                    Ok(_) => (n, store.epoch(), false),
                    Err(e) => {
                        first.push(event("ERROR", &e.to_status()));
                        (n, store.epoch(), true)
                    }
                }
            }
        }
    };

    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let shared = shared.clone();
    let ty = ty.clone();
    tokio::spawn(async move {
        let mut changes = shared.changes.subscribe();
        for line in first {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        if finished {
            return;
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval(shared.options.bookmark_interval);
        ticker.tick().await;
        let mut last = start;
        loop {
            let mut lines = Vec::new();
            let mut done = false;
            {
                let store = shared.store();
                if store.epoch() != epoch
                    || !store
                        .types()
                        .iter()
                        .any(|t| t.group == ty.group && t.plural == ty.plural)
                {
                    break;
                }
                match store.changes_after(last) {
                    Err(e) => {
                        lines.push(event("ERROR", &e.to_status()));
                        done = true;
                    }
                    Ok(changes) => {
                        for change in changes {
                            if !change.key.is_of(&ty) {
                                continue;
                            }
                            let now = change.kind != ChangeKind::Deleted
                                && filter.matches(&ty, &change.object);
                            let before =
                                change.prev.as_ref().is_some_and(|p| filter.matches(&ty, p));
                            let kind = match (change.kind, before, now) {
                                (ChangeKind::Deleted, true, _) => "DELETED",
                                (ChangeKind::Added, _, true) => "ADDED",
                                (ChangeKind::Modified, true, true) => "MODIFIED",
                                (ChangeKind::Modified, false, true) => "ADDED",
                                (ChangeKind::Modified, true, false) => "DELETED",
                                _ => continue,
                            };
                            lines.push(event(kind, &render(&change.object)));
                        }
                        last = last.max(store.rv());
                    }
                }
            }
            for line in lines {
                if tx.send(line).await.is_err() {
                    return;
                }
            }
            if done {
                return;
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(bookmark(last, false)).await.is_err() {
                        return;
                    }
                }
                _ = sleep_until(deadline) => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, Infallible>(Frame::data(line)), rx))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

// ---------------------------------------------------------------------------------------
// Discovery and other non-resource paths

fn non_resource(
    shared: &Shared,
    method: &Method,
    path: &str,
    accept: &str,
) -> Result<Response<Body>, ApiError> {
    if *method != Method::GET && *method != Method::HEAD {
        return Err(ApiError::method_not_allowed());
    }
    let store = shared.store();
    let body = match path.trim_end_matches('/') {
        "/version" => json!({
            "major": "1",
            "minor": "32",
            "gitVersion": "v1.32.0",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2024-12-11T00:00:00Z",
            "goVersion": "go1.23.3",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
        "/api" => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}
            ],
        }),
        "/apis" => {
            let groups: Vec<Value> = group_names(&store)
                .iter()
                .filter(|g| !g.is_empty())
                .map(|g| api_group(&store, g))
                .collect();
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        }
        "/openapi/v2" => {
            if accept.contains("protobuf") {
                return Ok(full(
                    StatusCode::OK,
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    openapi_v2_protobuf(),
                ));
            }
            json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
                   "paths": {}, "definitions": {}})
        }
        "/healthz" | "/livez" | "/readyz" => {
            return Ok(full(StatusCode::OK, "text/plain; charset=utf-8", "ok"));
        }
        _ => return Err(ApiError::no_such_path()),
    };
    Ok(json_response(200, &body))
}

/// A minimal OpenAPI v2 document as gnostic's protobuf `openapi_v2.Document`: swagger "2.0",
/// an info and empty paths. kubectl's validation skips kinds the document does not define.
fn openapi_v2_protobuf() -> Vec<u8> {
    fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(tag << 3) | 2];
        let mut len = bytes.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend_from_slice(bytes);
        out
    }
    let info = [field(1, b"Kubernetes"), field(2, b"v1.32.0")].concat();
    [field(1, b"2.0"), field(2, &info), field(8, &[])].concat()
}

/// Groups in discovery order: core, the built-in groups, then CRD groups by name.
fn group_names(store: &Store) -> Vec<String> {
    let mut builtin: Vec<String> = Vec::new();
    let mut custom: Vec<String> = Vec::new();
    for t in store.types() {
        let list = if t.is_custom() {
            &mut custom
        } else {
            &mut builtin
        };
        if !list.contains(&t.group) {
            list.push(t.group.clone());
        }
    }
    custom.retain(|g| !builtin.contains(g));
    custom.sort();
    builtin.extend(custom);
    builtin
}

fn group_versions(store: &Store, group: &str) -> Vec<String> {
    let mut versions: Vec<String> = Vec::new();
    for t in store.types().iter().filter(|t| t.group == group) {
        for v in &t.versions {
            if !versions.contains(v) {
                versions.push(v.clone());
            }
        }
    }
    versions.sort_by(|a, b| types::version_priority(a, b));
    versions
}

fn api_group(store: &Store, group: &str) -> Value {
    let versions: Vec<Value> = group_versions(store, group)
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

fn discovery_group(
    shared: &Shared,
    method: &Method,
    group: &str,
) -> Result<Response<Body>, ApiError> {
    if *method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let store = shared.store();
    if group_versions(&store, group).is_empty() {
        return Err(ApiError::no_such_path());
    }
    let mut body = api_group(&store, group);
    body["kind"] = Value::from("APIGroup");
    body["apiVersion"] = Value::from("v1");
    Ok(json_response(200, &body))
}

fn discovery_resources(
    shared: &Shared,
    method: &Method,
    group: &str,
    version: &str,
) -> Result<Response<Body>, ApiError> {
    if *method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let store = shared.store();
    let mut resources = Vec::new();
    for t in store
        .types()
        .iter()
        .filter(|t| t.group == group && t.serves(version))
    {
        let mut r = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        if t.status {
            resources.push(json!({
                "name": format!("{}/status", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return Err(ApiError::no_such_path());
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Ok(json_response(
        200,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                "resources": resources}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query(Some("&watch=true&labelSelector=a%3Db%2Cc+in+(x)&limit=5"));
        assert_eq!(q.get("watch").map(String::as_str), Some("true"));
        assert_eq!(
            q.get("labelSelector").map(String::as_str),
            Some("a=b,c in (x)")
        );
        assert_eq!(q.get("limit").map(String::as_str), Some("5"));
    }

    #[test]
    fn continue_tokens_round_trip() {
        let key = ObjKey {
            group: String::new(),
            plural: "secrets".into(),
            namespace: "ns".into(),
            name: "a".into(),
        };
        let token = encode_continue(42, &key);
        assert_eq!(
            decode_continue(&token).ok(),
            Some((42, "ns".into(), "a".into()))
        );
        assert_eq!(decode_continue("!!").map_err(|e| e.code), Err(400));
    }

    #[test]
    fn paths() {
        let t = parse_target("", "v1", &["namespaces", "ns", "secrets", "s"]).expect("parses");
        assert_eq!(
            (t.namespace.as_deref(), t.plural.as_str(), t.name.as_deref()),
            (Some("ns"), "secrets", Some("s"))
        );
        let t = parse_target("", "v1", &["namespaces", "ns", "status"]).expect("parses");
        assert_eq!(
            (t.namespace, t.plural.as_str(), t.subresource.as_deref()),
            (None, "namespaces", Some("status"))
        );
        let t = parse_target("g.io", "v1", &["things", "x", "status"]).expect("parses");
        assert_eq!(
            (
                t.plural.as_str(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("things", Some("x"), Some("status"))
        );
    }
}
