//! Hot path of every uncached verdict: parse and verify one Notation envelope.
//!
//! `cargo bench -p vouch-notation --bench verify` — results in BENCHMARKS.md.

use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SignatureAlgorithm,
};
use vouch_notation::sign::{self, EnvelopeFormat, SignOptions, SigningKey};
use vouch_notation::{
    ArtifactReference, Descriptor, StoreType, TrustPolicyDocument, TrustStores, Verifier,
    certificates_from_pem_or_der,
};

struct Chain {
    leaf_key: KeyPair,
    chain_der: Vec<Vec<u8>>,
    root_der: Vec<u8>,
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::StateOrProvinceName, "WA");
    dn.push(DnType::OrganizationName, "vouch-bench");
    dn.push(DnType::CommonName, cn);
    dn
}

fn chain(alg: &'static SignatureAlgorithm) -> Chain {
    let root_key = match alg {
        a if *a == rcgen::PKCS_RSA_SHA256 => {
            KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).expect("rsa key")
        }
        _ => KeyPair::generate_for(alg).expect("key"),
    };
    let mut root = CertificateParams::default();
    root.distinguished_name = name("bench root");
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root_cert = root.self_signed(&root_key).expect("root");
    let leaf_key = match alg {
        a if *a == rcgen::PKCS_RSA_SHA256 => {
            KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).expect("rsa key")
        }
        _ => KeyPair::generate_for(alg).expect("key"),
    };
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name = name("bench signer");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let issuer = Issuer::new(root, &root_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf");
    Chain {
        chain_der: vec![leaf_cert.der().to_vec(), root_cert.der().to_vec()],
        root_der: root_cert.der().to_vec(),
        leaf_key,
    }
}

fn verifier(root_der: &[u8]) -> Verifier {
    let policy = TrustPolicyDocument::from_json_slice(
        br#"{"version":"1.0","trustPolicies":[{"name":"bench","registryScopes":["*"],
            "signatureVerification":{"level":"strict"},"trustStores":["ca:bench"],"trustedIdentities":["*"]}]}"#,
    )
    .expect("policy");
    let mut stores = TrustStores::new();
    stores
        .insert(
            StoreType::Ca,
            "bench",
            certificates_from_pem_or_der(root_der).expect("root"),
        )
        .expect("store");
    Verifier::new(policy, stores)
}

fn bench(c: &mut Criterion) {
    let target = Descriptor::new(
        "application/vnd.oci.image.manifest.v1+json",
        "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9",
        517,
    );
    let artifact = ArtifactReference::new("registry.example/app", target.digest.clone());
    for (label, alg) in [
        ("ES256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("PS256", &rcgen::PKCS_RSA_SHA256),
    ] {
        let chain = chain(alg);
        let key = SigningKey::from_pkcs8_der(&chain.leaf_key.serialize_der()).expect("key");
        let verifier = verifier(&chain.root_der);
        for format in [EnvelopeFormat::Jws, EnvelopeFormat::Cose] {
            let envelope = sign::sign(
                &target,
                &key,
                &chain.chain_der,
                &SignOptions::new(format, SystemTime::now()),
            )
            .expect("sign");
            let now = SystemTime::now();
            verifier
                .verify(&artifact, &target, &envelope, format.media_type(), now)
                .expect("the benchmark envelope verifies");
            c.bench_function(&format!("verify {label} {format:?}"), |b| {
                b.iter(|| verifier.verify(&artifact, &target, &envelope, format.media_type(), now))
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
