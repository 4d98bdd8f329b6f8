//! `xcluster-demo`: the seed stories, live, from the generator's output. Every step runs
//! `xcluster-gen envoy` (through the `xcluster_confgen` library, the same calls as the
//! command) on inputs from `examples/`, with `--endpoint` flags pointing the example's
//! clusters at loopback upstreams on free ports, starts a real Envoy with that bootstrap
//! and prints who answered. Seed 002 (FSM Locality, FailOver, ActiveActive, SMI enforce
//! mode and a TrafficTarget that opens access), then seed 000's 75 / 15 / 10 split. A step
//! whose outcomes differ from the story fails the demo. Everything started is stopped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use rustls::ClientConfig;
use xcluster_e2e::client::{Client, Response};
use xcluster_e2e::envoy::Envoy;
use xcluster_e2e::fixture::{Error, Tally};
use xcluster_e2e::generated::{display_path, EnvoyGen, TlsFiles, GATEWAY_LISTENER};
use xcluster_e2e::pki::Pki;
use xcluster_e2e::scenario::{CURL_ID, HTTPBIN_HOST, INTRUDER_ID, REVIEWS_HOST};
use xcluster_e2e::upstream::{greeting, Upstream};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xcluster-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Requests per step (the split uses more, to show the proportions).
const REQUESTS: usize = 30;
const SPLIT_REQUESTS: usize = 2000;

/// Seed 002's inputs.
const FSM: &str = "examples/002-fsm";
/// Seed 000's input.
const SHIFT: &str = "examples/000-gloo-traffic-shift/traffic-policy.yaml";

/// The `--endpoint` key of httpbin in seed 002's cluster `cluster`.
fn httpbin(cluster: &str) -> String {
    format!("{cluster}/httpbin/httpbin")
}

fn run() -> Result<(), Error> {
    let envoy_bin = xcluster_e2e::envoy_bin();
    if !envoy_bin.exists() {
        return Err(format!(
            "{} not found: run `make setup` (or set ENVOY_BIN)",
            envoy_bin.display()
        )
        .into());
    }
    println!(
        "Building the filter (cargo build -p xcluster-filter --release --target wasm32-wasip1) ..."
    );
    let wasm = xcluster_wasm_build::filter_wasm()?;
    println!("\nfilter : {}", display_path(&wasm));
    println!("envoy  : {} (--concurrency 2)", display_path(&envoy_bin));
    println!(
        "Each step generates an Envoy bootstrap with xcluster-gen (the command is shown; run it"
    );
    println!(
        "from the repository root to get the same file), starts Envoy with it and sends requests."
    );

    let pki = Pki::new()?;
    let tls = TlsFiles::write(&pki.server_cert("localhost")?, &pki.ca_pem())?;
    let curl = pki.client_config(&pki.client_cert(CURL_ID)?)?;
    let intruder = pki.client_config(&pki.client_cert(INTRUDER_ID)?)?;
    let mut demo = Demo {
        wasm,
        step: 0,
        dirs: Vec::new(),
    };

    println!(
        "\nSeed 002 (examples/002-fsm): the gateway runs in cluster-2; cluster-1 and cluster-3"
    );
    println!("export httpbin through their gateways under /cluster-N/httpbin-mesh.");
    let c1 = start_upstream("cluster-1")?;
    let c3 = start_upstream("cluster-3")?;
    let remote = |files: &[&str]| {
        EnvoyGen::new(files)
            .local_cluster("cluster-2")
            .endpoint(&httpbin("cluster-1"), c1.addr())
            .endpoint(&httpbin("cluster-3"), c3.addr())
    };
    let no_local = |policy: &str| {
        remote(&[
            &format!("{FSM}/common/clusters.yaml"),
            &format!("{FSM}/common/serviceimport.yaml"),
            &format!("{FSM}/{policy}"),
        ])
    };

    let envoy = demo.start(
        "Locality: httpbin runs only in cluster-1 and cluster-3 (common/ without httpbin-local.yaml)",
        &no_local("locality"),
    )?;
    demo.send(
        &envoy,
        None,
        HTTPBIN_HOST,
        REQUESTS,
        &["503 no healthy target"],
    )?;
    drop(envoy);

    let envoy = demo.start(
        "FailOver: still no local httpbin, so the remote clusters serve through their gateway paths",
        &no_local("failover"),
    )?;
    demo.send(
        &envoy,
        None,
        HTTPBIN_HOST,
        REQUESTS,
        &["cluster-1", "cluster-3"],
    )?;
    drop(envoy);

    let mut c2 = start_upstream("cluster-2")?;
    let c2_addr = c2.addr();
    let all = |files: &[String]| {
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        remote(&files).endpoint(&httpbin("cluster-2"), c2_addr)
    };
    let fsm =
        |dirs: &[&str]| -> Vec<String> { dirs.iter().map(|d| format!("{FSM}/{d}")).collect() };

    let envoy = demo.start(
        "FailOver: httpbin appears in cluster-2 (common/ with httpbin-local.yaml), so it serves alone",
        &all(&fsm(&["common", "failover"])),
    )?;
    demo.send(&envoy, None, HTTPBIN_HOST, REQUESTS, &["cluster-2"])?;
    c2.stop();
    println!(
        "\n    cluster-2's httpbin goes down (same gateway): each request that fails there is"
    );
    println!("    replayed on a remote cluster (the generated route replays), so none is lost;");
    println!("    after 5 gateway errors (the generated outlier detection) cluster-2 is ejected");
    demo.send(
        &envoy,
        None,
        HTTPBIN_HOST,
        REQUESTS,
        &["cluster-1", "cluster-3"],
    )?;
    let stats = envoy.stats("xcluster_replays_total")?;
    println!("    => replayed: {}", stats.values().sum::<u64>());
    drop(envoy);
    c2.restart()?;
    println!("  upstream cluster-2 is back at {c2_addr}");

    let envoy = demo.start(
        "ActiveActive: all three clusters serve",
        &all(&fsm(&["common", "active-active"])),
    )?;
    demo.send(
        &envoy,
        None,
        HTTPBIN_HOST,
        REQUESTS,
        &["cluster-1", "cluster-2", "cluster-3"],
    )?;
    drop(envoy);

    let envoy = demo.start(
        "SMI enforce mode (smi/: TrafficTarget curl -> httpbin/default), mTLS required",
        &all(&fsm(&["common", "active-active", "smi"])).tls(&tls),
    )?;
    demo.send(
        &envoy,
        Some((INTRUDER_ID, &intruder)),
        HTTPBIN_HOST,
        REQUESTS,
        &["403 access denied"],
    )?;
    demo.send(
        &envoy,
        Some((CURL_ID, &curl)),
        HTTPBIN_HOST,
        REQUESTS,
        &["cluster-2"],
    )?;
    println!("    (only cluster-2's httpbin runs as httpbin/default; cluster-1 and cluster-3 run as httpbin/httpbin)");
    drop(envoy);

    let envoy = demo.start(
        "SMI enforce plus smi-ext/: TrafficTarget curl -> httpbin/httpbin opens the remote clusters",
        &all(&fsm(&["common", "active-active", "smi", "smi-ext"])).tls(&tls),
    )?;
    demo.send(
        &envoy,
        Some((CURL_ID, &curl)),
        HTTPBIN_HOST,
        REQUESTS,
        &["cluster-1", "cluster-2", "cluster-3"],
    )?;
    drop(envoy);
    drop((c1, c2, c3));

    println!("\nSeed 000 (examples/000-gloo-traffic-shift): reviews 75 / 15 / 10 over remote-cluster and");
    println!("the v1 / v2 subsets in mgmt-cluster.");
    let remote = start_upstream("remote-cluster")?;
    let v1 = start_upstream("mgmt-cluster/version=v1")?;
    let v2 = start_upstream("mgmt-cluster/version=v2")?;
    let envoy = demo.start(
        "Weighted split 75 / 15 / 10",
        &EnvoyGen::new(&[SHIFT])
            .endpoint("remote-cluster/bookinfo/reviews", remote.addr())
            .endpoint("mgmt-cluster/bookinfo/reviews/version=v1", v1.addr())
            .endpoint("mgmt-cluster/bookinfo/reviews/version=v2", v2.addr()),
    )?;
    demo.send(
        &envoy,
        None,
        REVIEWS_HOST,
        SPLIT_REQUESTS,
        &[
            "mgmt-cluster/version=v1",
            "mgmt-cluster/version=v2",
            "remote-cluster",
        ],
    )?;
    drop(envoy);
    drop((remote, v1, v2));

    println!("\nDone: every Envoy and upstream the demo started is stopped.");
    if let (Some(first), Some(last)) = (demo.dirs.first(), demo.dirs.last()) {
        println!("Generated bootstraps and Envoy logs are kept in {first} .. {last}.");
    }
    Ok(())
}

/// Starts a loopback upstream and says where it is.
fn start_upstream(name: &str) -> Result<Upstream, Error> {
    let upstream = Upstream::start(name)?;
    println!(
        "  upstream {name} at {} answers \"{}\"",
        upstream.addr(),
        greeting(name)
    );
    Ok(upstream)
}

struct Demo {
    wasm: PathBuf,
    step: usize,
    dirs: Vec<String>,
}

impl Demo {
    /// Prints the step and its command, renders the bootstrap and starts Envoy with it.
    fn start(&mut self, title: &str, gen: &EnvoyGen) -> Result<Envoy, Error> {
        self.step += 1;
        println!("\n[{}] {title}", self.step);
        println!(
            "    $ {}",
            gen.command_line(&self.wasm).replace('\n', "\n      ")
        );
        let mut envoy = gen.start(&format!("demo-{}", self.step), &self.wasm)?;
        envoy.keep_files();
        self.dirs.push(display_path(envoy.dir()));
        println!(
            "    envoy: gateway on {} (bootstrap {})",
            envoy.listener(GATEWAY_LISTENER),
            display_path(&envoy.dir().join("envoy.yaml"))
        );
        Ok(envoy)
    }

    /// Sends `n` GETs for `host` (over mTLS as `caller` when given), prints the first few
    /// responses and the tally, and fails unless every outcome starts with one of
    /// `expect` and every entry of `expect` starts some outcome.
    fn send(
        &self,
        envoy: &Envoy,
        caller: Option<(&str, &Arc<ClientConfig>)>,
        host: &str,
        n: usize,
        expect: &[&str],
    ) -> Result<(), Error> {
        let addr: SocketAddr = envoy.listener(GATEWAY_LISTENER);
        let mut client = match caller {
            Some((id, config)) => {
                println!("    GET http://{host}/ x{n}, over mTLS as {id}");
                Client::tls(addr, Arc::clone(config), "localhost")?
            }
            None => {
                println!("    GET http://{host}/ x{n}");
                Client::plain(addr)
            }
        };
        let mut tally = Tally::default();
        for i in 0..n {
            let resp = client.get(host, "/")?;
            if i < 4 {
                println!("      {}", show(&resp));
            }
            tally.record(&resp);
        }
        println!("      ...");
        println!("    => {tally}");
        let outcomes = tally.outcomes();
        let expected = |o: &&str| expect.iter().any(|e| o.starts_with(e));
        let seen = |e: &&str| outcomes.iter().any(|o| o.starts_with(e));
        if !outcomes.iter().all(expected) || !expect.iter().all(seen) {
            return Err(format!(
                "step {}: expected outcomes {expect:?}, got {tally}",
                self.step
            )
            .into());
        }
        Ok(())
    }
}

fn show(resp: &Response) -> String {
    match resp.header("x-upstream-path") {
        Some(path) if resp.status == 200 => format!("{}   (upstream path {path})", resp.body),
        _ => format!("HTTP {} {}", resp.status, resp.body),
    }
}
