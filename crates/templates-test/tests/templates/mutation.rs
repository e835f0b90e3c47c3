//! The tag → digest Assigns (`provider-templates/mutation/assign.yaml`) applied the way
//! Gatekeeper's mutation system applies `externalData` (gatekeeper-protocol §10), against the
//! real `/mutate` of a running vouch:
//!
//! * every Assign whose `applyTo` and `match` select the object leaves a placeholder at each
//!   value of its `location` (`[name:*]` walks every list element);
//! * the keys are collected per provider, de-duplicated, and sent in ONE request per provider;
//! * a response with `systemError` or `idempotent: false` fails every placeholder; a
//!   placeholder whose item has an `error`, is missing, or whose value is not a string fails
//!   alone; a failed placeholder follows its `failurePolicy` (`Fail` rejects the object,
//!   `Ignore` keeps the value, `UseDefault` writes `default`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::gatekeeper::{self, ProviderSpec};
use crate::live::{Https, Live};
use crate::suite;
use crate::template::{ExternalData as _, Template};

/// Per provider: the items by key (a string value, or why the placeholder fails), or why the
/// whole response fails.
type Answer = Result<BTreeMap<String, Result<String, String>>, String>;

/// The keys sent, per request: `(provider, keys)`.
type Requests = Vec<(String, Vec<String>)>;

/// A value to be replaced: the pointer into the object, the key sent, the policy.
struct Placeholder {
    pointer: String,
    key: String,
    provider: String,
    failure_policy: String,
    default: Option<String>,
}

/// What Gatekeeper's mutation did to `object`: the mutated object, or the rejection text.
fn mutate(
    assigns: &[Value],
    object: &Value,
    external: &Https,
    requests: &mut Requests,
) -> anyhow::Result<Result<Value, String>> {
    let mut placeholders = Vec::new();
    let mut names: Vec<&Value> = assigns.iter().filter(|a| selects(a, object)).collect();
    // Mutators apply in alphabetical order of their names.
    names.sort_by_key(|a| {
        a["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    });
    for assign in names {
        let location = assign["spec"]["location"]
            .as_str()
            .context("Assign without location")?;
        let ext = &assign["spec"]["parameters"]["assign"]["externalData"];
        let provider = ext["provider"]
            .as_str()
            .context("externalData without provider")?;
        if ext["dataSource"].as_str().unwrap_or("ValueAtLocation") != "ValueAtLocation" {
            bail!("only dataSource ValueAtLocation is simulated");
        }
        for (pointer, value) in locate(object, location)? {
            let Some(key) = value.as_str() else { continue };
            placeholders.push(Placeholder {
                pointer,
                key: key.to_owned(),
                provider: provider.to_owned(),
                failure_policy: ext["failurePolicy"].as_str().unwrap_or("Fail").to_owned(),
                default: ext["default"].as_str().map(str::to_owned),
            });
        }
    }

    // One request per provider, keys de-duplicated.
    let mut keys: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for p in &placeholders {
        keys.entry(p.provider.as_str())
            .or_default()
            .insert(p.key.as_str());
    }
    let mut answers: BTreeMap<String, Answer> = BTreeMap::new();
    for (provider, keys) in keys {
        let keys: Vec<String> = keys.into_iter().map(str::to_owned).collect();
        requests.push((provider.to_owned(), keys.clone()));
        let answer = match external.post(provider, &gatekeeper::provider_request(&keys)) {
            Err(e) => Err(e),
            Ok((_, body)) => match serde_json::from_slice::<Value>(&body) {
                Err(e) => Err(format!("failed to unmarshal external data response: {e}")),
                Ok(body) => items(&body["response"]),
            },
        };
        answers.insert(provider.to_owned(), answer);
    }

    let mut mutated = object.clone();
    for p in &placeholders {
        let outcome = match &answers[&p.provider] {
            Err(e) => Err(e.clone()),
            Ok(items) => items
                .get(&p.key)
                .cloned()
                .unwrap_or_else(|| Err("failed to find external data item in response".to_owned())),
        };
        let value = match (outcome, p.failure_policy.as_str()) {
            (Ok(value), _) => value,
            (Err(e), "Fail") => return Ok(Err(format!("failed to mutate {}: {e}", p.key))),
            (Err(_), "Ignore") => continue,
            (Err(_), "UseDefault") => p.default.clone().context("UseDefault without default")?,
            (Err(_), other) => bail!("unknown failurePolicy {other}"),
        };
        *mutated
            .pointer_mut(&p.pointer)
            .context("location vanished")? = Value::String(value);
    }
    Ok(Ok(mutated))
}

/// The items of a response by key: a string value, or why the placeholder fails.
fn items(response: &Value) -> Answer {
    if let Some(e) = response["systemError"].as_str().filter(|e| !e.is_empty()) {
        return Err(format!("system error: {e}"));
    }
    if response["idempotent"] != true {
        return Err("non-idempotent response".to_owned());
    }
    let mut items = BTreeMap::new();
    for item in response["items"].as_array().into_iter().flatten() {
        let key = item["key"].as_str().unwrap_or_default().to_owned();
        let outcome = match (
            item["error"].as_str().filter(|e| !e.is_empty()),
            item["value"].as_str(),
        ) {
            (Some(e), _) => Err(e.to_owned()),
            (None, Some(v)) => Ok(v.to_owned()),
            (None, None) => Err("the value is not a string".to_owned()),
        };
        items.insert(key, outcome);
    }
    Ok(items)
}

/// Whether an Assign's `applyTo` and `match` select `object`.
fn selects(assign: &Value, object: &Value) -> bool {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or_default();
    let applies = assign["spec"]["applyTo"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|a| {
            let has = |field: &str, wanted: &str| {
                a[field]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|v| v.as_str() == Some(wanted)))
            };
            has("groups", group) && has("versions", version) && has("kinds", kind)
        });
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let excluded = assign["spec"]["match"]["excludedNamespaces"]
        .as_array()
        .is_some_and(|l| l.iter().any(|v| v.as_str() == Some(namespace)));
    applies && !excluded
}

/// The JSON pointers and values at a mutation `location` such as
/// `spec.template.spec.containers[name:*].image`.
fn locate(object: &Value, location: &str) -> anyhow::Result<Vec<(String, Value)>> {
    let mut found = vec![(String::new(), object.clone())];
    for segment in location.split('.') {
        let mut next = Vec::new();
        let (field, glob) = match segment.split_once('[') {
            Some((field, rest)) => {
                let glob = rest.strip_suffix(']').context("unclosed [")?;
                if glob != "name:*" {
                    bail!("only [name:*] list selectors are simulated");
                }
                (field, true)
            }
            None => (segment, false),
        };
        for (pointer, value) in found {
            let Some(child) = value.get(field) else {
                continue;
            };
            let pointer = format!("{pointer}/{field}");
            if glob {
                for (i, element) in child.as_array().into_iter().flatten().enumerate() {
                    next.push((format!("{pointer}/{i}"), element.clone()));
                }
            } else {
                next.push((pointer, child.clone()));
            }
        }
        found = next;
    }
    Ok(found)
}

struct Fixture {
    live: Live,
    providers: BTreeMap<String, ProviderSpec>,
    assigns: Vec<Value>,
}

impl Fixture {
    fn start() -> Fixture {
        let live = Live::start().expect("live environment");
        let providers = suite::providers().expect("providers.yaml");
        let assigns =
            gatekeeper::load_yaml_documents(&suite::templates_dir().join("mutation/assign.yaml"))
                .expect("assign.yaml");
        Fixture {
            live,
            providers,
            assigns,
        }
    }

    fn image(&self, repo_tag_or_digest: &str) -> String {
        format!(
            "{}/vouch-test/{repo_tag_or_digest}",
            self.live.vars["REGISTRY"]
        )
    }

    fn digest(&self, name: &str) -> &str {
        &self.live.vars[name]
    }

    fn mutate(&self, assigns: &[Value], object: &Value) -> (Result<Value, String>, Requests) {
        let external = self.live.external_data(&self.providers).expect("client");
        let mut requests = Vec::new();
        let result = mutate(assigns, object, &external, &mut requests).expect("simulation");
        (result, requests)
    }
}

fn pod(
    namespace: &str,
    containers: &[(&str, &str)],
    init: &[(&str, &str)],
    ephemeral: &[(&str, &str)],
) -> Value {
    let list = |l: &[(&str, &str)]| -> Vec<Value> {
        l.iter()
            .map(|(n, i)| json!({"name": n, "image": i}))
            .collect()
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": {"containers": list(containers), "initContainers": list(init), "ephemeralContainers": list(ephemeral)},
    })
}

#[test]
fn assigns_point_every_container_list_at_the_mutation_provider() {
    let _record =
        suite::Record::new("mutation-assigns_point_every_container_list_at_the_mutation_provider");
    let assigns =
        gatekeeper::load_yaml_documents(&suite::templates_dir().join("mutation/assign.yaml"))
            .unwrap();
    let providers = suite::providers().unwrap();
    let mut locations = BTreeSet::new();
    for a in &assigns {
        assert_eq!(a["kind"], "Assign");
        assert_eq!(a["apiVersion"], "mutations.gatekeeper.sh/v1");
        let ext = &a["spec"]["parameters"]["assign"]["externalData"];
        let provider = ext["provider"].as_str().unwrap();
        assert!(
            providers.contains_key(provider),
            "{provider} is not in providers.yaml"
        );
        assert_eq!(
            providers[provider].path().unwrap(),
            "/ratify/gatekeeper/v1/mutate"
        );
        assert!(["Fail", "Ignore", "UseDefault"].contains(&ext["failurePolicy"].as_str().unwrap()));
        locations.insert(a["spec"]["location"].as_str().unwrap().to_owned());
    }
    for prefix in [
        "spec.",
        "spec.template.spec.",
        "spec.jobTemplate.spec.template.spec.",
    ] {
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            assert!(
                locations.contains(&format!("{prefix}{list}[name:*].image")),
                "{prefix}{list}"
            );
        }
    }
}

#[test]
fn tags_become_the_digests_vouch_resolves() {
    let _record = suite::Record::new("mutation-tags_become_the_digests_vouch_resolves");
    let f = Fixture::start();
    let signed_digest = f.image(&format!("signed@{}", f.digest("DIGEST_SIGNED")));
    let tampered_digest = f.image(&format!("tampered@{}", f.digest("DIGEST_TAMPERED")));
    let object = pod(
        "default",
        &[
            ("app", &f.image("signed:v1")),
            ("again", &f.image("signed:v1")),
        ],
        &[("init", &f.image("unsigned:v1"))],
        &[("debug", &tampered_digest)],
    );
    let (result, requests) = f.mutate(&f.assigns, &object);
    let mutated = result.expect("admitted");
    let spec = &mutated["spec"];
    assert_eq!(spec["containers"][0]["image"], signed_digest.as_str());
    assert_eq!(spec["containers"][1]["image"], signed_digest.as_str());
    assert_eq!(
        spec["initContainers"][0]["image"],
        f.image(&format!("unsigned@{}", f.digest("DIGEST_UNSIGNED")))
            .as_str()
    );
    // A digest reference is returned unchanged.
    assert_eq!(
        spec["ephemeralContainers"][0]["image"],
        tampered_digest.as_str()
    );
    // One request to the mutation provider, keys de-duplicated.
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].0, "ratify-mutation-provider");
    assert_eq!(requests[0].1.len(), 3, "{requests:?}");

    // The mutated Pod's keys are digests: the verification template passes the signed image
    // and still flags the unsigned one.
    let template =
        Template::load(&suite::templates_dir().join("verification/template.yaml")).unwrap();
    let external = std::sync::Arc::new(f.live.external_data(&f.providers).unwrap());
    let outcome = template
        .evaluate(
            &gatekeeper::review_input(&mutated, &json!({})),
            external,
            true,
        )
        .unwrap();
    assert_eq!(outcome.calls.len(), 1);
    assert!(
        outcome.calls[0].iter().all(|k| k.contains("@sha256:")),
        "{:?}",
        outcome.calls
    );
    assert_eq!(outcome.messages.len(), 2, "{:#?}", outcome.messages);
    assert!(
        outcome
            .messages
            .iter()
            .any(|m| m.contains("(container init)") && m.contains("no referrers found"))
    );
    assert!(
        outcome
            .messages
            .iter()
            .any(|m| m.contains("(container debug)"))
    );
}

#[test]
fn workload_templates_and_cronjobs_are_mutated() {
    let _record = suite::Record::new("mutation-workload_templates_and_cronjobs_are_mutated");
    let f = Fixture::start();
    let signed_digest = f.image(&format!("signed@{}", f.digest("DIGEST_SIGNED")));
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": f.image("signed:v1")}]}}},
    });
    let (result, _) = f.mutate(&f.assigns, &deployment);
    assert_eq!(
        result.unwrap()["spec"]["template"]["spec"]["containers"][0]["image"],
        signed_digest.as_str()
    );

    let cronjob = json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "default"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "initContainers": [{"name": "prep", "image": f.image("signed:v1")}],
            "containers": [{"name": "task", "image": f.image("signed:v2")}],
        }}}}},
    });
    let (result, requests) = f.mutate(&f.assigns, &cronjob);
    let spec = result.unwrap()["spec"]["jobTemplate"]["spec"]["template"]["spec"].clone();
    assert_eq!(spec["initContainers"][0]["image"], signed_digest.as_str());
    assert_eq!(
        spec["containers"][0]["image"],
        f.image(&format!("signed@{}", f.digest("DIGEST_SIGNED_V2")))
            .as_str()
    );
    assert_eq!(requests.len(), 1);
}

#[test]
fn unresolvable_tags_follow_the_failure_policy() {
    let _record = suite::Record::new("mutation-unresolvable_tags_follow_the_failure_policy");
    let f = Fixture::start();
    let missing = f.image("signed:no-such-tag");
    let object = pod(
        "default",
        &[("app", &missing), ("ok", &f.image("signed:v1"))],
        &[],
        &[],
    );

    // The shipped policy, Ignore: the image stays as written (validation still checks it).
    let (result, _) = f.mutate(&f.assigns, &object);
    let mutated = result.expect("admitted");
    assert_eq!(mutated["spec"]["containers"][0]["image"], missing.as_str());
    assert!(
        mutated["spec"]["containers"][1]["image"]
            .as_str()
            .unwrap()
            .contains("@sha256:")
    );

    // Fail: the object is rejected.
    let with_policy = |policy: &str| -> Vec<Value> {
        f.assigns
            .iter()
            .cloned()
            .map(|mut a| {
                a["spec"]["parameters"]["assign"]["externalData"]["failurePolicy"] = json!(policy);
                a["spec"]["parameters"]["assign"]["externalData"]["default"] =
                    json!("registry.invalid/blocked@sha256:0");
                a
            })
            .collect()
    };
    let (result, _) = f.mutate(&with_policy("Fail"), &object);
    let rejection = result.expect_err("rejected");
    assert!(
        rejection.contains("GET_SUBJECT_DESCRIPTOR_FAILURE"),
        "{rejection}"
    );

    // UseDefault: the default is written.
    let (result, _) = f.mutate(&with_policy("UseDefault"), &object);
    assert_eq!(
        result.unwrap()["spec"]["containers"][0]["image"],
        "registry.invalid/blocked@sha256:0"
    );
}

#[test]
fn excluded_namespaces_are_not_mutated() {
    let _record = suite::Record::new("mutation-excluded_namespaces_are_not_mutated");
    let f = Fixture::start();
    let object = pod("kube-system", &[("app", &f.image("signed:v1"))], &[], &[]);
    let (result, requests) = f.mutate(&f.assigns, &object);
    assert_eq!(result.unwrap(), object);
    assert!(requests.is_empty());
}

#[test]
fn mutation_provider_down_keeps_images_with_ignore() {
    let _record = suite::Record::new("mutation-mutation_provider_down_keeps_images_with_ignore");
    let f = Fixture::start();
    let object = pod("default", &[("app", &f.image("signed:v1"))], &[], &[]);
    let down = f.live.provider_down(&f.providers).unwrap();
    let mut requests = Vec::new();
    let result = mutate(&f.assigns, &object, &down, &mut requests).unwrap();
    assert_eq!(result.unwrap(), object);
    // The verification side of the same outage is a system_error (ExternalData::call).
    let answer = down.call("ratify-provider", &[f.image("signed:v1")]);
    assert_eq!(answer["status_code"], 500);
    assert_eq!(answer["responses"], Value::Null);
}
