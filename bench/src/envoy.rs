//! The four arms as Envoy bootstraps (built with [`xcluster_envoy`]), and an Envoy process
//! pinned to one CPU with `--concurrency 1` (the e2e guard, which otherwise runs two
//! workers, unpinned).

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use xcluster_e2e::client::Client;
use xcluster_e2e::envoy::{Config, Envoy, Options};
use xcluster_envoy::{
    Bootstrap, Cluster, HttpConnectionManager, HttpFilter, Listener, Route, RouteAction,
    SocketAddress, WasmFilter,
};
use xcluster_filter::config::DEFAULT_CLUSTER_HEADER;

use crate::policy;

/// One configuration under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    /// (a) no filter, one upstream cluster.
    Plain,
    /// (b) the empty proxy-wasm filter, one upstream cluster.
    Noop,
    /// (c) native RBAC with this many rules, `weighted_clusters` 75/15/10, Envoy outlier
    /// detection on the three clusters.
    Native(usize),
    /// (d) xcluster with this many rules (authorization, weighted split, outlier tracking).
    Xcluster(usize),
    /// (e) arm (d) without replay and active health checks: what they cost on the happy
    /// path.
    XclusterNoFailover(usize),
    /// The probe filter making these host calls per request (its comma-separated config),
    /// one upstream cluster: prices the host calls xcluster makes.
    Probe(&'static str),
}

impl Arm {
    /// Short id: `a`, `b`, `c10`, `d10000`.
    pub fn id(&self) -> String {
        match self {
            Arm::Plain => "a".into(),
            Arm::Noop => "b".into(),
            Arm::Native(n) => format!("c{n}"),
            Arm::Xcluster(n) => format!("d{n}"),
            Arm::XclusterNoFailover(n) => format!("e{n}"),
            Arm::Probe(calls) => format!("p-{}", calls.replace(',', "+")),
        }
    }

    /// Human label.
    pub fn label(&self) -> String {
        match self {
            Arm::Plain => "(a) Envoy, no filter".into(),
            Arm::Noop => "(b) empty wasm filter".into(),
            Arm::Native(n) => format!("(c) native RBAC + weighted_clusters, {n} rules"),
            Arm::Xcluster(n) => format!("(d) xcluster, {n} rules"),
            Arm::XclusterNoFailover(n) => {
                format!("(e) xcluster without replay and health checks, {n} rules")
            }
            Arm::Probe(calls) => format!("probe filter: {}", calls.replace(',', " + ")),
        }
    }

    /// Authorization rules of the arm (0 for (a) and (b)).
    pub fn rules(&self) -> usize {
        match self {
            Arm::Plain | Arm::Noop | Arm::Probe(_) => 0,
            Arm::Native(n) | Arm::Xcluster(n) | Arm::XclusterNoFailover(n) => *n,
        }
    }
}

/// The modules the wasm arms load.
#[derive(Debug, Clone)]
pub struct Modules {
    /// The empty filter (arm b).
    pub noop: PathBuf,
    /// xcluster (arm d).
    pub xcluster: PathBuf,
    /// The probe filter (host call prices).
    pub probe: PathBuf,
}

/// The host calls xcluster makes for an allowed request (with outlier detection and
/// replay): the probe arm that prices them all, against which xcluster's own work shows.
/// (`clear_route_cache` is left to Envoy, as `xcluster-gen` configures it.)
pub const XCLUSTER_CALLS: &str = "headers,set_header,metric,response_headers";

/// The plugin config of a wasm arm: xcluster's policy JSON, the probe's calls, or empty.
pub fn plugin_config(arm: Arm) -> String {
    match arm {
        Arm::Xcluster(n) | Arm::XclusterNoFailover(n) => {
            let mut config = policy::xcluster_config(n);
            if matches!(arm, Arm::XclusterNoFailover(_)) {
                policy::without_failover(&mut config);
            }
            serde_json::to_string(&config).unwrap_or_default()
        }
        Arm::Probe(calls) => calls.to_string(),
        Arm::Plain | Arm::Noop | Arm::Native(_) => String::new(),
    }
}

/// The bootstrap of `arm`: one plaintext listener `bench` on a free loopback port, admin
/// on another, every cluster pointing at `upstream`.
pub fn bootstrap(arm: Arm, modules: &Modules, upstream: SocketAddr) -> Value {
    let module = |path: &Path| path.to_string_lossy().into_owned();
    let one = || vec![Cluster::new("c0", upstream.into())];
    let three = |outlier: Option<Value>| -> Vec<Cluster> {
        policy::TARGETS
            .iter()
            .map(|(name, _)| Cluster {
                outlier_detection: outlier.clone(),
                ..Cluster::new(*name, upstream.into())
            })
            .collect()
    };
    let to_c0 = |filters: Vec<HttpFilter>| {
        HttpConnectionManager::new(
            "bench",
            filters,
            vec![Route::all(RouteAction::Cluster("c0".into()))],
        )
    };
    let (http, clusters) = match arm {
        Arm::Plain => (to_c0(vec![]), one()),
        Arm::Noop => (
            to_c0(vec![HttpFilter::Wasm(WasmFilter::new(
                "noop",
                module(&modules.noop),
                "",
            ))]),
            one(),
        ),
        // A probe that sets the cluster header is routed as xcluster is: by that header,
        // over the three clusters, so it differs from arm (d) only in the filter's work.
        Arm::Probe(calls) => {
            let filter = WasmFilter::new("probe", module(&modules.probe), calls);
            if calls.split(',').any(|c| c.trim() == "set_header") {
                (
                    HttpConnectionManager::xcluster("bench", filter, DEFAULT_CLUSTER_HEADER),
                    three(None),
                )
            } else {
                (to_c0(vec![HttpFilter::Wasm(filter)]), one())
            }
        }
        Arm::Native(n) => (
            HttpConnectionManager::new(
                "bench",
                vec![HttpFilter::Other(policy::rbac_filter(n))],
                vec![Route::all(RouteAction::Other(policy::weighted_route()))],
            ),
            three(Some(policy::native_outlier_detection())),
        ),
        Arm::Xcluster(_) | Arm::XclusterNoFailover(_) => {
            let config = plugin_config(arm);
            let filter = WasmFilter::new("xcluster", module(&modules.xcluster), config);
            (
                HttpConnectionManager::xcluster("bench", filter, DEFAULT_CLUSTER_HEADER),
                three(None),
            )
        }
    };
    Bootstrap {
        admin: Some(SocketAddress::loopback(0)),
        listeners: vec![Listener::new("bench", SocketAddress::loopback(0), http)],
        clusters,
        ..Bootstrap::default()
    }
    .render()
}

/// The upstream every arm routes to: a second Envoy whose one listener answers every
/// request with a `direct_response` 200 `hi` (fast enough that it never limits an arm).
pub fn upstream_bootstrap() -> Value {
    let hi = Route::all(RouteAction::DirectResponse {
        status: 200,
        body: "hi".into(),
    });
    let http = HttpConnectionManager::new("upstream", vec![], vec![hi]);
    Bootstrap {
        admin: Some(SocketAddress::loopback(0)),
        listeners: vec![Listener::new("upstream", SocketAddress::loopback(0), http)],
        ..Bootstrap::default()
    }
    .render()
}

/// An Envoy pinned to one CPU with one worker: the e2e process guard with
/// `--concurrency 1` and `taskset`, plus what the benchmark measures of it.
pub struct PinnedEnvoy {
    envoy: Envoy,
    admin: SocketAddr,
    listener: SocketAddr,
    /// Time from spawn until `/ready` answered 200.
    pub ready_after: Duration,
}

impl PinnedEnvoy {
    /// Writes `bootstrap` to `dir` (kept afterwards), runs `taskset -c <cpu> envoy
    /// --concurrency 1` and waits (bounded) until it is ready; its listener is the
    /// bootstrap's first.
    pub fn start(dir: &Path, bootstrap: &Value, cpu: u32) -> io::Result<Self> {
        Self::start_workers(dir, bootstrap, cpu, 1)
    }

    /// [`PinnedEnvoy::start`] with `workers` worker threads (`--concurrency`), all on `cpu`.
    pub fn start_workers(
        dir: &Path,
        bootstrap: &Value,
        cpu: u32,
        workers: u32,
    ) -> io::Result<Self> {
        let options = Options {
            dir: dir.to_path_buf(),
            concurrency: workers,
            cpu: Some(cpu),
            keep_files: true,
        };
        let envoy =
            Envoy::start_with(&options, Config::Json(bootstrap)).map_err(io::Error::other)?;
        let name = bootstrap["static_resources"]["listeners"][0]["name"]
            .as_str()
            .unwrap_or_default();
        let (Some(admin), Some(listener), Some(ready_after)) = (
            envoy.admin(),
            envoy.find_listener(name),
            envoy.ready_after(),
        ) else {
            return Err(io::Error::other(format!(
                "envoy is ready but has no admin address or listener {name:?}"
            )));
        };
        Ok(Self {
            envoy,
            admin,
            listener,
            ready_after,
        })
    }

    /// The gateway listener.
    pub fn listener(&self) -> SocketAddr {
        self.listener
    }

    /// Envoy's process id.
    pub fn pid(&self) -> u32 {
        self.envoy.pid()
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        self.envoy.log()
    }

    /// Resident memory (`VmRSS`) in KiB.
    pub fn rss_kib(&self) -> io::Result<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| io::Error::other("no VmRSS in /proc/<pid>/status"))
    }

    /// CPU time Envoy has used so far (user + system, all threads), in clock ticks of
    /// `ticks_per_s` (see `getconf CLK_TCK`), as seconds.
    pub fn cpu_seconds(&self, ticks_per_s: f64) -> io::Result<f64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        cpu_seconds(&stat, ticks_per_s)
            .ok_or_else(|| io::Error::other(format!("cannot parse /proc/<pid>/stat: {stat}")))
    }

    /// Every stat whose name contains `filter`, from the admin `/stats`.
    pub fn stats(&self, filter: &str) -> io::Result<std::collections::HashMap<String, u64>> {
        self.envoy.stats(filter)
    }

    /// A counter from the admin `/stats` (0 when absent).
    pub fn counter(&self, name: &str) -> io::Result<u64> {
        let resp = Client::plain(self.admin).get(
            "localhost",
            &format!("/stats?format=json&filter=^{}$", name.replace('.', "\\.")),
        )?;
        let doc: Value = serde_json::from_str(&resp.body)?;
        Ok(doc["stats"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .and_then(|s| s["value"].as_u64())
            .unwrap_or(0))
    }
}

/// For each `xcluster: configured` line of an Envoy log: its timestamp minus the one of
/// the line before it, in ms.
pub fn configure_log_ms(log: &str) -> Vec<u64> {
    let lines: Vec<&str> = log.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.contains("xcluster: configured") {
            continue;
        }
        if let (Some(end), Some(begin)) = (
            log_time_ms(line),
            lines[..i].iter().rev().find_map(|l| log_time_ms(l)),
        ) {
            out.push(end.saturating_sub(begin));
        }
    }
    out
}

/// `utime + stime` of a `/proc/<pid>/stat` line, in seconds.
pub fn cpu_seconds(stat: &str, ticks_per_s: f64) -> Option<f64> {
    // The command name is in parentheses and may contain spaces: count fields after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_s)
}

/// Envoy (`-l info`) timestamps every line to the millisecond. Returns the timestamps
/// (ms since midnight) of the lines containing `needle`, in order.
pub fn log_times(log: &str, needle: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains(needle))
        .filter_map(log_time_ms)
        .collect()
}

/// The timestamp of an Envoy log line `[YYYY-MM-DD HH:MM:SS.mmm][...` in ms since midnight.
pub fn log_time_ms(line: &str) -> Option<u64> {
    let stamp = line.strip_prefix('[')?.split(']').next()?;
    let time = stamp.split(' ').nth(1)?;
    let (hms, ms) = time.split_once('.')?;
    let mut parts = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    Some(((h * 60 + m) * 60 + s) * 1000 + ms.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules() -> Modules {
        Modules {
            noop: "/m/noop.wasm".into(),
            xcluster: "/m/x.wasm".into(),
            probe: "/m/p.wasm".into(),
        }
    }

    #[test]
    fn arms_render_their_filters_and_clusters() {
        let up: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let filters = |arm| {
            let b = bootstrap(arm, &modules(), up);
            let hcm = &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
                ["typed_config"];
            let names: Vec<String> = hcm["http_filters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_string())
                .collect();
            let clusters = b["static_resources"]["clusters"].as_array().unwrap().len();
            (names, clusters)
        };
        assert_eq!(
            filters(Arm::Plain),
            (vec!["envoy.filters.http.router".into()], 1)
        );
        assert_eq!(filters(Arm::Noop).0[0], "envoy.filters.http.wasm");
        assert_eq!(
            filters(Arm::Native(10)),
            (
                vec![
                    "envoy.filters.http.rbac".into(),
                    "envoy.filters.http.router".into()
                ],
                3
            )
        );
        assert_eq!(filters(Arm::Xcluster(10)).1, 3);
        let config = |arm| {
            let b = bootstrap(arm, &modules(), up);
            b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
                ["http_filters"][0]["typed_config"]["config"]["configuration"]["value"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert!(config(Arm::Xcluster(10)).contains("\"health_check\""));
        assert!(!config(Arm::XclusterNoFailover(10)).contains("\"health_check\""));
        assert!(!config(Arm::XclusterNoFailover(10)).contains("\"replay\""));
        assert_eq!(filters(Arm::Probe("headers,log")).1, 1);
        // A probe that sets the cluster header is routed as xcluster: three clusters, the
        // route that reads the header.
        let routes = |arm| {
            bootstrap(arm, &modules(), up)["static_resources"]["listeners"][0]["filter_chains"][0]
                ["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
                .clone()
        };
        assert_eq!(filters(Arm::Probe("headers,set_header")).1, 3);
        assert_eq!(
            routes(Arm::Probe("headers,set_header")),
            routes(Arm::Xcluster(10))
        );
        assert_eq!(Arm::Probe("headers,log").id(), "p-headers+log");
        let b = bootstrap(Arm::Xcluster(10), &modules(), up);
        let value = b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"]["http_filters"][0]["typed_config"]["config"]["configuration"]["value"]
            .as_str()
            .unwrap();
        assert!(value.contains("\"trusted_header\":\"x-caller\""));
        let b = bootstrap(Arm::Native(10), &modules(), up);
        assert!(b["static_resources"]["clusters"][2]["outlier_detection"].is_object());
    }

    #[test]
    fn configure_times_are_measured_from_the_previous_line() {
        let log = "[2026-11-22 00:14:20.178][1][info][config] loading 1 listener(s)\n\
                   [2026-11-22 00:14:20.640][1][info][wasm] wasm log xcluster: configured 1 routes\n\
                   continuation without a timestamp\n\
                   [2026-11-22 00:14:20.651][1][info][wasm] wasm log xcluster: configured 1 routes\n";
        assert_eq!(configure_log_ms(log), vec![462, 11]);
        assert!(configure_log_ms("[2026-11-22 00:14:20.640][1] xcluster: configured").is_empty());
    }

    #[test]
    fn parses_cpu_time_from_proc_stat() {
        let stat = "42 (envoy worker) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(cpu_seconds(stat, 100.0), Some(3.0));
        assert_eq!(cpu_seconds("garbage", 100.0), None);
    }

    #[test]
    fn parses_envoy_log_timestamps() {
        let line = "[2026-11-22 00:31:02.457][123][info][wasm] wasm log xcluster: configured";
        assert_eq!(log_time_ms(line), Some(((31 * 60) + 2) * 1000 + 457));
        assert_eq!(log_time_ms("garbage"), None);
        let log = format!("{line}\n[2026-11-22 00:31:02.500][1][info][main] x\n{line}");
        assert_eq!(log_times(&log, "configured").len(), 2);
    }
}
