//! The Notation e2e OCI layouts, read in place and pushed byte for byte to
//! `docker-registry`; their signatures are then discovered through the tag schema.

use std::path::PathBuf;

use vouch_oci::{
    ErrorKind, LayoutPushError, LayoutPushOptions, OciLayout, REF_NAME_ANNOTATION,
    push_layout_to_registry, referrers_tag,
};

use crate::registry::Registry;
use crate::support::*;

const E2E: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/vectors/notation/notation/test/e2e/testdata/registry/oci_layout"
);
const NOTATION_GO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/vectors/notation/notation-go/internal/testdata/oci-layout"
);

fn e2e_layouts() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(E2E)
        .unwrap_or_else(|e| panic!("Notation vectors missing at {E2E}: {e}"))
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.sort();
    assert!(out.len() >= 7, "expected the 7 e2e layouts, found {out:?}");
    out
}

#[test]
fn layouts_list_tags_and_find_signatures_by_subject() {
    for (name, path) in e2e_layouts() {
        let layout = OciLayout::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let v1 = layout
            .find_tag("v1")
            .unwrap_or_else(|| panic!("{name}: no v1"));
        assert_eq!(v1.annotation(REF_NAME_ANNOTATION), Some("v1"));
        let subject_bytes = layout.read_descriptor(v1).expect("subject manifest");
        assert_eq!(vouch_oci::sha256_digest(&subject_bytes), v1.digest);
        let sigs = layout.referrers(&v1.digest, Some(NOTATION)).expect("scan");
        let expected = if name == "e2e" {
            0
        } else if name == "e2e-valid-multiple-signatures" {
            2
        } else {
            1
        };
        assert_eq!(sigs.len(), expected, "{name}: {sigs:?}");
        for s in &sigs {
            let m = layout.manifest(s).expect("signature manifest");
            assert_eq!(m.artifact_type(), Some(NOTATION));
            assert_eq!(m.layers().len(), 1);
            layout
                .read_descriptor(&m.layers()[0])
                .expect("envelope present and intact");
        }
    }
    let e = OciLayout::open(E2E).expect_err("the parent directory is not a layout");
    assert!(e.to_string().contains("not an OCI image layout"), "{e}");
}

#[tokio::test]
async fn e2e_layouts_push_byte_for_byte_and_their_signatures_are_discovered() {
    let reg = Registry::start().await;
    let client = client_with(|o| o.timeout = std::time::Duration::from_secs(20));
    for (name, path) in e2e_layouts() {
        let layout = OciLayout::open(&path).expect("open");
        let repo = reference(&format!("{}/vouch-test/{name}", reg.host()));
        let report =
            push_layout_to_registry(&client, &layout, &repo, &LayoutPushOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}\n{}", reg.log()));
        assert!(report.missing_blobs.is_empty(), "{name}: {report:?}");
        let v1 = layout.find_tag("v1").expect("v1").clone();
        let resolved = client
            .resolve(&repo.with_tag("v1"))
            .await
            .expect("resolve v1");
        assert_eq!(resolved.digest, v1.digest, "{name}: digest preserved");
        assert_eq!(resolved.size, v1.size);

        // What the registry lists is exactly the layout's sha256-<hex> index, filtered.
        let tag = referrers_tag(&v1.digest);
        let expected: Vec<_> = match layout.find_tag(&tag) {
            Some(index) => {
                let bytes = layout.read_descriptor(index).expect("index");
                let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
                v["manifests"]
                    .as_array()
                    .expect("manifests")
                    .iter()
                    .filter(|m| m["artifactType"] == NOTATION)
                    .map(|m| m["digest"].as_str().expect("digest").to_owned())
                    .collect()
            }
            None => Vec::new(),
        };
        let found = client
            .referrers(&repo, &v1.digest, NOTATION)
            .await
            .expect("referrers");
        let found_digests: Vec<_> = found.iter().map(|d| d.digest.clone()).collect();
        assert_eq!(found_digests, expected, "{name}");
        for d in &found {
            let m = client
                .fetch_manifest(&repo, d)
                .await
                .expect("signature manifest");
            let env = client
                .fetch_blob(&repo, &m.layers()[0])
                .await
                .expect("envelope");
            assert_eq!(
                env,
                layout
                    .read_descriptor(&m.layers()[0])
                    .expect("layout envelope")
            );
        }
    }
}

#[tokio::test]
async fn synthesized_referrers_index_makes_every_layout_signature_discoverable() {
    let reg = Registry::start().await;
    let client = client_with(|o| o.timeout = std::time::Duration::from_secs(20));
    let mut options = LayoutPushOptions::default();
    options.synthesize_referrers_index = true;
    for name in [
        "e2e-with-timestamped-signature",
        "e2e-with-invalid-timestamped-signature",
    ] {
        let layout = OciLayout::open(PathBuf::from(E2E).join(name)).expect("open");
        let repo = reference(&format!("{}/vouch-test/synth-{name}", reg.host()));
        let report = push_layout_to_registry(&client, &layout, &repo, &options)
            .await
            .expect("push");
        assert_eq!(report.synthesized_indexes.len(), 1, "{report:?}");
        let v1 = layout.find_tag("v1").expect("v1");
        let in_layout = layout.referrers(&v1.digest, Some(NOTATION)).expect("scan");
        let found = client
            .referrers(&repo, &v1.digest, NOTATION)
            .await
            .expect("referrers");
        assert_eq!(found, in_layout, "{name}");
        assert_eq!(found.len(), 1);
    }
}

/// notation-go's layout omits its 3.3 MB layer blob. Distribution 2.8 checks that an image
/// manifest's config and layers exist, so the manifest push is rejected
/// (MANIFEST_BLOB_UNKNOWN): such a layout cannot be pushed to a Distribution registry as is.
#[tokio::test]
async fn layout_with_missing_layer_blob_is_rejected_by_distribution() {
    let reg = Registry::start().await;
    let client = client();
    let layout = OciLayout::open(NOTATION_GO).expect("open");
    let repo = reference(&format!("{}/vouch-test/notation-go", reg.host()));
    let e = push_layout_to_registry(&client, &layout, &repo, &LayoutPushOptions::default())
        .await
        .expect_err("missing layer");
    match e {
        LayoutPushError::Registry(e) => {
            eprintln!("{e}");
            assert_eq!(e.kind(), ErrorKind::Rejected, "{e}");
            assert!(
                e.message().contains("MANIFEST_BLOB_UNKNOWN")
                    || e.message().contains("blob unknown"),
                "{e}"
            );
        }
        other => panic!("expected a registry rejection, got {other}"),
    }
}
