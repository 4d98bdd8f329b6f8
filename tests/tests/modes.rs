//! More of the contract through a real Envoy: sticky splits keep a user on one cluster
//! (header or cookie key, across both worker VMs); dry-run reports would-be denials but
//! serves; a configured trusted header carries the caller identity.
#![cfg(test)]

use std::collections::BTreeSet;

use serde_json::json;
use xcluster_e2e::envoy::Listener;
use xcluster_e2e::fixture::{outcome, Gateway, Tally};
use xcluster_e2e::scenario::{
    ACTIVE_ACTIVE, DECISION_HEADER, ENFORCE_LOCAL_ONLY, HTTPBIN_HOST, INTRUDER_ID,
};

#[test]
fn sticky_keys_keep_users_on_one_cluster() {
    let mut by_header = ACTIVE_ACTIVE.value();
    by_header["destinations"][0]["sticky"] = json!({ "header": "x-user" });
    let mut by_cookie = ACTIVE_ACTIVE.value();
    by_cookie["destinations"][0]["sticky"] = json!({ "cookie": "session" });
    let gw = Gateway::start(
        "sticky",
        vec![
            Listener::plain("header", &by_header),
            Listener::plain("cookie", &by_cookie),
        ],
    )
    .unwrap();

    for (listener, header, value) in [
        ("header", "x-user", "user-{u}"),
        ("cookie", "cookie", "theme=dark; session=s{u}; lang=en"),
    ] {
        let mut homes = BTreeSet::new();
        for u in 0..20 {
            let value = value.replace("{u}", &u.to_string());
            let mut tally = Tally::default();
            for _ in 0..10 {
                // A new connection each time: both worker VMs must agree.
                let mut client = gw.client(listener);
                let resp = client
                    .request("GET", HTTPBIN_HOST, "/", &[(header, &value)])
                    .unwrap();
                tally.record(&resp);
            }
            assert_eq!(tally.outcomes().len(), 1, "{listener} {value}: {tally}");
            homes.insert(tally.outcomes()[0].to_string());
        }
        // The 20 users are spread, not all pinned to one cluster.
        assert!(homes.len() >= 2, "{listener}: every user on {homes:?}");
        assert!(homes.iter().all(|h| h.starts_with("cluster-")), "{homes:?}");
    }
}

#[test]
fn dry_run_serves_and_reports_would_be_denials() {
    let mut config = ENFORCE_LOCAL_ONLY.value();
    config["access"]["mode"] = json!("dry-run");
    config["identity"] = json!({ "trusted_header": "x-caller" });
    let gw = Gateway::start("dry-run", vec![Listener::plain("gw", &config)]).unwrap();
    let mut client = gw.client("gw");
    let mut tally = Tally::default();
    for _ in 0..60 {
        let resp = client
            .request("GET", HTTPBIN_HOST, "/", &[("x-caller", INTRUDER_ID)])
            .unwrap();
        assert_eq!(resp.status, 200, "{}", outcome(&resp));
        let decision = resp.header(DECISION_HEADER).unwrap_or_default();
        assert!(decision.contains("access=dry-run-denied"), "{decision:?}");
        tally.record(&resp);
    }
    // Served as in permissive mode: every cluster.
    assert_eq!(
        tally.outcomes(),
        ["cluster-1", "cluster-2", "cluster-3"],
        "{tally}"
    );
    let stats = gw.envoy.stats("xcluster_dry_run_denied_total").unwrap();
    assert_eq!(
        stats
            .get("wasmcustom.xcluster_dry_run_denied_total.destination=.=httpbin;.;reason=.=not_allowed;.;")
            .copied(),
        Some(60),
        "{stats:?}"
    );
}

#[test]
fn trusted_header_carries_the_identity() {
    let mut config = ENFORCE_LOCAL_ONLY.value();
    config["identity"] = json!({ "trusted_header": "x-caller" });
    let gw = Gateway::start("trusted-header", vec![Listener::plain("gw", &config)]).unwrap();
    let mut client = gw.client("gw");

    // curl, in the `<sa>.<ns>.<trust domain>` form: only cluster-2 runs as httpbin/default.
    let tally = Tally::collect(30, || {
        client.request(
            "GET",
            HTTPBIN_HOST,
            "/",
            &[("x-caller", "curl.curl.cluster.local")],
        )
    });
    assert_eq!(tally.outcomes(), ["cluster-2"], "{tally}");

    // No identity at all, or an unknown one: denied.
    let resp = client.get(HTTPBIN_HOST, "/").unwrap();
    assert_eq!((resp.status, resp.body.as_str()), (403, "access denied"));
    let resp = client
        .request("GET", HTTPBIN_HOST, "/", &[("x-caller", INTRUDER_ID)])
        .unwrap();
    assert_eq!((resp.status, resp.body.as_str()), (403, "access denied"));
    let stats = gw.envoy.stats("xcluster_denied_total").unwrap();
    for reason in ["no_identity", "not_allowed"] {
        let name = format!(
            "wasmcustom.xcluster_denied_total.destination=.=httpbin;.;reason=.={reason};.;"
        );
        assert_eq!(stats.get(&name).copied(), Some(1), "{stats:?}");
    }
}

#[test]
fn deny_lines_follow_envoys_wasm_log_level() {
    let mut config = ENFORCE_LOCAL_ONLY.value();
    config["identity"] = json!({ "trusted_header": "x-caller" });
    let gw = Gateway::start("deny-log-level", vec![Listener::plain("gw", &config)]).unwrap();
    let mut client = gw.client("gw");
    let mut deny = || {
        let resp = client
            .request("GET", HTTPBIN_HOST, "/", &[("x-caller", INTRUDER_ID)])
            .unwrap();
        assert_eq!(resp.status, 403);
    };

    // At Envoy's default level (info) a denial is counted, not logged.
    for _ in 0..5 {
        deny();
    }
    assert!(
        !gw.envoy.log().contains("xcluster: deny"),
        "{}",
        gw.envoy.log()
    );

    // Raised through the admin API, the filter picks the level up on its next tick.
    let admin = gw.envoy.admin().expect("admin address");
    let resp = xcluster_e2e::client::Client::plain(admin)
        .request("POST", "127.0.0.1", "/logging?wasm=debug", &[])
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body);
    let logged = xcluster_e2e::wait_for(std::time::Duration::from_secs(5), || {
        deny();
        gw.envoy
            .log()
            .lines()
            .find(|l| l.contains("xcluster: deny"))
            .map(str::to_owned)
    });
    let line = logged.expect("a deny line once the wasm log level is debug");
    assert!(line.contains(&format!("caller={INTRUDER_ID}")), "{line}");
    assert!(line.ends_with("reason=not_allowed"), "{line}");
}
