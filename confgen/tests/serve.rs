//! The generated bootstrap serves the policy: a real Envoy started with the output of
//! `xcluster-gen envoy` for the seed 002 ActiveActive example (addresses replaced by
//! `--endpoint` flags pointing at loopback upstreams) spreads requests over the three
//! clusters, applies the FSM path prefix of the remote targets, and answers requests no
//! route matches with the fallback 404. Skipped (with a printed reason) when no Envoy
//! binary exists (`ENVOY_BIN`, else `.venv/bin/envoy`).
#![cfg(test)]
#![cfg(test)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn envoy_bin() -> PathBuf {
    let bin = match std::env::var_os("ENVOY_BIN") {
        Some(b) => PathBuf::from(b),
        None => repo_root().join(".venv/bin/envoy"),
    };
    assert!(
        bin.is_file(),
        "no Envoy at {} (run `make setup`, or set ENVOY_BIN)",
        bin.display()
    );
    bin
}

/// An upstream answering every request with `<name> <path>`.
fn upstream(name: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(stream, name);
        }
    });
    port
}

fn answer(mut stream: TcpStream, name: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split_whitespace().nth(1).unwrap_or("?");
    let body = format!("{name} {path}");
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `(status, body)` of a GET with the given Host.
fn get(port: u16, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

struct Envoy(Child);

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn generated_bootstrap_serves_the_fsm_active_active_policy() {
    let envoy = envoy_bin();
    let wasm = xcluster_wasm_build::filter_wasm().unwrap_or_else(|e| panic!("{e}"));

    let (c1, c2, c3) = (
        upstream("cluster-1"),
        upstream("cluster-2"),
        upstream("cluster-3"),
    );
    let (listen, admin) = (free_port(), free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_xcluster-gen"))
        .current_dir(repo_root())
        .args([
            "envoy",
            "-f",
            "examples/002-fsm/common",
            "-f",
            "examples/002-fsm/active-active",
        ])
        .args(["--local-cluster", "cluster-2", "--wasm"])
        .arg(&wasm)
        .arg(format!("--listen=127.0.0.1:{listen}"))
        .arg(format!("--admin=127.0.0.1:{admin}"))
        .arg(format!(
            "--endpoint=cluster-1/httpbin/httpbin=127.0.0.1:{c1}"
        ))
        .arg(format!(
            "--endpoint=cluster-2/httpbin/httpbin=127.0.0.1:{c2}"
        ))
        .arg(format!(
            "--endpoint=cluster-3/httpbin/httpbin=127.0.0.1:{c3}"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = std::env::temp_dir().join(format!("xcluster-gen-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("envoy.yaml");
    std::fs::write(&config, &out.stdout).unwrap();
    let log = std::fs::File::create(dir.join("envoy.log")).unwrap();
    let _envoy = Envoy(
        Command::new(&envoy)
            .args(["--disable-hot-restart", "-l", "info", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    // Ready when the listener answers through the filter (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = get(listen, "httpbin.httpbin:8080", "/get") {
            break;
        }
        let log = std::fs::read_to_string(dir.join("envoy.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "Envoy did not serve within 30 s:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..60 {
        let (status, body) = get(listen, "httpbin.httpbin:8080", "/get").unwrap();
        assert_eq!(status, 200, "{body}");
        *seen.entry(body).or_insert(0) += 1;
    }
    let bodies: Vec<&str> = seen.keys().map(String::as_str).collect();
    // Every cluster serves; remote ones get their FSM gateway path prefix.
    assert_eq!(
        bodies,
        [
            "cluster-1 /cluster-1/httpbin-mesh/get",
            "cluster-2 /get",
            "cluster-3 /cluster-3/httpbin-mesh/get"
        ],
        "{seen:?}"
    );
    // Unknown hosts pass the filter untouched and meet the fallback route.
    let (status, body) = get(listen, "other.example", "/").unwrap();
    assert_eq!(
        (status, body.as_str()),
        (404, xcluster_envoy::NO_CLUSTER_BODY)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
