//! SMI access: `HTTPRouteGroup`s and `TrafficTarget`s become the access config.
//! `TCPRoute` rules allow every request (HTTP runs over TCP); `UDPRoute` rules allow none.

use std::collections::BTreeSet;

use xcluster_filter::config::{
    AccessConfig, AccessMode, HttpMatchConfig, RouteGroupConfig, ServiceAccountRef,
    TrafficRuleConfig, TrafficTargetConfig,
};

use super::Builder;
use crate::kinds::{smi, Res};
use crate::load::Error;

impl Builder<'_> {
    /// The access config: every `HTTPRouteGroup`, one catch-all group per `TCPRoute` a
    /// rule names, the `TrafficTarget`s that allow something, and the mode
    /// (`--access-mode`, else enforce when some `TrafficTarget` allows HTTP traffic).
    pub(super) fn access(&mut self) -> Result<AccessConfig, Error> {
        let res = self.res;
        let mut route_groups: Vec<RouteGroupConfig> =
            res.route_groups.iter().map(route_group).collect();
        let mut tcp_groups = BTreeSet::new();
        let mut traffic_targets = Vec::new();
        for tt in &res.traffic_targets {
            traffic_targets.extend(self.traffic_target(tt, &mut tcp_groups)?);
        }
        route_groups.extend(tcp_groups.into_iter().map(|name| RouteGroupConfig {
            name,
            matches: vec![HttpMatchConfig {
                name: ANY_REQUEST.into(),
                path_regex: None,
                methods: Vec::new(),
                headers: Vec::new(),
            }],
        }));
        let mode = match self.access_mode {
            Some(mode) => mode,
            None if !traffic_targets.is_empty() => AccessMode::Enforce,
            None => {
                if !res.traffic_targets.is_empty() {
                    self.warnings.push(
                        "no TrafficTarget allows HTTP traffic: access stays permissive \
                         (--access-mode enforce denies every request)"
                            .to_string(),
                    );
                }
                AccessMode::Permissive
            }
        };
        Ok(AccessConfig {
            mode,
            route_groups,
            traffic_targets,
        })
    }

    /// A `TrafficTarget` over its rules, which must name route groups and matches that
    /// exist; `None` (with a warning) when it allows nothing. `TCPRoute` rules add the
    /// name of their catch-all group to `tcp_groups`.
    fn traffic_target(
        &mut self,
        tt: &Res<smi::TrafficTargetSpec>,
        tcp_groups: &mut BTreeSet<String>,
    ) -> Result<Option<TrafficTargetConfig>, Error> {
        let (rules_field, rules) = tt.spec.all_rules();
        let rules_path = tt.at(rules_field);
        let mut out_rules = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let rpath = format!("{rules_path}[{i}]");
            match rule.kind.as_str() {
                "HTTPRouteGroup" => out_rules.push(self.http_rule(tt, &rpath, rule)?),
                "TCPRoute" => {
                    let name = tcp_group_name(&tt.namespace, &rule.name);
                    if self.tcp_route_ports(&tt.namespace, &rule.name) {
                        self.warnings.push(format!(
                            "{}: {rpath}: TCPRoute {}/{} limits ports; the filter allows \
                             every request on every port",
                            tt.id(),
                            tt.namespace,
                            rule.name
                        ));
                    }
                    out_rules.push(TrafficRuleConfig {
                        route_group: name.clone(),
                        matches: Vec::new(),
                    });
                    tcp_groups.insert(name);
                }
                other => self.warnings.push(format!(
                    "{}: {rpath}: {other} rules allow no HTTP traffic; skipped",
                    tt.id()
                )),
            }
        }
        let identities = std::iter::once(("destination".to_string(), &tt.spec.destination)).chain(
            tt.spec
                .sources
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("sources[{i}]"), s)),
        );
        for (field, identity) in identities {
            if identity.kind != "ServiceAccount" {
                return Err(tt.error(
                    &tt.at(&format!("{field}.kind")),
                    format!(
                        "{} identities are not supported; name a ServiceAccount",
                        identity.kind
                    ),
                ));
            }
        }
        if let Some(port) = tt.spec.destination.port {
            self.warnings.push(format!(
                "{}: {}: the filter cannot limit a TrafficTarget to port {port}; its rules \
                 apply on every port",
                tt.id(),
                tt.at("destination.port")
            ));
        }
        if out_rules.is_empty() || tt.spec.sources.is_empty() {
            self.warnings.push(format!(
                "{}: no HTTP or TCP rules or no sources; it allows nothing and is skipped",
                tt.id()
            ));
            return Ok(None);
        }
        let account = |r: &smi::IdentityRef| ServiceAccountRef {
            namespace: r.namespace.clone().unwrap_or_else(|| tt.namespace.clone()),
            name: r.name.clone(),
        };
        Ok(Some(TrafficTargetConfig {
            name: format!("{}/{}", tt.namespace, tt.name),
            destination: account(&tt.spec.destination),
            sources: tt.spec.sources.iter().map(account).collect(),
            rules: out_rules,
        }))
    }

    /// An `HTTPRouteGroup` rule, whose group and matches must be in the input.
    fn http_rule(
        &self,
        tt: &Res<smi::TrafficTargetSpec>,
        rpath: &str,
        rule: &smi::TrafficRule,
    ) -> Result<TrafficRuleConfig, Error> {
        let group = self
            .res
            .route_groups
            .iter()
            .find(|g| g.namespace == tt.namespace && g.name == rule.name);
        let Some(group) = group else {
            return Err(tt.error(
                &format!("{rpath}.name"),
                format!(
                    "names HTTPRouteGroup {}/{}, which is not in the input",
                    tt.namespace, rule.name
                ),
            ));
        };
        for (k, m) in rule.matches.iter().enumerate() {
            if !group.spec.matches.iter().any(|x| &x.name == m) {
                return Err(tt.error(
                    &format!("{rpath}.matches[{k}]"),
                    format!("{} has no match named {m:?}", group.id()),
                ));
            }
        }
        Ok(TrafficRuleConfig {
            route_group: format!("{}/{}", group.namespace, group.name),
            matches: rule.matches.clone(),
        })
    }

    /// Whether the `TCPRoute` `namespace/name` in the input limits its ports.
    fn tcp_route_ports(&self, namespace: &str, name: &str) -> bool {
        self.res.tcp_routes.iter().any(|r| {
            r.namespace == namespace
                && r.name == name
                && r.spec.matches.as_ref().is_some_and(|m| !m.ports.is_empty())
        })
    }
}

/// The one match of a `TCPRoute`'s catch-all group.
const ANY_REQUEST: &str = "any-request";

/// The route group a `TCPRoute` rule becomes (distinct from an HTTPRouteGroup of the
/// same name, which SMI allows).
fn tcp_group_name(namespace: &str, name: &str) -> String {
    format!("TCPRoute {namespace}/{name}")
}

/// An `HTTPRouteGroup` as the access config names it, `namespace/name`.
fn route_group(g: &Res<smi::HttpRouteGroupSpec>) -> RouteGroupConfig {
    let matches = g
        .spec
        .matches
        .iter()
        .map(|m| HttpMatchConfig {
            name: m.name.clone(),
            path_regex: m.path_regex.clone(),
            methods: m.methods.clone(),
            headers: m
                .headers
                .as_ref()
                .map(|h| h.merged().into_iter().collect())
                .unwrap_or_default(),
        })
        .collect();
    RouteGroupConfig {
        name: format!("{}/{}", g.namespace, g.name),
        matches,
    }
}
