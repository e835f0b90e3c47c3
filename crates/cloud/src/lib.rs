//! Cloud identities for registries.
//!
//! An oras Store's `authProvider` may name a cloud identity instead of stored credentials.
//! This crate turns one into credentials for `vouch-oci`'s [`CredentialSource`]:
//!
//! * [`azure`] — `azureWorkloadIdentity` and `azureManagedIdentity`: a Microsoft Entra token
//!   for Azure Container Registry (from the pod's federated service-account token, or from
//!   the managed identity endpoint), exchanged at the registry's `/oauth2/exchange` for an
//!   ACR refresh token, which the registry client then presents to the registry's own token
//!   flow (ACR's documented AAD-OAuth flow).
//! * [`aws`] — `awsEcrBasic`: STS AssumeRoleWithWebIdentity with the pod's projected token,
//!   then ECR GetAuthorizationToken signed with Signature Version 4.
//! * [`keyvault`] — certificates from Azure Key Vault for `azurekeyvault` certificate
//!   sources, fetched in the background and refreshed.
//!
//! The flows are the documented REST calls on one bounded `reqwest` client, not the Azure
//! SDK for Rust: the ACR exchange is not in the SDK, and doing the Entra call ourselves keeps
//! every request under vouch's own deadline, body limit, trust roots (`SSL_CERT_FILE` and
//! `--registry-ca-file`) and log redaction, with one cache that renews before expiry.
//!
//! Nothing secret is ever logged or put in an error: tokens, refresh tokens and federated
//! tokens appear only in request bodies.
//!
//! [`CredentialSource`]: vouch_oci::CredentialSource

pub mod aws;
pub mod azure;
mod http;
pub mod keyvault;
mod renew;

pub use crate::http::HttpOptions;
