//! Runs the Kubernetes API double until interrupted, for trying kubectl against it by hand:
//! `cargo run -p vouch-testkit --example kube_api -- [https] [token] [client-cert]`. Prints
//! the kubeconfig path; prints every request as it is answered.

use std::time::Duration;

use vouch_testkit::kube_api::{KubeApi, KubeApiOptions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |a: &str| args.iter().any(|x| x == a);
    let mut options = if has("https") {
        KubeApiOptions::https()
    } else {
        KubeApiOptions::http()
    };
    if has("token") {
        options = options.token("vouch-test-token");
    }
    if has("client-cert") {
        options = options.client_certificates();
    }
    let api = KubeApi::start(options)?;
    println!("{} KUBECONFIG={}", api.url(), api.kubeconfig().display());
    let mut seen = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let requests = api.requests();
        for r in &requests[seen..] {
            println!("{} {} {}", r.code, r.verb, r.path);
        }
        seen = requests.len();
    }
}
