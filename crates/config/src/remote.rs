//! Certificate sources whose certificates live elsewhere (Azure Key Vault): the configuration
//! describes them ([`KeyVaultSource`]); a fetcher outside this crate (vouch-cloud) reads
//! them and answers [`RemoteCertificates::lookup`] from what it holds, so building a
//! configuration stays pure and instant.

use std::fmt;
use std::time::Duration;

use vouch_notation::Certificate;

/// An Azure Key Vault certificate source: a `KeyManagementProvider` of type
/// `azurekeyvault`, or the older `CertificateStore` with `provider: azurekeyvault`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct KeyVaultSource {
    /// `vaultURI`, e.g. `https://myvault.vault.azure.net/` (no trailing slash kept).
    pub vault_uri: String,
    /// `tenantID`.
    pub tenant_id: String,
    /// `clientID`: the workload identity that reads the vault.
    pub client_id: String,
    /// `certificates`, in order. The same name may be listed with several versions (all
    /// are trusted: a rotation).
    pub certificates: Vec<KeyVaultItem>,
    /// `keys` (public keys; only cosign verification uses them, which vouch does not do:
    /// read and ignored).
    pub keys: Vec<KeyVaultItem>,
    /// `spec.refreshInterval` (KeyManagementProvider); `None`: vouch's default.
    pub refresh_interval: Option<Duration>,
}

/// A certificate or key named in a Key Vault source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyVaultItem {
    /// Its name in the vault.
    pub name: String,
    /// A version; `None`: the newest enabled version.
    pub version: Option<String>,
}

impl fmt::Display for KeyVaultItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(version) => write!(f, "{}/{version}", self.name),
            None => write!(f, "{} (newest enabled version)", self.name),
        }
    }
}

/// What is known of a remote source's certificates.
#[derive(Debug, Clone)]
pub enum RemoteState {
    /// Fetched: the certificates (leaf and chain of every certificate named). A later
    /// refresh that failed keeps these; its error is `last_error`.
    Ready {
        /// The certificates, in order, without duplicates.
        certificates: Vec<Certificate>,
        /// Why the newest refresh failed, if it did.
        last_error: Option<String>,
    },
    /// Not fetched yet.
    Pending,
    /// Never fetched successfully: why (naming the vault, the certificate and the error).
    Failed(String),
}

/// Answers what a fetcher holds for a remote source. Asking registers the source: a
/// fetcher fetches every source it was asked about, and says when what it holds changes.
pub trait RemoteCertificates: Send + Sync + fmt::Debug {
    /// The state of `source`'s certificates.
    fn lookup(&self, source: &KeyVaultSource) -> RemoteState;

    /// `Ok` when every source the newest configuration asked about has been read
    /// successfully at least once; else what is awaited or failing (a server is not ready
    /// to start answering before that).
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    /// A configuration is about to be built (every source it names will be looked up);
    /// [`end_round`](Self::end_round) follows. Sources a configuration stopped naming (an
    /// edited or deleted resource) are then forgotten: not fetched any more, and not
    /// awaited by [`ready`](Self::ready).
    fn begin_round(&self) {}

    /// The configuration begun with [`begin_round`](Self::begin_round) is built.
    fn end_round(&self) {}
}

/// Parses a Go duration (`1h`, `30m`, `1h30m`, `90s`, `500ms`), as Ratify's
/// `refreshInterval` is written.
pub(crate) fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(number * seconds).ok()?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("10"), None, "a unit is required");
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration("h"), None);
    }
}
