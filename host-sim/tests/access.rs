//! Behaviour of the real filter: SMI authorization and caller identity.
#![cfg(test)]

mod common;

use common::*;
use serde_json::{json, Value};
use xcluster_host_sim::{Action, LogLevel};

/// Destination `d` with targets `a` (ServiceAccount ns/a) and `b` (ns/b); `access` merged in.
fn authz(access: Value) -> Value {
    config(
        vec![target("a", "c1", "ns/a"), target("b", "c2", "ns/b")],
        json!({"access": access}),
    )
}

fn group(name: &str, matches: Value) -> Value {
    json!({"name": name, "matches": matches})
}

fn tt(name: &str, dest: &str, sources: &[&str], rules: Value) -> Value {
    let sa = |s: &str| {
        let (ns, n) = s.split_once('/').unwrap();
        json!({"namespace": ns, "name": n})
    };
    json!({
        "name": name,
        "destination": sa(dest),
        "sources": sources.iter().map(|s| sa(s)).collect::<Vec<_>>(),
        "rules": rules,
    })
}

/// Enforce mode: `caller/curl` may call both ServiceAccounts on group `g`.
fn enforce_all(matches: Value) -> Value {
    authz(json!({
        "mode": "enforce",
        "route_groups": [group("g", matches)],
        "traffic_targets": [
            tt("ta", "ns/a", &["caller/curl"], json!([{"route_group": "g"}])),
            tt("tb", "ns/b", &["caller/curl"], json!([{"route_group": "g"}])),
        ],
    }))
}

fn decide(
    cfg: &Value,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    peer: Option<&str>,
) -> Option<String> {
    let host = new_host();
    let vm = start(&host, cfg);
    let mut h = get(path, extra);
    h[0].1 = method.into();
    let (s, _) = send(&vm, &h, peer);
    match s.local_reply() {
        Some(r) => Some(format!("{} {}", r.status, String::from_utf8_lossy(&r.body))),
        None => routed(&s),
    }
}

const CURL: &str = "spiffe://cluster.local/ns/caller/sa/curl";

#[test]
fn enforce_allows_listed_callers_and_denies_everyone_else() {
    let cfg = enforce_all(json!([{"name": "all", "path_regex": ".*", "methods": ["*"]}]));
    let host = host_with(7, LogLevel::Debug);
    let vm = start(&host, &cfg);
    let (s, action) = send(&vm, &get("/", &[]), Some(CURL));
    assert_eq!(action, Action::Continue);
    assert!(routed(&s).is_some());

    let (s, action) = send(
        &vm,
        &get("/", &[]),
        Some("spiffe://cluster.local/ns/caller/sa/other"),
    );
    assert_eq!(action, Action::Pause);
    let reply = s.local_reply().unwrap();
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (403, &b"access denied"[..])
    );
    // The reason goes to Envoy's response code details (access logs), not to the client.
    assert_eq!(reply.details, "xcluster_denied_not_allowed");
    assert_eq!(
        host.counter("xcluster_denied_total.destination=.=d;.;reason=.=not_allowed;.;"),
        Some(1)
    );

    let (s, _) = send(&vm, &get("/", &[]), None);
    assert_eq!(s.local_reply().unwrap().status, 403);
    assert_eq!(
        s.local_reply().unwrap().details,
        "xcluster_denied_no_identity"
    );
    assert_eq!(
        host.counter("xcluster_denied_total.destination=.=d;.;reason=.=no_identity;.;"),
        Some(1)
    );
    let denials: Vec<String> = host
        .logs_at(LogLevel::Debug)
        .into_iter()
        .filter(|l| l.starts_with("xcluster: deny "))
        .collect();
    assert_eq!(denials.len(), 2, "{denials:?}");
    assert!(
        denials[0].contains("route=r destination=d "),
        "{}",
        denials[0]
    );
    assert!(denials[0].ends_with("reason=not_allowed"), "{}", denials[0]);
    assert!(denials[1].ends_with("reason=no_identity"), "{}", denials[1]);
}

#[test]
fn denials_are_not_logged_at_info_level() {
    let cfg = enforce_all(json!([{"name": "get", "methods": ["GET"]}]));
    let host = new_host();
    let vm = start(&host, &cfg);
    for _ in 0..20 {
        let (s, _) = send(
            &vm,
            &get("/", &[]),
            Some(CURL.replace("curl", "x").as_str()),
        );
        assert_eq!(s.local_reply().unwrap().status, 403);
    }
    assert_eq!(
        host.counter("xcluster_denied_total.destination=.=d;.;reason=.=not_allowed;.;"),
        Some(20)
    );
    let logged: Vec<String> = host
        .logs()
        .into_iter()
        .map(|l| l.message)
        .filter(|m| m.contains("deny"))
        .collect();
    assert!(
        logged.is_empty(),
        "a denial storm must not flood the log: {logged:?}"
    );
}

#[test]
fn the_deny_log_line_names_the_caller() {
    let cfg = enforce_all(json!([{"name": "get", "methods": ["GET"]}]));
    let host = host_with(7, LogLevel::Debug);
    let vm = start(&host, &cfg);
    send(
        &vm,
        &get("/", &[]),
        Some("spiffe://cluster.local/ns/caller/sa/other"),
    );
    let line = host
        .logs_at(LogLevel::Debug)
        .into_iter()
        .find(|l| l.starts_with("xcluster: deny "))
        .unwrap();
    assert!(
        line.starts_with("xcluster: deny route=r destination=d caller="),
        "{line}"
    );
    assert!(line.contains("other"), "the caller is named: {line}");
    assert!(line.ends_with(" reason=not_allowed"), "{line}");
}

#[test]
fn per_target_service_accounts_decide_which_clusters_may_serve() {
    // curl may only reach ServiceAccount ns/a: every request lands on target a.
    let cfg = authz(json!({
        "mode": "enforce",
        "route_groups": [group("g", json!([{"name": "all"}]))],
        "traffic_targets": [tt("ta", "ns/a", &["caller/curl"], json!([{"route_group": "g"}]))],
    }));
    let host = new_host();
    let vm = start(&host, &cfg);
    for _ in 0..40 {
        let (mut s, _) = send(&vm, &get("/", &[]), Some(CURL));
        assert_eq!(routed(&s).as_deref(), Some("a"));
        s.finish().unwrap();
    }
    assert_eq!(
        host.counter("xcluster_requests_total.destination=.=d;.;target=.=b;.;"),
        Some(0)
    );
}

#[test]
fn methods_are_case_sensitive_and_star_matches_any() {
    let get_only = enforce_all(json!([{"name": "m", "methods": ["GET"]}]));
    assert!(
        decide(&get_only, "GET", "/", &[], Some(CURL))
            .unwrap()
            .len()
            == 1
    );
    assert_eq!(
        decide(&get_only, "POST", "/", &[], Some(CURL)).as_deref(),
        Some("403 access denied")
    );
    assert_eq!(
        decide(&get_only, "get", "/", &[], Some(CURL)).as_deref(),
        Some("403 access denied")
    );
    let star = enforce_all(json!([{"name": "m", "methods": ["*"]}]));
    for m in ["GET", "POST", "DELETE", "PURGE"] {
        assert_ne!(
            decide(&star, m, "/", &[], Some(CURL)).as_deref(),
            Some("403 access denied"),
            "{m}"
        );
    }
    let empty = enforce_all(json!([{"name": "m"}]));
    assert_ne!(
        decide(&empty, "PATCH", "/", &[], Some(CURL)).as_deref(),
        Some("403 access denied")
    );
}

#[test]
fn path_regex_is_anchored_at_the_start_only() {
    let cfg = enforce_all(json!([{"name": "api", "path_regex": "/api"}]));
    for path in ["/api", "/api/v1", "/apix", "/api?x=1"] {
        assert_ne!(
            decide(&cfg, "GET", path, &[], Some(CURL)).as_deref(),
            Some("403 access denied"),
            "{path}"
        );
    }
    for path in ["/v1/api", "/", "/API"] {
        assert_eq!(
            decide(&cfg, "GET", path, &[], Some(CURL)).as_deref(),
            Some("403 access denied"),
            "{path}"
        );
    }
    let caret = enforce_all(json!([{"name": "api", "path_regex": "^/items/[0-9]+$"}]));
    assert_ne!(
        decide(&caret, "GET", "/items/42", &[], Some(CURL)).as_deref(),
        Some("403 access denied")
    );
    assert_eq!(
        decide(&caret, "GET", "/items/42/x", &[], Some(CURL)).as_deref(),
        Some("403 access denied")
    );
}

#[test]
fn header_regexes_match_the_whole_value() {
    let cfg = enforce_all(json!([{"name": "h", "headers": {"X-Env": "prod|staging"}}]));
    for v in ["prod", "staging"] {
        assert_ne!(
            decide(&cfg, "GET", "/", &[("x-env", v)], Some(CURL)).as_deref(),
            Some("403 access denied"),
            "{v}"
        );
    }
    for v in ["production", "xprod", ""] {
        assert_eq!(
            decide(&cfg, "GET", "/", &[("x-env", v)], Some(CURL)).as_deref(),
            Some("403 access denied"),
            "{v}"
        );
    }
    assert_eq!(
        decide(&cfg, "GET", "/", &[], Some(CURL)).as_deref(),
        Some("403 access denied")
    );
}

#[test]
fn rules_can_name_some_matches_of_a_group() {
    let cfg = authz(json!({
        "mode": "enforce",
        "route_groups": [group("g", json!([
            {"name": "read", "methods": ["GET"]},
            {"name": "write", "methods": ["POST"]}
        ]))],
        "traffic_targets": [
            tt("ta", "ns/a", &["caller/curl"], json!([{"route_group": "g", "matches": ["read"]}])),
            tt("tb", "ns/b", &["caller/curl"], json!([{"route_group": "g", "matches": ["read"]}])),
        ],
    }));
    assert_ne!(
        decide(&cfg, "GET", "/", &[], Some(CURL)).as_deref(),
        Some("403 access denied")
    );
    assert_eq!(
        decide(&cfg, "POST", "/", &[], Some(CURL)).as_deref(),
        Some("403 access denied")
    );
}

#[test]
fn dry_run_reports_would_be_denials_and_forwards() {
    let mut cfg = enforce_all(json!([{"name": "m", "methods": ["GET"]}]));
    merge(
        &mut cfg,
        json!({"access": {"mode": "dry-run"}, "decision_header": "x-decision"}),
    );
    let host = new_host();
    let vm = start(&host, &cfg);
    let mut h = get("/", &[]);
    h[0].1 = "POST".into();
    let (mut s, action) = send(&vm, &h, Some(CURL));
    assert_eq!(action, Action::Continue);
    assert!(routed(&s).is_some());
    assert_eq!(
        host.counter("xcluster_dry_run_denied_total.destination=.=d;.;reason=.=not_allowed;.;"),
        Some(1)
    );
    assert!(host
        .logs_at(LogLevel::Info)
        .iter()
        .any(|l| l.contains("dry-run") && l.contains("destination=d")));
    s.response_headers(&[(":status", "200")], true).unwrap();
    let decision = s.response_header("x-decision").unwrap();
    assert!(decision.ends_with("access=dry-run-denied"), "{decision}");
    // An allowed request is not counted.
    let (mut s, _) = send(&vm, &get("/", &[]), Some(CURL));
    s.response_headers(&[(":status", "200")], true).unwrap();
    assert!(s
        .response_header("x-decision")
        .unwrap()
        .ends_with("access=allowed"));
    assert_eq!(
        host.counter("xcluster_dry_run_denied_total.destination=.=d;.;reason=.=not_allowed;.;"),
        Some(1)
    );
}

#[test]
fn permissive_needs_no_identity() {
    let cfg = authz(json!({"mode": "permissive"}));
    let d = decide(&cfg, "DELETE", "/anything", &[], None).unwrap();
    assert!(d == "a" || d == "b", "{d}");
}

#[test]
fn identity_formats_and_trust_domains() {
    let cfg = enforce_all(json!([{"name": "all"}]));
    for id in [
        "spiffe://cluster.local/ns/caller/sa/curl",
        "spiffe://cluster.local/curl/caller",
        "curl.caller.cluster.local",
        "spiffe://other.domain/ns/caller/sa/curl",
    ] {
        assert_ne!(
            decide(&cfg, "GET", "/", &[], Some(id)).as_deref(),
            Some("403 access denied"),
            "{id}"
        );
    }
    for id in [
        "spiffe://cluster.local/ns/caller/sa/other",
        "spiffe://cluster.local/ns/other/sa/curl",
        "not an identity",
        "",
    ] {
        assert_eq!(
            decide(&cfg, "GET", "/", &[], Some(id)).as_deref(),
            Some("403 access denied"),
            "{id}"
        );
    }
    let mut restricted = cfg.clone();
    merge(
        &mut restricted,
        json!({"identity": {"trust_domains": ["cluster.local"]}}),
    );
    assert_ne!(
        decide(&restricted, "GET", "/", &[], Some(CURL)).as_deref(),
        Some("403 access denied")
    );
    assert_eq!(
        decide(
            &restricted,
            "GET",
            "/",
            &[],
            Some("spiffe://evil.domain/ns/caller/sa/curl")
        )
        .as_deref(),
        Some("403 access denied")
    );
}

#[test]
fn a_trusted_header_replaces_the_peer_certificate() {
    let mut cfg = enforce_all(json!([{"name": "all"}]));
    merge(
        &mut cfg,
        json!({"identity": {"trusted_header": "x-caller"}}),
    );
    assert_ne!(
        decide(&cfg, "GET", "/", &[("X-Caller", CURL)], None).as_deref(),
        Some("403 access denied")
    );
    // The certificate is not consulted when the header is configured.
    assert_eq!(
        decide(&cfg, "GET", "/", &[], Some(CURL)).as_deref(),
        Some("403 access denied")
    );
}

#[test]
fn failover_skips_tiers_the_caller_may_not_reach() {
    // FailOver: the local target runs as ns/a, a same-zone remote one as ns/b; the caller
    // may only reach ns/b, so it is served by the remote tier, not denied.
    let mut remote = target("b", "c2", "ns/b");
    merge(
        &mut remote,
        json!({"locality": {"region": "eu", "zone": "eu-a"}}),
    );
    let mut cfg = config(
        vec![target("a", "c1", "ns/a"), remote],
        json!({"access": {
            "mode": "enforce",
            "route_groups": [group("g", json!([{"name": "all"}]))],
            "traffic_targets": [tt("tb", "ns/b", &["caller/curl"], json!([{"route_group": "g"}]))],
        }}),
    );
    cfg["destinations"][0]["policy"] = json!("FailOver");
    let host = new_host();
    let vm = start(&host, &cfg);
    let (s, _) = send(&vm, &get("/", &[]), Some(CURL));
    assert_eq!(routed(&s).as_deref(), Some("b"));
    let (s, _) = send(
        &vm,
        &get("/", &[]),
        Some("spiffe://cluster.local/ns/x/sa/y"),
    );
    assert_eq!(s.local_reply().map(|r| r.status), Some(403));
}

#[test]
fn the_peer_identity_is_read_only_when_access_control_needs_it() {
    let reads = |mode: &str| {
        let cfg = authz(json!({"mode": mode}));
        let host = new_host();
        let vm = start(&host, &cfg);
        let (mut s, _) = send(&vm, &get("/", &[]), Some(CURL));
        s.finish().unwrap();
        s.property_reads()
            .iter()
            .filter(|p| *p == "connection.uri_san_peer_certificate")
            .count()
    };
    assert_eq!(reads("permissive"), 0);
    assert_eq!(reads("enforce"), 1);
    assert_eq!(reads("dry-run"), 1);
}
