//! End-to-end harness: runs the built xcluster filter inside a real Envoy in front of
//! loopback "clusters", and drives it with a small HTTP/1.1 client (plain or mTLS).
//!
//! Pieces: [`upstream`] (the clusters), [`envoy`] (bootstrap rendering and the process
//! guard), [`client`] (HTTP/1.1 over TCP or rustls), [`pki`] (test CA and SPIFFE
//! certificates), [`fixture`] (three clusters behind one gateway, outcome tallies),
//! [`scenario`] (the hand-written plugin configs of the tests, kept in one place) and
//! [`generated`] (bootstraps from `xcluster-gen envoy`, used by the demo).

pub mod client;
pub mod envoy;
pub mod fixture;
pub mod generated;
pub mod pki;
pub mod scenario;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root (the parent of this crate's directory).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
}

/// The Envoy binary: `$ENVOY_BIN`, else the project's `.venv/bin/envoy` (see `make setup`).
pub fn envoy_bin() -> PathBuf {
    std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/envoy"))
}

/// Builds the filter (`cargo build -p xcluster-filter --release --target wasm32-wasip1`)
/// once per process and returns the path of the `.wasm`. Cargo itself decides whether the
/// artifact is stale, so a fresh build is a no-op.
pub fn build_wasm() -> Result<PathBuf, String> {
    static WASM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    WASM.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(repo_root())
            .args([
                "build",
                "-p",
                "xcluster-filter",
                "--release",
                "--target",
                "wasm32-wasip1",
            ])
            .status()
            .map_err(|e| format!("cannot run cargo to build the filter: {e}"))?;
        if !status.success() {
            return Err(format!("building the filter failed: {status}"));
        }
        let wasm = target_dir().join("wasm32-wasip1/release/xcluster_filter.wasm");
        if wasm.is_file() {
            Ok(wasm)
        } else {
            Err(format!("{} was not produced", wasm.display()))
        }
    })
    .clone()
}

/// The cargo target directory (`$CARGO_TARGET_DIR` or `<repo>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
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
