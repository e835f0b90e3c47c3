//! Image references with Docker normalisation.
//!
//! `nginx` becomes `docker.io/library/nginx:latest`, `user/app` becomes
//! `docker.io/user/app:latest`; the first path component names a registry only when it
//! contains `.` or `:`, is `localhost`, or has uppercase letters (Docker's rule). A reference
//! may carry a tag, a digest or both (`repo:tag@sha256:…`); the digest wins for resolution.

use std::fmt;

use crate::digest::{DigestError, validate_digest};

const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

const FORM: &str = "expected [registry[:port]/]repository[:tag][@sha256:<64 hex>], e.g. \
                    registry.example.com:5000/team/app:1.0 or nginx@sha256:…";

/// Why a string is not an image reference. Every message says what is wrong and the
/// accepted form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The reference is empty.
    #[error("image reference is empty: {FORM}")]
    Empty,
    /// The reference contains whitespace or control characters.
    #[error("image reference {0:?} contains whitespace or control characters: {FORM}")]
    InvalidCharacters(String),
    /// The registry host is malformed.
    #[error(
        "image reference {reference:?} has an invalid registry {registry:?}: a registry is a host name or IP address with an optional :port, e.g. registry.example.com:5000 or [::1]:5000"
    )]
    InvalidRegistry {
        /// The reference as given.
        reference: String,
        /// The registry part.
        registry: String,
    },
    /// The repository contains uppercase letters.
    #[error(
        "image reference {reference:?} has uppercase letters in repository {repository:?}: repository names must be lowercase"
    )]
    UppercaseRepository {
        /// The reference as given.
        reference: String,
        /// The repository part.
        repository: String,
    },
    /// The repository path is malformed.
    #[error(
        "image reference {reference:?} has an invalid repository {repository:?}: each /-separated component must be lowercase letters and digits, separated by '.', '_', '__' or '-' (e.g. team/my-app)"
    )]
    InvalidRepository {
        /// The reference as given.
        reference: String,
        /// The repository part.
        repository: String,
    },
    /// Registry and repository together exceed 255 characters.
    #[error("image reference {0:?} has a name longer than 255 characters")]
    NameTooLong(String),
    /// The tag is malformed.
    #[error(
        "image reference {reference:?} has an invalid tag {tag:?}: a tag is 1 to 128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'"
    )]
    InvalidTag {
        /// The reference as given.
        reference: String,
        /// The tag part.
        tag: String,
    },
    /// The digest is malformed.
    #[error("image reference {reference:?} has an invalid digest: {source}")]
    InvalidDigest {
        /// The reference as given.
        reference: String,
        /// What is wrong with the digest.
        source: DigestError,
    },
}

/// A normalised image reference: registry, repository, optional tag and optional digest.
///
/// ```
/// use vouch_oci::Reference;
///
/// let r = Reference::parse("nginx").unwrap();
/// assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
/// assert_eq!(r.registry_repository(), "docker.io/library/nginx");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses and normalises `input` (see the module docs for the rules).
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let bad = |c: char| c.is_whitespace() || c.is_control();
        let suspicious = if input.is_ascii() {
            input.bytes().any(|b| bad(char::from(b)))
        } else {
            input.chars().any(bad)
        };
        if suspicious {
            return Err(ReferenceError::InvalidCharacters(input.to_owned()));
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (input, None),
        };
        if let Some(d) = digest {
            validate_digest(d).map_err(|source| ReferenceError::InvalidDigest {
                reference: input.to_owned(),
                source,
            })?;
        }
        // A ':' after the last '/' starts the tag ("host:5000/repo" has none).
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].find(':') {
            Some(i) => (
                &name_and_tag[..last_slash + i],
                Some(&name_and_tag[last_slash + i + 1..]),
            ),
            None => (name_and_tag, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::InvalidRepository {
                reference: input.to_owned(),
                repository: String::new(),
            });
        }
        let (mut registry, mut repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        if registry == DOCKER_HUB_LEGACY {
            registry = DOCKER_HUB.to_owned();
        }
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if !valid_registry(&registry) {
            return Err(ReferenceError::InvalidRegistry {
                reference: input.to_owned(),
                registry,
            });
        }
        if !valid_repository(&repository) {
            if repository.chars().any(|c| c.is_ascii_uppercase())
                && valid_repository(&repository.to_ascii_lowercase())
            {
                return Err(ReferenceError::UppercaseRepository {
                    reference: input.to_owned(),
                    repository,
                });
            }
            return Err(ReferenceError::InvalidRepository {
                reference: input.to_owned(),
                repository,
            });
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong(input.to_owned()));
        }
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(ReferenceError::InvalidTag {
                reference: input.to_owned(),
                tag: t.to_owned(),
            });
        }
        let tag = match (tag, digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest: digest.map(str::to_owned),
        })
    }

    /// The registry host with optional port, e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` when the input had neither tag nor digest).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `registry/repository`, the string trust-policy `registryScopes` are matched against.
    pub fn registry_repository(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository pinned to `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: self.tag.clone(),
            digest: Some(digest.to_owned()),
        }
    }

    /// The same repository with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        }
    }

    /// What the registry is asked for: the digest if there is one, else the tag.
    pub(crate) fn manifest_selector(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// The equivalent `oci_client::Reference`.
    pub(crate) fn to_oci(&self) -> oci_client::Reference {
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(
                self.registry.clone(),
                self.repository.clone(),
                t.clone(),
                d.clone(),
            ),
            (None, Some(d)) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                d.clone(),
            ),
            (t, None) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                t.clone().unwrap_or_else(|| DEFAULT_TAG.to_owned()),
            ),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Plain `write_str`s: references are formatted for every key of every request.
        f.write_str(&self.registry)?;
        f.write_str("/")?;
        f.write_str(&self.repository)?;
        if let Some(t) = &self.tag {
            f.write_str(":")?;
            f.write_str(t)?;
        }
        if let Some(d) = &self.digest {
            f.write_str("@")?;
            f.write_str(d)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Strips a container-runtime prefix from an image ID as found in pod status
/// (`docker-pullable://`, `docker://`, `containerd://`, `cri-o://`).
pub fn strip_runtime_prefix(image: &str) -> &str {
    for prefix in [
        "docker-pullable://",
        "docker://",
        "containerd://",
        "cri-o://",
    ] {
        if let Some(rest) = image.strip_prefix(prefix) {
            return rest;
        }
    }
    image
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        // [IPv6]:port
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match registry.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if registry.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn valid_repository(repository: &str) -> bool {
    !repository.is_empty() && repository.split('/').all(valid_path_component)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or one or more '-'.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_TAG_LEN
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9";

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// The normalised form is a fixed point: whatever parses formats to a string that
        /// parses back to the same reference and formats unchanged. The verdict cache relies
        /// on it: a key spelled exactly as a cached subject is that subject.
        #[test]
        fn the_normalised_form_is_a_fixed_point(
            registry in "(|localhost|[a-z0-9-]{1,8}(\\.[a-z0-9-]{1,8}){0,2}|[a-zA-Z0-9-]{1,8}\\.[a-z]{2,3}|docker\\.io|index\\.docker\\.io|\\[::1\\])(:[0-9]{1,6})?/",
            repository in "([a-z0-9]{1,6}(([._-]|__|--)[a-z0-9]{1,4})?(/[a-z0-9]{1,6}){0,2}|library/[a-z]{1,4}|[a-zA-Z0-9._/-]{1,12})",
            tag in "(:[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,6})?",
            digest in "(@sha256:[0-9a-f]{64}|@sha512:[0-9a-f]{128}|@sha256:[0-9a-fA-F]{63,65})?",
        ) {
            let input = format!("{registry}{repository}{tag}{digest}");
            if let Ok(parsed) = Reference::parse(&input) {
                let formatted = parsed.to_string();
                let again = Reference::parse(&formatted);
                proptest::prop_assert!(again.is_ok(), "{input} -> {formatted}: {again:?}");
                let again = again.unwrap();
                proptest::prop_assert_eq!(&again, &parsed, "{} -> {}", input, formatted);
                proptest::prop_assert_eq!(again.to_string(), formatted);
            }
        }
    }

    #[test]
    fn normalises_like_docker() {
        // (input, registry, repository, tag, digest, normalised form)
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
        );
        let cases: &[Case<'_>] = &[
            (
                "nginx",
                "docker.io",
                "library/nginx",
                Some("latest"),
                None,
                "docker.io/library/nginx:latest",
            ),
            (
                "user/app",
                "docker.io",
                "user/app",
                Some("latest"),
                None,
                "docker.io/user/app:latest",
            ),
            (
                "index.docker.io/nginx:1",
                "docker.io",
                "library/nginx",
                Some("1"),
                None,
                "docker.io/library/nginx:1",
            ),
            (
                "localhost/app",
                "localhost",
                "app",
                Some("latest"),
                None,
                "localhost/app:latest",
            ),
            (
                "localhost:5000/a/b/c:v1",
                "localhost:5000",
                "a/b/c",
                Some("v1"),
                None,
                "localhost:5000/a/b/c:v1",
            ),
            (
                "127.0.0.1:5000/net-monitor:v1",
                "127.0.0.1:5000",
                "net-monitor",
                Some("v1"),
                None,
                "127.0.0.1:5000/net-monitor:v1",
            ),
            (
                "[::1]:5000/app",
                "[::1]:5000",
                "app",
                Some("latest"),
                None,
                "[::1]:5000/app:latest",
            ),
        ];
        for (input, registry, repository, tag, digest, display) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.registry(), *registry, "{input}");
            assert_eq!(r.repository(), *repository, "{input}");
            assert_eq!(r.tag(), *tag, "{input}");
            assert_eq!(r.digest(), *digest, "{input}");
            assert_eq!(r.to_string(), *display, "{input}");
            // The normalised form parses to itself.
            assert_eq!(Reference::parse(display).ok().as_ref(), Some(&r), "{input}");
        }
    }

    #[test]
    fn tag_and_digest() {
        let r = Reference::parse(&format!("reg.io/app@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.manifest_selector(), D);
        assert_eq!(r.to_string(), format!("reg.io/app@{D}"));

        let r = Reference::parse(&format!("reg.io:443/app:v1@{D}")).unwrap();
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.manifest_selector(), D, "the digest wins");
        assert_eq!(r.to_string(), format!("reg.io:443/app:v1@{D}"));

        let r = Reference::parse("nginx:1.25").unwrap().with_digest(D);
        assert_eq!(r.to_string(), format!("docker.io/library/nginx:1.25@{D}"));
        assert_eq!(r.to_oci().digest(), Some(D));
        assert_eq!(r.to_oci().resolve_registry(), "index.docker.io");
    }

    #[test]
    fn rejections_say_what_is_wrong() {
        let err = |s: &str| Reference::parse(s).expect_err(s);
        assert_eq!(err(""), ReferenceError::Empty);
        assert!(matches!(
            err("my app"),
            ReferenceError::InvalidCharacters(_)
        ));
        assert!(matches!(
            err("reg.io/MyApp"),
            ReferenceError::UppercaseRepository { .. }
        ));
        assert!(
            err("reg.io/MyApp")
                .to_string()
                .contains("must be lowercase")
        );
        assert!(matches!(
            err("reg.io/app@sha256:abc"),
            ReferenceError::InvalidDigest { .. }
        ));
        assert!(err("reg.io/app@sha256:abc").to_string().contains("64"));
        assert!(matches!(
            err("reg.io/app@md5:abc"),
            ReferenceError::InvalidDigest { .. }
        ));
        assert!(matches!(
            err("reg.io/app:-bad"),
            ReferenceError::InvalidTag { .. }
        ));
        assert!(matches!(
            err(&format!("reg.io/app:{}", "t".repeat(129))),
            ReferenceError::InvalidTag { .. }
        ));
        assert!(matches!(
            err("reg.io/app:"),
            ReferenceError::InvalidTag { .. }
        ));
        assert!(matches!(
            err("reg.io//app"),
            ReferenceError::InvalidRepository { .. }
        ));
        assert!(matches!(
            err("reg.io/app_-x"),
            ReferenceError::InvalidRepository { .. }
        ));
        assert!(matches!(
            err("reg.io/"),
            ReferenceError::InvalidRepository { .. }
        ));
        assert!(matches!(
            err(":tag"),
            ReferenceError::InvalidRepository { .. }
        ));
        assert!(matches!(
            err("reg-.io/app"),
            ReferenceError::InvalidRegistry { .. }
        ));
        assert!(matches!(
            err("reg.io:port/app"),
            ReferenceError::InvalidRegistry { .. }
        ));
        assert!(matches!(
            err(&format!("reg.io/{}", "a".repeat(260))),
            ReferenceError::NameTooLong(_)
        ));
        for s in [
            "",
            "reg.io/MyApp",
            "reg.io/app@sha256:abc",
            "reg.io/app:-bad",
        ] {
            let msg = err(s).to_string();
            assert!(
                msg.contains("expected")
                    || msg.contains("must")
                    || msg.contains("needs")
                    || msg.contains("is 1 to 128"),
                "{msg}"
            );
        }
    }

    #[test]
    fn uppercase_first_component_is_a_registry() {
        // Docker's rule: a first component with uppercase letters is a host name.
        let r = Reference::parse("Registry/app").unwrap();
        assert_eq!(r.registry(), "Registry");
        assert_eq!(r.repository(), "app");
    }

    #[test]
    fn strips_runtime_prefixes() {
        assert_eq!(
            strip_runtime_prefix("docker-pullable://nginx@sha256:x"),
            "nginx@sha256:x"
        );
        assert_eq!(strip_runtime_prefix("docker://nginx"), "nginx");
        assert_eq!(
            strip_runtime_prefix("containerd://reg.io/app"),
            "reg.io/app"
        );
        assert_eq!(strip_runtime_prefix("nginx"), "nginx");
    }
}
