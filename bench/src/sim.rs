//! The deterministic companion: the filter's cost per request in wasm instructions (wasmi
//! fuel in host-sim), and the cost of loading a config, for N authorization rules.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use xcluster_filter::config::DEFAULT_CLUSTER_HEADER;
use xcluster_host_sim::{Host, HostOptions, LogLevel, SimError, Vm, VmConfig};

use crate::policy::{self, CALLER, CALLER_HEADER, DENIED_PATH};

/// The request kinds the benchmark sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// Matches the last rule: authorized, routed, answered 200 by the upstream.
    Allowed,
    /// Matches no rule: answered 403 by the filter (or RBAC).
    Denied,
}

impl RequestKind {
    /// Both kinds.
    pub const ALL: [RequestKind; 2] = [RequestKind::Allowed, RequestKind::Denied];

    /// The request path of this kind for a policy of `rules` rules.
    pub fn path(self, rules: usize) -> String {
        match self {
            RequestKind::Allowed => policy::allowed_path(rules.max(1)),
            RequestKind::Denied => DENIED_PATH.to_string(),
        }
    }

    /// The status the gateway must answer with (a permissive policy allows everything).
    pub fn status(self, rules: usize) -> u16 {
        match self {
            RequestKind::Denied if rules > 0 => 403,
            _ => 200,
        }
    }

    /// Short name (`allowed`, `denied`).
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Allowed => "allowed",
            RequestKind::Denied => "denied",
        }
    }
}

/// Instructions per request, total and per callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCost {
    /// Request kind.
    pub kind: RequestKind,
    /// Mean instructions per request over every callback of the stream (context create,
    /// request headers, response headers, done, log, delete).
    pub total: u64,
    /// Mean instructions of `proxy_on_request_headers` alone.
    pub request_headers: u64,
}

/// What one policy size costs in host-sim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimCost {
    /// Authorization rules (0: permissive, no rules).
    pub rules: usize,
    /// Size of the plugin config JSON in bytes.
    pub config_bytes: usize,
    /// Instructions of `proxy_on_configure`.
    pub configure_instructions: u64,
    /// Wall time of `proxy_on_configure` under wasmi (an interpreter, not V8), median.
    pub configure_ms_wasmi: f64,
    /// Cost per request, per kind.
    pub requests: Vec<RequestCost>,
}

impl SimCost {
    /// The cost of `kind`, if measured.
    pub fn request(&self, kind: RequestKind) -> Option<&RequestCost> {
        self.requests.iter().find(|r| r.kind == kind)
    }
}

/// Compiles the module at `wasm` for host-sim, logging warnings and above only.
pub fn load(wasm: &Path) -> Result<Host, SimError> {
    Host::load(
        wasm,
        HostOptions {
            log_level: LogLevel::Warn,
            ..HostOptions::default()
        },
    )
}

/// Starts a VM with `config`; returns it and the wall time of the whole start (instantiate,
/// `_initialize`, `on_vm_start`, `on_configure`).
pub fn start(host: &Host, config: &[u8]) -> Result<(Vm, Duration), SimError> {
    let begin = Instant::now();
    let vm = host.start_vm(VmConfig::plugin(config))?;
    Ok((vm, begin.elapsed()))
}

/// What one request through the filter did and cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCost {
    /// Instructions of every callback, context creation first.
    pub callbacks: Vec<(&'static str, u64)>,
    /// Status of the filter's local reply, if it sent one.
    pub reply: Option<u32>,
    /// The cluster the filter selected (its default cluster header), if any.
    pub cluster: Option<String>,
    /// Host calls the filter made up to the response headers, by import name.
    pub host_calls: BTreeMap<String, u64>,
}

impl StreamCost {
    /// Instructions of the whole stream.
    pub fn total(&self) -> u64 {
        self.callbacks.iter().map(|c| c.1).sum()
    }

    /// Instructions of one callback (0 when it did not run).
    pub fn of(&self, callback: &str) -> u64 {
        self.callbacks
            .iter()
            .filter(|c| c.0 == callback)
            .map(|c| c.1)
            .sum()
    }
}

/// Sends `GET path` (with the caller header when `caller` is given) through `vm`; when
/// the filter forwards it, the upstream answers 200. Then ends the stream.
pub fn stream(vm: &Vm, path: &str, caller: Option<&str>) -> Result<StreamCost, SimError> {
    let mut stream = vm.http_stream()?;
    let mut callbacks = vec![("proxy_on_context_create", vm.last_instructions())];
    let mut headers = vec![
        (":method", "GET"),
        (":path", path),
        (":authority", "bench.local"),
        (":scheme", "http"),
        ("user-agent", "wrk"),
    ];
    if let Some(caller) = caller {
        headers.push((CALLER_HEADER, caller));
    }
    stream.request_headers(&headers, true)?;
    let reply = stream.local_reply().map(|r| r.status);
    let cluster = stream.request_header(DEFAULT_CLUSTER_HEADER);
    if reply.is_none() {
        stream.response_headers(&[(":status", "200"), ("content-length", "2")], true)?;
    }
    let host_calls = stream.host_calls();
    stream.finish()?;
    callbacks.extend(stream.costs().iter().map(|c| (c.callback, c.instructions)));
    Ok(StreamCost {
        callbacks,
        reply,
        cluster,
        host_calls,
    })
}

/// Sends one GET of `kind` through `vm` and returns its cost. Fails when the filter's
/// answer is not what `kind` expects: a 403 local reply for a denied request, else a
/// chosen cluster (`c0`..`c2`) or, with `routed == false`, none.
pub fn one_request(
    vm: &Vm,
    kind: RequestKind,
    rules: usize,
    routed: bool,
) -> Result<StreamCost, SimError> {
    let path = kind.path(rules);
    let cost = stream(vm, &path, Some(CALLER))?;
    let ok = match (kind.status(rules), cost.reply, &cost.cluster) {
        (403, Some(403), _) => true,
        (200, None, Some(c)) => routed && policy::TARGETS.iter().any(|(t, _)| t == c),
        (200, None, None) => !routed,
        _ => false,
    };
    if !ok {
        return Err(SimError::Sequence(format!(
            "{} request {path}: want status {}, the filter answered {:?} with cluster {:?}",
            kind.name(),
            kind.status(rules),
            cost.reply,
            cost.cluster
        )));
    }
    Ok(cost)
}

/// Measures `rules` rules of the benchmark policy: configure cost (instructions and the
/// median wall time of `configure_runs` VM starts) and the mean cost of `requests`
/// requests of each kind.
pub fn measure(
    host: &Host,
    rules: usize,
    requests: usize,
    configure_runs: usize,
) -> Result<SimCost, SimError> {
    let config = serde_json::to_vec(&policy::xcluster_config(rules))
        .map_err(|e| SimError::Io(format!("cannot serialize the config: {e}")))?;
    let mut times = Vec::new();
    let mut vm = None;
    let mut configure_instructions = 0;
    for _ in 0..configure_runs.max(1) {
        let (started, took) = start(host, &config)?;
        configure_instructions = started.last_instructions();
        times.push(took.as_secs_f64() * 1e3);
        vm = Some(started);
    }
    let vm = vm.ok_or(SimError::VmStartFailed)?;
    let mut costs = Vec::new();
    for kind in RequestKind::ALL {
        let (mut total, mut headers) = (0u64, 0u64);
        for _ in 0..requests.max(1) {
            let cost = one_request(&vm, kind, rules, true)?;
            total += cost.total();
            headers += cost.of("proxy_on_request_headers");
        }
        let n = requests.max(1) as u64;
        costs.push(RequestCost {
            kind,
            total: total / n,
            request_headers: headers / n,
        });
    }
    Ok(SimCost {
        rules,
        config_bytes: config.len(),
        configure_instructions,
        configure_ms_wasmi: crate::stats::median(&times),
        requests: costs,
    })
}

/// Mean instructions per request of a filter that routes nothing (such as the empty
/// filter of arm (b)): `requests` allowed GETs, no config.
pub fn floor(host: &Host, requests: usize) -> Result<u64, SimError> {
    let (vm, _) = start(host, b"")?;
    let mut total = 0;
    for _ in 0..requests.max(1) {
        total += one_request(&vm, RequestKind::Allowed, 0, false)?.total();
    }
    Ok(total / requests.max(1) as u64)
}

/// One row of the per-request cost breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakdownRow {
    /// What the request exercises.
    pub scenario: String,
    /// Instructions of `proxy_on_request_headers`.
    pub request_headers: u64,
    /// Instructions of `proxy_on_response_headers` (0 for a local reply).
    pub response_headers: u64,
    /// Instructions of the whole stream.
    pub total: u64,
    /// Host calls up to the response headers (`name×count`, by name).
    pub host_calls: String,
}

/// Where a request's instructions go: the same 10-rule policy reached through each rule
/// kind, denied with and without an identity, permissive, and without outlier detection.
/// Each figure is the mean of `requests` requests after one warm-up request.
pub fn breakdown(host: &Host, requests: usize) -> Result<Vec<BreakdownRow>, SimError> {
    let rules = policy::rules(10);
    let via = |kind: policy::PathKind| {
        rules
            .iter()
            .rev()
            .find(|r| r.kind == kind)
            .map(policy::Rule::sample_path)
            .unwrap_or_default()
    };
    let mut no_outlier = policy::xcluster_config(10);
    no_outlier.destinations[0].outlier_detection = None;
    let mut one_target = policy::xcluster_config(0);
    one_target.destinations[0].outlier_detection = None;
    one_target.destinations[0].targets.truncate(1);
    let to_json = |c: &xcluster_filter::config::PluginConfig| {
        serde_json::to_vec(c).map_err(|e| SimError::Io(e.to_string()))
    };
    let ten = to_json(&policy::xcluster_config(10))?;
    let scenarios: Vec<(String, Vec<u8>, String, Option<&str>)> = vec![
        (
            "permissive (0 rules), 3 targets, outlier detection".into(),
            to_json(&policy::xcluster_config(0))?,
            via(policy::PathKind::Regex),
            Some(CALLER),
        ),
        (
            "permissive, 1 target, no outlier detection".into(),
            to_json(&one_target)?,
            via(policy::PathKind::Regex),
            Some(CALLER),
        ),
        (
            "10 rules, allowed by an exact rule".into(),
            ten.clone(),
            via(policy::PathKind::Exact),
            Some(CALLER),
        ),
        (
            "10 rules, allowed by a prefix rule".into(),
            ten.clone(),
            via(policy::PathKind::Prefix),
            Some(CALLER),
        ),
        (
            "10 rules, allowed by a regex rule (the benchmark's allowed request)".into(),
            ten.clone(),
            via(policy::PathKind::Regex),
            Some(CALLER),
        ),
        (
            "10 rules, allowed by a regex rule, no outlier detection".into(),
            to_json(&no_outlier)?,
            via(policy::PathKind::Regex),
            Some(CALLER),
        ),
        (
            "10 rules, denied: no rule matches (403)".into(),
            ten.clone(),
            DENIED_PATH.into(),
            Some(CALLER),
        ),
        (
            "10 rules, denied: no identity header (403)".into(),
            ten,
            via(policy::PathKind::Regex),
            None,
        ),
    ];
    let mut rows = Vec::new();
    for (scenario, config, path, caller) in scenarios {
        let (vm, _) = start(host, &config)?;
        let calls = stream(&vm, &path, caller)?.host_calls;
        let (mut req, mut resp, mut total) = (0, 0, 0);
        let n = requests.max(1) as u64;
        for _ in 0..n {
            let c = stream(&vm, &path, caller)?;
            req += c.of("proxy_on_request_headers");
            resp += c.of("proxy_on_response_headers");
            total += c.total();
        }
        rows.push(BreakdownRow {
            scenario,
            request_headers: req / n,
            response_headers: resp / n,
            total: total / n,
            host_calls: calls
                .iter()
                .map(|(name, count)| format!("{}×{count}", name.trim_start_matches("proxy_")))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(rows)
}
