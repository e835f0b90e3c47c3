//! Ratify's `awsEcrBasic` auth provider (EKS IAM roles for service accounts) as a user runs
//! vouch: the real binary with the environment the EKS pod identity webhook sets, testkit's
//! STS and ECR doubles over HTTPS (trusted through `SSL_CERT_FILE`; ECR checks every SigV4
//! signature), and a real `docker-registry` that wants the ECR password.

use std::process::{Command, Output};

use serde_json::Value;
use vouch_testkit::aws::{Aws, AwsService, DEFAULT_SUBJECT, EcrRegistry};
use vouch_testkit::pki::{KeyKind, TestPki};

struct Env {
    aws: Aws,
    registry: EcrRegistry,
    role: String,
    token_file: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        let aws = Aws::start().expect("the AWS double");
        let role = aws.role_arn("vouch-ecr-read");
        aws.allow_role(&role, DEFAULT_SUBJECT);
        let registry = EcrRegistry::start(&aws)
            .expect("docker-registry with the ECR password (apt-get install -y docker-registry)");
        let pki = TestPki::new(KeyKind::EcP256).expect("pki");
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(registry.pusher().push_signed_and_unsigned("demo/app", &pki))
            .expect("push demo/app");
        let token_file = aws.write_web_identity_token(&role).expect("token");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("config.yaml"),
            vouch_testkit::aks_guide_yaml_with_store(
                &pki.root().pem,
                "authProvider:\n  name: awsEcrBasic\n",
            ),
        )
        .expect("config");
        Env {
            aws,
            registry,
            role,
            token_file,
            dir,
        }
    }

    fn vouch(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vouch"));
        command
            .env_remove("VOUCH_CONFIG")
            .env("DOCKER_CONFIG", self.dir.path())
            .env("SSL_CERT_FILE", self.aws.ca_file());
        for (name, value) in self.aws.pod_env(&self.role, &self.token_file) {
            command.env(name, value);
        }
        command
    }

    fn verify(&self, command: &mut Command) -> (Output, Vec<bool>) {
        let out = command
            .args(["verify", "-o", "json", "--config"])
            .arg(self.dir.path().join("config.yaml"))
            .arg(format!("{}/demo/app:signed", self.registry.addr()))
            .arg(format!("{}/demo/app:unsigned", self.registry.addr()))
            .output()
            .expect("run vouch");
        let answers = serde_json::from_slice::<Vec<Value>>(&out.stdout)
            .unwrap_or_default()
            .iter()
            .map(|a| a["value"]["isSuccess"] == Value::Bool(true))
            .collect();
        (out, answers)
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn irsa_verifies_in_a_registry_that_wants_the_ecr_password() {
    let env = Env::start();
    let (out, answers) = env.verify(&mut env.vouch());
    assert_eq!(answers, vec![true, false], "{}", text(&out));
    // One STS and one (signed, accepted) ECR round trip for both images.
    let requests = env.aws.requests();
    let count = |service: AwsService| {
        requests
            .iter()
            .filter(|r| r.service == service && r.status == 200)
            .count()
    };
    assert_eq!(count(AwsService::Sts), 1, "{requests:#?}");
    assert_eq!(count(AwsService::Ecr), 1, "{requests:#?}");

    // Without the provider, the registry refuses the pull: the password came from ECR.
    let anonymous = env.dir.path().join("anonymous.yaml");
    let config = std::fs::read_to_string(env.dir.path().join("config.yaml")).expect("read");
    std::fs::write(
        &anonymous,
        config.replacen(
            "  parameters:\n    authProvider:\n      name: awsEcrBasic\n",
            "",
            1,
        ),
    )
    .expect("write");
    let out = env
        .vouch()
        .args(["verify", "-o", "json", "--config"])
        .arg(&anonymous)
        .arg(format!("{}/demo/app:signed", env.registry.addr()))
        .output()
        .expect("run vouch");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn sts_and_ecr_refusals_are_failures_naming_the_role_and_the_aws_error() {
    let env = Env::start();
    // A role the token's subject may not assume.
    let (out, answers) = env.verify(
        env.vouch()
            .env("AWS_ROLE_ARN", env.aws.role_arn("someone-elses-role")),
    );
    assert!(
        !answers.is_empty() && answers.iter().all(|a| !a),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("AccessDenied") && text(&out).contains("someone-elses-role"),
        "{}",
        text(&out)
    );

    // The role may not read ECR.
    env.aws.deny_ecr(&env.role);
    let (out, answers) = env.verify(&mut env.vouch());
    assert!(
        !answers.is_empty() && answers.iter().all(|a| !a),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("AccessDeniedException"),
        "{}",
        text(&out)
    );

    // No role in the environment: the configuration cannot be used, and says what to set.
    let out = env
        .vouch()
        .env_remove("AWS_ROLE_ARN")
        .args(["verify", "--config"])
        .arg(env.dir.path().join("config.yaml"))
        .arg(format!("{}/demo/app:signed", env.registry.addr()))
        .output()
        .expect("run vouch");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("AWS_ROLE_ARN"), "{}", text(&out));
}
