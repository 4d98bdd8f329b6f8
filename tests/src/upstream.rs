//! A tiny threaded HTTP/1.1 server standing in for one cluster's service (bodies by
//! `content-length` or chunked, trailers read and dropped). Every request is answered
//! `200 Hi, I am from <name>`, with the path it received echoed in the `x-upstream-path`
//! response header; the `x-test-id` of each request answered is kept (to count
//! deliveries), and health-check probes are counted apart. It can be made to answer `503`
//! to everything, as a sick instance. Stopping it closes the listener and every open
//! connection, so Envoy sees connect failures, like a cluster going down.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The path health checks probe.
pub const HEALTH_PATH: &str = "/healthz";

/// The greeting an upstream named `name` answers with.
pub fn greeting(name: &str) -> String {
    format!("Hi, I am from {name}")
}

#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    served: AtomicU64,
    test_ids: Mutex<Vec<String>>,
    /// Answer every request 503, as a sick instance.
    failing: AtomicBool,
    /// Requests for [`HEALTH_PATH`].
    probes: AtomicU64,
    next_conn: AtomicU64,
    conns: Mutex<HashMap<u64, TcpStream>>,
}

/// A running (or stopped) upstream service on a loopback port.
pub struct Upstream {
    name: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Upstream {
    /// Starts a server named `name` on a free loopback port.
    pub fn start(name: &str) -> io::Result<Self> {
        Self::start_on(name, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts a server named `name` on `addr` (used to bring a stopped one back on its port).
    pub fn start_on(name: &str, addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let body = greeting(name);
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || accept_loop(listener, shared, body))
        };
        Ok(Self {
            name: name.to_string(),
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The cluster name this server answers with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address it listens (or listened) on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests it has answered (health-check probes apart), counted before each
    /// answer is written.
    pub fn served(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }

    /// Makes the server answer every request, its health path too, `503` (or `200` again).
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// How many requests for [`HEALTH_PATH`] it got.
    pub fn probes(&self) -> u64 {
        self.shared.probes.load(Ordering::Relaxed)
    }

    /// The `x-test-id` of every request answered, in order.
    pub fn test_ids(&self) -> Vec<String> {
        self.shared
            .test_ids
            .lock()
            .map(|ids| ids.clone())
            .unwrap_or_default()
    }

    /// Stops accepting, closes every open connection and waits for the acceptor to end.
    /// Idempotent.
    pub fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept(); the loop sees `stopping` and drops the listener.
        let _ = TcpStream::connect(self.addr);
        let _ = acceptor.join();
        if let Ok(mut conns) = self.shared.conns.lock() {
            for (_, conn) in conns.drain() {
                let _ = conn.shutdown(Shutdown::Both);
            }
        }
    }

    /// Stops this server and starts a fresh one with the same name on the same port.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        *self = Self::start_on(&self.name, self.addr)?;
        Ok(())
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, body: String) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        if let (Ok(clone), Ok(mut conns)) = (stream.try_clone(), shared.conns.lock()) {
            conns.insert(id, clone);
        }
        let shared = Arc::clone(&shared);
        let body = body.clone();
        std::thread::spawn(move || {
            let _ = serve(stream, &shared, &body);
            if let Ok(mut conns) = shared.conns.lock() {
                conns.remove(&id);
            }
        });
    }
}

/// Serves keep-alive requests on one connection until the peer closes it.
fn serve(stream: TcpStream, shared: &Shared, body: &str) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request_line) = read_text_line(&mut reader)? else {
            return Ok(());
        };
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut content_length = 0usize;
        let mut chunked = false;
        let mut close = false;
        let mut test_id = None;
        loop {
            let Some(line) = read_text_line(&mut reader)? else {
                return Ok(());
            };
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                } else if name.eq_ignore_ascii_case("x-test-id") {
                    test_id = Some(value.to_string());
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                }
            }
        }
        if chunked {
            skip_chunked_body(&mut reader)?;
        } else {
            io::copy(
                &mut (&mut reader).take(content_length as u64),
                &mut io::sink(),
            )?;
        }
        if shared.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        let probe = path.ends_with(HEALTH_PATH);
        let status = if shared.failing.load(Ordering::SeqCst) {
            "503 Service Unavailable"
        } else {
            "200 OK"
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nx-upstream-path: {path}\r\n\r\n{body}",
            body.len()
        );
        // Counted before the answer goes out: a client that has its response must find
        // the request counted.
        if probe {
            shared.probes.fetch_add(1, Ordering::Relaxed);
        } else {
            shared.served.fetch_add(1, Ordering::Relaxed);
        }
        if let (Some(id), Ok(mut ids)) = (test_id, shared.test_ids.lock()) {
            ids.push(id);
        }
        writer.write_all(response.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

/// One line, any bytes (header values need not be UTF-8); `None` at the end of input.
fn read_text_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// Reads a chunked body and its trailers.
fn skip_chunked_body(reader: &mut impl BufRead) -> io::Result<()> {
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let size = size.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                    return Ok(());
                }
            }
        }
        io::copy(&mut reader.by_ref().take(size + 2), &mut io::sink())?;
    }
}
