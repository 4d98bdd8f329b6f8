//! The proxy-wasm glue: the only module that talks to the host. It reads what the engine
//! needs (one bulk header read, the peer SAN only when access control asks for it), applies
//! the decision, and feeds response statuses to outlier detection.

use std::cell::{Cell, RefCell};
use std::ptr::null_mut;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};

use crate::balancer::Rng;
use crate::config::LocalConfig;
use crate::engine::{self, metrics, Decision, ReplyReason};
use crate::health::{self, OutlierDetector};
use crate::matcher::{as_str, parse_header_map, serialize_header_map, Header, Request};
use crate::policy::Policy;

// No panic hook: std's default one writes the message to stderr, which Envoy logs at
// error level before it reports the trap.
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(Root::default()));
}}

/// The host's current log level (Envoy's `wasm` logger), as a number.
fn host_log_level() -> u32 {
    hostcalls::get_log_level().map_or(LogLevel::Info as u32, |l| l as u32)
}

/// Logs through the host (Envoy applies its own log level).
fn log(level: LogLevel, message: std::fmt::Arguments<'_>) {
    let _ = hostcalls::log(level, &message.to_string());
}

/// Envoy's tick period for refreshing shared outlier state and the log level.
const TICK: Duration = Duration::from_secs(1);

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> Status;
}

/// Sends a local reply with response code details (the SDK's `send_http_response` has no
/// way to pass them).
fn send_local_reply(status: u32, details: &str, body: &str, headers: &[Header<'_>]) {
    let headers = serialize_header_map(headers);
    // SAFETY: every pointer and length describes a live buffer the host only reads.
    unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        );
    }
}

/// Reads a whole header map as its serialized bytes (no per-header allocation).
fn header_map_bytes(map: MapType) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size = 0usize;
    // SAFETY: the host writes a buffer it allocated with `proxy_on_memory_allocate`
    // (a boxed slice of exactly `size` bytes) and hands its ownership to us.
    unsafe {
        match proxy_get_header_map_pairs(map, &mut data, &mut size) {
            Status::Ok if !data.is_null() => Some(Vec::from_raw_parts(data, size, size)),
            Status::Ok => Some(Vec::new()),
            _ => None,
        }
    }
}

fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

fn property_string(path: &[&str]) -> Option<String> {
    let bytes = hostcalls::get_property(path.to_vec()).ok()??;
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

fn counter(name: &str) -> u32 {
    hostcalls::define_metric(MetricType::Counter, name).unwrap_or(u32::MAX)
}

fn bump(id: u32) {
    if id != u32::MAX {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

/// Counter ids of one destination.
struct DestinationMetrics {
    routed: Vec<u32>,
    ejected: Vec<u32>,
    denied_no_identity: u32,
    denied_not_allowed: u32,
    dry_run_denied: u32,
    no_healthy: u32,
}

/// Everything a configured plugin shares between its root and http contexts.
struct Plugin {
    policy: Policy,
    unmatched: u32,
    destinations: Vec<DestinationMetrics>,
    detectors: RefCell<Vec<Option<OutlierDetector>>>,
    /// Shared-data key of each destination's ejection table.
    shared_keys: Vec<String>,
    rng: Cell<Rng>,
    /// The host's log level, read at configure and on every tick (so a change through
    /// Envoy's admin `/logging` applies within a tick) instead of once per denial.
    log_level: Cell<u32>,
}

impl Plugin {
    fn new(policy: Policy, seed: u64) -> Self {
        let destinations = policy
            .destinations
            .iter()
            .map(|d| {
                let per_target = |what: &str| {
                    d.targets
                        .iter()
                        .map(|t| counter(&metrics::target(&d.name, what, &t.name)))
                        .collect()
                };
                DestinationMetrics {
                    routed: per_target("routed"),
                    ejected: per_target("ejected"),
                    denied_no_identity: counter(&metrics::destination(
                        &d.name,
                        "denied.no_identity",
                    )),
                    denied_not_allowed: counter(&metrics::destination(
                        &d.name,
                        "denied.not_allowed",
                    )),
                    dry_run_denied: counter(&metrics::destination(&d.name, "dry_run_denied")),
                    no_healthy: counter(&metrics::destination(&d.name, "no_healthy")),
                }
            })
            .collect();
        let detectors = policy
            .destinations
            .iter()
            .map(|d| {
                d.outlier_detection
                    .clone()
                    .map(|c| OutlierDetector::new(c, d.targets.len()))
            })
            .collect();
        let shared_keys = policy
            .destinations
            .iter()
            .map(|d| health::shared_key(&d.name, d.targets.iter().map(|t| t.name.as_str())))
            .collect();
        Self {
            unmatched: counter(metrics::UNMATCHED),
            destinations,
            detectors: RefCell::new(detectors),
            shared_keys,
            log_level: Cell::new(host_log_level()),
            rng: Cell::new(Rng::new(seed)),
            policy,
        }
    }

    /// Whether log lines of `level` would be kept.
    fn log_enabled(&self, level: LogLevel) -> bool {
        self.log_level.get() <= level as u32
    }

    /// Adopts other VMs' ejections and ends expired ones.
    fn refresh_health(&self) {
        let Ok(mut detectors) = self.detectors.try_borrow_mut() else {
            return;
        };
        let now = now_ms();
        for (d, detector) in detectors.iter_mut().enumerate() {
            let Some(detector) = detector else { continue };
            let shared = hostcalls::get_shared_data(&self.shared_keys[d])
                .ok()
                .and_then(|(bytes, _)| bytes)
                .and_then(|b| health::decode(&b));
            match shared {
                Some(table) => detector.adopt(table, now),
                None => detector.expire(now),
            }
        }
    }

    /// Records the response of target `t` of destination `d`.
    fn observe(&self, d: usize, t: usize, status: u32) {
        let Ok(mut detectors) = self.detectors.try_borrow_mut() else {
            return;
        };
        let Some(Some(detector)) = detectors.get_mut(d) else {
            return;
        };
        let outcome = health::classify(status, || {
            hostcalls::get_property(vec!["response", "flags"])
                .ok()
                .flatten()
                .and_then(|b| b.get(..8).and_then(|b| b.try_into().ok()))
                .map_or(0, u64::from_le_bytes)
        });
        if !detector.observe(t, outcome) {
            return;
        }
        let key = &self.shared_keys[d];
        for _ in 0..4 {
            let (bytes, cas) = hostcalls::get_shared_data(key).unwrap_or((None, None));
            let shared = bytes.and_then(|b| health::decode(&b));
            if !detector.eject(t, now_ms(), shared) {
                return;
            }
            match hostcalls::set_shared_data(key, Some(&health::encode(detector.table())), cas) {
                Err(Status::CasMismatch) => continue,
                _ => break,
            }
        }
        let dest = &self.policy.destinations[d];
        log(
            LogLevel::Warn,
            format_args!(
                "xcluster: ejected target={} destination={} after status={status}",
                dest.targets[t].name, dest.name
            ),
        );
        bump(self.destinations[d].ejected[t]);
    }
}

/// The root context: owns the compiled plugin.
#[derive(Default)]
struct Root {
    plugin: Option<Rc<Plugin>>,
}

impl Root {
    fn node_locality() -> LocalConfig {
        LocalConfig {
            cluster: property_string(&["node", "metadata", "CLUSTER_ID"]),
            region: property_string(&["node", "locality", "region"]),
            zone: property_string(&["node", "locality", "zone"]),
            subzone: property_string(&["node", "locality", "sub_zone"]),
        }
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let policy = match Policy::from_json(&config, &Self::node_locality()) {
            Ok(p) => p,
            Err(e) => {
                log(
                    LogLevel::Error,
                    format_args!("xcluster: invalid plugin config: {e}"),
                );
                return false;
            }
        };
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            seed = now_ms().to_le_bytes();
        }
        let plugin = Plugin::new(policy, u64::from_le_bytes(seed));
        let _ = hostcalls::set_tick_period(TICK);
        log(
            LogLevel::Info,
            format_args!(
                "xcluster: configured {} routes, {} destinations, access mode {}",
                plugin.policy.routes.routes().len(),
                plugin.policy.destinations.len(),
                plugin.policy.authorizer.mode().as_str()
            ),
        );
        self.plugin = Some(Rc::new(plugin));
        true
    }

    fn on_tick(&mut self) {
        if let Some(p) = &self.plugin {
            p.log_level.set(host_log_level());
            p.refresh_health();
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let plugin = self.plugin.clone()?;
        Some(Box::new(Stream {
            plugin,
            decision: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One HTTP stream.
struct Stream {
    plugin: Rc<Plugin>,
    decision: Option<Decision>,
}

/// The engine's view of the host during one decision.
struct EngineHost<'a> {
    detectors: &'a [Option<OutlierDetector>],
    /// The peer SAN, once read (kept for the deny log line).
    peer_uri_san: Option<Vec<u8>>,
}

impl engine::Host for EngineHost<'_> {
    fn peer_uri_san(&mut self) -> Option<&[u8]> {
        self.peer_uri_san = hostcalls::get_property(vec!["connection", "uri_san_peer_certificate"])
            .ok()
            .flatten();
        self.peer_uri_san.as_deref()
    }

    fn ejected(&self, d: usize) -> u64 {
        self.detectors
            .get(d)
            .and_then(Option::as_ref)
            .map_or(0, OutlierDetector::ejected_mask)
    }
}

fn pseudo<'a>(headers: &[Header<'a>], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| as_str(v))
        .unwrap_or("")
}

impl Stream {
    /// Decides and applies; also returns the caller for the log when access was denied.
    fn decide(&self) -> (Decision, Option<String>) {
        let policy = &self.plugin.policy;
        let Some(raw) = header_map_bytes(MapType::HttpRequestHeaders) else {
            return (Decision::Pass, None);
        };
        let headers = parse_header_map(&raw).unwrap_or_default();
        for own in [
            Some(&policy.cluster_header),
            policy.decision_header.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(own)) {
                let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, own, None);
            }
        }
        let mut host_buf = String::new();
        let path = pseudo(&headers, ":path");
        let req = Request::new(
            pseudo(&headers, ":method"),
            pseudo(&headers, ":authority"),
            path,
            &headers,
            &mut host_buf,
        );
        let Ok(detectors) = self.plugin.detectors.try_borrow() else {
            let decision = Decision::Reply {
                reason: ReplyReason::NoHealthyTarget,
                route: None,
            };
            return (decision, None);
        };
        let mut host = EngineHost {
            detectors: &detectors,
            peer_uri_san: None,
        };
        let mut rng = self.plugin.rng.replace(Rng::new(0));
        let decision = engine::decide(policy, &req, &mut host, &mut rng);
        self.plugin.rng.set(rng);
        if let Decision::Forward { .. } = decision {
            self.apply(&decision, path);
        }
        // Denials are logged at debug (as Envoy's RBAC does: a denial storm must not flood
        // the log; counters and response code details carry the reason); dry-run
        // would-be denials at info, since reporting them is what the mode is for.
        let level = match decision {
            Decision::Reply {
                reason: ReplyReason::Denied(_),
                ..
            } => Some(LogLevel::Debug),
            Decision::Forward {
                access: engine::Access::DryRunDenied(_),
                ..
            } => Some(LogLevel::Info),
            _ => None,
        };
        let caller = level.filter(|&l| self.plugin.log_enabled(l)).map(|_| {
            let raw = match &policy.identity.trusted_header {
                Some(h) => req.header(h),
                None => host.peer_uri_san.as_deref(),
            };
            engine::printable(raw)
        });
        (decision, caller)
    }

    fn apply(&self, decision: &Decision, path: &str) {
        let Decision::Forward {
            destination,
            target,
            ..
        } = *decision
        else {
            return;
        };
        let policy = &self.plugin.policy;
        let t = &policy.destinations[destination].targets[target];
        let _ = hostcalls::set_map_value(
            MapType::HttpRequestHeaders,
            &policy.cluster_header,
            Some(&t.envoy_cluster),
        );
        if let Some(authority) = &t.authority {
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                ":authority",
                Some(authority),
            );
        }
        if let Some(prefix) = &t.path_prefix {
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                ":path",
                Some(&engine::join_path(prefix, path)),
            );
        }
        // Envoy picks the route before this filter runs: make it look again.
        let _ = hostcalls::call_foreign_function("clear_route_cache", Some(&[]));
    }

    /// Counts the decision and logs a denial when `caller` is given (see `decide`).
    fn count(&self, decision: &Decision, caller: Option<&str>) {
        let p = &self.plugin;
        match *decision {
            Decision::Pass => bump(p.unmatched),
            Decision::Forward {
                destination,
                target,
                access,
                ..
            } => {
                let m = &p.destinations[destination];
                bump(m.routed[target]);
                if let engine::Access::DryRunDenied(reason) = access {
                    bump(m.dry_run_denied);
                    let Some(caller) = caller else { return };
                    log(
                        LogLevel::Info,
                        format_args!(
                            "xcluster: dry-run deny destination={} caller={caller} reason={}",
                            p.policy.destinations[destination].name,
                            reason.as_str()
                        ),
                    );
                }
            }
            Decision::Reply { reason, route } => {
                let Some((r, d)) = route else { return };
                let m = &p.destinations[d];
                match reason {
                    ReplyReason::Denied(why) => {
                        bump(match why {
                            crate::authorizer::DenyReason::NoIdentity => m.denied_no_identity,
                            crate::authorizer::DenyReason::NotAllowed => m.denied_not_allowed,
                        });
                        let Some(caller) = caller else { return };
                        log(
                            LogLevel::Debug,
                            format_args!(
                                "xcluster: deny route={} destination={} caller={caller} reason={}",
                                p.policy.routes.routes()[r].name,
                                p.policy.destinations[d].name,
                                why.as_str()
                            ),
                        );
                    }
                    ReplyReason::NoHealthyTarget => bump(m.no_healthy),
                    ReplyReason::NoRoute => {}
                }
            }
        }
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (decision, caller) = self.decide();
        self.count(&decision, caller.as_deref());
        self.decision = Some(decision);
        if let Decision::Reply { reason, .. } = decision {
            let header = engine::describe(&self.plugin.policy, &decision);
            // Envoy adds `content-type: text/plain` to a local reply with a body.
            let headers: Vec<Header<'_>> = match (&self.plugin.policy.decision_header, &header) {
                (Some(name), Some(value)) => vec![(name.as_str(), value.as_bytes())],
                _ => Vec::new(),
            };
            send_local_reply(reason.status(), reason.details(), reason.body(), &headers);
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(
            decision @ Decision::Forward {
                destination,
                target,
                ..
            },
        ) = self.decision
        else {
            return Action::Continue;
        };
        let plugin = &self.plugin;
        if plugin.policy.destinations[destination]
            .outlier_detection
            .is_some()
        {
            let status = hostcalls::get_map_value(MapType::HttpResponseHeaders, ":status")
                .ok()
                .flatten()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            plugin.observe(destination, target, status);
        }
        if let Some(name) = &plugin.policy.decision_header {
            if let Some(value) = engine::describe(&plugin.policy, &decision) {
                let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, &value);
            }
        }
        Action::Continue
    }
}
