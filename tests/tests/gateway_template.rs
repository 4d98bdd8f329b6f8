//! `envoy/gateway.yaml`, the documented gateway bootstrap, really works: with its ports
//! and wasm path filled in, it is hardened as documented, and the local cluster serves
//! (FailOver) until it goes down, then the others take over.
#![cfg(test)]

use xcluster_e2e::envoy::Envoy;
use xcluster_e2e::fixture::{outcome, Tally};
use xcluster_e2e::scenario::CLUSTERS;
use xcluster_e2e::upstream::Upstream;

/// Replaces `from` (which must occur exactly once) by `to`.
fn fill(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} in envoy/gateway.yaml"
    );
    text.replace(from, to)
}

#[test]
fn gateway_template_fails_over() {
    let template =
        std::fs::read_to_string(xcluster_e2e::workspace_root().join("envoy/gateway.yaml")).unwrap();
    let wasm = xcluster_wasm_build::filter_wasm().unwrap();
    let mut upstreams: Vec<Upstream> = CLUSTERS
        .iter()
        .map(|n| Upstream::start(n).unwrap())
        .collect();
    let mut config = fill(&template, "port_value: 9901", "port_value: 0");
    config = fill(&config, "port_value: 10000", "port_value: 0");
    config = fill(
        &config,
        "target/xcluster_filter.wasm",
        &wasm.to_string_lossy(),
    );
    for (i, upstream) in upstreams.iter().enumerate() {
        config = fill(
            &config,
            &format!("port_value: {}", 8081 + i),
            &format!("port_value: {}", upstream.addr().port()),
        );
    }
    let envoy = Envoy::start_config("gateway-template", &config).unwrap();
    let mut client = xcluster_e2e::client::Client::plain(envoy.listener("gateway"));

    let tally = Tally::collect(20, || client.get("httpbin.httpbin", "/"));
    assert_eq!(tally.outcomes(), ["cluster-2"], "{tally}");

    // Hardened as documented: normalized paths, escaped slashes redirected, no `_` names.
    let resp = client.get("httpbin.httpbin", "/a/./b/../c//d").unwrap();
    assert_eq!(resp.header("x-upstream-path"), Some("/a/c/d"), "{resp:?}");
    let resp = client.get("httpbin.httpbin", "/a%2fb").unwrap();
    assert_eq!((resp.status, resp.header("location")), (307, Some("/a/b")));
    let resp = client
        .request("GET", "httpbin.httpbin", "/", &[("x_user", "u")])
        .unwrap();
    assert_eq!(resp.status, 400, "{resp:?}");

    upstreams[1].stop();
    let mut failures = 0;
    let mut tally = Tally::default();
    for _ in 0..200 {
        let resp = client.get("httpbin.httpbin", "/").unwrap();
        if resp.status == 200 {
            tally.record(&resp);
        } else {
            assert_eq!(resp.status, 503, "{}", outcome(&resp));
            failures += 1;
        }
    }
    println!("after cluster-2 stopped: {failures} failures, then {tally}");
    assert!(
        (1..=6).contains(&failures),
        "{failures} failures before ejection"
    );
    assert_eq!(tally.outcomes(), ["cluster-1", "cluster-3"], "{tally}");
}
