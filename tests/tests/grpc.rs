//! gRPC through the gateway with a real gRPC client and gRPC upstreams (Python grpcio):
//! the gateway speaks HTTP/2 to the upstreams, accepts h2c and, over mTLS, negotiates h2
//! by ALPN; `echo` is split 50 / 50 over cluster-1 and cluster-3. The filter's local
//! replies reach gRPC clients as gRPC statuses: a denial (403) as `PERMISSION_DENIED`, no
//! healthy target (503) as `UNAVAILABLE`.
#![cfg(test)]

use std::collections::BTreeMap;

use serde_json::json;
use xcluster_e2e::envoy::{Bootstrap, Envoy, Listener, ServerTls};
use xcluster_e2e::grpc::{self, ClientTls, GrpcUpstream, Reply};
use xcluster_e2e::pki::Pki;
use xcluster_e2e::scenario::{CURL_ID, GRPC_ECHO, INTRUDER_ID};
use xcluster_envoy::UpstreamProtocol;

const H2C: &str = "grpc-h2c";
const MTLS: &str = "grpc-mtls";
const ECHO: &str = "echo.echo:50051";
const DOWN: &str = "down.echo:50051";

struct World {
    envoy: Envoy,
    pki: Pki,
    _upstreams: Vec<GrpcUpstream>,
}

/// gRPC upstreams for cluster-1 and cluster-3, and an Envoy with an h2c listener
/// (permissive) and an mTLS one (enforce), both running `grpc-echo`.
fn world() -> World {
    let pki = Pki::new().unwrap();
    let upstreams: Vec<GrpcUpstream> = ["cluster-1", "cluster-3"]
        .iter()
        .map(|name| GrpcUpstream::start(name).unwrap())
        .collect();
    let mut enforce = GRPC_ECHO.value();
    enforce["access"]["mode"] = json!("enforce");
    let bootstrap = Bootstrap {
        wasm: xcluster_wasm_build::filter_wasm().unwrap(),
        listeners: vec![
            Listener::plain(H2C, &GRPC_ECHO.value()),
            Listener {
                name: MTLS.into(),
                plugin_config: enforce.to_string(),
                tls: Some(ServerTls {
                    cert: pki.server_cert_for(&["echo.echo", "down.echo"]).unwrap(),
                    client_ca_pem: pki.ca_pem(),
                }),
            },
        ],
        clusters: upstreams
            .iter()
            .map(|u| (u.name().to_string(), u.addr()))
            .collect(),
        upstream_protocol: UpstreamProtocol::Http2,
    };
    let envoy = Envoy::start("grpc", &bootstrap).unwrap();
    World {
        envoy,
        pki,
        _upstreams: upstreams,
    }
}

impl World {
    fn caller(&self, spiffe_id: &str) -> ClientTls {
        ClientTls::write(
            &self.pki.ca_pem(),
            &self.pki.client_cert(spiffe_id).unwrap(),
        )
        .unwrap()
    }
}

/// OK replies by the cluster that answered, and every other reply as `code details`.
fn tally(replies: &[Reply]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in replies {
        let key = match r.code {
            grpc::OK => r.body.clone(),
            code => format!("{code} {}", r.details),
        };
        *out.entry(key).or_default() += 1;
    }
    out
}

fn assert_split(replies: &[Reply]) {
    let t = tally(replies);
    let n = replies.len();
    assert_eq!(
        t.keys().collect::<Vec<_>>(),
        ["cluster-1", "cluster-3"],
        "{t:?}"
    );
    for (cluster, count) in &t {
        let share = *count as f64 / n as f64;
        assert!((0.35..=0.65).contains(&share), "{cluster}: {t:?}");
    }
}

#[test]
fn h2c_split_and_no_healthy_target() {
    let w = world();
    let addr = w.envoy.listener(H2C);
    let replies = grpc::calls(addr, ECHO, 200, None).unwrap();
    assert_split(&replies);
    let replies = grpc::calls(addr, DOWN, 3, None).unwrap();
    assert!(
        replies.iter().all(|r| r.code == grpc::UNAVAILABLE),
        "{replies:?}"
    );
}

#[test]
fn mtls_split_denial_and_no_healthy_target() {
    let w = world();
    let addr = w.envoy.listener(MTLS);
    let curl = w.caller(CURL_ID);
    let replies = grpc::calls(addr, ECHO, 200, Some(&curl)).unwrap();
    assert_split(&replies);

    let intruder = w.caller(INTRUDER_ID);
    let replies = grpc::calls(addr, ECHO, 3, Some(&intruder)).unwrap();
    assert!(
        replies.iter().all(|r| r.code == grpc::PERMISSION_DENIED),
        "{replies:?}"
    );
    let replies = grpc::calls(addr, DOWN, 3, Some(&curl)).unwrap();
    assert!(
        replies.iter().all(|r| r.code == grpc::UNAVAILABLE),
        "{replies:?}"
    );
    // Each gRPC denial is a local reply with the filter's reason, as for HTTP.
    let stats = w.envoy.stats("xcluster_denied_total").unwrap();
    assert_eq!(
        stats.get("wasmcustom.xcluster_denied_total.destination=.=echo;.;reason=.=not_allowed;.;"),
        Some(&3),
        "{stats:?}"
    );
}

#[test]
fn grpc_paths_with_escaped_slashes_are_refused() {
    let w = world();
    let addr = w.envoy.listener(H2C);
    // Envoy's UNESCAPE_AND_REDIRECT answers gRPC with INTERNAL instead of a redirect.
    let replies = grpc::calls_method(addr, ECHO, "/xcluster.Echo%2FWho", 1, None).unwrap();
    assert_eq!(replies[0].code, grpc::INTERNAL, "{replies:?}");
}
