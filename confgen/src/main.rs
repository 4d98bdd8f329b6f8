//! `xcluster-gen`: the command line over the `xcluster_confgen` library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use xcluster_confgen::emit::envoy::{EndpointFlag, EnvoyOptions, TargetFlag, Tls};
use xcluster_confgen::emit::istio::IstioOptions;
use xcluster_confgen::emit::wasmplugin::WasmPluginOptions;
use xcluster_confgen::emit::{config, envoy, explain, image, istio, wasmplugin, yaml};
use xcluster_confgen::load::Error;
use xcluster_confgen::model::{HealthCheckFlag, Options};
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
        after_help = "Example:\n  xcluster-gen envoy -f examples/004-istio-50-50/ --local-cluster cluster-a \\\n    --wasm target/xcluster_filter.wasm --listen 127.0.0.1:10000 \\\n    --endpoint cluster-a/default/reviews=127.0.0.1:18001"
    )]
    Envoy(EnvoyArgs),
    /// Print an Istio WasmPlugin (YAML) with the config inline, its targets naming Istio's
    /// clusters (`istio` prints the routes to them too).
    #[command(
        after_help = "Example:\n  xcluster-gen wasmplugin -f examples/002-fsm/common -f examples/002-fsm/active-active \\\n    --local-cluster cluster-2 --url oci://registry.example/xcluster:0.1 --selector istio=ingressgateway"
    )]
    Wasmplugin(WasmPluginArgs),
    /// Print what an Istio gateway needs: the WasmPlugin, VirtualServices mapping the
    /// filter's header to Istio destinations, DestinationRule subsets and ServiceEntries.
    #[command(
        after_help = "Example:\n  xcluster-gen istio -f examples/004-istio-50-50 --local-cluster cluster-a \\\n    --url oci://registry.example/xcluster:0.1.0 --image target/image --gateway istio-system/ingressgateway"
    )]
    Istio(IstioArgs),
    /// Write the filter as an OCI image layout Istio can pull; print its manifest digest.
    #[command(
        after_help = "Example:\n  xcluster-gen image --wasm target/wasm32-wasip1/release/xcluster_filter.wasm -o target/image --tag 0.1.0\n  skopeo copy oci:target/image:0.1.0 docker://registry.example/xcluster:0.1.0"
    )]
    Image(ImageArgs),
    /// Explain, per route, the targets, their weight share and tier, and their callers.
    #[command(
        after_help = "Example:\n  xcluster-gen explain -f examples/002-fsm/common -f examples/002-fsm/smi --local-cluster cluster-2"
    )]
    Explain(ExplainArgs),
}

#[derive(Args)]
struct ExplainArgs {
    #[command(flatten)]
    common: Common,
    /// Output format: text, or a Mermaid flowchart.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Mermaid,
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
    /// Probe a destination's targets:
    /// `DESTINATION=PATH[,interval=5s][,timeout=1s][,healthy=2][,unhealthy=3][,status=200|204]`
    /// (DESTINATION as `explain` names it, e.g. `bookinfo/reviews`).
    #[arg(long = "health-check", value_name = "SPEC")]
    health_checks: Vec<HealthCheckFlag>,
    /// Have the filter call `clear_route_cache` after choosing a cluster, for a host that
    /// does not match the route again on its own when a filter changes request headers
    /// (Envoy and Istio's proxies do: the default leaves it to them).
    #[arg(long)]
    clear_route_cache: bool,
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
    /// `CLUSTER/NAMESPACE/SERVICE[/SUBSET]=HOST:PORT[@SERVICEACCOUNT]`. SUBSET is an Istio
    /// subset name or `key=value[,key=value]` labels. Overrides addresses from the input; in
    /// the local cluster it also declares an instance of a service the inputs know.
    #[arg(long = "endpoint", value_name = "SPEC")]
    endpoints: Vec<EndpointFlag>,
    /// Reach this target over HTTP/2 (gRPC): CLUSTER/NAMESPACE/SERVICE[/SUBSET]. Ports
    /// named `grpc*` / `http2*` or with `appProtocol` `grpc` / `http2` / `kubernetes.io/h2c`
    /// (ServiceEntry `protocol` `GRPC` / `HTTP2`) need no flag.
    #[arg(long = "http2", value_name = "TARGET")]
    http2: Vec<TargetFlag>,
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
    #[command(flatten)]
    plugin: PluginArgs,
}

#[derive(Args)]
struct PluginArgs {
    /// Module URL (oci://, https://, file://).
    #[arg(long)]
    url: String,
    /// For https:// and file:// URLs, a local copy of the module: its sha256 goes into the
    /// WasmPlugin.
    #[arg(long, value_name = "FILE")]
    wasm: Option<String>,
    /// For oci:// URLs, the image as written by `xcluster-gen image`: its manifest digest
    /// goes into the WasmPlugin's sha256.
    #[arg(long, value_name = "DIR")]
    image: Option<String>,
    /// Namespace of the WasmPlugin (the gateway workload's).
    #[arg(long, default_value = "istio-system")]
    namespace: String,
    /// Workload selector label (repeatable; default istio=ingressgateway: without a
    /// selector a WasmPlugin in Istio's root namespace applies to every proxy).
    #[arg(long = "selector", value_name = "KEY=VALUE")]
    selectors: Vec<String>,
}

impl PluginArgs {
    fn options(self) -> Result<WasmPluginOptions, Error> {
        let mut selector = Vec::new();
        for s in &self.selectors {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| Error::plain(format!("--selector {s:?}: expected KEY=VALUE")))?;
            selector.push((k.to_string(), v.to_string()));
        }
        if selector.is_empty() {
            selector.push(("istio".to_string(), "ingressgateway".to_string()));
        }
        Ok(WasmPluginOptions {
            url: self.url,
            wasm: self.wasm,
            image: self.image,
            namespace: self.namespace,
            selector,
        })
    }
}

#[derive(Args)]
struct IstioArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    plugin: PluginArgs,
    /// The Istio Gateway the VirtualServices bind to.
    #[arg(
        long,
        value_name = "NS/NAME",
        default_value = "istio-system/ingressgateway"
    )]
    gateway: String,
}

#[derive(Args)]
struct ImageArgs {
    /// The filter's .wasm file.
    #[arg(long, value_name = "FILE")]
    wasm: String,
    /// Directory of the OCI image layout (created, or replaced if it holds one).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    output: PathBuf,
    /// Tag of the image in the layout.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    tag: String,
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
        health_checks: c.health_checks.clone(),
        clear_route_cache: c.clear_route_cache,
    })
}

fn run(cli: Cli) -> Result<(String, Vec<String>), Error> {
    match cli.command {
        Command::Config(c) => {
            let model = xcluster_confgen::generate(&c.files, &options(&c)?)?;
            Ok((config::render(&model), model.warnings))
        }
        Command::Explain(a) => {
            let model = xcluster_confgen::generate(&a.common.files, &options(&a.common)?)?;
            let text = match a.format {
                Format::Text => explain::render(&model),
                Format::Mermaid => explain::mermaid(&model),
            };
            Ok((text, Vec::new()))
        }
        Command::Istio(a) => {
            let model = xcluster_confgen::generate(&a.common.files, &options(&a.common)?)?;
            let opts = IstioOptions {
                plugin: a.plugin.options()?,
                gateway: a.gateway,
            };
            Ok((istio::render(&model, &opts)?, model.warnings))
        }
        Command::Image(a) => {
            let module = std::fs::read(&a.wasm)
                .map_err(|e| Error::plain(format!("{}: cannot read: {e}", a.wasm)))?;
            let digest = image::write_layout(&module, &a.output, &a.tag)?;
            Ok((format!("{digest}\n"), Vec::new()))
        }
        Command::Envoy(a) => {
            let opts = Options {
                instances: a.endpoints.iter().map(EndpointFlag::instance).collect(),
                ..options(&a.common)?
            };
            let mut model = xcluster_confgen::generate(&a.common.files, &opts)?;
            envoy::apply_endpoints(&mut model, &a.endpoints)?;
            envoy::apply_http2(&mut model, &a.http2)?;
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
            let config = istio::istio_config(&model)?;
            let value = wasmplugin::wasm_plugin(&config, &a.plugin.options()?)?;
            Ok((yaml::to_yaml(&value), model.warnings))
        }
    }
}
