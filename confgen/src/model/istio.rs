//! Istio: `VirtualService` routes and weights, `DestinationRule` subsets, outlier detection
//! and locality failover, `ServiceEntry` hosts.

use xcluster_envoy::UpstreamProtocol;
use xcluster_filter::config::{
    DestinationConfig, HeaderMatchConfig, LbPolicy, OutlierDetectionConfig, PathMatchConfig,
    RouteConfig, RouteMatchConfig, ServiceAccountRef,
};

use super::{
    envoy_cluster_name, service_hosts, Address, Backend, Builder, Draft, EndpointKey, GroupWeight,
    Subset,
};
use crate::kinds::{istio, port_protocol, Res};
use crate::load::Error;

/// What an Istio host names.
pub(super) enum HostRef<'a> {
    /// A Kubernetes service.
    Service { namespace: String, name: String },
    /// A `ServiceEntry` listing the host.
    Entry(&'a Res<istio::ServiceEntrySpec>),
}

impl HostRef<'_> {
    /// Whether both name the same service, or the same `ServiceEntry`.
    fn is(&self, other: &HostRef<'_>) -> bool {
        match (self, other) {
            (
                HostRef::Service { namespace, name },
                HostRef::Service {
                    namespace: other_namespace,
                    name: other_name,
                },
            ) => namespace == other_namespace && name == other_name,
            (HostRef::Entry(a), HostRef::Entry(b)) => std::ptr::eq(*a, *b),
            _ => false,
        }
    }
}

impl<'a> Builder<'a> {
    /// What `host`, written in `namespace`, names: a `ServiceEntry` listing it, else the
    /// Kubernetes service of a short name (in `namespace`) or of
    /// `NAME.NAMESPACE.svc.cluster.local`; `None` for other host names. As Istio
    /// (`ResolveShortnameToFQDN`), only names without dots are expanded: `example.com` and
    /// `reviews.bookinfo` are host names, not services.
    pub(super) fn resolve_host(&self, host: &str, namespace: &str) -> Option<HostRef<'a>> {
        if let Some(se) = self
            .res
            .service_entries
            .iter()
            .find(|se| se.spec.hosts.iter().any(|h| h == host))
        {
            return Some(HostRef::Entry(se));
        }
        let parts: Vec<&str> = host.split('.').collect();
        match parts.as_slice() {
            [name] => Some(HostRef::Service {
                namespace: namespace.to_string(),
                name: name.to_string(),
            }),
            [name, ns, "svc", "cluster", "local"] => Some(HostRef::Service {
                namespace: ns.to_string(),
                name: name.to_string(),
            }),
            _ => None,
        }
    }

    /// The `DestinationRule` for what `host` names.
    fn destination_rule(&self, host: &HostRef<'_>) -> Option<&'a Res<istio::DestinationRuleSpec>> {
        self.res.destination_rules.iter().find(|dr| {
            self.resolve_host(&dr.spec.host, &dr.namespace)
                .is_some_and(|h| h.is(host))
        })
    }

    /// A destination and its routes per `VirtualService` HTTP route.
    pub(super) fn virtual_services(&mut self) -> Result<(), Error> {
        let res = self.res;
        for vs in &res.virtual_services {
            let mut hosts = Vec::new();
            let mut keys = Vec::new();
            for (h, host) in vs.spec.hosts.iter().enumerate() {
                let key = match self.resolve_host(host, &vs.namespace) {
                    Some(HostRef::Service { namespace, name }) => {
                        hosts.extend(service_hosts(&namespace, &name));
                        format!("service {namespace}/{name}")
                    }
                    _ => {
                        hosts.push(host.clone());
                        format!("host {host}")
                    }
                };
                // Two spellings of one service are one claim.
                if !keys.contains(&key) {
                    self.claim(key.clone(), vs, &format!("spec.hosts[{h}]"))?;
                    keys.push(key);
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            hosts.retain(|h| seen.insert(h.clone()));
            let several = vs.spec.http.len() > 1;
            for (i, http) in vs.spec.http.iter().enumerate() {
                let rpath = format!("spec.http[{i}]");
                let base = format!("{}/{}", vs.namespace, vs.name);
                let name = if several {
                    format!(
                        "{base}/{}",
                        http.name.clone().unwrap_or_else(|| i.to_string())
                    )
                } else {
                    base
                };
                self.vs_destination(vs, &rpath, http, &name, &hosts)?;
                let matches = if http.matches.is_empty() {
                    vec![istio::HttpMatchRequest::default()]
                } else {
                    http.matches.clone()
                };
                for (m, mat) in matches.iter().enumerate() {
                    let route_match = istio_match(vs, &format!("{rpath}.match[{m}]"), mat)?;
                    let rname = if matches.len() > 1 {
                        format!("{name}#{m}")
                    } else {
                        name.clone()
                    };
                    self.add_route(
                        &hosts,
                        RouteConfig {
                            name: rname,
                            route_match,
                            destination: name.clone(),
                            replay: None,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// The destination `name` of one HTTP route: its weighted route destinations with
    /// their `DestinationRule` subsets, outlier detection and locality failover.
    fn vs_destination(
        &mut self,
        vs: &Res<istio::VirtualServiceSpec>,
        rpath: &str,
        http: &istio::HttpRoute,
        name: &str,
        hosts: &[String],
    ) -> Result<(), Error> {
        if http.route.is_empty() {
            return Err(vs.error(
                rpath,
                "no route destinations (redirects and direct responses are not supported)",
            ));
        }
        if http.rewrite.as_ref().is_some_and(|r| r.uri.is_some()) {
            return Err(vs.error(
                &format!("{rpath}.rewrite.uri"),
                "path rewrites are not supported",
            ));
        }
        let authority = http.rewrite.as_ref().and_then(|r| r.authority.clone());
        if http.route.len() > 1 {
            let total: u64 = http
                .route
                .iter()
                .map(|r| u64::from(r.weight.unwrap_or(0)))
                .sum();
            if total != 100 {
                return Err(vs.error(
                    &format!("{rpath}.route"),
                    format!("weights sum to {total}; Istio requires 100"),
                ));
            }
        }
        let mut drafts = Vec::new();
        let mut policy = LbPolicy::ActiveActive;
        let mut outlier = None;
        for (j, rd) in http.route.iter().enumerate() {
            let dpath = format!("{rpath}.route[{j}].destination");
            let weight = u64::from(rd.weight.unwrap_or(100));
            let target = self
                .resolve_host(&rd.destination.host, &vs.namespace)
                .ok_or_else(|| {
                    vs.error(
                        &format!("{dpath}.host"),
                        format!(
                            "{:?} is neither a Kubernetes service name nor a ServiceEntry host",
                            rd.destination.host
                        ),
                    )
                })?;
            let dr = self.destination_rule(&target);
            let subset = match &rd.destination.subset {
                None => None,
                Some(s) => {
                    let found = dr.and_then(|dr| dr.spec.subsets.iter().find(|x| &x.name == s));
                    match found {
                        Some(x) => Some(Subset {
                            name: Some(x.name.clone()),
                            labels: x.labels.clone(),
                            traffic_policy: x.traffic_policy.clone(),
                        }),
                        None => {
                            return Err(vs.error(
                                &format!("{dpath}.subset"),
                                format!(
                                    "subset {s:?} is not defined by a DestinationRule for {}",
                                    rd.destination.host
                                ),
                            ))
                        }
                    }
                }
            };
            let rule_policy = dr.and_then(|dr| Some((dr, dr.spec.traffic_policy.as_ref()?)));
            if let Some((dr, tp)) = rule_policy {
                if let (Some(od), None) = (&tp.outlier_detection, &outlier) {
                    outlier = Some(outlier_config(dr, od)?);
                }
                let lb = tp
                    .load_balancer
                    .as_ref()
                    .and_then(|l| l.locality_lb_setting.as_ref());
                if let Some(lb) = lb.filter(|l| l.enabled != Some(false)) {
                    if http.route.len() == 1 && tp.outlier_detection.is_some() {
                        policy = LbPolicy::FailOver;
                    }
                    if !lb.distribute.is_empty() || !lb.failover_priority.is_empty() {
                        self.warnings.push(format!(
                            "{}: localityLbSetting distribute / failoverPriority ignored",
                            dr.id()
                        ));
                    }
                }
            }
            let port = rd.destination.port.as_ref().map(|p| p.number);
            let mut group = match target {
                HostRef::Service { namespace, name } => {
                    let mut group = self.instances(
                        vs,
                        &format!("{dpath}.host"),
                        &namespace,
                        &name,
                        subset,
                        weight,
                    )?;
                    if let Some(port) = port {
                        for d in &mut group {
                            if let Backend::Service { port: p, .. } = &mut d.backend {
                                *p = Some(port);
                            }
                        }
                    }
                    group
                }
                HostRef::Entry(se) => {
                    vec![self.entry_draft(se, &rd.destination.host, port, weight)?]
                }
            };
            if policy == LbPolicy::FailOver {
                if let Some(lb) = dr
                    .and_then(|d| d.spec.traffic_policy.as_ref())
                    .and_then(|t| t.load_balancer.as_ref())
                    .and_then(|l| l.locality_lb_setting.as_ref())
                {
                    self.apply_failover(&mut group, &lb.failover);
                }
            }
            drafts.extend(group);
        }
        for d in &mut drafts {
            d.authority = authority.clone();
        }
        let dest = DestinationConfig {
            name: name.to_string(),
            hosts: hosts.to_vec(),
            policy,
            sticky: None,
            outlier_detection: outlier,
            slow_start: None,
            health_check: None,
            targets: Vec::new(),
        };
        self.add_destination(vs, dest, drafts, false)
    }

    /// Istio region failover: targets in the `to` region of the local region's entry
    /// come right after the local region (priority 3), other regions after them (4).
    fn apply_failover(&self, drafts: &mut [Draft], failover: &[istio::Failover]) {
        let Some(region) = self.local_config.region.as_deref() else {
            return;
        };
        let Some(to) = failover
            .iter()
            .find(|f| f.from == region)
            .map(|f| f.to.as_str())
        else {
            return;
        };
        for d in drafts.iter_mut() {
            match d.locality.region.as_deref() {
                Some(r) if r == region => {}
                Some(r) if r == to => d.priority = Some(3),
                _ => d.priority = Some(4),
            }
        }
    }

    /// The target of a ServiceEntry routed to by `host` (one of its hosts), in the
    /// cluster its label names or, failing that, named after `host`; at `port` (else its
    /// first).
    fn entry_draft(
        &mut self,
        se: &Res<istio::ServiceEntrySpec>,
        host: &str,
        port: Option<u16>,
        weight: u64,
    ) -> Result<Draft, Error> {
        let host = host.to_string();
        let cluster = se
            .cluster_label()
            .map_or_else(|| host.clone(), str::to_string);
        let port = match port {
            Some(n) => se.spec.ports.iter().find(|p| p.number == n),
            None => se.spec.ports.first(),
        };
        let address = se.spec.endpoints.first().and_then(|ep| {
            let p = port.and_then(|p| {
                p.name
                    .as_ref()
                    .and_then(|n| ep.ports.get(n).copied())
                    .or(Some(p.number))
            })?;
            Some(Address {
                host: ep.address.clone(),
                port: p,
                protocol: port.map_or(UpstreamProtocol::Http1, |p| {
                    port_protocol(p.name.as_deref(), p.protocol.as_deref(), None)
                }),
                source: se.id(),
            })
        });
        let envoy_cluster = envoy_cluster_name(&cluster, &se.namespace, &host, None);
        let key = EndpointKey {
            cluster: cluster.clone(),
            namespace: se.namespace.clone(),
            service: host.clone(),
            subset: Vec::new(),
        };
        self.upstream(&envoy_cluster, key.clone(), address)?;
        Ok(Draft {
            key,
            subset: None,
            backend: Backend::Entry {
                host,
                port: port.map(|p| p.number),
            },
            group: GroupWeight::single(weight),
            service_account: ServiceAccountRef {
                namespace: se.namespace.clone(),
                name: "default".into(),
            },
            cluster_key: None,
            envoy_cluster,
            locality: self.locality_of(&cluster),
            priority: None,
            authority: None,
            path_prefix: None,
        })
    }
}

/// A `DestinationRule`'s outlier detection, over the filter's defaults.
fn outlier_config(
    dr: &Res<istio::DestinationRuleSpec>,
    od: &istio::OutlierDetection,
) -> Result<OutlierDetectionConfig, Error> {
    let mut out = OutlierDetectionConfig::default();
    if let Some(n) = od.consecutive_5xx_errors {
        out.consecutive_5xx = n;
    }
    if let Some(n) = od.consecutive_gateway_errors {
        out.consecutive_gateway_errors = n;
    }
    if let Some(t) = &od.base_ejection_time {
        out.base_ejection_time_ms = istio::duration_ms(t).ok_or_else(|| {
            dr.error(
                "spec.trafficPolicy.outlierDetection.baseEjectionTime",
                format!("{t:?} is not a duration such as 30s"),
            )
        })?;
        out.max_ejection_time_ms = out.max_ejection_time_ms.max(out.base_ejection_time_ms);
    }
    if let Some(p) = od.max_ejection_percent {
        out.max_ejection_percent = p;
    }
    Ok(out)
}

/// An HTTP match request as a route match (its hosts are the destination's).
fn istio_match<T>(
    vs: &Res<T>,
    path: &str,
    m: &istio::HttpMatchRequest,
) -> Result<RouteMatchConfig, Error> {
    let one = |p: &str, s: &istio::StringMatch| -> Result<PathMatchConfig, Error> {
        match (&s.exact, &s.prefix, &s.regex) {
            (Some(e), None, None) => Ok(PathMatchConfig::Exact(e.clone())),
            (None, Some(x), None) => Ok(PathMatchConfig::Prefix(x.clone())),
            (None, None, Some(r)) => Ok(PathMatchConfig::Regex(r.clone())),
            _ => Err(vs.error(p, "give exactly one of exact, prefix, regex")),
        }
    };
    let path_match = m
        .uri
        .as_ref()
        .map(|u| one(&format!("{path}.uri"), u))
        .transpose()?;
    let mut headers = Vec::new();
    for (name, sm) in &m.headers {
        let hpath = format!("{path}.headers.{name}");
        let (exact, regex) = match one(&hpath, sm)? {
            PathMatchConfig::Exact(e) => (Some(e), None),
            PathMatchConfig::Prefix(p) => (None, Some(format!("{}.*", escape_regex(&p)))),
            PathMatchConfig::Regex(r) => (None, Some(r)),
        };
        headers.push(HeaderMatchConfig {
            name: name.to_ascii_lowercase(),
            exact,
            regex,
        });
    }
    let methods = match &m.method {
        None => Vec::new(),
        Some(sm) => match one(&format!("{path}.method"), sm)? {
            PathMatchConfig::Exact(e) => vec![e.to_ascii_uppercase()],
            _ => {
                return Err(vs.error(
                    &format!("{path}.method"),
                    "only exact method matches are supported",
                ))
            }
        },
    };
    Ok(RouteMatchConfig {
        hosts: Vec::new(),
        path: path_match,
        methods,
        headers,
    })
}

/// `text` as a regex matching it literally.
fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Resources;
    use crate::model::Options;

    fn service(namespace: &str, name: &str) -> HostRef<'static> {
        HostRef::Service {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn service_host_forms_resolve_in_the_namespace_they_are_written_in() {
        let res = Resources::default();
        let b = Builder::new(&res, &Options::default());
        let resolve = |host| b.resolve_host(host, "bookinfo");
        let reviews = service("bookinfo", "reviews");
        assert!(resolve("reviews").is_some_and(|h| h.is(&reviews)));
        let other = service("other", "reviews");
        assert!(resolve("reviews.other.svc.cluster.local").is_some_and(|h| h.is(&other)));
        assert!(!other.is(&reviews));
        assert!(resolve("reviews.other.svc.cluster").is_none());
        assert!(resolve("reviews.example.com").is_none());
        // Regression: two- and three-label names were taken for NAME.NAMESPACE[.svc]; Istio
        // only expands names without dots, so `example.com` is no service `example` in `com`.
        assert!(resolve("example.com").is_none());
        assert!(resolve("reviews.other").is_none());
        assert!(resolve("reviews.bookinfo.svc").is_none());
    }

    #[test]
    fn header_prefixes_become_literal_regexes() {
        assert_eq!(escape_regex("v1.2-beta"), r"v1\.2\-beta");
        assert_eq!(
            escape_regex("a+b*(c)|[d]{e}^$#&~\\"),
            r"a\+b\*\(c\)\|\[d\]\{e\}\^\$\#\&\~\\"
        );
        assert_eq!(escape_regex("plain/Text_1"), "plain/Text_1");
    }
}
