//! Issue 9's table through a real Envoy over mTLS: the caller may `GET` only what
//! `pathRegex: "/public/"` covers, and none of the paths that once walked past that rule is
//! served; an upstream never receives a path outside `/public/`.
#![cfg(test)]

use serde_json::json;
use xcluster_e2e::envoy::{Listener, ServerTls};
use xcluster_e2e::fixture::Gateway;
use xcluster_e2e::pki::Pki;
use xcluster_e2e::scenario::{CURL_ID, ENFORCE_LOCAL_ONLY, HTTPBIN_HOST};

const BYPASSES: [&str; 6] = [
    "/public/../private",
    "/public/%2e%2e/private",
    "/public/..%2fprivate",
    "/public/%2E%2E%2Fprivate",
    "/public/./../private",
    "/public/..;/private",
];

#[test]
fn no_path_outside_the_rule_is_served() {
    let pki = Pki::new().unwrap();
    let mut config = ENFORCE_LOCAL_ONLY.value();
    config["access"]["route_groups"][0]["matches"][0]["path_regex"] = json!("/public/");
    let listener = Listener {
        name: "paths".into(),
        plugin_config: config.to_string(),
        tls: Some(ServerTls {
            cert: pki.server_cert("localhost").unwrap(),
            client_ca_pem: pki.ca_pem(),
        }),
    };
    let gw = Gateway::start("paths", vec![listener]).unwrap();
    let curl = pki
        .client_config(&pki.client_cert(CURL_ID).unwrap())
        .unwrap();
    let mut client = gw.tls_client("paths", curl).unwrap();

    let allowed = client.get(HTTPBIN_HOST, "/public/x").unwrap();
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.header("x-upstream-path"), Some("/public/x"));
    for path in BYPASSES {
        client.disconnect();
        let resp = client.get(HTTPBIN_HOST, path).unwrap();
        println!(
            "{path:<28} {} {}",
            resp.status,
            resp.header("x-upstream-path").unwrap_or("(not forwarded)")
        );
        assert_ne!(resp.status, 200, "{path} served: {}", resp.body);
        assert!(
            resp.header("x-upstream-path")
                .is_none_or(|p| p.starts_with("/public/")),
            "{path} reached the upstream as {:?}",
            resp.header("x-upstream-path")
        );
    }
    let served: u64 = gw.clusters.iter().map(|u| u.served()).sum();
    assert_eq!(served, 1, "only /public/x reached an upstream");
}
