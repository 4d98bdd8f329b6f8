//! Odd requests against the real `.wasm`, as a host that does not clean them up first
//! would hand them over (Envoy refuses several of them itself: see the e2e
//! `odd_requests`): the filter's own headers in any case, repeated or padded; 100+
//! headers; 64 KiB values; non-UTF-8 path, authority and SAN; several SANs in one
//! property; no `:authority` (HTTP/1.0 without `Host`); `CONNECT` without `:path`;
//! trailers. Each case states the outcome; none traps, none steers.
#![cfg(test)]

mod common;

use common::*;
use serde_json::{json, Value};
use xcluster_host_sim::{Action, HttpStream, LogLevel, Vm};

/// Enforce mode: `curl` may `GET` `/api/*` on `a` (cluster c1) and `b` (c2), `b` is
/// chosen only by the policy (FailOver from c1 keeps it out while `a` serves).
fn cfg() -> Value {
    config(
        vec![target("a", "c1", "ns/a"), target("b", "c2", "ns/b")],
        json!({
            "decision_header": "x-decision",
            "access": {
                "mode": "enforce",
                "route_groups": [{"name": "g", "matches": [{"name": "api", "path_regex": "/api/", "methods": ["GET"]}]}],
                "traffic_targets": [
                    {"name": "to-a", "destination": {"namespace": "ns", "name": "a"},
                     "sources": [{"namespace": "ns", "name": "curl"}], "rules": [{"route_group": "g"}]},
                    {"name": "to-b", "destination": {"namespace": "ns", "name": "b"},
                     "sources": [{"namespace": "ns", "name": "curl"}], "rules": [{"route_group": "g"}]}
                ]
            },
            "destinations": [{"name": "d", "hosts": ["svc.example.com"], "policy": "FailOver",
                              "sticky": {"cookie": "u"},
                              "targets": [target("a", "c1", "ns/a"), target("b", "c2", "ns/b")]}],
        }),
    )
}

const CURL: &str = "spiffe://cluster.local/ns/ns/sa/curl";

/// Sends raw header pairs (end of stream) as `peer`; the stream and its action.
fn send_raw(vm: &Vm, headers: &[(Vec<u8>, Vec<u8>)], peer: Option<&[u8]>) -> HttpStream {
    let mut s = vm.http_stream().unwrap();
    if let Some(peer) = peer {
        s.set_property(&["connection", "uri_san_peer_certificate"], peer);
        s.set_property(&["connection", "mtls"], true);
    }
    let action = s.request_headers(headers, true).unwrap();
    assert_eq!(action == Action::Continue, s.local_reply().is_none());
    s
}

fn pairs(headers: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn api_get(extra: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut h = pairs(&[
        (":method", "GET"),
        (":path", "/api/items"),
        (":authority", "svc.example.com"),
        (":scheme", "https"),
    ]);
    h.extend(pairs(extra));
    h
}

fn status(s: &HttpStream) -> Option<(u32, String)> {
    s.local_reply().map(|r| (r.status, r.details))
}

/// The filter never failed and logged nothing critical.
fn assert_sound(host: &xcluster_host_sim::Host, vm: &Vm) {
    assert!(!vm.is_failed());
    assert!(
        host.logs_at(LogLevel::Critical).is_empty(),
        "{:?}",
        host.logs()
    );
}

#[test]
fn own_headers_in_any_case_repeated_or_padded_are_replaced() {
    let host = new_host();
    let vm = start(&host, &cfg());
    let s = send_raw(
        &vm,
        &api_get(&[
            ("X-XCLUSTER-CLUSTER", " outbound|b "),
            ("x-xcluster-cluster", "outbound|b"),
            ("X-Xcluster-Cluster", "\toutbound|b"),
            ("x-decision", "forged"),
            ("X-DECISION", " forged "),
        ]),
        Some(CURL.as_bytes()),
    );
    assert_eq!(status(&s), None);
    let all = s.request_headers_now();
    let cluster: Vec<&[u8]> = all
        .pairs()
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"x-xcluster-cluster"))
        .map(|(_, v)| v.as_slice())
        .collect();
    assert_eq!(cluster, [&b"outbound|a"[..]], "FailOver from c1 serves a");
    assert!(!all
        .pairs()
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(b"x-decision")));
    assert_sound(&host, &vm);
}

#[test]
fn many_headers_and_64_kib_values_are_decided_as_usual() {
    let host = new_host();
    let vm = start(&host, &cfg());
    let names: Vec<String> = (0..150).map(|i| format!("x-h{i}")).collect();
    let mut headers = api_get(&[]);
    headers.extend(names.iter().map(|n| (n.as_bytes().to_vec(), b"v".to_vec())));
    let s = send_raw(&vm, &headers, Some(CURL.as_bytes()));
    assert_eq!(routed(&s).as_deref(), Some("a"));

    let big = "x".repeat(64 * 1024);
    // A 64 KiB sticky cookie is hashed like any other; a 64 KiB identity is not one.
    let cookie = format!("u={big}");
    let s = send_raw(&vm, &api_get(&[("cookie", &cookie)]), Some(CURL.as_bytes()));
    assert_eq!(routed(&s).as_deref(), Some("a"));
    let long_id = format!("{CURL}{big}");
    let s = send_raw(&vm, &api_get(&[]), Some(long_id.as_bytes()));
    assert_eq!(
        status(&s),
        Some((403, "xcluster_denied_not_allowed".into()))
    );
    // A 64 KiB path under /api/ is authorized; a 64 KiB authority matches no route.
    let mut h = api_get(&[]);
    h[1].1 = format!("/api/{big}").into_bytes();
    assert_eq!(
        routed(&send_raw(&vm, &h, Some(CURL.as_bytes()))).as_deref(),
        Some("a")
    );
    let mut h = api_get(&[]);
    h[2].1 = big.clone().into_bytes();
    let s = send_raw(&vm, &h, Some(CURL.as_bytes()));
    assert_eq!((status(&s), routed(&s)), (None, None));
    assert_sound(&host, &vm);
}

#[test]
fn non_utf8_path_authority_and_san_are_never_authorized() {
    let host = new_host();
    let vm = start(&host, &cfg());
    // A path that is not UTF-8 matches no HTTPRouteGroup: denied.
    let mut h = api_get(&[]);
    h[1].1 = b"/api/\xff\xfe".to_vec();
    let s = send_raw(&vm, &h, Some(CURL.as_bytes()));
    assert_eq!(status(&s).map(|(code, _)| code), Some(403));
    // An authority that is not UTF-8 matches no route: passed on unrouted.
    let mut h = api_get(&[]);
    h[2].1 = b"svc\xff.example.com".to_vec();
    let s = send_raw(&vm, &h, Some(CURL.as_bytes()));
    assert_eq!((status(&s), routed(&s)), (None, None));
    // A SAN that is not UTF-8 is no identity.
    let s = send_raw(
        &vm,
        &api_get(&[]),
        Some(b"spiffe://cluster.local/ns/ns/sa/\xffcurl"),
    );
    assert_eq!(
        status(&s),
        Some((403, "xcluster_denied_no_identity".into()))
    );
    assert_sound(&host, &vm);
}

#[test]
fn a_san_property_holding_several_uris_is_no_identity() {
    // Envoy hands over the certificate's first URI SAN only; a host that joined them
    // would hand over text that is no SPIFFE id.
    let host = new_host();
    let vm = start(&host, &cfg());
    for joined in [
        format!("{CURL},spiffe://cluster.local/ns/ns/sa/intruder"),
        format!("{CURL} spiffe://cluster.local/ns/ns/sa/intruder"),
    ] {
        let s = send_raw(&vm, &api_get(&[]), Some(joined.as_bytes()));
        assert_eq!(status(&s).map(|(code, _)| code), Some(403), "{joined}");
    }
    assert_sound(&host, &vm);
}

#[test]
fn no_authority_connect_and_trailers() {
    let host = new_host();
    let vm = start(&host, &cfg());
    // HTTP/1.0 without Host: no :authority, so no route matches; passed on unrouted.
    let s = send_raw(
        &vm,
        &pairs(&[
            (":method", "GET"),
            (":path", "/api/x"),
            ("x-xcluster-cluster", "outbound|b"),
        ]),
        Some(CURL.as_bytes()),
    );
    assert_eq!((status(&s), routed(&s)), (None, None));
    // CONNECT has no :path: the route group (a path regex) does not match, so denied.
    let s = send_raw(
        &vm,
        &pairs(&[
            (":method", "CONNECT"),
            (":authority", "svc.example.com:443"),
        ]),
        Some(CURL.as_bytes()),
    );
    assert_eq!(status(&s).map(|(code, _)| code), Some(403));

    // Headers without end of stream, a body, then trailers that name the cluster header:
    // the decision is made on the headers, and trailers change nothing.
    let mut s = vm.http_stream().unwrap();
    s.set_peer_uri_san(CURL);
    assert_eq!(
        s.request_headers(&api_get(&[]), false).unwrap(),
        Action::Continue
    );
    assert_eq!(s.request_body(b"hello", false).unwrap(), Action::Continue);
    let action = s
        .request_trailers(&[("x-xcluster-cluster", "outbound|b"), ("x-checksum", "42")])
        .unwrap();
    assert_eq!(action, Action::Continue);
    assert_eq!(routed(&s).as_deref(), Some("a"));
    s.response_headers(&[(":status", "200")], true).unwrap();
    s.finish().unwrap();
    assert_sound(&host, &vm);
}
