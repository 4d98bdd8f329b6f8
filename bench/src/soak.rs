//! `make soak`: memory over a long run. A million requests or more go through one pinned
//! Envoy worker running xcluster, with churn: sticky keys that never repeat within
//! [`STICKY_KEYS`], one request in ten denied, and one target behind an upstream that
//! fails [`FLAKY_PERCENT`] % of requests, so it is ejected and returns again and again.
//! The gateway's `VmRSS` is sampled after every slice of load; the least-squares slope of
//! RSS over requests served, after the warm-up, must stay under a bound.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use xcluster_envoy::{
    Bootstrap, Cluster, HttpConnectionManager, HttpFilter, Listener, Route, RouteAction,
    SocketAddress, WasmFilter,
};
use xcluster_filter::config::DEFAULT_CLUSTER_HEADER;

use crate::policy::{self, CALLER, CALLER_HEADER, TARGETS};
use crate::stats::slope;

/// Distinct sticky keys the requests cycle through (per wrk thread).
pub const STICKY_KEYS: u64 = 100_000;

/// Share of the flaky upstream's requests that fail with 503.
pub const FLAKY_PERCENT: u32 = 5;

/// The target behind the flaky upstream.
pub const FLAKY_TARGET: &str = "c2";

/// A caller no TrafficTarget allows.
pub const DENIED_CALLER: &str = "spiffe://cluster.local/ns/bench/sa/intruder";

/// The sticky cookie.
const COOKIE: &str = "user";

/// The plugin config: the benchmark's 10-rule policy ([`policy::xcluster_config`]) with a
/// sticky cookie and outlier detection that ejects after 3 consecutive 5xx for 1 s (at
/// most one target of three at a time).
pub fn plugin_config() -> Value {
    let mut config = serde_json::to_value(policy::xcluster_config(10)).unwrap_or_default();
    let dest = &mut config["destinations"][0];
    dest["sticky"] = json!({ "cookie": COOKIE });
    dest["outlier_detection"] = json!({
        "consecutive_5xx": 3,
        "consecutive_gateway_errors": 3,
        "base_ejection_time_ms": 1000,
        "max_ejection_time_ms": 5000,
        "max_ejection_percent": 34,
    });
    config
}

/// The wrk script: request `n` of a thread carries sticky key `n % STICKY_KEYS` and, one
/// in ten, the denied caller; every request is `GET path`.
pub fn script(path: &str) -> String {
    crate::wrk::script_with_request(&format!(
        r#"local n = 0
request = function()
  n = n + 1
  local caller = {allowed}
  if n % 10 == 0 then caller = {denied} end
  return wrk.format("GET", {path}, {{ ["{caller_header}"] = caller, ["cookie"] = "{COOKIE}=" .. (n % {STICKY_KEYS}) }})
end"#,
        allowed = crate::wrk::lua_string(CALLER),
        denied = crate::wrk::lua_string(DENIED_CALLER),
        path = crate::wrk::lua_string(path),
        caller_header = CALLER_HEADER,
    ))
}

/// The upstream Envoy: listener `ok` answers 200, listener `flaky` answers 503 to
/// [`FLAKY_PERCENT`] % of requests (the fault filter) and 200 to the rest.
pub fn upstream_bootstrap() -> Value {
    let hi = || {
        vec![Route::all(RouteAction::DirectResponse {
            status: 200,
            body: "hi".into(),
        })]
    };
    let fault = json!({
        "name": "envoy.filters.http.fault",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
            "abort": {
                "http_status": 503,
                "percentage": { "numerator": FLAKY_PERCENT, "denominator": "HUNDRED" }
            }
        }
    });
    Bootstrap {
        admin: Some(SocketAddress::loopback(0)),
        listeners: vec![
            Listener::new(
                "ok",
                SocketAddress::loopback(0),
                HttpConnectionManager::new("ok", vec![], hi()),
            ),
            Listener::new(
                "flaky",
                SocketAddress::loopback(0),
                HttpConnectionManager::new("flaky", vec![HttpFilter::Other(fault)], hi()),
            ),
        ],
        ..Bootstrap::default()
    }
    .render()
}

/// The gateway: xcluster with [`plugin_config`] in front of the three targets, all on
/// `ok` but [`FLAKY_TARGET`] on `flaky`.
pub fn gateway_bootstrap(wasm: &str, ok: SocketAddress, flaky: SocketAddress) -> Value {
    let filter = WasmFilter::new("xcluster", wasm, plugin_config().to_string());
    let clusters = TARGETS
        .iter()
        .map(|(name, _)| {
            let addr = if *name == FLAKY_TARGET {
                flaky.clone()
            } else {
                ok.clone()
            };
            Cluster::new(*name, addr)
        })
        .collect();
    Bootstrap {
        admin: Some(SocketAddress::loopback(0)),
        listeners: vec![Listener::new(
            "soak",
            SocketAddress::loopback(0),
            HttpConnectionManager::xcluster("soak", filter, DEFAULT_CLUSTER_HEADER),
        )],
        clusters,
        ..Bootstrap::default()
    }
    .render()
}

/// One RSS sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the measured run began.
    pub elapsed_s: f64,
    /// Requests completed so far.
    pub requests: u64,
    /// The gateway's `VmRSS`, KiB.
    pub rss_kib: u64,
}

/// The soak's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Requests completed.
    pub requests: u64,
    /// Measured duration, seconds.
    pub duration_s: f64,
    /// Responses with a status ≥ 400 (denials, 503s of the flaky target).
    pub error_statuses: u64,
    /// Socket errors (connect, read, write, timeout).
    pub socket_errors: u64,
    /// RSS samples, the first taken after the warm-up.
    pub samples: Vec<Sample>,
    /// Fitted RSS growth, bytes per 100,000 requests.
    pub slope_bytes_per_100k: f64,
    /// The bound the slope must stay under.
    pub bound_bytes_per_100k: f64,
    /// The filter's counters at the end (warm-up included): name → value.
    pub counters: Vec<(String, u64)>,
}

impl Report {
    /// Whether memory stayed flat: the slope is under the bound.
    pub fn passed(&self) -> bool {
        self.slope_bytes_per_100k < self.bound_bytes_per_100k
    }
}

/// Bytes of RSS growth per 100,000 requests, fitted by least squares over `samples`.
pub fn fit(samples: &[Sample]) -> f64 {
    let xs: Vec<f64> = samples.iter().map(|s| s.requests as f64).collect();
    let ys: Vec<f64> = samples.iter().map(|s| s.rss_kib as f64 * 1024.0).collect();
    slope(&xs, &ys) * 100_000.0
}

/// The "Soak" section of `docs/benchmarks.md`.
pub fn markdown(r: &Report) -> String {
    let mut s = String::from("## Soak\n\n");
    s.push_str(&format!(
        "`make soak` sent {} requests in {:.0} s through one pinned Envoy worker running \
         xcluster (the benchmark's 10-rule policy, sticky cookie cycling over {} keys per wrk \
         thread, one request in ten denied, target `{FLAKY_TARGET}` behind an upstream failing \
         {FLAKY_PERCENT} % of requests with outlier detection ejecting it for 1 s after 3 \
         consecutive 5xx). Envoy's `VmRSS` after each slice of load:\n\n",
        thousands(r.requests),
        r.duration_s,
        thousands(STICKY_KEYS),
    ));
    s.push_str("| after | requests | VmRSS |\n|---:|---:|---:|\n");
    for sample in &r.samples {
        s.push_str(&format!(
            "| {:.0} s | {} | {:.1} MiB |\n",
            sample.elapsed_s,
            thousands(sample.requests),
            sample.rss_kib as f64 / 1024.0
        ));
    }
    s.push_str(&format!(
        "\nFitted growth: **{:.0} bytes per 100,000 requests** (least squares over the \
         samples after the warm-up); bound {:.0} bytes per 100,000 requests: **{}**. \
         {} responses ≥ 400 (denials and the flaky target's 503s), {} socket errors.\n\n",
        r.slope_bytes_per_100k,
        r.bound_bytes_per_100k,
        if r.passed() { "passed" } else { "FAILED" },
        thousands(r.error_statuses),
        thousands(r.socket_errors),
    ));
    s.push_str(
        "The filter's counters at the end (warm-up included):\n\n| counter | value |\n|---|---:|\n",
    );
    for (name, value) in &r.counters {
        s.push_str(&format!("| `{name}` | {} |\n", thousands(*value)));
    }
    s
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `doc` with its `## Soak` section (up to the next `## ` heading) replaced by `section`,
/// or `section` appended.
pub fn splice_section(doc: &str, section: &str) -> String {
    let Some(start) = doc.find("\n## Soak\n") else {
        return format!("{}\n\n{section}", doc.trim_end());
    };
    let after = &doc[start + 1..];
    let end = after[3..]
        .find("\n## ")
        .map_or(doc.len(), |e| start + 1 + 3 + e + 1);
    format!("{}{section}{}", &doc[..start + 1], &doc[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(requests: u64, rss_kib: u64) -> Sample {
        Sample {
            elapsed_s: 0.0,
            requests,
            rss_kib,
        }
    }

    #[test]
    fn fit_is_bytes_per_100k_requests() {
        let flat = [sample(0, 100), sample(100_000, 100), sample(200_000, 100)];
        assert_eq!(fit(&flat), 0.0);
        let leak = [sample(0, 100), sample(100_000, 101), sample(200_000, 102)];
        assert_eq!(fit(&leak), 1024.0);
    }

    #[test]
    fn config_and_script_churn() {
        let config = plugin_config();
        let dest = &config["destinations"][0];
        assert_eq!(dest["sticky"]["cookie"], COOKIE);
        assert_eq!(dest["outlier_detection"]["consecutive_5xx"], 3);
        let parsed: Result<xcluster_filter::config::PluginConfig, _> =
            serde_json::from_value(config);
        assert!(parsed.is_ok(), "{parsed:?}");
        let s = script("/a");
        assert!(s.contains("n % 100000"), "{s}");
        assert!(s.contains(DENIED_CALLER), "{s}");
        assert!(s.contains("function done"));
    }

    #[test]
    fn bootstraps_route_the_flaky_target_to_the_flaky_listener() {
        let up = upstream_bootstrap();
        let listeners = up["static_resources"]["listeners"].as_array().unwrap();
        assert_eq!(listeners[1]["name"], "flaky");
        let ok = SocketAddress::loopback(1);
        let flaky = SocketAddress::loopback(2);
        let gw = gateway_bootstrap("/x.wasm", ok, flaky.clone());
        let clusters = gw["static_resources"]["clusters"].as_array().unwrap();
        let c2 = clusters.iter().find(|c| c["name"] == FLAKY_TARGET).unwrap();
        assert_eq!(
            c2["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
            flaky.render()
        );
    }

    #[test]
    fn the_soak_section_is_replaced_or_appended() {
        let doc = "# B\n\n## Results\nx\n\n## Soak\nold\n\n## Later\ny\n";
        let out = splice_section(doc, "## Soak\n\nnew\n\n");
        assert_eq!(
            out,
            "# B\n\n## Results\nx\n\n## Soak\n\nnew\n\n## Later\ny\n"
        );
        let out = splice_section("# B\n\ntext\n", "## Soak\n\nnew\n");
        assert_eq!(out, "# B\n\ntext\n\n## Soak\n\nnew\n");
        let out = splice_section("# B\n\n## Soak\nold\n", "## Soak\n\nnew\n");
        assert_eq!(out, "# B\n\n## Soak\n\nnew\n");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
