//! SMI access: `HTTPRouteGroup`s and `TrafficTarget`s become the access config.

use xcluster_filter::config::{
    AccessConfig, AccessMode, HttpMatchConfig, RouteGroupConfig, ServiceAccountRef,
    TrafficRuleConfig, TrafficTargetConfig,
};

use super::Builder;
use crate::kinds::{smi, Res};
use crate::load::Error;

impl Builder<'_> {
    /// The access config: every `HTTPRouteGroup`, the `TrafficTarget`s that allow
    /// something, and the mode (`--access-mode`, else enforce when the input has any
    /// `TrafficTarget`).
    pub(super) fn access(&mut self) -> Result<AccessConfig, Error> {
        let res = self.res;
        let route_groups = res.route_groups.iter().map(route_group).collect();
        let mut traffic_targets = Vec::new();
        for tt in &res.traffic_targets {
            traffic_targets.extend(self.traffic_target(tt)?);
        }
        let mode = self
            .access_mode
            .unwrap_or(if res.traffic_targets.is_empty() {
                AccessMode::Permissive
            } else {
                AccessMode::Enforce
            });
        Ok(AccessConfig {
            mode,
            route_groups,
            traffic_targets,
        })
    }

    /// A `TrafficTarget` over its HTTP rules, which must name route groups and matches
    /// that exist; `None` (with a warning) when it allows nothing.
    fn traffic_target(
        &mut self,
        tt: &Res<smi::TrafficTargetSpec>,
    ) -> Result<Option<TrafficTargetConfig>, Error> {
        let (rules_path, rules) = tt.spec.all_rules();
        let mut out_rules = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let rpath = format!("{rules_path}[{i}]");
            if rule.kind != "HTTPRouteGroup" {
                self.warnings.push(format!(
                    "{}: {rpath}: {} rules are not HTTP; skipped",
                    tt.id(),
                    rule.kind
                ));
                continue;
            }
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
            out_rules.push(TrafficRuleConfig {
                route_group: format!("{}/{}", group.namespace, group.name),
                matches: rule.matches.clone(),
            });
        }
        if out_rules.is_empty() || tt.spec.sources.is_empty() {
            self.warnings.push(format!(
                "{}: no HTTP rules or no sources; it allows nothing and is skipped",
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
