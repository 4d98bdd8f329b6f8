//! A real Envoy with the xcluster filter: bootstrap rendering and a process guard that
//! waits for readiness (with a deadline) and kills Envoy when dropped.
//!
//! Every listener runs `envoy.filters.http.wasm` (xcluster, its own VM) before the router.
//! The route sends requests that carry the cluster-selection header to the cluster it
//! names (`cluster_header`); anything else gets Envoy's own 404 `no cluster selected`.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::client::Client;
use crate::pki::CertPair;

/// The request header the filter sets and the route reads (the filter's default).
pub const CLUSTER_HEADER: &str = "x-xcluster-cluster";

/// Body of Envoy's fallback 404 (no cluster was selected by the filter).
pub const NO_CLUSTER_BODY: &str = "no cluster selected";

/// How long Envoy may take to become ready (V8 compiles the module per VM; CI is slow).
pub const READY_DEADLINE: Duration = Duration::from_secs(90);

/// Downstream TLS of a listener: Envoy's certificate, and the CA client certificates
/// must chain to (a client certificate is required).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// Envoy's serving certificate.
    pub cert: CertPair,
    /// The CA that signs client certificates (PEM).
    pub client_ca_pem: String,
}

/// One gateway listener: a filter chain with xcluster configured by `plugin_config`.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Listener name (also the wasm `vm_id` and the stat prefix).
    pub name: String,
    /// The plugin configuration, JSON text (passed verbatim as the `StringValue`).
    pub plugin_config: String,
    /// Require mTLS when set.
    pub tls: Option<ServerTls>,
}

impl Listener {
    /// A plaintext listener.
    pub fn plain(name: &str, plugin_config: &Value) -> Self {
        Self {
            name: name.to_string(),
            plugin_config: plugin_config.to_string(),
            tls: None,
        }
    }
}

/// An Envoy bootstrap: listeners (all on free loopback ports) and one static cluster per
/// upstream.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The filter module.
    pub wasm: PathBuf,
    /// Gateway listeners.
    pub listeners: Vec<Listener>,
    /// Envoy clusters: name → upstream address.
    pub clusters: Vec<(String, SocketAddr)>,
}

impl Bootstrap {
    /// Renders the bootstrap as JSON (Envoy reads it as YAML).
    pub fn render(&self) -> Value {
        let wasm = self.wasm.to_string_lossy();
        let listeners: Vec<Value> = self
            .listeners
            .iter()
            .map(|l| render_listener(l, &wasm))
            .collect();
        let clusters: Vec<Value> = self
            .clusters
            .iter()
            .map(|(name, addr)| {
                json!({
                    "name": name,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": name,
                        "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                            "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() }
                        }}}]}]
                    }
                })
            })
            .collect();
        json!({
            "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
            "static_resources": { "listeners": listeners, "clusters": clusters }
        })
    }
}

fn render_listener(listener: &Listener, wasm: &str) -> Value {
    let hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": listener.name,
        // One line per request on stdout (captured in the Envoy log), as operators would
        // configure it: the filter's reasons show up as response code details.
        "access_log": [{
            "name": "envoy.access_loggers.stdout",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                "log_format": { "text_format_source": { "inline_string": format!(
                    "access {} %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_CODE_DETAILS%\n",
                    listener.name
                ) } }
            }
        }],
        "route_config": {
            "name": "xcluster",
            "virtual_hosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [
                    {
                        "match": { "prefix": "/", "headers": [{ "name": CLUSTER_HEADER, "present_match": true }] },
                        "route": { "cluster_header": CLUSTER_HEADER }
                    },
                    {
                        "match": { "prefix": "/" },
                        "direct_response": { "status": 404, "body": { "inline_string": NO_CLUSTER_BODY } }
                    }
                ]
            }]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.wasm",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                    "config": {
                        "name": "xcluster",
                        "root_id": "xcluster",
                        "fail_open": false,
                        "configuration": {
                            "@type": "type.googleapis.com/google.protobuf.StringValue",
                            "value": listener.plugin_config
                        },
                        "vm_config": {
                            "vm_id": listener.name,
                            "runtime": "envoy.wasm.runtime.v8",
                            "code": { "local": { "filename": wasm } }
                        }
                    }
                }
            },
            {
                "name": "envoy.filters.http.router",
                "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
            }
        ]
    });
    let mut chain = json!({
        "filters": [{ "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm }]
    });
    if let Some(tls) = &listener.tls {
        chain["transport_socket"] = json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": true,
                "common_tls_context": {
                    "tls_certificates": [{
                        "certificate_chain": { "inline_string": tls.cert.cert_pem },
                        "private_key": { "inline_string": tls.cert.key_pem }
                    }],
                    "validation_context": { "trusted_ca": { "inline_string": tls.client_ca_pem } }
                }
            }
        });
    }
    json!({
        "name": listener.name,
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [chain]
    })
}

/// Why Envoy did not become ready.
#[derive(Debug)]
pub struct StartFailure {
    /// Exit status, if Envoy exited (None: still running at the deadline).
    pub status: Option<ExitStatus>,
    /// Envoy's log so far.
    pub log: String,
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "envoy exited ({status})")?,
            None => write!(f, "envoy not ready within {READY_DEADLINE:?}")?,
        }
        write!(f, "; log:\n{}", self.log)
    }
}

impl std::error::Error for StartFailure {}

/// A running Envoy process; killed when dropped. Its work directory under `target/e2e/`
/// (bootstrap, log) is removed then too, unless the thread is panicking (a failing test)
/// or [`Envoy::keep_files`] was called.
pub struct Envoy {
    child: Child,
    dir: PathBuf,
    keep: bool,
    admin: Option<SocketAddr>,
    listeners: HashMap<String, SocketAddr>,
}

impl Envoy {
    /// Spawns Envoy (`--concurrency 2`, dynamic base id, admin and listeners on free
    /// ports) with `bootstrap`, and waits until it is ready.
    pub fn start(name: &str, bootstrap: &Bootstrap) -> Result<Self, StartFailure> {
        Self::start_config(name, &format!("{:#}", bootstrap.render()))
    }

    /// Like [`Envoy::start`], with a bootstrap given as YAML (or JSON) text.
    pub fn start_config(name: &str, config: &str) -> Result<Self, StartFailure> {
        let mut envoy = Self::spawn_config(name, config).map_err(|e| StartFailure {
            status: None,
            log: format!(
                "cannot spawn {}: {e} (run `make setup`, or set ENVOY_BIN)",
                crate::envoy_bin().display()
            ),
        })?;
        envoy.wait_ready(READY_DEADLINE)?;
        Ok(envoy)
    }

    /// Spawns Envoy without waiting for it (see [`Envoy::wait_ready`], [`Envoy::wait_exit`]).
    pub fn spawn(name: &str, bootstrap: &Bootstrap) -> io::Result<Self> {
        Self::spawn_config(name, &format!("{:#}", bootstrap.render()))
    }

    /// Like [`Envoy::spawn`], with a bootstrap given as YAML (or JSON) text.
    pub fn spawn_config(name: &str, config: &str) -> io::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = crate::target_dir().join("e2e").join(format!(
            "{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        let config_path = dir.join("envoy.yaml");
        fs::write(&config_path, config)?;
        let log = File::create(dir.join("envoy.log"))?;
        let child = Command::new(crate::envoy_bin())
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", "2", "--use-dynamic-base-id", "-l", "info"])
            .arg("--admin-address-path")
            .arg(dir.join("admin.txt"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Self {
            child,
            dir,
            keep: false,
            admin: None,
            listeners: HashMap::new(),
        })
    }

    /// Waits until the admin endpoint answers `/ready` with 200 and learns the listeners'
    /// ports; fails early when Envoy exits.
    pub fn wait_ready(&mut self, deadline: Duration) -> Result<(), StartFailure> {
        let ready = crate::wait_for(deadline, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(Err(status));
            }
            let admin: SocketAddr = fs::read_to_string(self.dir.join("admin.txt"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            let resp = Client::plain(admin).get("localhost", "/ready").ok()?;
            (resp.status == 200).then_some(Ok(admin))
        });
        let admin = match ready {
            Some(Ok(admin)) => admin,
            Some(Err(status)) => {
                return Err(StartFailure {
                    status: Some(status),
                    log: self.log(),
                })
            }
            None => {
                return Err(StartFailure {
                    status: None,
                    log: self.log(),
                })
            }
        };
        self.admin = Some(admin);
        self.listeners = self.fetch_listeners().map_err(|e| StartFailure {
            status: None,
            log: format!("cannot list listeners: {e}\n{}", self.log()),
        })?;
        Ok(())
    }

    /// Waits up to `deadline` for Envoy to exit.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        crate::wait_for(deadline, || self.child.try_wait().ok().flatten())
    }

    /// The address of listener `name`.
    ///
    /// # Panics
    /// If Envoy has no such listener (a harness bug).
    pub fn listener(&self, name: &str) -> SocketAddr {
        match self.listeners.get(name) {
            Some(addr) => *addr,
            None => panic!("envoy has no listener {name:?}: {:?}", self.listeners),
        }
    }

    /// The admin address (known once ready).
    pub fn admin(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Everything Envoy has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// Keeps the work directory after Envoy stops.
    pub fn keep_files(&mut self) {
        self.keep = true;
    }

    /// The work directory (bootstrap `envoy.yaml`, `envoy.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counters and gauges whose name contains `filter`, from the admin `/stats`.
    pub fn stats(&self, filter: &str) -> io::Result<HashMap<String, u64>> {
        let admin = self
            .admin
            .ok_or_else(|| io::Error::other("envoy not ready"))?;
        let resp = Client::plain(admin).get("localhost", "/stats?format=json")?;
        let doc: Value = serde_json::from_str(&resp.body)?;
        let mut out = HashMap::new();
        for stat in doc["stats"].as_array().into_iter().flatten() {
            if let (Some(name), Some(value)) = (stat["name"].as_str(), stat["value"].as_u64()) {
                if name.contains(filter) {
                    out.insert(name.to_string(), value);
                }
            }
        }
        Ok(out)
    }

    fn fetch_listeners(&self) -> io::Result<HashMap<String, SocketAddr>> {
        let admin = self
            .admin
            .ok_or_else(|| io::Error::other("envoy not ready"))?;
        let resp = Client::plain(admin).get("localhost", "/listeners?format=json")?;
        let doc: Value = serde_json::from_str(&resp.body)?;
        let mut out = HashMap::new();
        for status in doc["listener_statuses"].as_array().into_iter().flatten() {
            let sock = &status["local_address"]["socket_address"];
            let (Some(name), Some(ip), Some(port)) = (
                status["name"].as_str(),
                sock["address"].as_str(),
                sock["port_value"].as_u64(),
            ) else {
                continue;
            };
            let addr = format!("{ip}:{port}")
                .parse()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            out.insert(name.to_string(), addr);
        }
        Ok(out)
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep && !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
