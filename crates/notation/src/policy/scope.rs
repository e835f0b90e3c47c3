//! The syntax of registry scopes (`registry/repository`, §8.2).

/// `domain/repository` as distribution defines them: domain `host[:port]` with
/// alphanumeric-and-hyphen labels; repository lowercase path components joined by `/`, each
/// `[a-z0-9]+` runs separated by `.`, `_`, `__` or one or more `-`.
pub(crate) fn is_valid_registry_scope(scope: &str) -> bool {
    let Some((domain, repository)) = scope.split_once('/') else {
        return false;
    };
    is_valid_domain(domain) && is_valid_repository(repository)
}

fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    first.is_ascii_alphanumeric()
                        && last.is_ascii_alphanumeric()
                        && bytes
                            .iter()
                            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                }
                _ => false,
            }
        })
}

fn is_valid_repository(repository: &str) -> bool {
    !repository.is_empty()
        && repository.split('/').all(|component| {
            let bytes = component.as_bytes();
            let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
                return false;
            }
            // Every run of separators must be ".", "_", "__" or "-+".
            let mut i = 0;
            while i < bytes.len() {
                if alnum(&bytes[i]) {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < bytes.len() && !alnum(&bytes[i]) {
                    i += 1;
                }
                let sep = bytes.get(start..i).unwrap_or_default();
                let ok =
                    sep == b"." || sep == b"_" || sep == b"__" || sep.iter().all(|b| *b == b'-');
                if !ok {
                    return false;
                }
            }
            true
        })
}
