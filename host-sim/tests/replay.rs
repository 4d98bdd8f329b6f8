//! Same-request replay against the real module: a failed request is sent, within the same
//! downstream request, to the next target the caller may use, with that target's rewrites;
//! the client gets that target's answer; a POST is never sent twice; the failure of the
//! first target still counts for outlier detection.
#![cfg(test)]

mod common;

use common::*;
use serde_json::{json, Value};
use xcluster_host_sim::{Action, HeaderMap, Host, HttpCallResponse, HttpStream, Vm};

const CALLER: &str = "spiffe://cluster.local/ns/caller/sa/curl";

/// FailOver: `local` (c1) first, then `zone` (c2, its own path prefix and authority), then
/// `far` (c3), which the caller may not use. Replayed on the route.
fn replayed(replay: Value) -> Value {
    let place = |name: &str, cluster: &str, zone: &str, sa: &str| {
        let mut t = target(name, cluster, sa);
        t["locality"] = json!({"region": "eu", "zone": zone});
        t
    };
    let mut zone = place("zone", "c2", "eu-a", "ns/svc");
    zone["path_prefix"] = json!("/c2/svc");
    zone["authority"] = json!("svc.c2.mesh");
    let mut cfg = config(
        vec![
            place("local", "c1", "eu-a", "ns/svc"),
            zone,
            place("far", "c3", "eu-b", "ns/other"),
        ],
        json!({
            "local": {"cluster": "c1", "region": "eu", "zone": "eu-a"},
            "decision_header": "x-decision",
            "access": {"mode": "enforce",
                "route_groups": [{"name": "g", "matches": [{"name": "all", "path_regex": "/"}]}],
                "traffic_targets": [{"name": "t",
                    "destination": {"namespace": "ns", "name": "svc"},
                    "sources": [{"namespace": "caller", "name": "curl"}],
                    "rules": [{"route_group": "g"}]}]},
        }),
    );
    cfg["destinations"][0]["policy"] = json!("FailOver");
    cfg["destinations"][0]["outlier_detection"] =
        json!({"consecutive_gateway_errors": 2, "max_ejection_percent": 100});
    cfg["routes"][0]["replay"] = replay;
    cfg
}

fn host() -> Host {
    let host = new_host();
    for cluster in ["outbound|local", "outbound|zone", "outbound|far"] {
        host.add_cluster(cluster);
    }
    host
}

fn answer(status: &str, body: &[u8], extra: &[(&str, &str)]) -> HttpCallResponse {
    let mut headers = vec![(":status", status), ("content-type", "application/json")];
    headers.extend_from_slice(extra);
    HttpCallResponse {
        headers: HeaderMap::from_pairs(&headers),
        body: body.to_vec(),
        trailers: HeaderMap::default(),
    }
}

/// Sends `method path` and fails the first attempt with `status`; the stream is left
/// waiting for the replay (or finished).
fn fail_first(vm: &Vm, method: &str, status: &str, body: Option<&[u8]>) -> (HttpStream, Action) {
    let mut h = get("/orders/7?x=1", &[("x-request-id", "r1")]);
    h[0].1 = method.into();
    let mut s = vm.http_stream().unwrap();
    s.set_peer_uri_san(CALLER);
    s.request_headers(&h, body.is_none()).unwrap();
    if let Some(body) = body {
        s.request_body(body, true).unwrap();
    }
    assert_eq!(routed(&s).as_deref(), Some("local"));
    s.set_response_flags(0x20);
    let action = s.response_headers(&[(":status", status)], false).unwrap();
    (s, action)
}

#[test]
fn a_failed_get_is_answered_by_the_next_target_with_its_rewrites() {
    let host = host();
    let vm = start(&host, &replayed(json!({})));
    let (mut s, action) = fail_first(&vm, "GET", "503", None);
    assert_eq!(action, Action::Pause, "the failed response is held");
    assert_eq!(
        s.response_body(b"upstream connect error", true).unwrap(),
        Action::Pause
    );
    let calls = host.http_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(
        call.upstream, "outbound|zone",
        "same zone next, never `far`"
    );
    let header = |n: &str| {
        call.headers
            .iter()
            .find(|(k, _)| k == n.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).to_string())
    };
    assert_eq!(header(":path").as_deref(), Some("/c2/svc/orders/7?x=1"));
    assert_eq!(header(":authority").as_deref(), Some("svc.c2.mesh"));
    assert_eq!(header("x-request-id").as_deref(), Some("r1"));
    assert_eq!(header("x-xcluster-cluster"), None);
    host.respond_http_call(
        call.token,
        answer("200", b"{\"ok\":1}", &[("x-served-by", "c2")]),
    )
    .unwrap();
    let reply = s.local_reply().expect("answered with the replay");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"{\"ok\":1}");
    assert_eq!(reply.details, "xcluster_replayed");
    assert_eq!(
        reply.headers.get(b"content-type"),
        Some(&b"application/json"[..])
    );
    assert_eq!(reply.headers.get(b"x-served-by"), Some(&b"c2"[..]));
    let decision =
        String::from_utf8_lossy(reply.headers.get(b"x-decision").unwrap_or(&[])).to_string();
    assert!(
        decision.ends_with("target=local; tier=0; access=allowed; replayed=zone"),
        "{decision}"
    );
    assert_eq!(
        host.counter("xcluster_replays_total.destination=.=d;.;target=.=zone;.;"),
        Some(1)
    );
}

#[test]
fn every_target_failing_answers_the_last_failure_and_counts_it() {
    let host = host();
    let vm = start(&host, &replayed(json!({"attempts": 2})));
    let (mut s, _) = fail_first(&vm, "GET", "502", None);
    let token = host.http_calls()[0].token;
    host.respond_http_call(token, answer("503", b"busy", &[]))
        .unwrap();
    assert!(
        host.http_calls().is_empty(),
        "`far` is not the caller's: no second attempt"
    );
    let reply = s.local_reply().expect("answered");
    assert_eq!((reply.status, reply.body.as_slice()), (503, &b"busy"[..]));
    assert_eq!(
        host.counter("xcluster_replay_failures_total.destination=.=d;.;"),
        Some(1)
    );
    s.finish().unwrap();
}

#[test]
fn a_call_without_an_answer_lets_the_first_failure_through() {
    let host = host();
    let vm = start(&host, &replayed(json!({"timeout_ms": 100})));
    let (s, _) = fail_first(&vm, "GET", "503", None);
    host.advance(std::time::Duration::from_millis(200)).unwrap();
    assert!(s.local_reply().is_none());
    assert!(s.response_resumed(), "the held 503 goes on");
}

#[test]
fn a_post_is_not_replayed_unless_listed_and_then_with_its_body() {
    let host = host();
    let vm = start(&host, &replayed(json!({})));
    let (_, action) = fail_first(&vm, "POST", "503", Some(b"{\"n\":1}"));
    assert_eq!(action, Action::Continue, "the failure goes to the client");
    assert!(host.http_calls().is_empty());
    let vm = start(&host, &replayed(json!({"methods": ["POST"]})));
    let (_, action) = fail_first(&vm, "POST", "503", Some(b"{\"n\":1}"));
    assert_eq!(action, Action::Pause);
    let calls = host.http_calls();
    assert_eq!(calls[0].body, b"{\"n\":1}");
    assert!(!calls[0].headers.iter().any(|(k, _)| k == b"content-length"));
}

#[test]
fn the_first_targets_failures_still_eject_it() {
    let host = host();
    let vm = start(&host, &replayed(json!({})));
    for _ in 0..2 {
        let (mut s, _) = fail_first(&vm, "GET", "503", None);
        let token = host.http_calls().last().unwrap().token;
        host.respond_http_call(token, answer("200", b"", &[]))
            .unwrap();
        assert_eq!(s.local_reply().map(|r| r.status), Some(200));
        s.finish().unwrap();
    }
    assert_eq!(
        host.counter("xcluster_ejections_total.destination=.=d;.;target=.=local;.;"),
        Some(1),
        "two gateway errors, although both requests were served"
    );
    let (s, _) = send(&vm, &get("/", &[]), Some(CALLER));
    assert_eq!(routed(&s).as_deref(), Some("zone"));
}
