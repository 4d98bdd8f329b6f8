//! Issue 9's table, through a real Envoy: curl may `GET` only under `/public/` (SMI
//! `pathRegex: /public/`, enforce mode, over mTLS). The gateway's connection manager
//! normalizes the path before the filter sees it, so a path that walks out of `/public/`
//! is authorized as the path it walks to, and the upstream gets that same path.
#![cfg(test)]

use std::sync::Arc;

use rustls::ClientConfig;
use xcluster_e2e::client::{Client, Response};
use xcluster_e2e::envoy::{Listener, ServerTls};
use xcluster_e2e::fixture::Gateway;
use xcluster_e2e::pki::Pki;
use xcluster_e2e::scenario::{CURL_ID, HTTPBIN_HOST, PUBLIC_ONLY};

fn world() -> (Gateway, Arc<ClientConfig>) {
    let pki = Pki::new().unwrap();
    let listener = Listener {
        name: PUBLIC_ONLY.name.to_string(),
        plugin_config: PUBLIC_ONLY.json.to_string(),
        tls: Some(ServerTls {
            cert: pki.server_cert("localhost").unwrap(),
            client_ca_pem: pki.ca_pem(),
        }),
    };
    let gw = Gateway::start("path-normalization", vec![listener]).unwrap();
    let curl = pki
        .client_config(&pki.client_cert(CURL_ID).unwrap())
        .unwrap();
    (gw, curl)
}

fn get(client: &mut Client, path: &str) -> Response {
    client.disconnect();
    client.get(HTTPBIN_HOST, path).unwrap()
}

#[test]
fn paths_walking_out_of_public_are_authorized_as_where_they_lead() {
    let (gw, curl) = world();
    let mut client = gw.tls_client(PUBLIC_ONLY.name, curl).unwrap();

    let resp = get(&mut client, "/public/page");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.header("x-upstream-path"), Some("/public/page"));
    let resp = get(&mut client, "/private");
    assert_eq!((resp.status, resp.body.as_str()), (403, "access denied"));

    // Dot segments, plain or percent-encoded, are resolved before the filter decides
    // (Envoy's normalizer also reads `..;` as `..`).
    for path in [
        "/public/../private",
        "/public/%2e%2e/private",
        "/public/./../private",
        "/public/..;/private",
    ] {
        let resp = get(&mut client, path);
        assert_eq!(
            (resp.status, resp.body.as_str()),
            (403, "access denied"),
            "{path}: {resp:?}"
        );
    }
    // A path inside /public/ is forwarded in its normal form: what the filter authorized
    // is what the upstream gets.
    for (path, normal) in [
        ("/public/a/./b/../c//d", "/public/a/c/d"),
        ("/public//..//private", "/public/private"),
    ] {
        let resp = get(&mut client, path);
        assert_eq!(resp.status, 200, "{path}: {resp:?}");
        assert_eq!(resp.header("x-upstream-path"), Some(normal), "{path}");
    }

    // Escaped slashes are redirected to the unescaped, normalized path, which is then
    // authorized as itself.
    for path in ["/public/..%2fprivate", "/public/%2E%2E%2Fprivate"] {
        let resp = get(&mut client, path);
        assert_eq!(resp.status, 307, "{path}: {resp:?}");
        let location = resp.header("location").unwrap_or_default().to_string();
        assert_eq!(location, "/private", "{path}");
        let resp = get(&mut client, &location);
        assert_eq!(resp.status, 403, "{path} → {location}: {resp:?}");
    }
    let resp = get(&mut client, "/public/a%2Fb");
    assert_eq!(
        (resp.status, resp.header("location")),
        (307, Some("/public/a/b"))
    );

    assert_eq!(
        gw.clusters[1].served(),
        3,
        "cluster-2 served more than the three /public/ requests"
    );
    let stats = gw
        .envoy
        .stats("downstream_rq_redirected_with_normalized_path")
        .unwrap();
    assert_eq!(stats.values().sum::<u64>(), 3, "{stats:?}");
}

/// Envoy 1.40's `normalize_path` decodes `%2e%2e;` to `..;` but does not resolve that
/// segment (it does resolve a literal `..;`), so the filter sees `/public/..;/private` and
/// a Tomcat-style upstream serves `/private`.
#[test]
fn encoded_dot_segments_with_parameters_do_not_walk_out_of_public() {
    let (gw, curl) = world();
    let mut client = gw.tls_client(PUBLIC_ONLY.name, curl).unwrap();
    let resp = get(&mut client, "/public/%2e%2e;/private");
    assert_ne!(resp.status, 200, "{resp:?}");
    assert_eq!(gw.clusters[1].served(), 0);
}

#[test]
fn header_names_with_underscores_are_refused() {
    let (gw, curl) = world();
    let mut client = gw.tls_client(PUBLIC_ONLY.name, curl).unwrap();
    let resp = client
        .request("GET", HTTPBIN_HOST, "/public/x", &[("x_caller", "admin")])
        .unwrap();
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_eq!(gw.clusters[1].served(), 0);
}
