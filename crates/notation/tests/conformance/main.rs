//! Conformance suite: runs every row of `cases.toml` (a data table) against the Notation
//! test vectors in `shared/vectors/notation`, reports every failure by name, lists the
//! skipped vectors with their reasons, and ends with `conformance: N passed, M failed`.
//!
//! Run with output: `make conformance` (or `cargo test -p vouch-notation --test conformance
//! -- --nocapture`). Outcomes are compared as error kinds, never as message text.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use vouch_notation::internals;
use vouch_notation::{
    ArtifactReference, Certificate, Descriptor, DistinguishedName, MEDIA_TYPE_COSE, MEDIA_TYPE_JWS,
    OfflineRevocationChecker, Outcome, PrefetchedRevocationChecker, RevocationChecker,
    RevocationData, RevocationError, RevocationRequestKind, StoreType, TimestampToken,
    TrustPolicyDocument, TrustStores, TrustedIdentity, VerificationFailure, Verifier,
    VerifyOptions, certificates_from_pem_or_der,
};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/vectors/notation"
);
const TABLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/cases.toml");
const LAYOUTS: &str = "notation/test/e2e/testdata/registry/oci_layout";
const NOTARY_SIGNATURE: &str = "application/vnd.cncf.notary.signature";

// ---- the table -------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    now: String,
    targets: BTreeMap<String, TargetSpec>,
    storesets: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    policies: BTreeMap<String, PolicyTemplate>,
    case: Vec<Case>,
    skip: Vec<Skip>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct TargetSpec {
    media_type: String,
    digest: Option<String>,
    size: Option<u64>,
    repo: Option<String>,
    blob: Option<String>,
    algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyTemplate {
    json: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TargetRef {
    Named(String),
    Inline(TargetSpec),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Expect {
    One(String),
    ByLevel(BTreeMap<String, String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default = "verify_kind")]
    kind: String,
    pending: Option<String>,
    expect: Expect,
    // verify
    envelope: Option<String>,
    layout: Option<String>,
    signature: Option<String>,
    media_type: Option<String>,
    target: Option<TargetRef>,
    repo: Option<String>,
    storeset: Option<String>,
    stores: Option<BTreeMap<String, Vec<String>>>,
    policy: Option<String>,
    policy_file: Option<String>,
    level: Option<String>,
    statement: Option<Value>,
    now: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
    revocation: Option<String>,
    inject_timestamp: Option<String>,
    // store / certs / chain / ca / leaf / identity
    store_type: Option<String>,
    files: Option<Vec<String>>,
    chain: Option<Vec<String>>,
    purpose: Option<String>,
    cert: Option<String>,
    below: Option<usize>,
    identities: Option<Vec<String>>,
    // timestamp / revocation
    token: Option<String>,
    tokens: Option<Vec<String>>,
    roots: Option<Vec<String>>,
    message: Option<String>,
    crls: Option<BTreeMap<String, String>>,
}

fn verify_kind() -> String {
    "verify".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Skip {
    vectors: Vec<String>,
    reason: String,
}

impl Case {
    /// Every vector path the row names (directories cover the files under them).
    fn paths(&self, table: &Table) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |p: &Option<String>| out.extend(p.iter().cloned());
        push(&self.envelope);
        push(&self.policy_file);
        push(&self.inject_timestamp);
        push(&self.cert);
        push(&self.token);
        push(&self.layout.as_ref().map(|l| format!("{LAYOUTS}/{l}/")));
        for list in [&self.files, &self.chain, &self.tokens, &self.roots]
            .into_iter()
            .flatten()
        {
            out.extend(list.iter().cloned());
        }
        if let Some(crls) = &self.crls {
            out.extend(crls.values().cloned());
        }
        for stores in self
            .storeset
            .iter()
            .filter_map(|s| table.storesets.get(s))
            .chain(self.stores.iter())
        {
            out.extend(stores.values().flatten().cloned());
        }
        let target = match &self.target {
            Some(TargetRef::Named(n)) => table.targets.get(n).cloned(),
            Some(TargetRef::Inline(t)) => Some(t.clone()),
            None => None,
        };
        out.extend(target.and_then(|t| t.blob));
        out
    }
}

// ---- helpers ---------------------------------------------------------------------------------

fn path(rel: &str) -> PathBuf {
    Path::new(VECTORS).join(rel)
}

fn read(rel: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path(rel)).map_err(|e| format!("cannot read vector {rel}: {e}"))
}

/// A file, or the regular files directly inside a directory (sub-directories are ignored, as
/// the spec says for trust stores), sorted.
fn expand(rel: &str) -> Result<Vec<PathBuf>, String> {
    let p = path(rel);
    if p.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
            .map_err(|e| format!("{rel}: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        Ok(files)
    } else {
        Ok(vec![p])
    }
}

/// The variant name of an error's `Debug` form: `IntegrityOverride { .. }` → `IntegrityOverride`.
fn variant<E: std::fmt::Debug>(e: &E) -> String {
    format!("{e:?}")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn parse_time(s: &str) -> Result<SystemTime, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("bad time {s}: {e}"))?;
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| format!("time before 1970: {s}"))?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

fn load_certs(rel: &str) -> Result<Vec<Certificate>, String> {
    let mut out = Vec::new();
    for file in expand(rel)? {
        let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        out.extend(
            certificates_from_pem_or_der(&bytes).map_err(|e| format!("{}: {e}", file.display()))?,
        );
    }
    Ok(out)
}

fn build_stores(table: &Table, case: &Case) -> Result<TrustStores, String> {
    let mut stores = TrustStores::new();
    let set = match &case.storeset {
        Some(name) => Some(
            table
                .storesets
                .get(name)
                .ok_or_else(|| format!("unknown storeset {name}"))?,
        ),
        None => None,
    };
    for (key, paths) in set.into_iter().chain(case.stores.iter()).flatten() {
        let (store_type, name) = key
            .split_once(':')
            .ok_or_else(|| format!("bad store key {key}"))?;
        let store_type: StoreType = store_type
            .parse()
            .map_err(|()| format!("bad store type in {key}"))?;
        for p in paths {
            stores
                .insert(store_type, name, load_certs(p)?)
                .map_err(|e| format!("store {key}: {e}"))?;
        }
    }
    Ok(stores)
}

fn policy_bytes(table: &Table, case: &Case, level: Option<&str>) -> Result<Vec<u8>, String> {
    if let Some(file) = &case.policy_file {
        return read(file);
    }
    let name = case.policy.as_ref().ok_or("no policy")?;
    let template = table
        .policies
        .get(name)
        .ok_or_else(|| format!("unknown policy {name}"))?;
    let mut doc: Value =
        serde_json::from_str(&template.json).map_err(|e| format!("policy {name}: {e}"))?;
    let statement = &mut doc["trustPolicies"][0];
    if let Some(Value::Object(patch)) = &case.statement {
        for (k, v) in patch {
            statement[k] = v.clone();
        }
    }
    if let Some(level) = level.or(case.level.as_deref()) {
        statement["signatureVerification"]["level"] = json!(level);
    }
    serde_json::to_vec(&doc).map_err(|e| e.to_string())
}

fn resolve_target(table: &Table, case: &Case) -> Result<(Descriptor, Option<String>), String> {
    let spec = match case.target.as_ref().ok_or("no target")? {
        TargetRef::Named(n) => table
            .targets
            .get(n)
            .cloned()
            .ok_or_else(|| format!("unknown target {n}"))?,
        TargetRef::Inline(t) => t.clone(),
    };
    let descriptor = match &spec.blob {
        Some(blob) => {
            let bytes = read(blob)?;
            let (alg, name) = match spec.algorithm.as_deref() {
                Some("sha384") => (&aws_lc_rs::digest::SHA384, "sha384"),
                Some("sha512") => (&aws_lc_rs::digest::SHA512, "sha512"),
                _ => (&aws_lc_rs::digest::SHA256, "sha256"),
            };
            let digest = hex::encode(aws_lc_rs::digest::digest(alg, &bytes));
            Descriptor::new(
                &spec.media_type,
                format!("{name}:{digest}"),
                bytes.len() as u64,
            )
        }
        None => Descriptor::new(
            &spec.media_type,
            spec.digest.clone().ok_or("target without digest")?,
            spec.size.ok_or("target without size")?,
        ),
    };
    Ok((descriptor, spec.repo))
}

fn media_type(name: Option<&str>) -> String {
    match name {
        None | Some("jws") => MEDIA_TYPE_JWS.to_owned(),
        Some("cose") => MEDIA_TYPE_COSE.to_owned(),
        Some(other) => other.to_owned(),
    }
}

/// A signature found in an OCI layout: envelope bytes, layer media type, signed subject.
struct LayoutSignature {
    manifest: String,
    envelope: Vec<u8>,
    media_type: String,
    subject: Descriptor,
}

/// Scans `blobs/sha256` of a layout for Notation signature manifests (both §9.1 forms).
fn layout_signatures(layout: &str) -> Result<Vec<LayoutSignature>, String> {
    let dir = format!("{LAYOUTS}/{layout}/blobs/sha256");
    let mut out = Vec::new();
    for file in expand(&dir)? {
        let bytes = std::fs::read(&file).map_err(|e| e.to_string())?;
        let Ok(manifest) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        let is_signature = manifest["artifactType"] == NOTARY_SIGNATURE
            || manifest["config"]["mediaType"] == NOTARY_SIGNATURE;
        if !is_signature || manifest.get("subject").is_none() {
            continue;
        }
        let layers = manifest["layers"].as_array().ok_or("no layers")?;
        if layers.len() != 1 {
            return Err(format!("{}: {} layers", file.display(), layers.len()));
        }
        let layer = &layers[0];
        let blob = layer["digest"].as_str().ok_or("layer without digest")?;
        let hex_digest = blob.strip_prefix("sha256:").ok_or("non-sha256 layer")?;
        let envelope = read(&format!("{dir}/{hex_digest}"))?;
        let actual = hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &envelope,
        ));
        if actual != hex_digest {
            return Err(format!("layer blob {blob} has digest sha256:{actual}"));
        }
        out.push(LayoutSignature {
            manifest: file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            envelope,
            media_type: layer["mediaType"].as_str().unwrap_or_default().to_owned(),
            subject: serde_json::from_value(manifest["subject"].clone())
                .map_err(|e| format!("subject: {e}"))?,
        });
    }
    Ok(out)
}

/// One envelope to verify: bytes, media type, signed target, repository from the target.
type Candidate = (Vec<u8>, String, Descriptor, Option<String>);

/// Puts a token into the JWS unprotected header (unsigned, so the signature stays valid).
fn inject_timestamp(envelope: &[u8], token: &[u8]) -> Result<Vec<u8>, String> {
    let mut jws: Value = serde_json::from_slice(envelope).map_err(|e| e.to_string())?;
    jws["header"]["io.cncf.notary.timestampSignature"] =
        json!(base64::engine::general_purpose::STANDARD.encode(token));
    serde_json::to_vec(&jws).map_err(|e| e.to_string())
}

/// Passes every chain: for rows whose TSA chain revocation would need the network.
struct AllGood;

impl RevocationChecker for AllGood {
    fn check_chain(
        &self,
        _: &[Certificate],
        _: Option<SystemTime>,
        _: SystemTime,
    ) -> Result<(), RevocationError> {
        Ok(())
    }
}

// ---- outcomes --------------------------------------------------------------------------------

fn describe(result: &Result<Outcome, VerificationFailure>) -> String {
    let warnings = |w: &[vouch_notation::CheckFailure]| {
        if w.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = w
                .iter()
                .map(|f| format!("{}/{:?}", f.check.as_str(), f.kind))
                .collect();
            format!(" warn={}", list.join(","))
        }
    };
    match result {
        Ok(o) if o.skipped => "skipped".to_owned(),
        Ok(o) => format!("pass{}", warnings(&o.warnings)),
        Err(f) => format!(
            "fail {}/{:?}{}",
            f.check.map_or("none", |c| c.as_str()),
            f.kind,
            warnings(&f.warnings)
        ),
    }
}

/// `expected` may use `*` for "any kind": `fail authenticTimestamp/*`.
fn matches(expected: &str, actual: &str) -> bool {
    let expected = expected.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(prefix) = expected.strip_suffix('*') {
        actual.starts_with(prefix)
    } else {
        expected == actual
    }
}

fn check(expected: &str, actual: &str) -> Result<(), String> {
    if std::env::var_os("CONFORMANCE_VERBOSE").is_some() {
        println!("    expected `{expected}`, got `{actual}`");
    }
    if matches(expected, actual) {
        Ok(())
    } else {
        Err(format!("expected `{expected}`, got `{actual}`"))
    }
}

// ---- the case kinds --------------------------------------------------------------------------

fn run_verify(
    table: &Table,
    case: &Case,
    level: Option<&str>,
    expected: &str,
) -> Result<(), String> {
    let policy = match TrustPolicyDocument::from_json_slice(&policy_bytes(table, case, level)?) {
        Ok(p) => p,
        Err(e) => return check(expected, &format!("policy-error {}", variant(&e))),
    };
    let mut verifier = Verifier::new(policy, build_stores(table, case)?);
    match case.revocation.as_deref() {
        None | Some("offline") => {}
        Some("good") => verifier = verifier.with_revocation_checker(AllGood),
        Some(other) => return Err(format!("unknown revocation mode {other}")),
    }
    let now = parse_time(case.now.as_deref().unwrap_or(&table.now))?;
    let mut options = VerifyOptions::new();
    for (k, v) in case.metadata.iter().flatten() {
        options = options.with_user_metadata(k, v);
    }

    let signatures: Vec<Candidate> = if let Some(layout) = &case.layout {
        layout_signatures(layout)?
            .into_iter()
            .filter(|s| {
                case.signature
                    .as_ref()
                    .is_none_or(|p| s.manifest.starts_with(p))
            })
            .map(|s| (s.envelope, s.media_type, s.subject, None))
            .collect()
    } else {
        let file = case.envelope.as_ref().ok_or("no envelope or layout")?;
        let mut bytes = read(file)?;
        if let Some(token) = &case.inject_timestamp {
            bytes = inject_timestamp(&bytes, &read(token)?)?;
        }
        let (target, repo) = resolve_target(table, case)?;
        vec![(bytes, media_type(case.media_type.as_deref()), target, repo)]
    };
    if signatures.is_empty() {
        return check(expected, "no-signatures");
    }
    // Discovery semantics: the first success wins; otherwise report the first failure.
    let mut first: Option<String> = None;
    for (envelope, media_type, target, repo) in &signatures {
        let repo = case
            .repo
            .clone()
            .or_else(|| repo.clone())
            .unwrap_or_else(|| "localhost:5000/e2e".to_owned());
        let reference = ArtifactReference::new(repo, target.digest.clone());
        let result =
            verifier.verify_with_options(&reference, target, envelope, media_type, now, &options);
        let actual = describe(&result);
        if result.is_ok() {
            return check(expected, &actual);
        }
        first.get_or_insert(actual);
    }
    check(expected, &first.unwrap_or_default())
}

fn run_policy(table: &Table, case: &Case, expected: &str) -> Result<(), String> {
    let actual = match TrustPolicyDocument::from_json_slice(&policy_bytes(table, case, None)?) {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("error {}", variant(&e)),
    };
    check(expected, &actual)
}

fn run_store(case: &Case, expected: &str) -> Result<(), String> {
    let store_type: StoreType = case
        .store_type
        .as_deref()
        .ok_or("no store_type")?
        .parse()
        .map_err(|()| "bad store_type".to_owned())?;
    let mut certs = Vec::new();
    for rel in case.files.iter().flatten() {
        for file in expand(rel)? {
            let bytes = std::fs::read(&file).map_err(|e| e.to_string())?;
            match certificates_from_pem_or_der(&bytes) {
                Ok(c) => certs.extend(c),
                Err(e) => return check(expected, &format!("error {}", variant(&e))),
            }
        }
    }
    let mut stores = TrustStores::new();
    let actual = match stores.insert(store_type, "conformance", certs) {
        Ok(()) => format!(
            "ok {}",
            stores
                .get(store_type, "conformance")
                .map_or(0, <[Certificate]>::len)
        ),
        Err(e) => format!("error {}", variant(&e)),
    };
    check(expected, &actual)
}

fn run_certs(case: &Case, expected: &str) -> Result<(), String> {
    let file = case
        .files
        .as_ref()
        .and_then(|f| f.first())
        .ok_or("no file")?;
    let actual = match certificates_from_pem_or_der(&read(file)?) {
        Ok(c) => format!("ok {}", c.len()),
        Err(e) => format!("error {}", variant(&e)),
    };
    check(expected, &actual)
}

fn timestamping(case: &Case) -> Result<bool, String> {
    match case.purpose.as_deref() {
        None | Some("codesigning") => Ok(false),
        Some("timestamping") => Ok(true),
        Some(other) => Err(format!("unknown purpose {other}")),
    }
}

fn load_chain(case: &Case) -> Result<Vec<Certificate>, String> {
    let mut chain = Vec::new();
    for p in case.chain.iter().flatten() {
        chain.extend(load_certs(p)?);
    }
    Ok(chain)
}

fn run_rules(case: &Case, expected: &str) -> Result<(), String> {
    let ts = timestamping(case)?;
    let single = || -> Result<Certificate, String> {
        let rel = case.cert.as_ref().ok_or("no cert")?;
        load_certs(rel)?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{rel}: no certificate"))
    };
    let result = match case.kind.as_str() {
        "chain" => internals::validate_chain(&load_chain(case)?, ts),
        "ca" => internals::validate_ca(&single()?, case.below.unwrap_or(0), ts),
        _ => internals::validate_leaf(&single()?, ts),
    };
    let actual = match result {
        Ok(()) => "ok".to_owned(),
        Err(rule) => format!("error {rule}"),
    };
    check(expected, &actual)
}

/// §8.4 with the policy loader's parsing of identities and the public DN API.
fn run_identity(case: &Case, expected: &str) -> Result<(), String> {
    let doc = json!({"version": "1.0", "trustPolicies": [{
        "name": "identity", "registryScopes": ["*"],
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:conformance"],
        "trustedIdentities": case.identities.as_ref().ok_or("no identities")?,
    }]});
    let policy = TrustPolicyDocument::from_json_value(doc).map_err(|e| e.to_string())?;
    let rel = case.cert.as_ref().ok_or("no cert")?;
    let leaf = load_certs(rel)?
        .into_iter()
        .next()
        .ok_or("no certificate")?;
    let subject = DistinguishedName::parse(&leaf.subject_rfc4514()).ok();
    let matched = policy.statements()[0]
        .trusted_identities
        .iter()
        .any(|identity| match identity {
            TrustedIdentity::Any => true,
            TrustedIdentity::X509Subject(dn) => {
                subject.as_ref().is_some_and(|s| dn.is_subset_of(s))
            }
            _ => false,
        });
    check(expected, if matched { "match" } else { "no-match" })
}

/// §11 on a token alone: parse, imprint over `message`, CMS signature and TSA chain at genTime.
fn run_timestamp(case: &Case, expected: &str) -> Result<(), String> {
    let mut roots = Vec::new();
    for r in case.roots.iter().flatten() {
        roots.extend(load_certs(r)?);
    }
    let message = case.message.as_deref().unwrap_or_default().as_bytes();
    let tokens: Vec<&String> = case
        .token
        .iter()
        .chain(case.tokens.iter().flatten())
        .collect();
    let mut wrong = Vec::new();
    for token in tokens {
        let bytes = read(token)?;
        let actual = match TimestampToken::parse(&bytes).and_then(|t| t.verify(message, &roots)) {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("error {:?}", e.kind()),
        };
        if let Err(why) = check(expected, &actual) {
            wrong.push(format!("{token}: {why}"));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

fn run_revocation(table: &Table, case: &Case, expected: &str) -> Result<(), String> {
    let chain = load_chain(case)?;
    let now = parse_time(case.now.as_deref().unwrap_or(&table.now))?;
    let result = match &case.crls {
        None => OfflineRevocationChecker.check_chain(&chain, None, now),
        Some(crls) => {
            // A stub fetcher: the listed CRLs answer, every other request (the OCSP responder
            // that never answers) fails, so the checker falls back to CRLs.
            let mut data = RevocationData::new();
            for _round in 0..16 {
                let pending = data.pending_requests(&chain, now);
                if pending.is_empty() {
                    break;
                }
                for request in pending {
                    match (&request.kind, crls.get(&request.url)) {
                        (RevocationRequestKind::Crl, Some(file)) => {
                            data.insert_response(request, read(file)?);
                        }
                        _ => data.insert_failure(request, "no stub response"),
                    }
                }
            }
            PrefetchedRevocationChecker::new(data).check_chain(&chain, None, now)
        }
    };
    let actual = match result {
        Ok(()) => "ok".to_owned(),
        Err(RevocationError::Revoked { .. }) => "error Revoked".to_owned(),
        Err(RevocationError::Unknown { .. }) => "error RevocationUnknown".to_owned(),
        Err(e) => format!("error {}", variant(&e)),
    };
    check(expected, &actual)
}

fn run(table: &Table, case: &Case, level: Option<&str>, expected: &str) -> Result<(), String> {
    match case.kind.as_str() {
        "verify" => run_verify(table, case, level, expected),
        "policy" => run_policy(table, case, expected),
        "store" => run_store(case, expected),
        "certs" => run_certs(case, expected),
        "chain" | "ca" | "leaf" => run_rules(case, expected),
        "identity" => run_identity(case, expected),
        "timestamp" => run_timestamp(case, expected),
        "revocation" => run_revocation(table, case, expected),
        other => Err(format!("unknown case kind {other}")),
    }
}

// ---- the suite -------------------------------------------------------------------------------

/// Every vector file (INDEX.md aside), relative to the vectors folder.
fn all_vectors() -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    let root = Path::new(VECTORS);
    walk(root, root, &mut out);
    out.retain(|p| p != "INDEX.md");
    out.sort();
    out
}

fn covers(reference: &str, file: &str) -> bool {
    let reference = reference.trim_end_matches('/');
    file == reference || file.starts_with(&format!("{reference}/"))
}

#[test]
fn conformance() {
    let text = std::fs::read_to_string(TABLE).unwrap();
    let table: Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{TABLE}: {e}"));
    assert!(
        Path::new(VECTORS).is_dir(),
        "the vectors are expected at {VECTORS}"
    );

    let mut passed = 0usize;
    let mut failures: Vec<String> = Vec::new();
    let mut names = BTreeSet::new();
    for case in &table.case {
        let runs: Vec<(String, Option<&str>, &str)> = match &case.expect {
            Expect::One(e) => vec![(case.name.clone(), None, e.as_str())],
            Expect::ByLevel(map) => map
                .iter()
                .map(|(level, e)| {
                    (
                        format!("{}@{level}", case.name),
                        Some(level.as_str()),
                        e.as_str(),
                    )
                })
                .collect(),
        };
        for (name, level, expected) in runs {
            assert!(names.insert(name.clone()), "duplicate case name {name}");
            if std::env::var_os("CONFORMANCE_VERBOSE").is_some() {
                println!("CASE {name}");
            }
            match run(&table, case, level, expected) {
                Ok(()) => passed += 1,
                Err(why) => {
                    let pending = case
                        .pending
                        .as_ref()
                        .map(|p| format!(" [pending: {p}]"))
                        .unwrap_or_default();
                    failures.push(format!("FAIL {name}{pending}: {why}"));
                }
            }
        }
    }

    // Every vector is used by a row or skipped with a reason.
    let referenced: Vec<String> = table.case.iter().flat_map(|c| c.paths(&table)).collect();
    let skipped: Vec<(&String, &str)> = table
        .skip
        .iter()
        .flat_map(|s| s.vectors.iter().map(move |v| (v, s.reason.as_str())))
        .collect();
    for file in all_vectors() {
        let used = referenced.iter().any(|r| covers(r, &file));
        let skip = skipped.iter().any(|(v, _)| covers(v, &file));
        if !used && !skip {
            failures.push(format!(
                "FAIL coverage/{file}: vector neither used by a case nor in the skip list"
            ));
        }
    }

    println!("skipped ({}):", skipped.len());
    for (vector, reason) in &skipped {
        println!("  SKIP {vector}: {reason}");
    }
    for failure in &failures {
        println!("{failure}");
    }
    println!("conformance: {passed} passed, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{} conformance failures (run `make conformance` to see them)",
        failures.len()
    );
}
