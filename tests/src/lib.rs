//! End-to-end harness: runs the built xcluster filter inside a real Envoy in front of
//! loopback "clusters", and drives it with a small HTTP/1.1 client (plain or mTLS).
//!
//! Pieces: [`upstream`] (the clusters), [`envoy`] (bootstrap rendering and the process
//! guard), [`client`] (HTTP/1.1 over TCP or rustls), [`grpc`] (gRPC upstreams and client,
//! Python grpcio), [`pki`] (test CA and SPIFFE
//! certificates), [`fixture`] (three clusters behind one gateway, outcome tallies),
//! [`scenario`] (the hand-written plugin configs of the tests, kept in one place),
//! [`generated`] (bootstraps from `xcluster-gen envoy`, used by the demo), [`istio`]
//! (the gateway Istio would build from `xcluster-gen istio`'s documents) and [`prometheus`]
//! (the labelled series of `/stats/prometheus`). Bootstraps are
//! rendered by `xcluster_envoy`; the filter is built by `xcluster_wasm_build::filter_wasm`.

pub mod client;
pub mod envoy;
pub mod fixture;
pub mod generated;
pub mod grpc;
pub mod istio;
pub mod pki;
pub mod prometheus;
pub mod scenario;
pub mod upstream;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use xcluster_wasm_build::{target_dir, workspace_root};

/// The Envoy binary: `$ENVOY_BIN`, else the project's `.venv/bin/envoy` (see `make setup`).
pub fn envoy_bin() -> PathBuf {
    std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/envoy"))
}

/// Polls `probe` until it returns `Some`, or gives up after `deadline` with `None`.
pub fn wait_for<T>(deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
