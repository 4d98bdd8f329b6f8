//! The filter authorizes only paths in normal form: the paths that walked past
//! `pathRegex: "/public/"` on a host that does not normalize (issue 9's table) are refused
//! (the default) or decided on as the upstream would resolve them; gRPC callers get gRPC
//! statuses.
#![cfg(test)]

mod common;

use common::*;
use serde_json::{json, Value};

const CALLER: &str = "spiffe://cluster.local/ns/caller/sa/curl";

/// Issue 9's table: every one reached `/private` past an allow rule for `/public/`.
const BYPASSES: [&str; 6] = [
    "/public/../private",
    "/public/%2e%2e/private",
    "/public/..%2fprivate",
    "/public/%2E%2E%2Fprivate",
    "/public/./../private",
    "/public/..;/private",
];

/// Enforce mode: the caller may `GET` what `pathRegex: "/public/"` covers.
fn public_only(extra: Value) -> Value {
    let mut cfg = config(
        vec![target("a", "c1", "ns/a")],
        json!({"access": {
            "mode": "enforce",
            "route_groups": [{"name": "g", "matches": [
                {"name": "public", "path_regex": "/public/", "methods": ["GET"]}]}],
            "traffic_targets": [{"name": "t",
                "destination": {"namespace": "ns", "name": "a"},
                "sources": [{"namespace": "caller", "name": "curl"}],
                "rules": [{"route_group": "g"}]}]
        }}),
    );
    merge(&mut cfg, extra);
    cfg
}

/// The local reply's status, or 200 when the filter forwards (and the path it forwards).
fn outcome(vm: &xcluster_host_sim::Vm, path: &str, extra: &[(&str, &str)]) -> (u32, String) {
    let (s, _) = send(vm, &get(path, extra), Some(CALLER));
    match s.local_reply() {
        Some(reply) => (reply.status, reply.details),
        None => (200, s.request_header(":path").unwrap_or_default()),
    }
}

#[test]
fn by_default_no_bypass_path_is_authorized() {
    let host = new_host();
    let vm = start(&host, &public_only(json!({})));
    assert_eq!(outcome(&vm, "/public/x", &[]), (200, "/public/x".into()));
    for path in BYPASSES {
        assert_eq!(
            outcome(&vm, path, &[]),
            (400, "xcluster_path_not_normalized".into()),
            "{path}"
        );
    }
    let rejected: u64 = ["dot_segment", "encoded_character"]
        .iter()
        .map(|reason| {
            host.counter(&format!(
                "xcluster_rejected_paths_total.reason=.={reason};.;"
            ))
            .unwrap_or(0)
        })
        .sum();
    assert_eq!(rejected, BYPASSES.len() as u64);
}

#[test]
fn normalize_mode_authorizes_the_resolved_path_and_forwards_it() {
    let host = new_host();
    let vm = start(
        &host,
        &public_only(json!({"path_normalization": "normalize"})),
    );
    for path in BYPASSES {
        assert_eq!(
            outcome(&vm, path, &[]),
            (403, "xcluster_denied_not_allowed".into()),
            "{path} resolves to /private"
        );
    }
    assert_eq!(
        outcome(&vm, "/public/a/../b?x=1", &[]),
        (200, "/public/b?x=1".into()),
        "the upstream gets the path that was authorized"
    );
}

#[test]
fn grpc_callers_get_grpc_statuses() {
    let host = new_host();
    let vm = start(&host, &public_only(json!({})));
    let grpc = [("content-type", "application/grpc")];
    let (s, _) = send(&vm, &get("/private.Svc/Call", &grpc), Some(CALLER));
    let reply = s.local_reply().expect("denied");
    assert_eq!((reply.status, reply.grpc_status), (403, 7));
    let (s, _) = send(&vm, &get("/private.Svc/Call", &[]), Some(CALLER));
    assert_eq!(s.local_reply().map(|r| r.grpc_status), Some(-1), "not gRPC");
}
