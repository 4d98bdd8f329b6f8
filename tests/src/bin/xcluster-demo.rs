//! `xcluster-demo`: a gateway Envoy with the xcluster filter in front of three local
//! clusters, walked through every policy mode. Prints what each request got, then stops
//! everything it started.
//!
//! The plugin configs are the files under `envoy/demo/` (see `xcluster_e2e::scenario`).

use std::process::ExitCode;
use std::sync::Arc;

use rustls::ClientConfig;
use xcluster_e2e::client::{Client, Response};
use xcluster_e2e::envoy::{Listener, ServerTls};
use xcluster_e2e::fixture::{Error, Gateway, Tally};
use xcluster_e2e::pki::Pki;
use xcluster_e2e::scenario::{
    PluginConfigFile, ACTIVE_ACTIVE, ALL, CURL_ID, DECISION_HEADER, ENFORCE, ENFORCE_LOCAL_ONLY,
    FAILOVER, FAILOVER_NO_LOCAL, HTTPBIN_HOST, INTRUDER_ID, LOCALITY_NO_LOCAL, REVIEWS_HOST, SPLIT,
};

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
    let wasm = xcluster_e2e::build_wasm()?;

    let pki = Pki::new()?;
    let tls = ServerTls {
        cert: pki.server_cert("localhost")?,
        client_ca_pem: pki.ca_pem(),
    };
    let enforced = [ENFORCE_LOCAL_ONLY.name, ENFORCE.name];
    let listeners = ALL
        .iter()
        .map(|file| Listener {
            name: file.name.to_string(),
            plugin_config: file.json.to_string(),
            tls: enforced.contains(&file.name).then(|| tls.clone()),
        })
        .collect();
    let mut gw = Gateway::start("demo", listeners)?;
    gw.envoy.keep_files();
    let curl = pki.client_config(&pki.client_cert(CURL_ID)?)?;
    let intruder = pki.client_config(&pki.client_cert(INTRUDER_ID)?)?;

    println!("\nfilter : {}", wasm.display());
    println!(
        "envoy  : {} (--concurrency 2), bootstrap and log in {}",
        envoy_bin.display(),
        gw.envoy.dir().display()
    );
    for upstream in &gw.clusters {
        println!(
            "cluster: {} at {} answers \"{}\"",
            upstream.name(),
            upstream.addr(),
            xcluster_e2e::upstream::greeting(upstream.name())
        );
    }
    println!("The gateway runs in cluster-2; each step below is one listener with its own plugin config.");

    step(
        1,
        "Locality: httpbin runs only in cluster-1 and cluster-3",
        LOCALITY_NO_LOCAL,
        &mut gw.client(LOCALITY_NO_LOCAL.name),
        HTTPBIN_HOST,
        REQUESTS,
    )?;
    step(
        2,
        "FailOver: no local httpbin, so the remote clusters serve (through their gateway paths)",
        FAILOVER_NO_LOCAL,
        &mut gw.client(FAILOVER_NO_LOCAL.name),
        HTTPBIN_HOST,
        REQUESTS,
    )?;
    step(
        3,
        "FailOver: httpbin appeared in cluster-2, so it serves alone",
        FAILOVER,
        &mut gw.client(FAILOVER.name),
        HTTPBIN_HOST,
        REQUESTS,
    )?;
    step(
        4,
        "ActiveActive: all three clusters serve",
        ACTIVE_ACTIVE,
        &mut gw.client(ACTIVE_ACTIVE.name),
        HTTPBIN_HOST,
        REQUESTS,
    )?;
    step(
        5,
        "Weighted split 75 / 15 / 10 (reviews)",
        SPLIT,
        &mut gw.client(SPLIT.name),
        REVIEWS_HOST,
        SPLIT_REQUESTS,
    )?;
    step(
        6,
        "SMI enforce, caller spiffe://cluster.local/ns/default/sa/intruder (no TrafficTarget)",
        ENFORCE_LOCAL_ONLY,
        &mut tls_client(&gw, ENFORCE_LOCAL_ONLY, &intruder)?,
        HTTPBIN_HOST,
        REQUESTS,
    )?;
    step(
        7,
        "SMI enforce, caller curl; TrafficTarget curl -> httpbin/default (only cluster-2 runs as it)",
        ENFORCE_LOCAL_ONLY,
        &mut tls_client(&gw, ENFORCE_LOCAL_ONLY, &curl)?,
        HTTPBIN_HOST,
        REQUESTS,
    )?;
    step(
        8,
        "SMI enforce, caller curl; plus TrafficTarget curl -> httpbin/httpbin (cluster-1, cluster-3)",
        ENFORCE,
        &mut tls_client(&gw, ENFORCE, &curl)?,
        HTTPBIN_HOST,
        REQUESTS,
    )?;
    gw.upstream("cluster-2").stop();
    step(
        9,
        "FailOver: cluster-2's httpbin goes down; after 3 gateway errors it is ejected",
        FAILOVER,
        &mut gw.client(FAILOVER.name),
        HTTPBIN_HOST,
        REQUESTS,
    )?;

    let dir = gw.envoy.dir().to_path_buf();
    drop(gw);
    println!(
        "\nDone: Envoy and the three clusters are stopped (bootstrap and log kept in {}).",
        dir.display()
    );
    Ok(())
}

fn tls_client(
    gw: &Gateway,
    file: PluginConfigFile,
    config: &Arc<ClientConfig>,
) -> Result<Client, Error> {
    Ok(gw.tls_client(file.name, Arc::clone(config))?)
}

/// Sends `n` GETs and prints the first few responses, the decision header and the tally.
fn step(
    number: usize,
    title: &str,
    file: PluginConfigFile,
    client: &mut Client,
    host: &str,
    n: usize,
) -> Result<(), Error> {
    println!("\n[{number}] {title}");
    println!("    config: {}", file.path);
    println!("    $ curl http://{host}/   (x{n})");
    let mut tally = Tally::default();
    let mut decisions = Vec::<String>::new();
    for i in 0..n {
        let resp = client.get(host, "/")?;
        if i < 6 {
            println!("    {}", show(&resp));
        }
        if let Some(decision) = resp.header(DECISION_HEADER) {
            if !decisions.iter().any(|d| d == decision) && decisions.len() < 3 {
                decisions.push(decision.to_string());
            }
        }
        tally.record(&resp);
    }
    if n > 6 {
        println!("    ...");
    }
    for decision in &decisions {
        println!("    {DECISION_HEADER}: {decision}");
    }
    println!("    => {tally}");
    Ok(())
}

fn show(resp: &Response) -> String {
    match resp.header("x-upstream-path") {
        Some(path) if resp.status == 200 => format!("{}   (upstream path {path})", resp.body),
        _ => format!("HTTP {} {}", resp.status, resp.body),
    }
}
