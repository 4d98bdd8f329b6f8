//! A real Envoy with the xcluster filter: the e2e bootstrap (rendered by
//! [`xcluster_envoy`]) and a process guard that waits for readiness (with a deadline) and
//! kills Envoy when dropped.
//!
//! Every listener runs `envoy.filters.http.wasm` (xcluster, its own VM) before the router
//! and logs each request on stdout. The route sends requests that carry the
//! cluster-selection header to the cluster it names (`cluster_header`); anything else gets
//! Envoy's own 404 [`NO_CLUSTER_BODY`](xcluster_envoy::NO_CLUSTER_BODY).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use xcluster_envoy::{
    Cluster, DataSource, DownstreamTls, HttpConnectionManager, Locality, Node, SocketAddress,
    StatsConfig, UpstreamProtocol, WasmFilter,
};
use xcluster_filter::config::DEFAULT_CLUSTER_HEADER;

use crate::client::Client;
use crate::pki::CertPair;

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

    /// The listener on a free loopback port, running the module at `wasm`.
    fn build(&self, wasm: &str) -> xcluster_envoy::Listener {
        let filter = WasmFilter::new("xcluster", wasm, self.plugin_config.as_str());
        let mut http =
            HttpConnectionManager::xcluster(self.name.as_str(), filter, DEFAULT_CLUSTER_HEADER);
        http.access_log = true;
        let mut listener =
            xcluster_envoy::Listener::new(self.name.as_str(), SocketAddress::loopback(0), http);
        listener.tls = self.tls.as_ref().map(|tls| DownstreamTls {
            certificate_chain: DataSource::InlineString(tls.cert.cert_pem.clone()),
            private_key: DataSource::InlineString(tls.cert.key_pem.clone()),
            trusted_ca: DataSource::InlineString(tls.client_ca_pem.clone()),
        });
        listener
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
    /// The HTTP version spoken to every cluster.
    pub upstream_protocol: UpstreamProtocol,
}

impl Bootstrap {
    /// Renders the bootstrap as JSON, admin on a free loopback port.
    pub fn render(&self) -> Value {
        self.render_with(None)
    }

    /// Renders the bootstrap with its listeners in the LDS file `lds` instead (written with
    /// [`Bootstrap::lds`]).
    pub fn render_dynamic(&self, lds: &LdsFile) -> Value {
        self.render_with(Some(lds))
    }

    /// The LDS file's contents: the listeners at `version`.
    pub fn lds(&self, version: &str) -> Value {
        xcluster_envoy::lds_file(version, &self.build_listeners())
    }

    fn build_listeners(&self) -> Vec<xcluster_envoy::Listener> {
        let wasm = self.wasm.to_string_lossy();
        self.listeners.iter().map(|l| l.build(&wasm)).collect()
    }

    fn render_with(&self, lds: Option<&LdsFile>) -> Value {
        // Envoy needs a node id and cluster for dynamic resources.
        let node = lds.map(|_| Node {
            id: "xcluster-e2e".into(),
            cluster: "xcluster-e2e".into(),
            cluster_id: None,
            locality: Locality::default(),
        });
        xcluster_envoy::Bootstrap {
            node,
            admin: Some(SocketAddress::loopback(0)),
            listeners: match lds {
                Some(_) => Vec::new(),
                None => self.build_listeners(),
            },
            clusters: self
                .clusters
                .iter()
                .map(|(name, addr)| Cluster {
                    protocol: self.upstream_protocol,
                    ..Cluster::new(name.as_str(), (*addr).into())
                })
                .collect(),
            stats_config: Some(StatsConfig::xcluster()),
            lds_path: lds.map(|f| f.path.to_string_lossy().into_owned()),
        }
        .render()
    }
}

/// A listener file Envoy watches (LDS `path_config_source`), in its own directory under
/// `target/e2e/` (removed when dropped), replaced atomically on every write.
pub struct LdsFile {
    dir: PathBuf,
    path: PathBuf,
    writes: u32,
}

impl LdsFile {
    /// A fresh directory for `lds.json`.
    pub fn create(name: &str) -> io::Result<Self> {
        let dir = Options::named(&format!("{name}-lds")).dir;
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        Ok(Self {
            path: dir.join("lds.json"),
            dir,
            writes: 0,
        })
    }

    /// Replaces the file with `doc`: written to a temporary file in the same directory,
    /// then renamed over it, so Envoy never reads half a file.
    pub fn write(&mut self, doc: &Value) -> io::Result<()> {
        self.writes += 1;
        let tmp = self.dir.join(format!(".lds-{}.json", self.writes));
        fs::write(&tmp, format!("{doc:#}"))?;
        fs::rename(&tmp, &self.path)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LdsFile {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A bootstrap to run; Envoy parses it by its file's extension.
#[derive(Debug, Clone, Copy)]
pub enum Config<'a> {
    /// A JSON document (written as `envoy.json`).
    Json(&'a Value),
    /// YAML (or JSON) text (written as `envoy.yaml`).
    Yaml(&'a str),
}

/// How an Envoy process runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Work directory (bootstrap, `envoy.log`, admin address); recreated empty.
    pub dir: PathBuf,
    /// Worker threads (`--concurrency`).
    pub concurrency: u32,
    /// Pins Envoy to this CPU (`taskset -c`).
    pub cpu: Option<u32>,
    /// Keeps the work directory after Envoy stops (see [`Envoy::keep_files`]).
    pub keep_files: bool,
}

impl Options {
    /// The harness's defaults: a fresh `target/e2e/<name>-<pid>-<n>`, two workers, unpinned.
    pub fn named(name: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        Self {
            dir: crate::target_dir().join("e2e").join(format!(
                "{name}-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            )),
            concurrency: 2,
            cpu: None,
            keep_files: false,
        }
    }
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

/// A running Envoy process; killed when dropped. Its work directory (bootstrap, log) is
/// removed then too, unless the thread is panicking (a failing test) or the files are kept
/// ([`Options::keep_files`], [`Envoy::keep_files`]).
pub struct Envoy {
    child: Child,
    dir: PathBuf,
    keep: bool,
    spawned: Instant,
    ready_after: Option<Duration>,
    admin: Option<SocketAddr>,
    listeners: HashMap<String, SocketAddr>,
}

impl Envoy {
    /// Spawns Envoy ([`Options::named`]: `--concurrency 2`, admin and listeners on free
    /// ports) with `bootstrap`, and waits until it is ready.
    pub fn start(name: &str, bootstrap: &Bootstrap) -> Result<Self, StartFailure> {
        Self::start_with(&Options::named(name), Config::Json(&bootstrap.render()))
    }

    /// Like [`Envoy::start`], with a bootstrap given as YAML (or JSON) text.
    pub fn start_config(name: &str, config: &str) -> Result<Self, StartFailure> {
        Self::start_with(&Options::named(name), Config::Yaml(config))
    }

    /// Spawns Envoy as `options` say and waits until it is ready.
    pub fn start_with(options: &Options, config: Config) -> Result<Self, StartFailure> {
        let mut envoy = Self::spawn_with(options, config).map_err(|e| StartFailure {
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
        Self::spawn_with(&Options::named(name), Config::Json(&bootstrap.render()))
    }

    /// Writes `config` to a fresh `options.dir` and spawns Envoy on it (dynamic base id,
    /// `-l info`, stdout and stderr to `envoy.log`) without waiting for it.
    pub fn spawn_with(options: &Options, config: Config) -> io::Result<Self> {
        let dir = options.dir.clone();
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        let config_path = match config {
            Config::Json(doc) => {
                let path = dir.join("envoy.json");
                fs::write(&path, format!("{doc:#}"))?;
                path
            }
            Config::Yaml(text) => {
                let path = dir.join("envoy.yaml");
                fs::write(&path, text)?;
                path
            }
        };
        let log = File::create(dir.join("envoy.log"))?;
        let mut command = match options.cpu {
            Some(cpu) => {
                let mut taskset = Command::new("taskset");
                taskset
                    .args(["-c", &cpu.to_string()])
                    .arg(crate::envoy_bin());
                taskset
            }
            None => Command::new(crate::envoy_bin()),
        };
        command
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", &options.concurrency.to_string()])
            .args(["--use-dynamic-base-id", "-l", "info"])
            .arg("--admin-address-path")
            .arg(dir.join("admin.txt"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let spawned = Instant::now();
        let child = command.spawn()?;
        Ok(Self {
            child,
            dir,
            keep: options.keep_files,
            spawned,
            ready_after: None,
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
            Some(Ok(admin)) => {
                self.ready_after = Some(self.spawned.elapsed());
                admin
            }
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
    #[expect(
        clippy::panic,
        reason = "a harness bug: the calling test names what is not there"
    )]
    pub fn listener(&self, name: &str) -> SocketAddr {
        match self.find_listener(name) {
            Some(addr) => addr,
            None => panic!("envoy has no listener {name:?}: {:?}", self.listeners),
        }
    }

    /// The address of listener `name`, if Envoy has it (known once ready).
    pub fn find_listener(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.get(name).copied()
    }

    /// Time from spawning until `/ready` answered 200 (known once ready).
    pub fn ready_after(&self) -> Option<Duration> {
        self.ready_after
    }

    /// Envoy's process id (`taskset` execs it, so the same when pinned).
    pub fn pid(&self) -> u32 {
        self.child.id()
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

    /// The work directory (bootstrap `envoy.json` or `envoy.yaml`, `envoy.log`).
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
