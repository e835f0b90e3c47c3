//! Doubles for Azure workload identity and managed identity to Azure Container Registry.
//!
//! * [`Entra`] is a Microsoft Entra ID double over HTTPS (its own CA): the client-credentials
//!   token endpoint with federated credentials (what AKS workload identity uses) and the
//!   managed-identity (IMDS) endpoint. It signs the federated tokens of a pretend cluster
//!   OIDC issuer and the access tokens it issues.
//! * [`AcrRegistry`] is a real `docker-registry` with Distribution token authentication,
//!   behind an ACR token-service double on the same loopback port: `/oauth2/exchange` turns
//!   an Entra access token into an ACR refresh token, `/oauth2/token` turns a refresh token
//!   (or the admin user) into registry access tokens, and everything else goes to the
//!   registry.
//!
//! Each module's documentation says which public documents it follows, what it reproduces and
//! what it simplifies. A workload-identity pull goes:
//!
//! ```no_run
//! # fn demo() -> anyhow::Result<()> {
//! use vouch_testkit::azure::{AcrRegistry, Entra};
//!
//! let entra = Entra::start()?;
//! let federated_token = entra.register("tenant-1", "client-1");
//! let acr = AcrRegistry::start(&entra)?;
//! // The process under test gets:
//! //   AZURE_AUTHORITY_HOST=entra.authority_host(), AZURE_TENANT_ID=tenant-1,
//! //   AZURE_CLIENT_ID=client-1, AZURE_FEDERATED_TOKEN_FILE=<file with federated_token>,
//! //   SSL_CERT_FILE=entra.ca_file() (or the CA added to its trust store),
//! // and pulls from acr.addr() over plain HTTP.
//! # let _ = (federated_token, acr); Ok(()) }
//! ```

mod acr;
mod entra;
// Shared with the AWS doubles (`crate::aws`).
pub(crate) mod jwt;
mod keyvault;
pub(crate) mod server;

pub use acr::{AcrEndpoint, AcrRegistry, AcrRequest, ISSUER as ACR_TOKEN_ISSUER, NULL_GUID_USER};
pub use entra::{
    ACR_RESOURCE, Claims, DEFAULT_SUBJECT, Entra, EntraEndpoint, EntraRequest, FederatedCredential,
    IMDS_TOKEN_PATH, JWT_BEARER_ASSERTION_TYPE, TOKEN_EXCHANGE_AUDIENCE,
};
pub use keyvault::{
    KEYVAULT_API_VERSION, KeyVault, KeyVaultPermission, KeyVaultRequest, PEM_CONTENT_TYPE,
    PKCS12_CONTENT_TYPE, SecretFormat, VAULT_RESOURCE,
};
pub use server::{Fault, OVERSIZED_BODY_BYTES, form_body};
