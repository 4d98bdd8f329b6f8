//! `xcluster-soak` (`make soak`): see [`xcluster_bench::soak`]. Writes `bench/soak.json`,
//! `bench/soak.md` and the Soak section of `docs/benchmarks.md`; exits non-zero when RSS
//! grew faster than the bound.

use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use xcluster_bench::envoy::PinnedEnvoy;
use xcluster_bench::policy;
use xcluster_bench::soak::{self, Report, Sample};
use xcluster_bench::wrk::{self, Load};
use xcluster_e2e::envoy::{Config, Envoy, Options};

/// Memory of Envoy with xcluster over a long run with churn.
#[derive(Parser, Debug)]
struct Args {
    /// Requests to send after the warm-up (at least).
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// Seconds of load between two RSS samples.
    #[arg(long, default_value_t = 5)]
    slice: u64,
    /// Warm-up seconds before the first sample (not fitted).
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Longest measured run, seconds: the soak stops then even short of `requests`.
    #[arg(long, default_value_t = 900)]
    max_duration: u64,
    /// The slope bound, bytes of RSS per 100,000 requests.
    #[arg(long, default_value_t = 262_144.0)]
    bound: f64,
    /// wrk connections.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// CPU for Envoy.
    #[arg(long, default_value_t = 0)]
    envoy_cpu: u32,
    /// CPU for wrk and the upstream Envoy.
    #[arg(long, default_value_t = 1)]
    load_cpu: u32,
}

type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(report) if report.passed() => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("xcluster-soak: RSS grew faster than the bound");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("xcluster-soak: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<Report, Error> {
    let root = xcluster_e2e::workspace_root();
    let work = xcluster_e2e::target_dir().join("soak");
    fs::create_dir_all(&work)?;
    let wasm = xcluster_wasm_build::filter_wasm()?;

    let upstream = Envoy::start_with(
        &Options {
            dir: work.join("upstream"),
            concurrency: 1,
            cpu: Some(args.load_cpu),
            keep_files: true,
        },
        Config::Json(&soak::upstream_bootstrap()),
    )?;
    let (Some(ok), Some(flaky)) = (
        upstream.find_listener("ok"),
        upstream.find_listener("flaky"),
    ) else {
        return Err("the upstream Envoy has no ok or flaky listener".into());
    };
    let bootstrap = soak::gateway_bootstrap(&wasm.to_string_lossy(), ok.into(), flaky.into());
    let gateway = PinnedEnvoy::start(&work.join("gateway"), &bootstrap, args.envoy_cpu)?;
    let script = work.join("soak.lua");
    fs::write(&script, soak::script(&policy::allowed_path(10)))?;
    let load = Load {
        connections: args.connections,
        threads: 1,
        duration: Duration::from_secs(args.slice),
        cpu: args.load_cpu,
    };

    println!("warm-up {} s", args.warmup);
    wrk::run(
        &load,
        gateway.listener(),
        &script,
        Duration::from_secs(args.warmup),
    )?;
    let start = Instant::now();
    let mut samples = vec![Sample {
        elapsed_s: 0.0,
        requests: 0,
        rss_kib: gateway.rss_kib()?,
    }];
    let (mut requests, mut error_statuses, mut socket_errors) = (0u64, 0u64, 0u64);
    while requests < args.requests && start.elapsed() < Duration::from_secs(args.max_duration) {
        let s = wrk::run(&load, gateway.listener(), &script, load.duration)?;
        requests += s.requests;
        error_statuses += s.status_errors;
        socket_errors += s.socket_errors();
        let sample = Sample {
            elapsed_s: start.elapsed().as_secs_f64(),
            requests,
            rss_kib: gateway.rss_kib()?,
        };
        println!(
            "{:>6.0} s {:>10} requests  VmRSS {:.1} MiB  ({:.0} req/s)",
            sample.elapsed_s,
            requests,
            sample.rss_kib as f64 / 1024.0,
            s.rps()
        );
        samples.push(sample);
    }
    // The filter's stats (names carry their labels, `xcluster_requests_total.destination=…`).
    let mut counters: Vec<(String, u64)> = gateway.stats("xcluster_")?.into_iter().collect();
    counters.sort();
    let report = Report {
        requests,
        duration_s: start.elapsed().as_secs_f64(),
        error_statuses,
        socket_errors,
        slope_bytes_per_100k: soak::fit(&samples),
        samples,
        bound_bytes_per_100k: args.bound,
        counters,
    };
    let section = soak::markdown(&report);
    println!("\n{section}");
    fs::write(
        root.join("bench/soak.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    fs::write(root.join("bench/soak.md"), &section)?;
    let doc_path = root.join("docs/benchmarks.md");
    let doc = fs::read_to_string(&doc_path).unwrap_or_default();
    fs::write(&doc_path, soak::splice_section(&doc, &section))?;
    println!(
        "wrote {}, {} and {}",
        rel(root, &root.join("bench/soak.json")),
        rel(root, &root.join("bench/soak.md")),
        rel(root, &doc_path)
    );
    Ok(report)
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
