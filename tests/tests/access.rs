//! SMI authorization over real mTLS (seed 002): the caller's identity is the SPIFFE URI
//! SAN of its client certificate. An unknown caller gets 403 `access denied`; curl is
//! served only by the clusters whose ServiceAccount a TrafficTarget lets it call.
#![cfg(test)]

use std::sync::Arc;

use rustls::ClientConfig;
use xcluster_e2e::envoy::{Listener, ServerTls};
use xcluster_e2e::fixture::{Gateway, Tally};
use xcluster_e2e::pki::Pki;
use xcluster_e2e::scenario::{
    PluginConfigFile, CURL_ID, ENFORCE, ENFORCE_LOCAL_ONLY, HTTPBIN_HOST, INTRUDER_ID,
};

struct World {
    gw: Gateway,
    curl: Arc<ClientConfig>,
    intruder: Arc<ClientConfig>,
}

fn world() -> World {
    let pki = Pki::new().unwrap();
    let tls = ServerTls {
        cert: pki.server_cert("localhost").unwrap(),
        client_ca_pem: pki.ca_pem(),
    };
    let listener = |file: PluginConfigFile| Listener {
        name: file.name.to_string(),
        plugin_config: file.json.to_string(),
        tls: Some(tls.clone()),
    };
    let gw = Gateway::start(
        "access",
        vec![listener(ENFORCE_LOCAL_ONLY), listener(ENFORCE)],
    )
    .unwrap();
    let curl = pki
        .client_config(&pki.client_cert(CURL_ID).unwrap())
        .unwrap();
    let intruder = pki
        .client_config(&pki.client_cert(INTRUDER_ID).unwrap())
        .unwrap();
    World { gw, curl, intruder }
}

#[test]
fn traffic_targets_decide_who_may_call_and_which_clusters_serve() {
    let w = world();

    // Only curl → httpbin/default is allowed: cluster-2's target runs as that account.
    let mut curl =
        w.gw.tls_client(ENFORCE_LOCAL_ONLY.name, w.curl.clone())
            .unwrap();
    let tally = Tally::collect(60, || curl.get(HTTPBIN_HOST, "/"));
    println!("curl, curl-to-httpbin only: {tally}");
    assert_eq!(tally.outcomes(), ["cluster-2"], "{tally}");

    // The route group allows GET only.
    let resp = curl
        .request("POST", HTTPBIN_HOST, "/", &[("content-length", "0")])
        .unwrap();
    assert_eq!((resp.status, resp.body.as_str()), (403, "access denied"));

    // With curl-to-ext-httpbin too, every cluster may serve curl.
    let mut curl = w.gw.tls_client(ENFORCE.name, w.curl.clone()).unwrap();
    let tally = Tally::collect(150, || curl.get(HTTPBIN_HOST, "/"));
    println!("curl, both TrafficTargets: {tally}");
    assert_eq!(
        tally.outcomes(),
        ["cluster-1", "cluster-2", "cluster-3"],
        "{tally}"
    );
}

#[test]
fn unknown_caller_is_denied_without_details() {
    let w = world();
    for file in [ENFORCE_LOCAL_ONLY, ENFORCE] {
        let mut intruder = w.gw.tls_client(file.name, w.intruder.clone()).unwrap();
        let tally = Tally::collect(10, || intruder.get(HTTPBIN_HOST, "/"));
        assert_eq!(
            tally.outcomes(),
            ["403 access denied"],
            "{}: {tally}",
            file.name
        );
    }
    for upstream in &w.gw.clusters {
        assert_eq!(
            upstream.served(),
            0,
            "{} served the intruder",
            upstream.name()
        );
    }
    // The reason is counted and shown in the access log (response code details), not
    // sent to the client.
    let denied = xcluster_e2e::wait_for(std::time::Duration::from_secs(5), || {
        w.gw.envoy
            .log()
            .contains(" 403 xcluster_denied_not_allowed")
            .then_some(())
    });
    assert!(
        denied.is_some(),
        "no access log line with the reason:\n{}",
        w.gw.envoy.log()
    );
    let stats = w.gw.envoy.stats("xcluster_denied_total").unwrap();
    assert_eq!(
        stats
            .get("wasmcustom.xcluster_denied_total.destination=.=httpbin;.;reason=.=not_allowed;.;")
            .copied(),
        Some(20),
        "{stats:?}"
    );
}
