//! gRPC through the gateway with a real gRPC stack, Python's `grpcio` (`make setup`
//! installs it into `.venv`): [`GrpcUpstream`] is one cluster's gRPC service (h2c)
//! answering `/xcluster.Echo/Who` with its name, [`calls`] runs the client
//! (`tests/grpc/*.py`, unary calls without generated code).

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::pki::CertPair;

/// gRPC status `OK`.
pub const OK: u32 = 0;
/// gRPC status `INTERNAL`.
pub const INTERNAL: u32 = 13;
/// gRPC status `PERMISSION_DENIED`.
pub const PERMISSION_DENIED: u32 = 7;
/// gRPC status `UNAVAILABLE`.
pub const UNAVAILABLE: u32 = 14;

/// The project's Python (`.venv/bin/python`).
fn python() -> PathBuf {
    crate::workspace_root().join(".venv/bin/python")
}

fn script(name: &str) -> PathBuf {
    crate::workspace_root().join("tests/grpc").join(name)
}

fn missing_grpcio(e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("{e} (is grpcio installed in .venv? run `make setup`)"),
    )
}

/// A gRPC server on a free loopback port answering every `/xcluster.Echo/Who` with its
/// name. Stopped (its standard input closed, then killed) when dropped.
pub struct GrpcUpstream {
    name: String,
    addr: SocketAddr,
    child: Child,
}

impl GrpcUpstream {
    /// Starts the server named `name` and waits for its port.
    pub fn start(name: &str) -> io::Result<Self> {
        let mut child = Command::new(python())
            .arg(script("upstream.py"))
            .arg(name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(missing_grpcio)?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            BufReader::new(stdout).read_line(&mut line)?;
        }
        let port: u16 = match line.trim().parse() {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(missing_grpcio(io::Error::other(format!(
                    "gRPC upstream {name} printed {line:?}, not its port"
                ))));
            }
        };
        Ok(Self {
            name: name.to_string(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        })
    }

    /// The cluster name it answers with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for GrpcUpstream {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let exited = crate::wait_for(Duration::from_secs(5), || {
            self.child.try_wait().ok().flatten()
        });
        if exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The outcome of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// gRPC status code ([`OK`], [`PERMISSION_DENIED`], ...).
    pub code: u32,
    /// The status message (`grpc-message`).
    pub details: String,
    /// The response (the upstream's name) when OK.
    pub body: String,
}

/// A client certificate for mTLS calls (files the client reads).
pub struct ClientTls {
    dir: PathBuf,
}

impl ClientTls {
    /// Writes the CA that signed the server certificate and the client's certificate and
    /// key to a fresh directory under `target/e2e/`, removed when dropped.
    pub fn write(ca_pem: &str, client: &CertPair) -> io::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = crate::target_dir().join("e2e").join(format!(
            "grpc-tls-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("ca.pem"), ca_pem)?;
        fs::write(dir.join("cert.pem"), &client.cert_pem)?;
        fs::write(dir.join("key.pem"), &client.key_pem)?;
        Ok(Self { dir })
    }
}

impl Drop for ClientTls {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The method the upstreams serve.
pub const WHO: &str = "/xcluster.Echo/Who";

/// Makes `count` unary calls of [`WHO`] to `target` on one HTTP/2 connection with
/// `:authority` `authority` (h2c, or TLS with `tls`) and returns each outcome.
pub fn calls(
    target: SocketAddr,
    authority: &str,
    count: usize,
    tls: Option<&ClientTls>,
) -> io::Result<Vec<Reply>> {
    calls_method(target, authority, WHO, count, tls)
}

/// Like [`calls`], calling `method` (a `:path`).
pub fn calls_method(
    target: SocketAddr,
    authority: &str,
    method: &str,
    count: usize,
    tls: Option<&ClientTls>,
) -> io::Result<Vec<Reply>> {
    let mut command = Command::new(python());
    command
        .arg(script("client.py"))
        .arg(target.to_string())
        .arg(authority)
        .arg(method)
        .arg(count.to_string());
    if let Some(tls) = tls {
        command.args(["ca.pem", "cert.pem", "key.pem"].map(|f| tls.dir.join(f)));
    }
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(missing_grpcio)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(missing_grpcio(io::Error::other(format!(
            "gRPC client failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))));
    }
    stdout
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)?;
            Ok(Reply {
                code: v["code"].as_u64().unwrap_or(u64::MAX) as u32,
                details: v["details"].as_str().unwrap_or_default().to_string(),
                body: v["body"].as_str().unwrap_or_default().to_string(),
            })
        })
        .collect()
}
