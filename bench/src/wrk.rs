//! Load generation with wrk: a Lua script per request kind that sets the request and
//! prints a JSON summary when done, and the parser of that summary.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Marker line before the JSON summary in wrk's output.
const MARK: &str = "XCLUSTER-BENCH-RESULT ";

/// The Lua script for wrk: every request is `GET path` with `headers`; `done` prints the
/// summary (requests, duration, errors, latency percentiles in µs) as one JSON line.
pub fn script(path: &str, headers: &[(&str, &str)]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "wrk.method = \"GET\"");
    let _ = writeln!(s, "wrk.path = {}", lua_string(path));
    for (name, value) in headers {
        let _ = writeln!(
            s,
            "wrk.headers[{}] = {}",
            lua_string(name),
            lua_string(value)
        );
    }
    s.push_str(DONE);
    s
}

/// A wrk script whose requests `request_lua` builds (Lua defining `request()`), with the
/// same `done` summary as [`script`].
pub fn script_with_request(request_lua: &str) -> String {
    format!("{request_lua}\n{DONE}")
}

/// wrk's `done` callback: the summary as one JSON line after [`MARK`].
const DONE: &str = concat!(
    "function done(summary, latency, requests)\n",
    "  local e = summary.errors\n",
    "  io.write(string.format('XCLUSTER-BENCH-RESULT {\"requests\":%d,\"duration_us\":%d,",
    "\"connect_errors\":%d,\"read_errors\":%d,\"write_errors\":%d,\"status_errors\":%d,",
    "\"timeouts\":%d,\"p50_us\":%d,\"p99_us\":%d,\"mean_us\":%.1f}\\n',\n",
    "    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,\n",
    "    latency:percentile(50), latency:percentile(99), latency.mean))\n",
    "end\n"
);

/// Escapes `s` as a Lua string literal.
pub fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Completed requests.
    pub requests: u64,
    /// Run time in µs.
    pub duration_us: u64,
    /// Connect errors.
    pub connect_errors: u64,
    /// Read errors.
    pub read_errors: u64,
    /// Write errors.
    pub write_errors: u64,
    /// Responses with a status ≥ 400 (wrk counts them as errors).
    pub status_errors: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Median latency in µs.
    pub p50_us: u64,
    /// 99th percentile latency in µs.
    pub p99_us: u64,
    /// Mean latency in µs.
    pub mean_us: f64,
}

impl Summary {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        if self.duration_us == 0 {
            0.0
        } else {
            self.requests as f64 * 1e6 / self.duration_us as f64
        }
    }

    /// Socket-level errors (connect, read, write, timeout).
    pub fn socket_errors(&self) -> u64 {
        self.connect_errors + self.read_errors + self.write_errors + self.timeouts
    }
}

/// Finds the summary line in wrk's stdout.
pub fn parse(stdout: &str) -> Result<Summary, String> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(MARK))
        .ok_or_else(|| format!("wrk printed no summary; output:\n{stdout}"))?;
    serde_json::from_str(line).map_err(|e| format!("bad wrk summary {line:?}: {e}"))
}

/// Load settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Load {
    /// Open connections.
    pub connections: u32,
    /// wrk threads.
    pub threads: u32,
    /// Measured duration.
    pub duration: Duration,
    /// The CPU wrk is pinned to.
    pub cpu: u32,
}

/// Runs wrk (pinned with `taskset`) against `addr` with `script` for `duration`.
pub fn run(
    load: &Load,
    addr: SocketAddr,
    script: &Path,
    duration: Duration,
) -> io::Result<Summary> {
    let secs = duration.as_secs().max(1);
    let output = Command::new("taskset")
        .args(["-c", &load.cpu.to_string(), "wrk"])
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("5s")
        .arg("-s")
        .arg(script)
        .arg(format!("http://{addr}/"))
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "wrk failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    parse(&stdout).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_sets_the_request_and_escapes() {
        let s = script("/a\"b", &[("x-caller", "spiffe://x")]);
        assert!(s.contains("wrk.path = \"/a\\\"b\""));
        assert!(s.contains("wrk.headers[\"x-caller\"] = \"spiffe://x\""));
        assert!(s.contains("function done"));
        assert!(s.contains(MARK.trim_end()));
        let d = script_with_request("request = function() return wrk.format() end");
        assert!(d.starts_with("request = function()"));
        assert!(d.ends_with(DONE));
    }

    #[test]
    fn parses_the_summary_line() {
        let out = "Running 5s test\nXCLUSTER-BENCH-RESULT {\"requests\":1000,\"duration_us\":500000,\"connect_errors\":0,\"read_errors\":0,\"write_errors\":0,\"status_errors\":1000,\"timeouts\":0,\"p50_us\":120,\"p99_us\":900,\"mean_us\":150.5}\n";
        let s = parse(out).unwrap();
        assert_eq!(s.requests, 1000);
        assert_eq!(s.rps(), 2000.0);
        assert_eq!(s.status_errors, 1000);
        assert_eq!(s.p99_us, 900);
        assert!(parse("no summary").is_err());
    }
}
