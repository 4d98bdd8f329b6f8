//! The dry run behind `xcluster-sim`: drives the real filter with a request profile and
//! summarizes what it decided. The decision header (injected when the config has none)
//! tells which target served each request.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use serde_json::Value;
use xcluster_filter::config::DEFAULT_CLUSTER_HEADER;

use crate::abi::Action;
use crate::error::SimError;
use crate::host::{Host, HostOptions, VmConfig};
use crate::profile::Profile;

/// Decision header the dry run adds to configs that do not name one.
pub const SIM_DECISION_HEADER: &str = "x-xcluster-sim-decision";

/// Min / mean / max of a count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spread {
    /// Smallest value.
    pub min: u64,
    /// Largest value.
    pub max: u64,
    /// Sum of the values.
    pub sum: u64,
    /// Number of values.
    pub count: u64,
}

impl Spread {
    fn add(&mut self, v: u64) {
        if self.count == 0 || v < self.min {
            self.min = v;
        }
        self.max = self.max.max(v);
        self.sum += v;
        self.count += 1;
    }

    /// The mean, rounded down (0 when empty).
    pub fn mean(&self) -> u64 {
        self.sum.checked_div(self.count).unwrap_or(0)
    }
}

/// What happened to the requests routed to one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetStats {
    /// Locality tier the filter reported.
    pub tier: String,
    /// Requests routed there.
    pub requests: u64,
    /// Requests the simulated upstream failed.
    pub upstream_errors: u64,
}

/// The outcome of a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Requests simulated.
    pub requests: u64,
    /// Workers (VMs).
    pub workers: usize,
    /// Seed.
    pub seed: u64,
    /// Virtual time the run covered.
    pub elapsed: Duration,
    /// Requests forwarded to a target.
    pub forwarded: u64,
    /// Requests that matched no route and passed through.
    pub passed: u64,
    /// Local replies by `status body`.
    pub replies: BTreeMap<String, u64>,
    /// Forwarded requests per (destination, target).
    pub targets: BTreeMap<(String, String), TargetStats>,
    /// Denials per (destination, reason).
    pub denials: BTreeMap<(String, String), u64>,
    /// Dry-run would-be denials per (destination, reason).
    pub dry_run_denials: BTreeMap<(String, String), u64>,
    /// Ejections per (destination, target), from the filter's counters.
    pub ejections: BTreeMap<(String, String), u64>,
    /// Requests of FailOver destinations served below the best tier seen.
    pub failovers: u64,
    /// Forwarded requests that failed on their target and were answered by a replay.
    pub replayed: u64,
    /// Forwarded requests the client got a 5xx for, after any replay.
    pub failed: u64,
    /// Requests per traffic class.
    pub classes: BTreeMap<String, u64>,
    /// Instructions of `proxy_on_request_headers` per request.
    pub request_instructions: Spread,
    /// Instructions of every callback of a request's stream, per request.
    pub stream_instructions: Spread,
    /// Host calls (VM boundary crossings) of a request's stream, per request.
    pub host_calls: Spread,
}

fn parse_decision(value: &str) -> BTreeMap<String, String> {
    value
        .split(';')
        .filter_map(|part| part.trim().split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The token after `reason=` in a log line.
fn reason(line: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("reason="))
        .map(str::to_string)
}

/// Prepares the plugin config for the run: adds the dry run's decision header when the
/// config names none. Returns the config and the decision header name.
pub fn instrument(config: &Value) -> (Value, String) {
    let mut config = config.clone();
    let header = match config.get("decision_header").and_then(Value::as_str) {
        Some(h) => h.to_string(),
        None => {
            if let Some(obj) = config.as_object_mut() {
                obj.insert("decision_header".into(), SIM_DECISION_HEADER.into());
            }
            SIM_DECISION_HEADER.to_string()
        }
    };
    (config, header)
}

/// Target name → the Envoy clusters of the targets with that name, from the config.
fn target_clusters(config: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let targets = config
        .get("destinations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("targets").and_then(Value::as_array))
        .flatten();
    for t in targets {
        let field = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_string);
        if let (Some(name), Some(cluster)) = (field("name"), field("envoy_cluster")) {
            out.entry(name).or_default().push(cluster);
        }
    }
    out
}

/// The failure the profile gives `cluster` (an Envoy cluster) at request `i`, `ms` in.
fn failure<'p>(
    profile: &'p Profile,
    clusters: &BTreeMap<String, Vec<String>>,
    cluster: &str,
    i: u64,
    ms: u64,
) -> Option<&'p crate::profile::Failure> {
    profile.failures.iter().find(|f| {
        f.active(i, ms)
            && (f.target == cluster
                || clusters
                    .get(&f.target)
                    .is_some_and(|c| c.iter().any(|c| c == cluster)))
    })
}

/// Answers every http call in flight (replays, health-check probes) as the profile says
/// its cluster answers at request `i`; replays may start new calls, answered too.
fn answer_calls(
    host: &Host,
    profile: &Profile,
    clusters: &BTreeMap<String, Vec<String>>,
    i: u64,
) -> Result<(), SimError> {
    for _ in 0..16 {
        let calls = host.http_calls();
        if calls.is_empty() {
            break;
        }
        let ms = host.elapsed().as_millis() as u64;
        for call in calls {
            let status = failure(profile, clusters, &call.upstream, i, ms)
                .map_or(200, |f| f.status)
                .to_string();
            host.respond_http_call(
                call.token,
                crate::HttpCallResponse {
                    headers: crate::HeaderMap::from_pairs(&[(":status", status.as_str())]),
                    body: Vec::new(),
                    trailers: crate::HeaderMap::default(),
                },
            )?;
        }
    }
    Ok(())
}

/// Runs `profile` against the filter module `wasm` configured with `config`.
pub fn run(wasm: &[u8], config: &Value, profile: &Profile) -> Result<Report, SimError> {
    let options = HostOptions {
        seed: profile.seed,
        log_level: crate::LogLevel::Info,
        ..HostOptions::default()
    };
    let host = Host::new(wasm, options)?;
    for (path, value) in [
        (
            &["node", "metadata", "CLUSTER_ID"][..],
            &profile.node.cluster,
        ),
        (&["node", "locality", "region"][..], &profile.node.region),
        (&["node", "locality", "zone"][..], &profile.node.zone),
    ] {
        if let Some(v) = value {
            host.set_property(path, v.as_str());
        }
    }
    let (config, decision_header) = instrument(config);
    let cluster_header = config
        .get("cluster_header")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_CLUSTER_HEADER)
        .to_string();
    let failover_dests: Vec<String> = config
        .get("destinations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|d| d.get("policy").and_then(Value::as_str) == Some("FailOver"))
        .filter_map(|d| d.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let mut vms = Vec::new();
    for _ in 0..profile.workers {
        match host.start_vm(VmConfig::plugin(config.to_string())) {
            Ok(vm) => vms.push(vm),
            Err(SimError::ConfigRejected) => {
                let why = host
                    .logs()
                    .into_iter()
                    .filter(|l| l.level >= crate::LogLevel::Error)
                    .map(|l| l.message)
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(SimError::Io(format!(
                    "the filter rejected the config:\n{why}"
                )));
            }
            Err(e) => return Err(e),
        }
    }
    let clusters = target_clusters(&config);
    for cluster in clusters.values().flatten() {
        host.add_cluster(cluster);
    }
    for (n, f) in profile.failures.iter().enumerate() {
        let known =
            clusters.contains_key(&f.target) || clusters.values().flatten().any(|c| *c == f.target);
        if !known {
            return Err(SimError::Io(format!(
                "profile failures[{n}].target: no target or Envoy cluster named {:?} in the config",
                f.target
            )));
        }
    }
    host.clear_logs();
    let mut report = Report {
        requests: profile.requests,
        workers: profile.workers,
        seed: profile.seed,
        ..Report::default()
    };
    let mut tiers: Vec<(String, u32)> = Vec::new();
    for i in 0..profile.requests {
        if i > 0 {
            host.advance(Duration::from_millis(profile.interval_ms))?;
        }
        answer_calls(&host, profile, &clusters, i)?;
        let class = profile.class_of(i);
        *report.classes.entry(profile.class_name(class)).or_default() += 1;
        let traffic = &profile.traffic[class];
        let vm = &vms[(i % vms.len() as u64) as usize];
        let mut stream = vm.http_stream()?;
        if let Some(caller) = &traffic.caller {
            stream.set_peer_uri_san(caller);
        }
        let action = stream.request_headers(&traffic.headers(i), true)?;
        report
            .request_instructions
            .add(stream.costs().first().map_or(0, |c| c.instructions));
        let logs = host.logs();
        host.clear_logs();
        for line in logs.iter().map(|l| l.message.as_str()) {
            let Some(why) = reason(line) else { continue };
            let dest = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("destination="))
                .unwrap_or("-")
                .to_string();
            if line.contains("dry-run") {
                *report.dry_run_denials.entry((dest, why)).or_default() += 1;
            }
        }
        if let Some(reply) = stream.local_reply() {
            // Denials carry their reason in the response code details and their
            // destination in the decision header (logged only at debug level).
            if let Some(why) = reply.details.strip_prefix("xcluster_denied_") {
                let dest = reply
                    .headers
                    .get_str(&decision_header)
                    .and_then(|d| parse_decision(&d).remove("destination"))
                    .unwrap_or_else(|| "-".to_string());
                *report.denials.entry((dest, why.to_string())).or_default() += 1;
            }
            let body = String::from_utf8_lossy(&reply.body).into_owned();
            *report
                .replies
                .entry(format!("{} {body}", reply.status))
                .or_default() += 1;
        } else if let Some(cluster) = stream.request_header(&cluster_header) {
            report.forwarded += 1;
            let mut response = vec![(":status".to_string(), "200".to_string())];
            let ms = host.elapsed().as_millis() as u64;
            let mut final_status = 200;
            let decision = if action == Action::Continue {
                if let Some(f) = failure(profile, &clusters, &cluster, i, ms) {
                    response[0].1 = f.status.to_string();
                    final_status = u32::from(f.status);
                    stream.set_response_flags(f.flags);
                }
                let held = stream.response_headers(&response, true)? == Action::Pause;
                if held {
                    answer_calls(&host, profile, &clusters, i)?;
                }
                match stream.local_reply() {
                    Some(reply) if held => {
                        if reply.details == "xcluster_replayed" {
                            report.replayed += 1;
                        }
                        final_status = reply.status;
                        parse_decision(&reply.headers.get_str(&decision_header).unwrap_or_default())
                    }
                    _ => parse_decision(
                        &stream.response_header(&decision_header).unwrap_or_default(),
                    ),
                }
            } else {
                BTreeMap::new()
            };
            if final_status >= 500 {
                report.failed += 1;
            }
            let dest = decision.get("destination").cloned().unwrap_or_default();
            let target = decision.get("target").cloned().unwrap_or(cluster);
            let tier = decision.get("tier").cloned().unwrap_or_default();
            let stats = report.targets.entry((dest.clone(), target)).or_default();
            stats.tier.clone_from(&tier);
            stats.requests += 1;
            if response[0].1 != "200" {
                stats.upstream_errors += 1;
            }
            if failover_dests.contains(&dest) {
                if let Ok(t) = tier.parse::<u32>() {
                    tiers.push((dest, t));
                }
            }
        } else {
            report.passed += 1;
        }
        stream.finish()?;
        report.stream_instructions.add(stream.instructions());
        report.host_calls.add(stream.host_calls().values().sum());
    }
    report.elapsed = host.elapsed();
    for (dest, tier) in &tiers {
        let best = tiers
            .iter()
            .filter(|(d, _)| d == dest)
            .map(|(_, t)| *t)
            .min()
            .unwrap_or(0);
        if *tier > best {
            report.failovers += 1;
        }
    }
    for (name, value) in host.metrics() {
        let crate::MetricValue::Counter(n) = value else {
            continue;
        };
        // xcluster_ejections_total.destination=.=<d>;.;target=.=<t>;.;
        let Some(tags) = name.strip_prefix("xcluster_ejections_total.") else {
            continue;
        };
        let tag = |key: &str| {
            let start = tags.find(&format!("{key}=.="))? + key.len() + 3;
            let len = tags[start..].find(";.;")?;
            Some(tags[start..start + len].to_string())
        };
        if let (Some(dest), Some(target)) = (tag("destination"), tag("target")) {
            if n > 0 {
                report.ejections.insert((dest, target), n);
            }
        }
    }
    Ok(report)
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        return "-".into();
    }
    format!("{:.1}%", n as f64 * 100.0 / of as f64)
}

/// Renders rows as an aligned table: text columns left, numbers right.
fn table(out: &mut String, rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let numeric = cell
                .trim_end_matches('%')
                .replace('.', "")
                .chars()
                .all(|ch| ch.is_ascii_digit())
                && !cell.is_empty();
            let w = widths[c];
            if c > 0 {
                line.push_str("  ");
            }
            if numeric {
                let _ = write!(line, "{cell:>w$}");
            } else {
                let _ = write!(line, "{cell:<w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} requests, {} worker(s), seed {}, {:.1} s of virtual time\n",
            self.requests,
            self.workers,
            self.seed,
            self.elapsed.as_secs_f64()
        );
        let mut rows = vec![vec!["outcome".into(), "requests".into(), "share".into()]];
        rows.push(vec![
            "forwarded".into(),
            self.forwarded.to_string(),
            pct(self.forwarded, self.requests),
        ]);
        for (reply, n) in &self.replies {
            rows.push(vec![
                format!("local reply {reply}"),
                n.to_string(),
                pct(*n, self.requests),
            ]);
        }
        rows.push(vec![
            "no route, passed through".into(),
            self.passed.to_string(),
            pct(self.passed, self.requests),
        ]);
        table(&mut out, &rows);

        out.push('\n');
        let mut rows = vec![[
            "destination",
            "target",
            "tier",
            "requests",
            "share",
            "upstream 5xx",
            "ejections",
        ]
        .map(String::from)
        .to_vec()];
        for ((dest, target), s) in &self.targets {
            let ejected = self
                .ejections
                .get(&(dest.clone(), target.clone()))
                .copied()
                .unwrap_or(0);
            rows.push(vec![
                dest.clone(),
                target.clone(),
                s.tier.clone(),
                s.requests.to_string(),
                pct(s.requests, self.forwarded),
                s.upstream_errors.to_string(),
                ejected.to_string(),
            ]);
        }
        table(&mut out, &rows);

        let _ = writeln!(
            out,
            "\nfailovers (FailOver requests served below the best tier seen): {}",
            self.failovers
        );
        let _ = writeln!(
            out,
            "replayed (failed on their target, answered by the next): {}; failed (a 5xx to the client): {}",
            self.replayed, self.failed
        );
        for (title, map) in [
            ("denials", &self.denials),
            ("dry-run would deny", &self.dry_run_denials),
        ] {
            if map.is_empty() {
                let _ = writeln!(out, "{title}: none");
                continue;
            }
            let _ = writeln!(out, "{title}:");
            let mut rows = Vec::new();
            for ((dest, why), n) in map {
                rows.push(vec![format!("  {dest}"), why.clone(), n.to_string()]);
            }
            table(&mut out, &rows);
        }
        if self.classes.len() > 1 {
            let classes: Vec<String> = self
                .classes
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            let _ = writeln!(out, "traffic: {}", classes.join(", "));
        }
        let r = &self.request_instructions;
        let s = &self.stream_instructions;
        let _ = writeln!(
            out,
            "\nwasm instructions per request: on_request_headers min {} / mean {} / max {}; whole stream min {} / mean {} / max {}",
            r.min, r.mean(), r.max, s.min, s.mean(), s.max
        );
        let h = &self.host_calls;
        let _ = writeln!(
            out,
            "host calls per request: min {} / mean {} / max {}",
            h.min,
            h.mean(),
            h.max
        );
        f.write_str(&out)
    }
}
