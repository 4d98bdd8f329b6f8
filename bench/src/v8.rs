//! The filters in V8 alone: `bench/v8/host.mjs`, a minimal proxy-wasm host in Node.js, runs
//! a module's streams in a loop, V8 set up as Envoy sets it up (`--no-liftoff`). Envoy's
//! own work is absent, so the difference between xcluster and the probe filter making the
//! same host calls is the filter's own work, to a few nanoseconds — a figure the Envoy arms
//! cannot resolve (their noise is ± 2 µs per request). Rounds with the CPU's caches evicted
//! before each stream bound what running among Envoy's own work can add to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::sim::RequestKind;
use crate::stats::median;

/// Streams per round `make bench` runs.
pub const STREAMS: usize = 50_000;
/// Rounds; the first two warm V8 up and are not counted.
pub const ROUNDS: usize = 9;
const WARMUP_ROUNDS: usize = 2;
/// Streams per round with the caches evicted before each stream.
pub const COLD_STREAMS: usize = 2_000;

/// One module and request kind in V8.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct V8Cost {
    /// Arm id (`b`, `d10`, `p-…`).
    pub arm: String,
    /// Human-readable arm.
    pub label: String,
    /// Request kind.
    pub kind: RequestKind,
    /// Median over the counted rounds of the ns per stream (every callback Envoy makes).
    pub ns_per_stream: f64,
    /// The counted rounds' ns per stream.
    pub rounds: Vec<f64>,
    /// The same median with the caches (L1 data and instruction, L2) evicted before each
    /// stream.
    #[serde(default)]
    pub cold_ns_per_stream: f64,
    /// The host calls (`env` imports) one stream makes, by name.
    #[serde(default)]
    pub host_calls: BTreeMap<String, f64>,
    /// The first configure of a fresh VM, ms (includes compiling what it runs).
    pub first_configure_ms: f64,
    /// Configure of a VM whose module code is compiled, ms (median of two).
    pub configure_ms: f64,
}

#[derive(Deserialize)]
struct Output {
    configure_ms: Vec<f64>,
    ns_per_stream: Vec<f64>,
    cold_ns_per_stream: Vec<f64>,
    host_calls: BTreeMap<String, f64>,
    got: Got,
}

#[derive(Deserialize)]
struct Got {
    status: Option<u32>,
    cluster: Option<String>,
}

/// What the last stream must have got: a local reply's status, or a cluster header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No cluster header and no local reply (the empty filter).
    Nothing,
    /// A cluster header naming one of the benchmark's clusters.
    Cluster,
    /// A local reply with this status.
    Status(u32),
}

/// The host script, `bench/v8/host.mjs`.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("v8/host.mjs")
}

/// Runs [`ROUNDS`] rounds of `streams` streams of `module` with the plugin config in
/// `config` for `path` (with the benchmark's caller header), and as many of `cold` streams
/// with the caches evicted before each; checks the last stream got `expect`, and returns
/// the cost.
pub fn measure(
    module: &Path,
    config: &Path,
    (path, streams, cold): (&str, usize, usize),
    expect: Expect,
    (arm, label, kind): (String, String, RequestKind),
) -> Result<V8Cost, String> {
    let out = Command::new("node")
        .arg("--no-liftoff")
        .arg(script())
        .arg(module)
        .arg(config)
        .arg(path)
        .arg(crate::policy::CALLER)
        .arg(streams.to_string())
        .arg(ROUNDS.to_string())
        .arg(cold.to_string())
        .output()
        .map_err(|e| format!("node (V8 host): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{arm}: V8 host failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let output: Output =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{arm}: V8 host output: {e}"))?;
    let got_ok = match expect {
        Expect::Nothing => output.got.status.is_none() && output.got.cluster.is_none(),
        Expect::Cluster => output
            .got
            .cluster
            .as_deref()
            .is_some_and(|c| crate::policy::TARGETS.iter().any(|(t, _)| *t == c)),
        Expect::Status(s) => output.got.status == Some(s),
    };
    if !got_ok {
        return Err(format!(
            "{arm} {}: in V8 the stream got status {:?} cluster {:?}, want {expect:?}",
            kind.name(),
            output.got.status,
            output.got.cluster
        ));
    }
    let counted =
        |rounds: Vec<f64>| -> Vec<f64> { rounds.into_iter().skip(WARMUP_ROUNDS).collect() };
    let rounds = counted(output.ns_per_stream);
    let warm: Vec<f64> = output.configure_ms.iter().skip(1).copied().collect();
    Ok(V8Cost {
        arm,
        label,
        kind,
        ns_per_stream: median(&rounds),
        rounds,
        cold_ns_per_stream: median(&counted(output.cold_ns_per_stream)),
        host_calls: output.host_calls,
        first_configure_ms: output.configure_ms.first().copied().unwrap_or(0.0),
        configure_ms: median(&warm),
    })
}
