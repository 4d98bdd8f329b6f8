//! A human-readable account of the config: per route, its hosts and conditions, and per
//! target its cluster, weight share, locality tier, and which callers may reach it; as
//! text, or as a Mermaid flowchart.

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

/// What a target does under its destination's policy.
enum Role {
    /// Serves this share (percent) of the requests.
    Serves(f64),
    /// Serves this share of the local requests (Locality).
    Local(f64),
    /// Never used (Locality, not local).
    Unused,
    /// Serves this share of the best tier (FailOver).
    Best(f64),
    /// Serves this share of its tier once every better tier is unavailable (FailOver).
    Standby(f64),
}

/// Each target's locality tier and role.
fn roles(dest: &DestinationConfig, local: &LocalConfig) -> Vec<(u32, Role)> {
    let tiers: Vec<u32> = dest.targets.iter().map(|t| tier(t, local)).collect();
    let best = dest
        .targets
        .iter()
        .zip(&tiers)
        .filter(|(t, _)| t.weight > 0)
        .map(|(_, tier)| *tier)
        .min();
    dest.targets
        .iter()
        .zip(&tiers)
        .map(|(t, &tier)| {
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
                LbPolicy::ActiveActive => Role::Serves(share),
                LbPolicy::Locality if tier == 0 => Role::Local(share),
                LbPolicy::Locality => Role::Unused,
                LbPolicy::FailOver if Some(tier) == best => Role::Best(share),
                LbPolicy::FailOver => Role::Standby(share),
            };
            (tier, role)
        })
        .collect()
}

fn write_targets(out: &mut String, model: &Model, dest: &DestinationConfig, local: &LocalConfig) {
    for (t, (tier, role)) in dest.targets.iter().zip(roles(dest, local)) {
        let role = match role {
            Role::Serves(share) => format!("{share:.1}% of requests"),
            Role::Local(share) => format!("{share:.1}% of requests (local)"),
            Role::Unused => "not used: Locality serves the local cluster only".to_string(),
            Role::Best(share) => format!("{share:.1}% of requests (best tier)"),
            Role::Standby(share) => format!(
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

/// The config as a Mermaid flowchart: routes → destinations → targets (edges carry the
/// weight share, nodes the tier), and the callers that may reach each target (dotted,
/// labelled with what they may call); in permissive mode one "any caller" node.
pub fn mermaid(model: &Model) -> String {
    let config = &model.config;
    let local = config.local.clone().unwrap_or_default();
    let mut out = String::from("flowchart LR\n");
    let _ = writeln!(
        out,
        "  %% local cluster {}; access mode {}",
        local
            .cluster
            .as_deref()
            .unwrap_or("(from Envoy node metadata)"),
        mode_name(config.access.mode)
    );
    let index = |name: &str| config.destinations.iter().position(|d| d.name == name);
    for (i, route) in config.routes.iter().enumerate() {
        let Some(d) = index(&route.destination) else {
            continue;
        };
        let dest = &config.destinations[d];
        let _ = writeln!(
            out,
            "  r{i}[\"{}<br/>{}\"] --> d{d}",
            esc(&route.name),
            esc(&describe_match(route, dest))
        );
    }
    for (d, dest) in config.destinations.iter().enumerate() {
        let _ = writeln!(
            out,
            "  d{d}[[\"{}<br/>{:?}\"]]",
            esc(&dest.name),
            dest.policy
        );
        for (k, (t, (tier, role))) in dest.targets.iter().zip(roles(dest, &local)).enumerate() {
            let edge = match role {
                Role::Serves(share) | Role::Local(share) | Role::Best(share) => {
                    format!("{share:.1}%")
                }
                Role::Standby(share) => format!("standby {share:.1}%"),
                Role::Unused => "unused".to_string(),
            };
            let sa = &t.service_account;
            let _ = writeln!(
                out,
                "  d{d} -->|\"{edge}\"| t{d}_{k}(\"{}<br/>cluster {} · tier {tier}<br/>runs as {}/{}\")",
                esc(&t.name),
                esc(&t.cluster),
                esc(&sa.namespace),
                esc(&sa.name)
            );
        }
    }
    let access = &config.access;
    if access.mode == AccessMode::Permissive {
        out.push_str("  anyone([\"any caller (permissive)\"])\n");
        for d in 0..config.destinations.len() {
            let _ = writeln!(out, "  anyone -.-> d{d}");
        }
        return out;
    }
    let mut sources: Vec<String> = Vec::new();
    for (d, dest) in config.destinations.iter().enumerate() {
        for (k, t) in dest.targets.iter().enumerate() {
            for tt in access
                .traffic_targets
                .iter()
                .filter(|tt| tt.destination == t.service_account)
            {
                let rules: Vec<String> = tt
                    .rules
                    .iter()
                    .map(|r| match r.matches.as_slice() {
                        [] => r.route_group.clone(),
                        m => format!("{} {}", r.route_group, m.join(",")),
                    })
                    .collect();
                for s in &tt.sources {
                    let name = format!("{}/{}", s.namespace, s.name);
                    let c = match sources.iter().position(|x| *x == name) {
                        Some(c) => c,
                        None => {
                            sources.push(name.clone());
                            let _ = writeln!(out, "  c{}([\"{}\"])", sources.len() - 1, esc(&name));
                            sources.len() - 1
                        }
                    };
                    let _ = writeln!(out, "  c{c} -.->|\"{}\"| t{d}_{k}", esc(&rules.join("; ")));
                }
            }
        }
    }
    out
}

/// Text for a Mermaid label: quotes, pipes and angle brackets as entities.
fn esc(text: &str) -> String {
    text.replace('"', "#quot;")
        .replace('|', "#124;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
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
