//! Odd requests through a real Envoy: what the gateway answers, whether anything is
//! routed, and that nothing steers, traps the filter or crashes Envoy. Requests are
//! written byte for byte (`Client::send_raw`). The gateway runs in cluster-2 with
//! `FailOver` (`failover`: cluster-2 always serves) and, over mTLS, `enforce` (curl may
//! reach every cluster, anyone else none).
#![cfg(test)]

use std::sync::Arc;

use rustls::ClientConfig;
use xcluster_e2e::client::{Client, Response};
use xcluster_e2e::envoy::{Listener, ServerTls};
use xcluster_e2e::fixture::{outcome, Gateway, Tally};
use xcluster_e2e::pki::Pki;
use xcluster_e2e::scenario::{
    CURL_ID, ENFORCE, FAILOVER, HTTPBIN_HOST, INTRUDER_ID, LOCALITY_NO_LOCAL,
};
use xcluster_envoy::{MAX_REQUEST_HEADERS, MAX_REQUEST_HEADERS_KB};

struct World {
    gw: Gateway,
    pki: Pki,
}

fn world(name: &str) -> World {
    let pki = Pki::new().unwrap();
    let tls = ServerTls {
        cert: pki.server_cert("localhost").unwrap(),
        client_ca_pem: pki.ca_pem(),
    };
    let gw = Gateway::start(
        name,
        vec![
            Listener::plain(FAILOVER.name, &FAILOVER.value()),
            Listener::plain(LOCALITY_NO_LOCAL.name, &LOCALITY_NO_LOCAL.value()),
            Listener {
                name: ENFORCE.name.into(),
                plugin_config: ENFORCE.json.into(),
                tls: Some(tls),
            },
        ],
    )
    .unwrap();
    World { gw, pki }
}

impl World {
    fn send(&self, listener: &str, request: &[u8]) -> Response {
        Client::plain(self.gw.listener(listener))
            .send_raw(request)
            .unwrap()
    }

    fn mtls(&self, config: Arc<ClientConfig>) -> Client {
        self.gw.tls_client(ENFORCE.name, config).unwrap()
    }

    /// The gateway still routes, the filter never failed, Envoy never crashed.
    fn assert_healthy(&self) {
        let resp = self.send(
            FAILOVER.name,
            b"GET / HTTP/1.1\r\nhost: httpbin.httpbin\r\n\r\n",
        );
        assert_eq!(outcome(&resp), "cluster-2");
        let log = self.gw.envoy.log();
        for bad in [
            "Wasm VM failed",
            "panicked",
            "Caught Segmentation",
            "wasm_fail_stream",
        ] {
            assert!(!log.contains(bad), "{bad:?} in the log:\n{log}");
        }
    }

    fn served(&self, cluster: usize) -> u64 {
        self.gw.clusters[cluster].served()
    }
}

/// `GET / HTTP/1.1` to httpbin with `extra` header lines.
fn get(extra: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nhost: {HTTPBIN_HOST}\r\n{extra}\r\n").into_bytes()
}

#[test]
fn own_headers_in_any_case_repeated_or_padded_never_steer() {
    let w = world("odd-own-headers");
    let forged = "X-XCluster-Cluster:  cluster-3 \r\nx-xcluster-cluster: cluster-1\r\n\
                  X-XCLUSTER-CLUSTER:\tcluster-3\r\nX-Xcluster-Decision: forged\r\n";
    for _ in 0..20 {
        let resp = w.send(FAILOVER.name, &get(forged));
        assert_eq!(outcome(&resp), "cluster-2", "{resp:?}");
        let decision = resp.header("x-xcluster-decision").unwrap_or_default();
        assert!(decision.contains("target=cluster-2"), "{decision}");
    }
    // No target may serve: the forged headers do not sneak the request through.
    let resp = w.send(LOCALITY_NO_LOCAL.name, &get(forged));
    assert_eq!(outcome(&resp), "503 no healthy target");
    assert_eq!((w.served(0), w.served(2)), (0, 0), "steered");
    w.assert_healthy();
}

#[test]
fn header_counts_and_sizes_past_envoys_limits_get_431() {
    let w = world("odd-header-limits");
    let many = |n: u32| -> String { (0..n).map(|i| format!("x-h{i}: {i}\r\n")).collect() };
    // host plus 99 headers is Envoy's limit of 100: routed.
    let resp = w.send(FAILOVER.name, &get(&many(MAX_REQUEST_HEADERS - 1)));
    assert_eq!(outcome(&resp), "cluster-2");
    let resp = w.send(FAILOVER.name, &get(&many(150)));
    assert_eq!(resp.status, 431, "{resp:?}");

    // A 50 KiB value is routed; 64 KiB is past the 60 KiB header block limit.
    let value = |kib: usize| "v".repeat(kib * 1024);
    let resp = w.send(FAILOVER.name, &get(&format!("x-big: {}\r\n", value(50))));
    assert_eq!(outcome(&resp), "cluster-2");
    const { assert!(64 > MAX_REQUEST_HEADERS_KB) };
    let resp = w.send(FAILOVER.name, &get(&format!("x-big: {}\r\n", value(64))));
    assert_eq!(resp.status, 431, "{resp:?}");
    let resp = w.send(FAILOVER.name, &get(&format!("cookie: u={}\r\n", value(64))));
    assert_eq!(resp.status, 431, "{resp:?}");
    assert_eq!(
        w.served(1),
        2,
        "only the requests within the limits were served"
    );
    w.assert_healthy();
}

#[test]
fn non_utf8_paths_and_authorities_are_refused_by_envoy() {
    let w = world("odd-bytes");
    for request in [
        &b"GET /\xff\xfe HTTP/1.1\r\nhost: httpbin.httpbin\r\n\r\n"[..],
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nhost: httpbin.httpbin\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: httpbin\xff.httpbin\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: httpbin.httpbin\r\nx-user: \xff\xfe\r\n\r\n",
    ] {
        let resp = w.send(FAILOVER.name, request);
        let printable = String::from_utf8_lossy(request);
        if printable.contains("x-user") {
            // A non-UTF-8 value of another header is passed on; the filter ignores it.
            assert_eq!(outcome(&resp), "cluster-2", "{printable:?}");
        } else {
            assert_eq!(resp.status, 400, "{printable:?}: {resp:?}");
        }
    }
    assert_eq!(w.served(1), 1);
    w.assert_healthy();
}

#[test]
fn the_first_uri_san_is_the_identity_and_odd_sans_are_denied() {
    let w = world("odd-sans");
    let config = |uris: &[&str]| {
        w.pki
            .client_config(&w.pki.client_cert_with_uris(uris).unwrap())
            .unwrap()
    };
    // Envoy's `connection.uri_san_peer_certificate` is the certificate's first URI SAN.
    let mut curl_first = w.mtls(config(&[CURL_ID, INTRUDER_ID]));
    let tally = Tally::collect(20, || curl_first.get(HTTPBIN_HOST, "/"));
    assert!(
        !tally.outcomes().contains(&"403 access denied"),
        "curl first: {tally}"
    );
    let mut intruder_first = w.mtls(config(&[INTRUDER_ID, CURL_ID]));
    let tally = Tally::collect(10, || intruder_first.get(HTTPBIN_HOST, "/"));
    assert_eq!(
        tally.outcomes(),
        ["403 access denied"],
        "intruder first: {tally}"
    );

    // A URI SAN that is not text: either the handshake fails or the caller has no
    // identity; never served.
    let served_before: u64 = (0..3).map(|i| w.served(i)).sum();
    let raw = w
        .pki
        .client_cert_with_raw_uri(b"spiffe://cluster.local/ns/curl/sa/\xffcurl")
        .unwrap();
    let mut odd = w.mtls(w.pki.client_config(&raw).unwrap());
    match odd.get(HTTPBIN_HOST, "/") {
        Ok(resp) => assert_eq!(outcome(&resp), "403 access denied"),
        Err(e) => println!("non-UTF-8 URI SAN: handshake refused ({e})"),
    }
    let served_after: u64 = (0..3).map(|i| w.served(i)).sum();
    assert_eq!(served_before, served_after);
    w.assert_healthy();
}

#[test]
fn http10_connect_and_trailers() {
    let w = world("odd-protocol");
    // Envoy refuses HTTP/1.0 unless accept_http_10 is set, Host or not.
    let resp = w.send(FAILOVER.name, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(resp.status, 426, "{resp:?}");
    let resp = w.send(
        FAILOVER.name,
        b"GET / HTTP/1.0\r\nhost: httpbin.httpbin\r\n\r\n",
    );
    assert_eq!(resp.status, 426, "{resp:?}");

    // CONNECT: the filter may pick a cluster, but the routes have no connect_matcher, so
    // Envoy answers 404 and opens no tunnel.
    let resp = w.send(
        FAILOVER.name,
        b"CONNECT httpbin.httpbin:443 HTTP/1.1\r\nhost: httpbin.httpbin:443\r\n\r\n",
    );
    assert_eq!(resp.status, 404, "{resp:?}");
    assert_eq!(w.served(1), 0);

    // A chunked body with trailers is routed like any request.
    let resp = w.send(
        FAILOVER.name,
        b"POST / HTTP/1.1\r\nhost: httpbin.httpbin\r\ntransfer-encoding: chunked\r\n\
          trailer: x-checksum\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: 42\r\n\
          x-xcluster-cluster: cluster-3\r\n\r\n",
    );
    assert_eq!(outcome(&resp), "cluster-2", "{resp:?}");
    assert_eq!(w.served(2), 0, "a trailer steered");
    w.assert_healthy();
}
