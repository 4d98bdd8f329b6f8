//! Behaviour of the real filter (`xcluster_filter.wasm`): routing, sanitizing, rewrites,
//! decision header and odd requests. Written against `.work/semantics.md`.
#![cfg(test)]

mod common;

use common::*;
use serde_json::json;
use xcluster_host_sim::{Action, LogLevel};

fn one_target() -> serde_json::Value {
    config(vec![target("a", "c1", "ns/a")], json!({}))
}

#[test]
fn a_matching_request_gets_the_cluster_header_and_a_route_cache_clear() {
    let host = new_host();
    let vm = start(&host, &one_target());
    let (s, action) = send(&vm, &get("/x", &[]), None);
    assert_eq!(action, Action::Continue);
    assert_eq!(
        s.request_header("x-xcluster-cluster").as_deref(),
        Some("outbound|a")
    );
    assert_eq!(s.route_cache_cleared(), 1);
    assert_eq!(s.local_reply(), None);
    assert_eq!(
        host.counter("xcluster_requests_total.destination=.=d;.;target=.=a;.;"),
        Some(1)
    );
}

#[test]
fn unmatched_requests_pass_untouched_or_get_404() {
    let host = new_host();
    let vm = start(&host, &one_target());
    let headers = vec![
        (":method".to_string(), "GET".to_string()),
        (":path".to_string(), "/".to_string()),
        (":authority".to_string(), "other.example.com".to_string()),
    ];
    let (s, action) = send(&vm, &headers, None);
    assert_eq!(action, Action::Continue);
    assert_eq!(s.request_headers_now().len(), 3);
    assert_eq!(s.route_cache_cleared(), 0);
    assert_eq!(host.counter("xcluster_unmatched_total"), Some(1));

    let host = new_host();
    let cfg = config(
        vec![target("a", "c1", "ns/a")],
        json!({"unmatched": "deny"}),
    );
    let vm = start(&host, &cfg);
    let (s, action) = send(&vm, &headers, None);
    assert_eq!(action, Action::Pause);
    let reply = s.local_reply().unwrap();
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (404, &b"no route"[..])
    );
}

#[test]
fn the_filters_own_headers_are_stripped_from_requests() {
    let host = new_host();
    let cfg = config(
        vec![target("a", "c1", "ns/a")],
        json!({"cluster_header": "x-pick", "decision_header": "x-decision"}),
    );
    let vm = start(&host, &cfg);
    // Matched: the client's choice is replaced by the filter's.
    let (s, _) = send(
        &vm,
        &get(
            "/",
            &[
                ("X-Pick", "evil"),
                ("x-pick", "evil2"),
                ("x-decision", "forged"),
            ],
        ),
        None,
    );
    assert_eq!(
        s.request_headers_now().get_all(b"x-pick"),
        vec![&b"outbound|a"[..]]
    );
    assert_eq!(s.request_header("x-decision"), None);
    // Unmatched: stripped too, nothing set.
    let mut h = get("/", &[("x-pick", "evil"), ("x-decision", "forged")]);
    h[2].1 = "elsewhere".into();
    let (s, _) = send(&vm, &h, None);
    assert_eq!(s.request_header("x-pick"), None);
    assert_eq!(s.request_header("x-decision"), None);
    // The default cluster header is not owned when another one is configured.
    let (s, _) = send(&vm, &get("/", &[("x-xcluster-cluster", "kept")]), None);
    assert_eq!(
        s.request_header("x-xcluster-cluster").as_deref(),
        Some("kept")
    );
}

#[test]
fn authority_is_lower_cased_and_port_and_trailing_dot_stripped() {
    let host = new_host();
    let cfg = config(
        vec![target("a", "c1", "ns/a")],
        json!({"routes": [
            {"name": "r", "match": {"hosts": ["svc.example.com"]}, "destination": "d"},
            {"name": "v6", "match": {"hosts": ["[::1]"]}, "destination": "d"},
            {"name": "wild", "match": {"hosts": ["*.wild.test"]}, "destination": "d"}
        ]}),
    );
    let vm = start(&host, &cfg);
    for authority in [
        "svc.example.com",
        "SVC.Example.COM",
        "svc.example.com:8443",
        "svc.example.com.",
        "svc.example.com.:80",
        "[::1]:8080",
        "[::1]",
        "a.wild.test",
        "x.y.wild.test:1",
    ] {
        let mut h = get("/", &[]);
        h[2].1 = authority.into();
        let (s, _) = send(&vm, &h, None);
        assert_eq!(routed(&s).as_deref(), Some("a"), "authority {authority}");
    }
    for authority in [
        "wild.test",
        "svc.example.com.evil",
        "[::2]:80",
        "example.com",
    ] {
        let mut h = get("/", &[]);
        h[2].1 = authority.into();
        let (s, _) = send(&vm, &h, None);
        assert_eq!(routed(&s), None, "authority {authority}");
    }
}

#[test]
fn routes_match_path_method_and_headers_first_match_wins() {
    let host = new_host();
    let dests: Vec<_> = ["e", "x", "p", "c", "a"]
        .iter()
        .map(|d| json!({"name": d, "hosts": ["svc.example.com"], "targets": [target(d, "c1", "ns/sa")]}))
        .collect();
    let cfg = json!({
        "version": 1,
        "local": {"cluster": "c1"},
        "routes": [
            {"name": "exact", "match": {"path": {"exact": "/exact"}}, "destination": "e"},
            {"name": "regex", "match": {"path": {"regex": "/items/[0-9]+"}}, "destination": "x"},
            {"name": "post", "match": {"path": {"prefix": "/api"}, "methods": ["POST"]}, "destination": "p"},
            {"name": "canary", "match": {"path": {"prefix": "/api"},
                "headers": [{"name": "X-Canary", "exact": "yes"}]}, "destination": "c"},
            {"name": "api", "match": {"path": {"prefix": "/api"}}, "destination": "a"}
        ],
        "destinations": dests,
    });
    let vm = start(&host, &cfg);
    let case = |method: &str, path: &str, extra: &[(&str, &str)]| {
        let mut h = get(path, extra);
        h[0].1 = method.into();
        let (s, _) = send(&vm, &h, None);
        routed(&s)
    };
    assert_eq!(case("GET", "/exact", &[]).as_deref(), Some("e"));
    assert_eq!(case("GET", "/exact?q=1", &[]).as_deref(), Some("e"));
    assert_eq!(case("GET", "/exact/more", &[]), None);
    assert_eq!(case("GET", "/items/42", &[]).as_deref(), Some("x"));
    assert_eq!(case("GET", "/items/42?x=y", &[]).as_deref(), Some("x"));
    assert_eq!(
        case("GET", "/items/42/x", &[]),
        None,
        "regex matches the whole path"
    );
    assert_eq!(case("POST", "/api/v1", &[]).as_deref(), Some("p"));
    assert_eq!(
        case("GET", "/api/v1", &[("x-canary", "yes")]).as_deref(),
        Some("c")
    );
    assert_eq!(
        case("GET", "/api/v1", &[("x-canary", "no")]).as_deref(),
        Some("a")
    );
    assert_eq!(case("GET", "/apiary", &[]).as_deref(), Some("a"));
}

#[test]
fn target_rewrites_authority_and_path_prefix() {
    let host = new_host();
    let mut t = target("remote", "c2", "ns/a");
    merge(
        &mut t,
        json!({"authority": "reviews.remote.svc", "path_prefix": "/cluster-2/reviews"}),
    );
    let vm = start(&host, &config(vec![t], json!({})));
    let (s, _) = send(&vm, &get("/api/v1?x=1", &[]), None);
    assert_eq!(
        s.request_header(":authority").as_deref(),
        Some("reviews.remote.svc")
    );
    assert_eq!(
        s.request_header(":path").as_deref(),
        Some("/cluster-2/reviews/api/v1?x=1")
    );
    assert_eq!(s.route_cache_cleared(), 1);
}

#[test]
fn clear_route_cache_false_leaves_the_route_match_to_the_host() {
    let host = new_host();
    let cfg = config(
        vec![target("a", "c1", "ns/a")],
        json!({"clear_route_cache": false}),
    );
    let vm = start(&host, &cfg);
    let (s, action) = send(&vm, &get("/x", &[]), None);
    assert_eq!(action, Action::Continue);
    assert_eq!(routed(&s).as_deref(), Some("a"));
    assert_eq!(s.route_cache_cleared(), 0);
}

#[test]
fn a_missing_clear_route_cache_is_ignored() {
    let host = new_host();
    host.remove_foreign_function("clear_route_cache");
    let vm = start(&host, &one_target());
    let (s, action) = send(&vm, &get("/", &[]), None);
    assert_eq!(action, Action::Continue);
    assert_eq!(routed(&s).as_deref(), Some("a"));
    assert!(!vm.is_failed());
}

#[test]
fn the_decision_header_explains_responses_and_local_replies() {
    let host = new_host();
    let cfg = config(
        vec![target("a", "c1", "ns/a")],
        json!({"decision_header": "x-decision"}),
    );
    let vm = start(&host, &cfg);
    let (mut s, _) = send(&vm, &get("/", &[]), None);
    s.response_headers(&[(":status", "200")], true).unwrap();
    assert_eq!(
        s.response_header("x-decision").as_deref(),
        Some("route=r; destination=d; target=a; tier=0; access=permissive")
    );

    let cfg = config(
        vec![target("a", "c1", "ns/a")],
        json!({"decision_header": "x-decision", "access": {"mode": "enforce"}}),
    );
    let vm = start(&host, &cfg);
    let (s, _) = send(&vm, &get("/", &[]), None);
    let reply = s.local_reply().unwrap();
    assert_eq!(reply.status, 403);
    let decision = reply.headers.get_str("x-decision").unwrap();
    assert!(decision.contains("target=-"), "{decision}");
    assert!(
        decision.starts_with("route=r; destination=d; "),
        "{decision}"
    );
}

#[test]
fn odd_requests_never_trap_the_vm() {
    let host = new_host();
    let cfg = config(
        vec![target("a", "c1", "ns/a")],
        json!({"access": {"mode": "enforce"}, "decision_header": "x-d",
               "destinations": [{"name": "d", "hosts": ["svc.example.com"], "sticky": {"cookie": "u"},
                  "targets": [target("a", "c1", "ns/a"), target("b", "c2", "ns/b")]}],
               "routes": [{"name": "r", "destination": "d"}]}),
    );
    let vm = start(&host, &cfg);
    let long = "x".repeat(64 * 1024);
    let cases: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![
        vec![],
        vec![(b":method".to_vec(), b"GET".to_vec())],
        vec![(b":path".to_vec(), b"/".to_vec())],
        vec![(b":authority".to_vec(), b"svc.example.com".to_vec())],
        vec![
            (b":authority".to_vec(), b"[::1".to_vec()),
            (b":path".to_vec(), b"?".to_vec()),
        ],
        vec![
            (b":authority".to_vec(), b":".to_vec()),
            (b":path".to_vec(), b"".to_vec()),
        ],
        vec![
            (b":method".to_vec(), b"get".to_vec()),
            (b":path".to_vec(), b"/".to_vec()),
        ],
        vec![
            (b":authority".to_vec(), long.clone().into_bytes()),
            (b":path".to_vec(), long.clone().into_bytes()),
        ],
        vec![
            (b"cookie".to_vec(), long.clone().into_bytes()),
            (b"x-long".to_vec(), long.into_bytes()),
        ],
        vec![
            (b":authority".to_vec(), b"svc\xff.example.com".to_vec()),
            (b":path".to_vec(), b"/\xc3\x28".to_vec()),
        ],
        vec![
            (b":path".to_vec(), b"/a".to_vec()),
            (b":path".to_vec(), b"/b".to_vec()),
            (b"cookie".to_vec(), b"u=1".to_vec()),
            (b"cookie".to_vec(), b"u=2; u=3".to_vec()),
        ],
        vec![
            (b"X-UPPER".to_vec(), b"\x00\x01\xfe".to_vec()),
            (b"cookie".to_vec(), b"=;;u;=u".to_vec()),
        ],
    ];
    for (i, headers) in cases.iter().enumerate() {
        let mut s = vm.http_stream().unwrap();
        s.set_peer_uri_san("spiffe://cluster.local/ns/\u{00ff}/sa/x");
        let action = s.request_headers(headers, true);
        assert!(action.is_ok(), "case {i}: {action:?}");
        if action.unwrap() == Action::Continue {
            s.set_response_flags(0x20);
            let r = s.response_headers(&[(&b":status"[..], &b"50\xff"[..])], true);
            assert!(r.is_ok(), "case {i} response: {r:?}");
        }
        s.finish().unwrap();
    }
    assert!(!vm.is_failed());
    assert!(
        host.logs_at(LogLevel::Critical).is_empty(),
        "{:?}",
        host.logs()
    );
}

#[test]
fn a_routed_request_crosses_the_vm_boundary_a_bounded_number_of_times() {
    let host = new_host();
    let vm = start(&host, &one_target());
    let (mut s, _) = send(&vm, &get("/", &[("x-xcluster-cluster", "evil")]), None);
    s.response_headers(&[(":status", "200")], true).unwrap();
    s.finish().unwrap();
    let calls = s.host_calls();
    // One bulk read of the request headers, one removal and one write of the cluster
    // header, one route-cache clear.
    assert_eq!(
        calls.get("proxy_get_header_map_pairs"),
        Some(&1),
        "{calls:?}"
    );
    assert_eq!(
        calls.get("proxy_call_foreign_function"),
        Some(&1),
        "{calls:?}"
    );
    assert_eq!(
        calls.get("proxy_get_property"),
        None,
        "permissive: no identity read {calls:?}"
    );
    let total: u64 = calls.values().sum();
    assert!(total <= 8, "{total} host calls: {calls:?}");
}

#[test]
fn the_host_call_trace_orders_calls_by_the_work_done_before_them() {
    let host = new_host();
    let vm = start(&host, &one_target());
    let (s, _) = send(&vm, &get("/", &[]), None);
    let trace = s.host_call_trace();
    let counted: u64 = s.host_calls().values().sum();
    assert_eq!(trace.len() as u64, counted, "{trace:?}");
    // The headers are read before the cluster header is written, and the work a
    // callback has done only grows within it.
    let read = trace
        .iter()
        .position(|(n, _)| n == "proxy_get_header_map_pairs");
    let write = trace.iter().position(|(n, _)| {
        n == "proxy_replace_header_map_value" || n == "proxy_add_header_map_value"
    });
    assert!(
        read.is_some() && write.is_some() && read < write,
        "{trace:?}"
    );
    assert!(trace.windows(2).all(|w| w[0].1 <= w[1].1), "{trace:?}");
    assert!(trace.last().map(|(_, f)| *f).unwrap_or(0) <= s.instructions());
}

#[test]
fn star_or_empty_hosts_match_any_host() {
    let host = new_host();
    let dests = |hosts: serde_json::Value| {
        json!({"version": 1, "local": {"cluster": "c1"},
            "routes": [{"name": "r", "match": {"hosts": hosts}, "destination": "d"}],
            "destinations": [{"name": "d", "targets": [target("a", "c1", "ns/a")]}]})
    };
    for hosts in [json!(["*"]), json!([])] {
        let vm = start(&host, &dests(hosts.clone()));
        for authority in ["anything.test", "10.0.0.1:80", "[::1]"] {
            let mut h = get("/", &[]);
            h[2].1 = authority.into();
            let (s, _) = send(&vm, &h, None);
            assert_eq!(
                routed(&s).as_deref(),
                Some("a"),
                "hosts {hosts} authority {authority}"
            );
        }
    }
}
