//! `xcluster-gen`: the command line over the `xcluster_confgen` library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use xcluster_confgen::emit::envoy::{EndpointFlag, EnvoyOptions, Tls};
use xcluster_confgen::emit::wasmplugin::WasmPluginOptions;
use xcluster_confgen::emit::{config, envoy, explain, wasmplugin, yaml};
use xcluster_confgen::load::Error;
use xcluster_confgen::model::Options;
use xcluster_envoy::SocketAddress;
use xcluster_filter::config::AccessMode;

/// Compile SMI, FSM, Gloo Mesh, Istio and Kubernetes resources into xcluster config.
#[derive(Parser)]
#[command(name = "xcluster-gen", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the plugin config JSON.
    #[command(
        after_help = "Example:\n  xcluster-gen config -f examples/000-gloo-traffic-shift/traffic-policy.yaml --local-cluster mgmt-cluster"
    )]
    Config(Common),
    /// Print a complete Envoy bootstrap (YAML) running the filter in a gateway.
    #[command(
        after_help = "Example:\n  xcluster-gen envoy -f examples/004-istio-50-50/ --local-cluster cluster-a \\\n    --wasm target/wasm32-wasip1/release/xcluster_filter.wasm --listen 127.0.0.1:10000 \\\n    --endpoint cluster-a/default/reviews=127.0.0.1:18001"
    )]
    Envoy(EnvoyArgs),
    /// Print an Istio WasmPlugin (YAML) with the config inline.
    #[command(
        after_help = "Example:\n  xcluster-gen wasmplugin -f examples/002-fsm/common -f examples/002-fsm/active-active \\\n    --local-cluster cluster-2 --url oci://registry.example/xcluster:0.1 --selector istio=ingressgateway"
    )]
    Wasmplugin(WasmPluginArgs),
    /// Explain, per route, the targets, their weight share and tier, and their callers.
    #[command(
        after_help = "Example:\n  xcluster-gen explain -f examples/002-fsm/common -f examples/002-fsm/smi --local-cluster cluster-2"
    )]
    Explain(Common),
}

#[derive(Args)]
struct Common {
    /// Input: a YAML file, a directory (its *.yaml / *.yml, sorted) or - for stdin.
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// Name of the cluster the gateway runs in (resources without a cluster label
    /// describe it).
    #[arg(long, value_name = "NAME")]
    local_cluster: Option<String>,
    /// Region and zone of the gateway.
    #[arg(long, value_name = "REGION/ZONE")]
    locality: Option<String>,
    /// Access mode (default: enforce when any TrafficTarget is given, else permissive).
    #[arg(long, value_enum)]
    access_mode: Option<Mode>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Permissive,
    Enforce,
    DryRun,
}

#[derive(Args)]
struct EnvoyArgs {
    #[command(flatten)]
    common: Common,
    /// The filter's .wasm file, as Envoy will open it.
    #[arg(long, value_name = "FILE")]
    wasm: String,
    /// Gateway listener address.
    #[arg(long, value_name = "HOST:PORT")]
    listen: String,
    /// Envoy admin address.
    #[arg(long, value_name = "HOST:PORT")]
    admin: Option<String>,
    /// Address (and optionally ServiceAccount, default `default`) of a target:
    /// CLUSTER/NAMESPACE/SERVICE[/SUBSET]=HOST:PORT[@SERVICEACCOUNT]. SUBSET is an Istio
    /// subset name or key=value[,key=value] labels. Overrides addresses from the input; in
    /// the local cluster it also declares an instance of a service the inputs know.
    #[arg(long = "endpoint", value_name = "SPEC")]
    endpoints: Vec<EndpointFlag>,
    /// Server certificate for downstream mTLS.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "client_ca"])]
    tls_cert: Option<String>,
    /// Server private key for downstream mTLS.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "client_ca"])]
    tls_key: Option<String>,
    /// CA that signs client certificates (clients must present one).
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    client_ca: Option<String>,
}

#[derive(Args)]
struct WasmPluginArgs {
    #[command(flatten)]
    common: Common,
    /// Module URL (oci://, https://, file://).
    #[arg(long)]
    url: String,
    /// Local copy of the module: its sha256 goes into the WasmPlugin.
    #[arg(long, value_name = "FILE")]
    wasm: Option<String>,
    /// Namespace of the WasmPlugin.
    #[arg(long, default_value = "istio-system")]
    namespace: String,
    /// Workload selector label (repeatable).
    #[arg(long = "selector", value_name = "KEY=VALUE")]
    selectors: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok((text, warnings)) => {
            for w in warnings {
                eprintln!("warning: {w}");
            }
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn host_port(flag: &str, text: &str) -> Result<SocketAddress, Error> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| Error::plain(format!("{flag} {text:?}: expected HOST:PORT")))?;
    let port = port
        .parse()
        .map_err(|_| Error::plain(format!("{flag} {text:?}: {port:?} is not a port")))?;
    Ok(SocketAddress::new(
        host.trim_start_matches('[').trim_end_matches(']'),
        port,
    ))
}

fn options(c: &Common) -> Result<Options, Error> {
    let locality = match &c.locality {
        None => None,
        Some(l) => match l.split_once('/') {
            Some((r, z)) if !r.is_empty() && !z.is_empty() && !z.contains('/') => {
                Some((r.to_string(), z.to_string()))
            }
            _ => {
                return Err(Error::plain(format!(
                    "--locality {l:?}: expected REGION/ZONE"
                )))
            }
        },
    };
    Ok(Options {
        local_cluster: c.local_cluster.clone(),
        locality,
        access_mode: c.access_mode.map(|m| match m {
            Mode::Permissive => AccessMode::Permissive,
            Mode::Enforce => AccessMode::Enforce,
            Mode::DryRun => AccessMode::DryRun,
        }),
        instances: Vec::new(),
    })
}

fn run(cli: Cli) -> Result<(String, Vec<String>), Error> {
    match cli.command {
        Command::Config(c) => {
            let model = xcluster_confgen::generate(&c.files, &options(&c)?)?;
            Ok((config::render(&model), model.warnings))
        }
        Command::Explain(c) => {
            let model = xcluster_confgen::generate(&c.files, &options(&c)?)?;
            Ok((explain::render(&model), Vec::new()))
        }
        Command::Envoy(a) => {
            let opts = Options {
                instances: a.endpoints.iter().map(EndpointFlag::instance).collect(),
                ..options(&a.common)?
            };
            let mut model = xcluster_confgen::generate(&a.common.files, &opts)?;
            envoy::apply_endpoints(&mut model, &a.endpoints)?;
            xcluster_confgen::validate(&model.config)?;
            let tls = match (a.tls_cert, a.tls_key, a.client_ca) {
                (Some(cert), Some(key), Some(client_ca)) => Some(Tls {
                    cert,
                    key,
                    client_ca,
                }),
                _ => None,
            };
            let opts = EnvoyOptions {
                wasm: a.wasm,
                listen: host_port("--listen", &a.listen)?,
                admin: a
                    .admin
                    .as_deref()
                    .map(|x| host_port("--admin", x))
                    .transpose()?,
                tls,
            };
            let value = envoy::bootstrap(&model, &opts)?;
            Ok((yaml::to_yaml(&value), model.warnings))
        }
        Command::Wasmplugin(a) => {
            let model = xcluster_confgen::generate(&a.common.files, &options(&a.common)?)?;
            let mut selector = Vec::new();
            for s in &a.selectors {
                let (k, v) = s
                    .split_once('=')
                    .ok_or_else(|| Error::plain(format!("--selector {s:?}: expected KEY=VALUE")))?;
                selector.push((k.to_string(), v.to_string()));
            }
            let opts = WasmPluginOptions {
                url: a.url,
                wasm: a.wasm,
                namespace: a.namespace,
                selector,
            };
            let value = wasmplugin::wasm_plugin(&model, &opts)?;
            Ok((yaml::to_yaml(&value), model.warnings))
        }
    }
}
