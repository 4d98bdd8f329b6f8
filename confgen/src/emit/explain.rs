//! A human-readable account of the config: per route, its hosts and conditions, and per
//! target its cluster, weight share, locality tier, and which callers may reach it.

use std::fmt::Write;

use xcluster_filter::config::{
    AccessMode, DestinationConfig, LbPolicy, LocalConfig, PathMatchConfig, RouteConfig,
    TargetConfig,
};

use crate::model::Model;
use xcluster_filter::policy::tier;

/// The explanation text.
pub fn render(model: &Model) -> String {
    let config = &model.config;
    let local = config.local.clone().unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "local cluster: {}; region/zone: {}/{}; access mode: {}",
        local
            .cluster
            .as_deref()
            .unwrap_or("(from Envoy node metadata)"),
        local.region.as_deref().unwrap_or("?"),
        local.zone.as_deref().unwrap_or("?"),
        mode_name(config.access.mode)
    );
    for route in &config.routes {
        let Some(dest) = config
            .destinations
            .iter()
            .find(|d| d.name == route.destination)
        else {
            continue;
        };
        out.push('\n');
        let _ = writeln!(out, "route {}: {}", route.name, describe_match(route, dest));
        let origin = model
            .origins
            .get(&dest.name)
            .map(String::as_str)
            .unwrap_or("?");
        let _ = writeln!(
            out,
            "  destination {} ({:?}) from {origin}",
            dest.name, dest.policy
        );
        write_targets(&mut out, model, dest, &local);
    }
    for warning in &model.warnings {
        let _ = writeln!(out, "\nwarning: {warning}");
    }
    out
}

fn mode_name(mode: AccessMode) -> &'static str {
    match mode {
        AccessMode::Permissive => "permissive",
        AccessMode::Enforce => "enforce",
        AccessMode::DryRun => "dry-run",
    }
}

fn describe_match(route: &RouteConfig, dest: &DestinationConfig) -> String {
    let m = &route.route_match;
    let hosts = if m.hosts.is_empty() {
        &dest.hosts
    } else {
        &m.hosts
    };
    let mut parts = vec![if hosts.is_empty() || hosts.iter().any(|h| h == "*") {
        "any host".to_string()
    } else {
        format!("hosts {}", hosts.join(", "))
    }];
    parts.push(match &m.path {
        None => "any path".to_string(),
        Some(PathMatchConfig::Exact(p)) => format!("path = {p}"),
        Some(PathMatchConfig::Prefix(p)) => format!("path prefix {p}"),
        Some(PathMatchConfig::Regex(r)) => format!("path ~ {r}"),
    });
    if !m.methods.is_empty() {
        parts.push(format!("methods {}", m.methods.join(",")));
    }
    for h in &m.headers {
        parts.push(match (&h.exact, &h.regex) {
            (Some(e), _) => format!("header {} = {e}", h.name),
            (None, Some(r)) => format!("header {} ~ {r}", h.name),
            (None, None) => format!("header {} present", h.name),
        });
    }
    parts.join("; ")
}

fn write_targets(out: &mut String, model: &Model, dest: &DestinationConfig, local: &LocalConfig) {
    let tiers: Vec<u32> = dest.targets.iter().map(|t| tier(t, local)).collect();
    let best = dest
        .targets
        .iter()
        .zip(&tiers)
        .filter(|(t, _)| t.weight > 0)
        .map(|(_, tier)| *tier)
        .min();
    for (t, &tier) in dest.targets.iter().zip(&tiers) {
        let pool: u64 = dest
            .targets
            .iter()
            .zip(&tiers)
            .filter(|(_, &other)| dest.policy == LbPolicy::ActiveActive || other == tier)
            .map(|(o, _)| u64::from(o.weight))
            .sum();
        let share = if pool == 0 {
            0.0
        } else {
            100.0 * f64::from(t.weight) / pool as f64
        };
        let role = match dest.policy {
            LbPolicy::ActiveActive => format!("{share:.1}% of requests"),
            LbPolicy::Locality if tier == 0 => format!("{share:.1}% of requests (local)"),
            LbPolicy::Locality => "not used: Locality serves the local cluster only".to_string(),
            LbPolicy::FailOver if Some(tier) == best => {
                format!("{share:.1}% of requests (best tier)")
            }
            LbPolicy::FailOver => format!(
                "{share:.1}% of tier {tier}: standby until every better tier is unavailable"
            ),
        };
        let _ = writeln!(
            out,
            "  - target {}: cluster {}, weight {} ({role}), tier {tier}",
            t.name, t.cluster, t.weight
        );
        let mut via = format!("      envoy cluster {}", t.envoy_cluster);
        if let Some(a) = &t.authority {
            let _ = write!(via, ", authority {a}");
        }
        if let Some(p) = &t.path_prefix {
            let _ = write!(via, ", path prefix {p}");
        }
        if let Some(addr) = model
            .upstreams
            .get(&t.envoy_cluster)
            .and_then(|u| u.address.as_ref())
        {
            let _ = write!(via, ", address {}:{}", addr.host, addr.port);
        }
        let _ = writeln!(out, "{via}");
        let sa = &t.service_account;
        let _ = writeln!(
            out,
            "      runs as {}/{}; {}",
            sa.namespace,
            sa.name,
            callers(model, t)
        );
    }
}

fn callers(model: &Model, t: &TargetConfig) -> String {
    let access = &model.config.access;
    if access.mode == AccessMode::Permissive {
        return "callers: any (permissive)".to_string();
    }
    let mut grants = Vec::new();
    for tt in access
        .traffic_targets
        .iter()
        .filter(|tt| tt.destination == t.service_account)
    {
        let rules: Vec<String> = tt
            .rules
            .iter()
            .map(|r| {
                let group = access.route_groups.iter().find(|g| g.name == r.route_group);
                let names: Vec<String> = match group {
                    Some(g) => g
                        .matches
                        .iter()
                        .filter(|m| r.matches.is_empty() || r.matches.contains(&m.name))
                        .map(|m| {
                            let methods = if m.methods.is_empty() {
                                "*".to_string()
                            } else {
                                m.methods.join(",")
                            };
                            format!(
                                "{} {methods} {}",
                                m.name,
                                m.path_regex.as_deref().unwrap_or("(any path)")
                            )
                        })
                        .collect(),
                    None => Vec::new(),
                };
                format!("{} [{}]", r.route_group, names.join("; "))
            })
            .collect();
        let sources: Vec<String> = tt
            .sources
            .iter()
            .map(|s| format!("{}/{}", s.namespace, s.name))
            .collect();
        grants.push(format!(
            "{} on {} (by {})",
            sources.join(", "),
            rules.join(", "),
            tt.name
        ));
    }
    let prefix = if access.mode == AccessMode::DryRun {
        "callers (dry-run, not enforced)"
    } else {
        "callers"
    };
    if grants.is_empty() {
        format!("{prefix}: none")
    } else {
        format!("{prefix}: {}", grants.join("; "))
    }
}
