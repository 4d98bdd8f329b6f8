//! The generator's output in a real Envoy: [`EnvoyGen`] is one `xcluster-gen envoy`
//! invocation, rendered with the same `xcluster_confgen` calls as the command (generate,
//! `--endpoint` overrides, validation, bootstrap, YAML) and started with [`Envoy`].
//! Inputs are paths relative to the repository root (the `examples/` folders), so the
//! printed command line can be run by hand from there.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use xcluster_confgen::emit::envoy::{self as emit_envoy, EndpointFlag, EnvoyOptions, Tls};
use xcluster_confgen::emit::yaml;
use xcluster_confgen::model::{HealthCheckFlag, Options};
use xcluster_envoy::SocketAddress;

use crate::envoy::Envoy;
use crate::fixture::Error;
use crate::pki::CertPair;

/// Name of the one listener of a generated bootstrap.
pub const GATEWAY_LISTENER: &str = emit_envoy::LISTENER;

/// Listener and admin address given to the generator: port 0, so Envoy picks free ports
/// (the harness reads them back from the admin endpoint).
pub const ANY_PORT: &str = "127.0.0.1:0";

/// Downstream mTLS material written to files (for `--tls-cert`, `--tls-key`,
/// `--client-ca`) in a directory under `target/e2e/`, removed when dropped.
pub struct TlsFiles {
    dir: PathBuf,
    tls: Tls,
}

impl TlsFiles {
    /// Writes Envoy's certificate and key and the client CA (PEM) to fresh files.
    pub fn write(server: &CertPair, client_ca_pem: &str) -> io::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = crate::target_dir().join("e2e").join(format!(
            "tls-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir)?;
        let file = |name: &str, text: &str| -> io::Result<String> {
            let path = dir.join(name);
            fs::write(&path, text)?;
            Ok(display_path(&path))
        };
        let tls = Tls {
            cert: file("server.pem", &server.cert_pem)?,
            key: file("server-key.pem", &server.key_pem)?,
            client_ca: file("client-ca.pem", client_ca_pem)?,
        };
        Ok(Self { dir, tls })
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One `xcluster-gen envoy` invocation (listener and admin on [`ANY_PORT`]).
#[derive(Debug, Clone, Default)]
pub struct EnvoyGen {
    /// `-f` inputs, relative to the repository root.
    pub files: Vec<String>,
    /// `--local-cluster`.
    pub local_cluster: Option<String>,
    /// `--endpoint` flags (`CLUSTER/NAMESPACE/SERVICE[/SUBSET]=HOST:PORT`).
    pub endpoints: Vec<String>,
    /// `--tls-cert`, `--tls-key`, `--client-ca`.
    pub tls: Option<Tls>,
    /// `--health-check` flags (`DESTINATION=PATH[,SETTING=VALUE...]`).
    pub health_checks: Vec<String>,
}

impl EnvoyGen {
    /// An invocation reading `files` (relative to the repository root).
    pub fn new(files: &[&str]) -> Self {
        Self {
            files: files.iter().map(|f| f.to_string()).collect(),
            ..Self::default()
        }
    }

    /// Sets `--local-cluster`.
    pub fn local_cluster(mut self, cluster: &str) -> Self {
        self.local_cluster = Some(cluster.to_string());
        self
    }

    /// Adds `--endpoint KEY=ADDR` (KEY is `CLUSTER/NAMESPACE/SERVICE[/SUBSET]`).
    pub fn endpoint(mut self, key: &str, addr: SocketAddr) -> Self {
        self.endpoints.push(format!("{key}={addr}"));
        self
    }

    /// Adds `--health-check SPEC`.
    pub fn health_check(mut self, spec: &str) -> Self {
        self.health_checks.push(spec.to_string());
        self
    }

    /// Requires downstream mTLS with the certificates in `files`.
    pub fn tls(mut self, files: &TlsFiles) -> Self {
        self.tls = Some(files.tls.clone());
        self
    }

    /// The command line, one group of flags per line (` \` continues), as run from the
    /// repository root.
    pub fn command_line(&self, wasm: &Path) -> String {
        let mut lines = Vec::new();
        let mut first = String::from("xcluster-gen envoy");
        for f in &self.files {
            first.push_str(&format!(" -f {f}"));
        }
        if let Some(c) = &self.local_cluster {
            first.push_str(&format!(" --local-cluster {c}"));
        }
        lines.push(first);
        lines.push(format!(
            "--wasm {} --listen {ANY_PORT} --admin {ANY_PORT}",
            display_path(wasm)
        ));
        if let Some(tls) = &self.tls {
            lines.push(format!(
                "--tls-cert {} --tls-key {} --client-ca {}",
                tls.cert, tls.key, tls.client_ca
            ));
        }
        lines.extend(self.endpoints.iter().map(|e| format!("--endpoint {e}")));
        lines.extend(
            self.health_checks
                .iter()
                .map(|h| format!("--health-check {h}")),
        );
        lines.join(" \\\n    ")
    }

    /// The bootstrap (YAML) the command prints.
    pub fn render(&self, wasm: &Path) -> Result<String, Error> {
        let root = crate::workspace_root();
        let files: Vec<PathBuf> = self.files.iter().map(|f| root.join(f)).collect();
        let endpoints = self
            .endpoints
            .iter()
            .map(|e| e.parse::<EndpointFlag>())
            .collect::<Result<Vec<_>, String>>()?;
        let health_checks = self
            .health_checks
            .iter()
            .map(|h| h.parse::<HealthCheckFlag>())
            .collect::<Result<Vec<_>, String>>()?;
        let opts = Options {
            local_cluster: self.local_cluster.clone(),
            instances: endpoints.iter().map(EndpointFlag::instance).collect(),
            health_checks,
            ..Options::default()
        };
        let mut model = xcluster_confgen::generate(&files, &opts)?;
        emit_envoy::apply_endpoints(&mut model, &endpoints)?;
        xcluster_confgen::validate(&model.config)?;
        let any = SocketAddress::loopback(0);
        let tls = self.tls.clone().map(|t| Tls {
            cert: root.join(t.cert).to_string_lossy().into_owned(),
            key: root.join(t.key).to_string_lossy().into_owned(),
            client_ca: root.join(t.client_ca).to_string_lossy().into_owned(),
        });
        let value = emit_envoy::bootstrap(
            &model,
            &EnvoyOptions {
                wasm: wasm.to_string_lossy().into_owned(),
                listen: any.clone(),
                admin: Some(any),
                tls,
            },
        )?;
        Ok(yaml::to_yaml(&value))
    }

    /// Renders the bootstrap and starts an Envoy named `name` with it (see
    /// [`Envoy::start_config`]); its listener is [`GATEWAY_LISTENER`].
    pub fn start(&self, name: &str, wasm: &Path) -> Result<Envoy, Error> {
        Ok(Envoy::start_config(name, &self.render(wasm)?)?)
    }
}

/// `path` relative to the repository root when it is inside it.
pub fn display_path(path: &Path) -> String {
    path.strip_prefix(crate::workspace_root())
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_names_every_flag() {
        let gen = EnvoyGen::new(&["examples/002-fsm/common", "examples/002-fsm/smi"])
            .local_cluster("cluster-2")
            .endpoint(
                "cluster-1/httpbin/httpbin",
                SocketAddr::from(([127, 0, 0, 1], 4242)),
            );
        let wasm = crate::workspace_root().join("target/x.wasm");
        assert_eq!(
            gen.command_line(&wasm),
            "xcluster-gen envoy -f examples/002-fsm/common -f examples/002-fsm/smi --local-cluster cluster-2 \\\n    \
             --wasm target/x.wasm --listen 127.0.0.1:0 --admin 127.0.0.1:0 \\\n    \
             --endpoint cluster-1/httpbin/httpbin=127.0.0.1:4242"
        );
    }

    #[test]
    fn render_reports_an_endpoint_that_matches_no_target() {
        let gen = EnvoyGen::new(&["examples/000-gloo-traffic-shift/traffic-policy.yaml"]).endpoint(
            "nowhere/bookinfo/reviews",
            SocketAddr::from(([127, 0, 0, 1], 1)),
        );
        let err = gen.render(Path::new("x.wasm")).unwrap_err().to_string();
        assert!(
            err.contains("no target is nowhere/bookinfo/reviews"),
            "{err}"
        );
    }
}
