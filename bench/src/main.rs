//! `xcluster-bench`: runs the whole benchmark (see the crate docs) and writes
//! `bench/results.json` and `docs/benchmarks.md`. `make bench` runs it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::Parser;
use xcluster_bench::chart;
use xcluster_bench::envoy::{self, Arm, Modules, PinnedEnvoy, XCLUSTER_CALLS};
use xcluster_bench::policy::{self, CALLER, CALLER_HEADER};
use xcluster_bench::report::{
    self, ArmResult, Machine, Memory, Ratio, Results, Run, Settings, Split, Startup, Target,
    Versions, WasmSizes, WorkerMemory,
};
use xcluster_bench::sim::{self, RequestKind};
use xcluster_bench::stats::{median, ratio};
use xcluster_bench::v8::{self, Expect, V8Cost};
use xcluster_bench::wrk::{self, Load, Summary};
use xcluster_e2e::client::Client;

/// Benchmark xcluster against native Envoy (project issue #5).
#[derive(Parser, Debug)]
struct Args {
    /// Rounds; each measures every arm and request kind once.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 3)]
    duration: u64,
    /// Warm-up seconds before each run.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// wrk connections.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Policy sizes (authorization rules) of arms (c) and (d).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,30,100,300,1000,10000"
    )]
    rules: Vec<usize>,
    /// CPU for Envoy.
    #[arg(long, default_value_t = 0)]
    envoy_cpu: u32,
    /// CPU for wrk, the upstream Envoy and this program.
    #[arg(long, default_value_t = 1)]
    load_cpu: u32,
    /// Only re-render the Markdown report from the JSON results (after editing
    /// `bench/notes.md`); measures nothing.
    #[arg(long)]
    render: bool,
    /// Skip the probe arms (the price of each host call in Envoy).
    #[arg(long)]
    no_probes: bool,
    /// Requests per kind and policy size in host-sim.
    #[arg(long, default_value_t = 20)]
    sim_requests: usize,
    /// Where to write the JSON results (relative to the workspace root).
    #[arg(long, default_value = "bench/results.json")]
    json: PathBuf,
    /// Where to write the Markdown report (relative to the workspace root).
    #[arg(long, default_value = "docs/benchmarks.md")]
    markdown: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xcluster-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error>;

fn root() -> &'static Path {
    xcluster_e2e::workspace_root()
}

/// Runs a command and returns its trimmed stdout (or stderr when stdout is empty).
fn capture(program: &str, args: &[&str]) -> Result<String, Error> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let text = if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    };
    Ok(String::from_utf8_lossy(text).trim().to_string())
}

fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Every wasm arm loads its module as it ships (cargo's release build after `wasm-opt -Oz`).
fn build_modules() -> Result<Modules, Error> {
    Ok(Modules {
        noop: xcluster_wasm_build::shipped("xcluster-bench-noop")?,
        xcluster: xcluster_wasm_build::shipped(xcluster_wasm_build::FILTER_PACKAGE)?,
        probe: xcluster_wasm_build::shipped("xcluster-bench-probe")?,
    })
}

fn wasm_sizes(modules: &Modules) -> Result<(WasmSizes, String), Error> {
    let as_built = xcluster_wasm_build::module_path(
        &xcluster_wasm_build::target_dir(),
        xcluster_wasm_build::FILTER_PACKAGE,
    );
    let wasm_opt = xcluster_wasm_build::wasm_opt();
    let version = capture(&wasm_opt.to_string_lossy(), &["--version"])?;
    Ok((
        WasmSizes {
            xcluster: fs::metadata(&as_built)?.len(),
            xcluster_wasm_opt_oz: fs::metadata(&modules.xcluster)?.len(),
            noop: fs::metadata(&modules.noop)?.len(),
        },
        version,
    ))
}

/// One measured (arm, kind): its Envoy and the wrk script.
struct Case {
    arm: Arm,
    kind: RequestKind,
    script: PathBuf,
    runs: Vec<Run>,
}

fn expected_status(arm: Arm, kind: RequestKind) -> u16 {
    kind.status(arm.rules())
}

/// The probe arms: each host call xcluster makes alone, alternatives (`values`,
/// `status`, `clear_route_cache`, `log`), and all it makes.
const PROBES: [&str; 9] = [
    "headers",
    "values",
    "set_header",
    "clear_route_cache",
    "metric",
    "status",
    "response_headers",
    "log",
    XCLUSTER_CALLS,
];

/// Worker counts the largest policy's memory is measured with.
const WORKERS: [u32; 2] = [1, 4];

fn main_arms(rules: &[usize], probes: bool) -> Vec<Arm> {
    let mut arms = vec![Arm::Plain, Arm::Noop];
    for &n in rules {
        arms.push(Arm::Native(n));
        arms.push(Arm::Xcluster(n));
    }
    if let Some(&n) = rules.iter().min() {
        arms.push(Arm::XclusterNoFailover(n));
    }
    if probes {
        arms.extend(PROBES.iter().map(|p| Arm::Probe(p)));
    }
    arms
}

fn verify(envoy: &PinnedEnvoy, arm: Arm, kind: RequestKind) -> Result<(), Error> {
    let path = kind.path(arm.rules());
    let resp = Client::plain(envoy.listener()).request(
        "GET",
        "bench.local",
        &path,
        &[(CALLER_HEADER, CALLER)],
    )?;
    let want = expected_status(arm, kind);
    if resp.status != want {
        return Err(format!(
            "{} {}: GET {path} answered {} {:?}, want {want}",
            arm.id(),
            kind.name(),
            resp.status,
            resp.body
        )
        .into());
    }
    Ok(())
}

fn run(args: &Args) -> Result<(), Error> {
    if args.render {
        let json = fs::read_to_string(root().join(&args.json))?;
        let results: Results =
            serde_json::from_str(&json).map_err(|e| format!("{}: {e}", args.json.display()))?;
        let md_path = root().join(&args.markdown);
        fs::write(
            &md_path,
            report::markdown(&results, &closing_note(&results)),
        )?;
        write_chart(&results, &md_path)?;
        eprintln!("wrote {}", md_path.display());
        return Ok(());
    }
    // Pin this program (and the upstream's threads it spawns) to the load CPU.
    let pid = std::process::id().to_string();
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", &args.load_cpu.to_string(), &pid])
        .output()?;
    if !pinned.status.success() {
        return Err("taskset cannot pin the benchmark (is util-linux installed?)".into());
    }
    let work = xcluster_e2e::target_dir().join("bench");
    fs::create_dir_all(&work)?;
    let envoy_bin = xcluster_e2e::envoy_bin();

    eprintln!("== building the wasm modules");
    let modules = build_modules()?;
    let (wasm, wasm_opt_version) = wasm_sizes(&modules)?;
    eprintln!(
        "xcluster.wasm {} bytes, after wasm-opt -Oz {} bytes; noop.wasm {} bytes",
        wasm.xcluster, wasm.xcluster_wasm_opt_oz, wasm.noop
    );

    eprintln!("== host-sim: instructions per request");
    let noop_host = sim::load(&modules.noop)?;
    let noop_instructions = sim::floor(&noop_host, args.sim_requests)?;
    eprintln!("empty filter: {noop_instructions} instructions/request");
    let host = sim::load(&modules.xcluster)?;
    let mut instructions = Vec::new();
    for n in std::iter::once(0).chain(args.rules.iter().copied()) {
        let cost = sim::measure(&host, n, args.sim_requests, 3)?;
        eprintln!(
            "{n:>6} rules: allowed {:?}, denied {:?}, configure {} instructions, {:.1} ms (wasmi)",
            cost.request(RequestKind::Allowed).map(|c| c.total),
            cost.request(RequestKind::Denied).map(|c| c.total),
            cost.configure_instructions,
            cost.configure_ms_wasmi
        );
        instructions.push(cost);
    }
    let breakdown = sim::breakdown(&host, args.sim_requests)?;
    for b in &breakdown {
        eprintln!(
            "{:>8} request headers, {:>6} response headers, {:>8} total: {}",
            b.request_headers, b.response_headers, b.total, b.scenario
        );
    }
    drop(host);

    eprintln!("== V8 alone (node --no-liftoff): ns per stream");
    let v8 = v8_costs(&modules, &work, &args.rules)?;
    for c in &v8 {
        eprintln!(
            "{:<60} {:>8.0} ns/stream, configure {:.2} ms (first {:.1} ms)",
            format!("{} {}", c.label, c.kind.name()),
            c.ns_per_stream,
            c.configure_ms,
            c.first_configure_ms
        );
    }

    let load = Load {
        connections: args.connections,
        threads: 1,
        duration: Duration::from_secs(args.duration),
        cpu: args.load_cpu,
    };
    let warmup = Duration::from_secs(args.warmup);
    let upstream = PinnedEnvoy::start(
        &work.join("envoy-upstream"),
        &envoy::upstream_bootstrap(),
        args.load_cpu,
    )?;
    let upstream_addr: SocketAddr = upstream.listener();

    eprintln!("== upstream alone");
    let direct_script = work.join("direct.lua");
    fs::write(&direct_script, wrk::script("/", &[]))?;
    wrk::run(&load, upstream_addr, &direct_script, warmup)?;
    let direct = wrk::run(&load, upstream_addr, &direct_script, load.duration)?;
    eprintln!("upstream direct: {:.0} req/s", direct.rps());

    eprintln!("== starting Envoys");
    let arms = main_arms(&args.rules, !args.no_probes);
    let mut envoys: BTreeMap<String, PinnedEnvoy> = BTreeMap::new();
    let mut startup = Vec::new();
    let mut rss_ready = BTreeMap::new();
    for arm in &arms {
        let bootstrap = envoy::bootstrap(*arm, &modules, upstream_addr);
        let e = PinnedEnvoy::start(
            &work.join(format!("envoy-{}", arm.id())),
            &bootstrap,
            args.envoy_cpu,
        )?;
        let configure = envoy::configure_log_ms(&e.log());
        eprintln!(
            "{}: ready after {:.0} ms, RSS {} KiB, configure (log) {:?} ms",
            arm.id(),
            e.ready_after.as_secs_f64() * 1e3,
            e.rss_kib()?,
            configure
        );
        rss_ready.insert(arm.id(), e.rss_kib()?);
        startup.push(Startup {
            arm: arm.id(),
            ready_ms: e.ready_after.as_secs_f64() * 1e3,
            configure_log_ms: configure,
        });
        envoys.insert(arm.id(), e);
    }

    let mut cases = Vec::new();
    for arm in &arms {
        let kinds: &[RequestKind] = if arm.rules() == 0 {
            &[RequestKind::Allowed]
        } else {
            &RequestKind::ALL
        };
        for &kind in kinds {
            let e = &envoys[&arm.id()];
            verify(e, *arm, kind)?;
            let script = work.join(format!("{}-{}.lua", arm.id(), kind.name()));
            fs::write(
                &script,
                wrk::script(&kind.path(arm.rules()), &[(CALLER_HEADER, CALLER)]),
            )?;
            cases.push(Case {
                arm: *arm,
                kind,
                script,
                runs: Vec::new(),
            });
        }
    }

    let ticks: f64 = capture("getconf", &["CLK_TCK"])?
        .parse()
        .map_err(|e| format!("getconf CLK_TCK: {e}"))?;
    let load_before = load_average();
    let mut problems = Vec::new();
    for round in 0..args.rounds {
        eprintln!("== round {}/{}", round + 1, args.rounds);
        let n = cases.len();
        for i in 0..n {
            let case = &mut cases[(i + round * n / args.rounds.max(1)) % n];
            let e = &envoys[&case.arm.id()];
            wrk::run(&load, e.listener(), &case.script, warmup)?;
            let cpu_before = e.cpu_seconds(ticks)?;
            let s = wrk::run(&load, e.listener(), &case.script, load.duration)?;
            let envoy_cpu_s = e.cpu_seconds(ticks)? - cpu_before;
            let want = expected_status(case.arm, case.kind);
            let bad_status = if want == 200 {
                s.status_errors
            } else {
                s.requests - s.status_errors.min(s.requests)
            };
            if bad_status > 0 || s.socket_errors() > 0 {
                problems.push(format!(
                    "{} {} round {}: {bad_status} responses without status {want}, {} socket errors",
                    case.arm.id(),
                    case.kind.name(),
                    round + 1,
                    s.socket_errors()
                ));
            }
            let run = Run {
                wrk: s,
                envoy_cpu_s,
            };
            eprintln!(
                "{:>7} {:<7} {:>8.0} req/s  p50 {:>5} µs  p99 {:>6} µs  Envoy CPU {:>6.1} µs/request",
                case.arm.id(),
                case.kind.name(),
                s.rps(),
                s.p50_us,
                s.p99_us,
                run.cpu_us_per_request()
            );
            case.runs.push(run);
        }
    }
    let load_after = load_average();

    let mut memory = Vec::new();
    for arm in &arms {
        let e = &envoys[&arm.id()];
        memory.push(Memory {
            arm: arm.id(),
            rss_ready_kib: rss_ready.get(&arm.id()).copied().unwrap_or(0),
            rss_after_load_kib: e.rss_kib()?,
        });
    }
    let mut split = Vec::new();
    for arm in arms.iter().filter(|a| a.rules() > 0) {
        let e = &envoys[&arm.id()];
        let mut counts = Vec::new();
        for (c, _) in policy::TARGETS {
            counts.push((
                c.to_string(),
                e.counter(&format!("cluster.{c}.upstream_rq_total"))? as f64,
            ));
        }
        let total: f64 = counts.iter().map(|(_, x)| x).sum();
        split.push(Split {
            arm: arm.id(),
            shares: counts
                .into_iter()
                .map(|(c, x)| (c, ratio(x, total)))
                .collect(),
        });
    }
    drop(envoys);
    let workers = worker_memory(&work, &modules, upstream_addr, &args.rules, args.envoy_cpu)?;
    drop(upstream);

    let arm_results: Vec<ArmResult> = cases
        .iter()
        .map(|c| {
            let pick = |f: fn(&Summary) -> f64| {
                median(&c.runs.iter().map(|r| f(&r.wrk)).collect::<Vec<_>>())
            };
            ArmResult {
                arm: c.arm.id(),
                label: c.arm.label(),
                rules: c.arm.rules(),
                kind: c.kind,
                expected_status: expected_status(c.arm, c.kind),
                rps: pick(Summary::rps),
                p50_us: pick(|s| s.p50_us as f64),
                p99_us: pick(|s| s.p99_us as f64),
                cpu_us_per_request: median(
                    &c.runs
                        .iter()
                        .map(Run::cpu_us_per_request)
                        .collect::<Vec<_>>(),
                ),
                runs: c.runs.clone(),
            }
        })
        .collect();

    let mut results = Results {
        date_utc: capture("date", &["-u", "+%Y-%m-%d %H:%M UTC"])?,
        commit: capture(
            "git",
            &[
                "-C",
                &root().to_string_lossy(),
                "describe",
                "--always",
                "--dirty",
            ],
        )?,
        machine: Machine {
            cpus: fs::read_to_string("/proc/cpuinfo")
                .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
                .unwrap_or(0),
            cpu_model: fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("model name"))
                        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
                })
                .unwrap_or_default(),
            kernel: capture("uname", &["-sr"])?,
            load_before,
            load_after,
        },
        versions: Versions {
            envoy: capture(&envoy_bin.to_string_lossy(), &["--version"])?
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .to_string(),
            wrk: capture("wrk", &["-v"])?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            rustc: capture("rustc", &["--version"])?,
            wasm_opt: wasm_opt_version,
            proxy_wasm_sdk: "proxy-wasm (Rust SDK) 0.2.5".into(),
        },
        settings: Settings {
            envoy_concurrency: 1,
            envoy_cpu: args.envoy_cpu,
            load_cpu: args.load_cpu,
            connections: args.connections,
            wrk_threads: load.threads,
            warmup_s: args.warmup,
            duration_s: args.duration,
            rounds: args.rounds,
        },
        upstream_direct_rps: direct.rps(),
        arms: arm_results,
        ratios: Vec::new(),
        memory,
        workers,
        crossover_rules: None,
        startup,
        split,
        wasm,
        noop_instructions_per_request: noop_instructions,
        instructions,
        breakdown,
        v8,
        targets: Vec::new(),
        problems,
    };
    results.ratios = ratios(&results, &args.rules);
    results.crossover_rules = crossover(&results, &args.rules);
    results.targets = targets(&results);

    let closing = closing_note(&results);
    let json_path = root().join(&args.json);
    let md_path = root().join(&args.markdown);
    fs::write(
        &json_path,
        format!("{:#}\n", serde_json::to_value(&results)?),
    )?;
    fs::write(&md_path, report::markdown(&results, &closing))?;
    write_chart(&results, &md_path)?;
    eprintln!("== targets");
    for t in &results.targets {
        eprintln!(
            "{:<60} {:>12.3} {:<10} {}",
            t.name,
            t.value,
            t.bound,
            if t.met { "met" } else { "NOT MET" }
        );
    }
    eprintln!("wrote {} and {}", json_path.display(), md_path.display());
    Ok(())
}

/// The empty filter, the probe making xcluster's host calls, and xcluster at the smallest
/// and the largest policy size (allowed and denied), each in V8 alone.
fn v8_costs(modules: &Modules, work: &Path, rules: &[usize]) -> Result<Vec<V8Cost>, Error> {
    let mut runs = vec![
        (Arm::Noop, RequestKind::Allowed, Expect::Nothing),
        (
            Arm::Probe(XCLUSTER_CALLS),
            RequestKind::Allowed,
            Expect::Cluster,
        ),
    ];
    let sizes = [rules.first(), rules.last()];
    for n in sizes
        .into_iter()
        .flatten()
        .copied()
        .collect::<BTreeSet<_>>()
    {
        runs.push((Arm::Xcluster(n), RequestKind::Allowed, Expect::Cluster));
        runs.push((Arm::Xcluster(n), RequestKind::Denied, Expect::Status(403)));
    }
    if let Some(&n) = rules.first() {
        runs.push((
            Arm::XclusterNoFailover(n),
            RequestKind::Allowed,
            Expect::Cluster,
        ));
    }
    let mut out = Vec::new();
    for (arm, kind, expect) in runs {
        let module = match arm {
            Arm::Noop => &modules.noop,
            Arm::Probe(_) => &modules.probe,
            _ => &modules.xcluster,
        };
        let config_path = work.join(format!("v8-{}.config", arm.id()));
        fs::write(&config_path, envoy::plugin_config(arm))?;
        out.push(v8::measure(
            module,
            &config_path,
            (&kind.path(arm.rules()), v8::STREAMS, v8::COLD_STREAMS),
            expect,
            (arm.id(), arm.label(), kind),
        )?);
    }
    // The probe prices xcluster's host calls only if it makes the same ones.
    let probe = Arm::Probe(XCLUSTER_CALLS).id();
    let probe_calls = out.iter().find(|c| c.arm == probe).map(|c| &c.host_calls);
    for c in &out {
        let routed = c.arm.starts_with('d') && c.kind == RequestKind::Allowed;
        if routed && Some(&c.host_calls) != probe_calls {
            return Err(format!(
                "{}: host calls per stream {:?}, the probe {probe} makes {probe_calls:?}",
                c.arm, c.host_calls
            )
            .into());
        }
    }
    Ok(out)
}

/// Writes the chart next to the Markdown report (`benchmarks.svg`, which it embeds).
fn write_chart(results: &Results, md_path: &Path) -> Result<(), Error> {
    let path = md_path.with_extension("svg");
    fs::write(&path, chart::svg(results))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// VmRSS of the largest policy's arms (c) and (d) once ready with each of [`WORKERS`].
fn worker_memory(
    work: &Path,
    modules: &Modules,
    upstream: SocketAddr,
    rules: &[usize],
    cpu: u32,
) -> Result<Vec<WorkerMemory>, Error> {
    let Some(&n) = rules.iter().max() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for arm in [Arm::Native(n), Arm::Xcluster(n)] {
        for workers in WORKERS {
            let e = PinnedEnvoy::start_workers(
                &work.join(format!("envoy-{}-w{workers}", arm.id())),
                &envoy::bootstrap(arm, modules, upstream),
                cpu,
                workers,
            )?;
            verify(&e, arm, RequestKind::Allowed)?;
            let rss_kib = e.rss_kib()?;
            eprintln!("{} with {workers} workers: VmRSS {rss_kib} KiB", arm.id());
            out.push(WorkerMemory {
                arm: arm.id(),
                workers,
                rss_kib,
            });
        }
    }
    Ok(out)
}

/// The policy size where (d)'s CPU per allowed request falls to (c)'s, interpolated in
/// log(rules) between the first measured pair of sizes where it goes from above to below
/// (the smallest size when d is cheaper everywhere).
fn crossover(r: &Results, rules: &[usize]) -> Option<f64> {
    let gap = |n: usize| {
        cpu(r, &format!("d{n}"), RequestKind::Allowed)
            - cpu(r, &format!("c{n}"), RequestKind::Allowed)
    };
    let mut sizes: Vec<usize> = rules.iter().copied().filter(|&n| n > 0).collect();
    sizes.sort_unstable();
    let first = *sizes.first()?;
    if gap(first) <= 0.0 {
        return Some(first as f64);
    }
    sizes.windows(2).find_map(|w| {
        let (g0, g1) = (gap(w[0]), gap(w[1]));
        (g0 > 0.0 && g1 <= 0.0).then(|| {
            let (l0, l1) = ((w[0] as f64).ln(), (w[1] as f64).ln());
            (l0 + (l1 - l0) * g0 / (g0 - g1)).exp()
        })
    })
}

fn rps(r: &Results, arm: &str, kind: RequestKind) -> f64 {
    r.arm(arm, kind).map_or(f64::NAN, |a| a.rps)
}

fn cpu(r: &Results, arm: &str, kind: RequestKind) -> f64 {
    r.arm(arm, kind).map_or(f64::NAN, |a| a.cpu_us_per_request)
}

fn ratios(r: &Results, rules: &[usize]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for &n in rules {
        for kind in RequestKind::ALL {
            let d = rps(r, &format!("d{n}"), kind);
            let d_cpu = cpu(r, &format!("d{n}"), kind);
            out.push(Ratio {
                rules: n,
                kind,
                d_over_a: ratio(d, rps(r, "a", RequestKind::Allowed)),
                d_over_b: ratio(d, rps(r, "b", RequestKind::Allowed)),
                d_over_c: ratio(d, rps(r, &format!("c{n}"), kind)),
                cpu_b_over_d: ratio(cpu(r, "b", RequestKind::Allowed), d_cpu),
                cpu_c_over_d: ratio(cpu(r, &format!("c{n}"), kind), d_cpu),
            });
        }
    }
    out
}

fn targets(r: &Results) -> Vec<Target> {
    let ratio_of = |n: usize, kind: RequestKind, f: fn(&Ratio) -> f64| {
        r.ratios
            .iter()
            .find(|x| x.rules == n && x.kind == kind)
            .map_or(f64::NAN, f)
    };
    let insns = |n: usize| {
        r.instructions
            .iter()
            .find(|c| c.rules == n)
            .and_then(|c| c.request(RequestKind::Allowed))
            .map_or(f64::NAN, |c| c.total as f64)
    };
    let at_least = |name: String, value: f64, bound: f64| Target {
        name,
        value,
        bound: format!("≥ {bound}"),
        met: value >= bound,
    };
    let at_most = |name: String, value: f64, bound: f64, unit: &str| Target {
        name,
        value,
        bound: format!("< {bound}{unit}"),
        met: value < bound,
    };
    let max_rules = r.instructions.iter().map(|c| c.rules).max().unwrap_or(0);
    let min_rules = r
        .instructions
        .iter()
        .map(|c| c.rules)
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(0);
    let big_log = r
        .startup
        .iter()
        .find(|s| s.arm == format!("d{max_rules}"))
        .and_then(|s| s.configure_log_ms.iter().skip(1).copied().max())
        .map_or(f64::NAN, |x| x as f64);
    let probe_all = cpu(r, &Arm::Probe(XCLUSTER_CALLS).id(), RequestKind::Allowed);
    let d_min = cpu(r, &format!("d{min_rules}"), RequestKind::Allowed);
    let d_over_e = ratio(
        d_min,
        cpu(r, &format!("e{min_rules}"), RequestKind::Allowed),
    );
    let extra_worker = WORKERS
        .iter()
        .max()
        .and_then(|&w| r.extra_worker_mib(&format!("d{max_rules}"), w))
        .unwrap_or(f64::NAN);
    vec![
        at_least(
            format!("throughput d/b at {min_rules} rules (allowed)"),
            ratio_of(min_rules, RequestKind::Allowed, |x| x.d_over_b),
            0.90,
        ),
        at_least(
            format!("same, as Envoy CPU per request b÷d at {min_rules} rules (allowed)"),
            ratio_of(min_rules, RequestKind::Allowed, |x| x.cpu_b_over_d),
            0.90,
        ),
        at_least(
            format!(
                "filter's own work: Envoy CPU per request, probe with xcluster's host calls ÷ d at {min_rules} rules (allowed)"
            ),
            ratio(probe_all, d_min),
            0.97,
        ),
        {
            // The same quantity resolved in V8 alone: (d − probe) ns per stream, as a share
            // of d's Envoy CPU per request.
            let own = ratio(
                r.v8_ns(&format!("d{min_rules}"), RequestKind::Allowed)
                    - r.v8_ns(&Arm::Probe(XCLUSTER_CALLS).id(), RequestKind::Allowed),
                d_min * 1e3,
            );
            at_most(
                format!(
                    "same, measured in V8 alone: (d − probe) ns per stream ÷ d's Envoy CPU per request at {min_rules} rules (allowed), %"
                ),
                own * 100.0,
                3.0,
                " %",
            )
        },
        {
            // Its bound from above: the same with the caches evicted before each stream.
            let own = ratio(
                r.v8_cold_ns(&format!("d{min_rules}"), RequestKind::Allowed)
                    - r.v8_cold_ns(&Arm::Probe(XCLUSTER_CALLS).id(), RequestKind::Allowed),
                d_min * 1e3,
            );
            at_most(
                format!(
                    "same, V8 alone with the caches evicted before each stream, at {min_rules} rules (allowed), %"
                ),
                own * 100.0,
                3.0,
                " %",
            )
        },
        Target {
            name: format!(
                "replay and active health checks on the happy path: Envoy CPU per request d÷e at {min_rules} rules (allowed)"
            ),
            value: d_over_e,
            bound: "≤ 1.02".into(),
            met: d_over_e <= 1.02,
        },
        {
            // The same in V8 alone: (d − e) ns per stream against d's Envoy CPU per request.
            let extra = ratio(
                r.v8_ns(&format!("d{min_rules}"), RequestKind::Allowed)
                    - r.v8_ns(&format!("e{min_rules}"), RequestKind::Allowed),
                d_min * 1e3,
            );
            Target {
                name: format!(
                    "same, measured in V8 alone: 1 + (d − e) ns per stream ÷ d's Envoy CPU per request at {min_rules} rules (allowed)"
                ),
                value: 1.0 + extra,
                bound: "≤ 1.02".into(),
                met: 1.0 + extra <= 1.02,
            }
        },
        Target {
            name: "crossover: rules from which d's CPU per allowed request is below c's".into(),
            value: r.crossover_rules.unwrap_or(f64::NAN),
            bound: "≤ 50".into(),
            met: r.crossover_rules.is_some_and(|n| n <= 50.0),
        },
        at_least(
            format!("throughput d/c at {max_rules} rules (allowed)"),
            ratio_of(max_rules, RequestKind::Allowed, |x| x.d_over_c),
            10.0,
        ),
        at_least(
            format!("throughput d/c at {max_rules} rules (denied)"),
            ratio_of(max_rules, RequestKind::Denied, |x| x.d_over_c),
            10.0,
        ),
        Target {
            name: format!("instructions/request {max_rules} rules ÷ {min_rules} rules (allowed)"),
            value: insns(max_rules) / insns(min_rules),
            bound: "≤ 1.2".into(),
            met: insns(max_rules) <= 1.2 * insns(min_rules),
        },
        at_most(
            format!(
                "{max_rules}-rule config load in Envoy (V8; configure + VM clone, log timestamps), ms"
            ),
            big_log,
            50.0,
            " ms",
        ),
        Target {
            name: format!("VmRSS each extra worker adds at {max_rules} rules (d), MiB"),
            value: extra_worker,
            bound: "≤ 20 MiB".into(),
            met: extra_worker <= 20.0,
        },
        Target {
            name: "optimized .wasm (wasm-opt -Oz), KB (1 KB = 1000 bytes)".into(),
            value: r.wasm.xcluster_wasm_opt_oz as f64 / 1000.0,
            bound: "≤ 400 KB".into(),
            met: r.wasm.xcluster_wasm_opt_oz <= 400_000,
        },
    ]
}

/// The automatic part of the closing note: each unmet target with its figure; the
/// analysis of what limits it is in `bench/notes.md`, appended after it.
fn closing_note(r: &Results) -> String {
    let mut s = String::new();
    let unmet: Vec<&Target> = r.targets.iter().filter(|t| !t.met).collect();
    if unmet.is_empty() {
        s.push_str("Every target is met in this run.\n");
    } else {
        s.push_str("Targets **not met** in this run:\n\n");
        for t in unmet {
            s.push_str(&format!(
                "- {}: measured {:.3}, target {}.\n",
                t.name, t.value, t.bound
            ));
        }
    }
    if let Ok(notes) = fs::read_to_string(root().join("bench/notes.md")) {
        s.push('\n');
        s.push_str(&notes);
    }
    // The last `make soak`'s section (bench/soak.md), kept across benchmark runs.
    if let Ok(soak) = fs::read_to_string(root().join("bench/soak.md")) {
        s.push('\n');
        s.push_str(&soak);
    }
    s
}
