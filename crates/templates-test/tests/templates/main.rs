//! vouch's Gatekeeper side, tested: ConstraintTemplates evaluated with regorus, answered by a
//! real `vouch serve` over mTLS backed by a real registry (or canned answers), cases from
//! Gatekeeper `Suite` files in `provider-templates/`; the compatibility fixtures that behave
//! like Ratify's default template and Azure's image-integrity template; the tag → digest
//! Assigns against `/mutate`.

#![allow(clippy::unwrap_used)]

mod bench;
mod gatekeeper;
mod live;
mod mutation;
mod suite;
mod template;

fn run_suites(name: &str, suites: &[&str]) {
    let mut live = None;
    let mut results = Vec::new();
    for path in suites {
        results.extend(suite::run(&suite::templates_dir().join(path), &mut live));
    }
    suite::report(name, &results);
}

#[test]
fn verification_suite() {
    run_suites("verification", &["verification/suite.yaml"]);
}

#[test]
fn compat_ratify_default_suite() {
    run_suites(
        "compat-ratify-default",
        &["compat/ratify-default/suite.yaml"],
    );
}

#[test]
fn compat_azure_image_integrity_suite() {
    run_suites(
        "compat-azure-image-integrity",
        &["compat/azure-image-integrity/suite.yaml"],
    );
}
