//! What an operator can do about a failure, one line per cause.
//!
//! Reports carry `errorReason` (what went wrong) and `remediation` (what to change). The
//! mapping lives here, once, so every path that fails says the same thing for the same cause.

use vouch_notation::{ErrorKind as VerifyKind, VerificationFailure};
use vouch_oci::{ErrorKind as RegistryKind, RegistryError};

/// Remediation for a registry failure: the one place that says what to do about each kind
/// (vouch-oci says only what happened).
pub(crate) fn for_registry(e: &RegistryError) -> &'static str {
    match e.kind() {
        RegistryKind::NotFound => {
            "check the image reference (registry, repository, tag or digest) and that it was pushed"
        }
        RegistryKind::Unauthorized => {
            "give vouch pull access: add credentials for this registry to the oras Store's authProvider (dockerConfig: the docker config.json it names; k8Secrets: a kubernetes.io/dockerconfigjson pull Secret; azureWorkloadIdentity or azureManagedIdentity for Azure Container Registry, with the registry on its endpoints; awsEcrBasic for Amazon ECR), or fix the ones there"
        }
        RegistryKind::Denied => {
            "the credentials vouch uses lack pull access to this repository: grant it to them"
        }
        RegistryKind::Unreachable => {
            "check that the registry is reachable from vouch (address, DNS, network policy); for a plain-HTTP registry set parameters.useHttp: true on the oras Store"
        }
        RegistryKind::Tls => {
            "check the registry's TLS certificate (its name and CA); trust a private CA with --registry-ca-file, or set parameters.useHttp: true on the oras Store if the registry speaks plain HTTP"
        }
        RegistryKind::Timeout => {
            "the registry did not answer in time; check its health and the network path, or raise --registry-timeout"
        }
        RegistryKind::TooLarge => {
            "the registry served an object larger than vouch accepts for a signature; check what is attached to the image"
        }
        RegistryKind::DigestMismatch => {
            "the registry served content that does not match its digest; the registry or a proxy is corrupting or tampering with content"
        }
        RegistryKind::Overloaded => {
            "vouch was reading too many large registry responses at once (its memory budget was full); retry, and check which registries serve oversized or endless content"
        }
        RegistryKind::InvalidManifest => "re-push the artifact with a conforming OCI manifest",
        RegistryKind::TooManyReferrers => {
            "remove stale signatures from the repository, or raise vouch's maximum number of signatures per image"
        }
        RegistryKind::RateLimited => {
            "the registry is rate limiting vouch; give it credentials with a higher quota, or retry later"
        }
        RegistryKind::ServerError => "the registry is failing; check its logs and retry later",
        RegistryKind::Protocol => {
            "the registry does not follow the OCI distribution spec here; check its version and any proxy in front of it"
        }
        RegistryKind::Credentials => {
            "fix the credentials the oras Store's authProvider names (the message says which): a docker config.json (auths.<registry>.auth is base64 of user:password), a readable kubernetes.io/dockerconfigjson pull Secret, or the Azure identity (its clientID and tenant, the federated token file, and the AcrPull role on the registry)"
        }
        RegistryKind::Configuration => "fix vouch's registry settings named in the message",
        _ => "check the registry and the image's signature artifacts",
    }
}

/// Remediation for a failed signature verification.
pub(crate) fn for_failure(f: &VerificationFailure) -> &'static str {
    match f.kind {
        VerifyKind::UntrustedCertificate | VerifyKind::TrustStoreMissing => {
            "add the signing certificate's root (or the certificate itself) to a CertificateStore listed in the Verifier's verificationCertStores, or re-sign with a trusted key"
        }
        VerifyKind::UntrustedIdentity => {
            "add the signer's subject to trustedIdentities in the trust policy, or re-sign with a trusted identity"
        }
        VerifyKind::Expired => "the signature has expired: re-sign the image",
        VerifyKind::CertificateExpired | VerifyKind::CertificateNotYetValid => {
            "the signing certificate is not valid now: re-sign with a valid certificate (or use a timestamped signature)"
        }
        VerifyKind::PayloadMismatch => {
            "the signature was made for other content: the image was changed after signing or the signature belongs to another image; re-sign the image"
        }
        VerifyKind::NoApplicablePolicy => {
            "add the repository to a statement's registryScopes in the trust policy, or add a statement with registryScopes [\"*\"]"
        }
        _ => "the signature is invalid or tampered with: re-sign the image with Notation",
    }
}
