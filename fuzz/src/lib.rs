//! The fixed verification setup the envelope targets share: the notation-go
//! `internal/testdata` signatures (JWS and COSE, self-signed CN=alpine leaf), their trust
//! store and a strict policy, at a fixed clock. Vectors are embedded at build time from the
//! shared vectors folder; nothing is copied into the repository.
#![forbid(unsafe_code)]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vouch_notation::{
    ArtifactReference, Descriptor, StoreType, TrustPolicyDocument, TrustStores, Verifier,
    certificates_from_pem_or_der,
};

macro_rules! vector {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/vectors/notation/",
            $path
        ))
    };
}

/// A valid JWS envelope for [`Fixture::target`].
pub const VALID_JWS: &[u8] = vector!("notation-go/internal/testdata/jws_signature.sig");
/// A valid COSE envelope for [`Fixture::target`].
pub const VALID_COSE: &[u8] = vector!("notation-go/internal/testdata/cose_signature.sig");
/// A valid RFC 3161 token over the message `notation`.
pub const VALID_TOKEN: &[u8] = vector!("tspclient-go/testdata/TimeStampToken.p7s");
/// The root the token chains to (GlobalSign R3).
pub const TOKEN_ROOT: &[u8] = vector!("tspclient-go/testdata/GlobalSignRootCA.crt");
const ANCHOR: &[u8] =
    vector!("notation-go/_extracted_from_tests/example_localVerify_test/NotationLocalExample.pem");

/// Verifier, artifact and clock under which [`VALID_JWS`] and [`VALID_COSE`] verify.
pub struct Fixture {
    pub verifier: Verifier,
    pub reference: ArtifactReference,
    pub target: Descriptor,
    pub now: SystemTime,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let policy = TrustPolicyDocument::from_json_slice(
            br#"{"version": "1.0", "trustPolicies": [{"name": "fuzz",
              "registryScopes": ["localhost:5000/net-monitor"],
              "signatureVerification": {"level": "strict"},
              "trustStores": ["ca:fuzz"],
              "trustedIdentities": ["x509.subject:CN=alpine,O=Notary,L=Seattle,ST=WA,C=US"]}]}"#,
        )
        .expect("fixed policy");
        let mut stores = TrustStores::new();
        stores
            .insert(
                StoreType::Ca,
                "fuzz",
                certificates_from_pem_or_der(ANCHOR).expect("anchor"),
            )
            .expect("store");
        let digest = "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0";
        Fixture {
            verifier: Verifier::new(policy, stores),
            reference: ArtifactReference::new("localhost:5000/net-monitor", digest),
            target: Descriptor::new("application/vnd.oci.image.manifest.v1+json", digest, 481),
            now: UNIX_EPOCH + Duration::from_secs(1_735_689_600),
        }
    })
}
