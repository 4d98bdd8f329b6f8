//! The proxy-wasm glue: the only module that talks to the host. It reads what the engine
//! asks for (one bulk read of the request headers, the peer SAN only when access control
//! needs it, `:status` only for outlier detection), hands it to the [`Engine`] and
//! executes the outcome: header operations, the local reply, stats, the log line.

use std::cell::Cell;
use std::ptr::null_mut;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};

use crate::allocator::SizeClasses;
use crate::config::LocalConfig;
use crate::engine::{Engine, Peer};
use crate::header_map::{
    as_str, find_in_header_map, parse_header_map, serialize_header_map, Header,
};
use crate::health::{SharedStore, Write};
use crate::outcome::{HeaderOp, LocalReply, LogEvent, Message, Observe, TickOutcome};
use crate::policy::Policy;
use crate::probe::Probe;
use crate::replay::{self, Replay};
use crate::stats::{Stat, StatKind};

/// Size-class free lists: a request's allocations cost a few instructions each instead
/// of wasi-libc's ≈ 1,400 per `malloc` (see `allocator`).
#[global_allocator]
static ALLOCATOR: SizeClasses = SizeClasses::new();

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(Root::default()));
}}

/// Envoy's tick period for refreshing shared outlier state and the log level.
const TICK: Duration = Duration::from_secs(1);

thread_local! {
    /// The host's log level (Envoy's `wasm` logger), as `LogLevel` numbers.
    static HOST_LOG_LEVEL: Cell<u32> = const { Cell::new(LogLevel::Info as u32) };
}

/// Reads the host's log level, which Envoy's admin `/logging` endpoint can change; on
/// configure and on every tick, not once per line.
///
/// Lines go straight to `proxy_log` rather than through the `log` facade and the SDK's
/// logger (`proxy_wasm::set_log_level`): that route costs 2.3 KB of `.wasm` (a logger and
/// a panic hook) and nothing measurable per request, and the module is already over its
/// 400 KB budget (traded for speed, see `Cargo.toml`); the engine's events carry
/// `log::Level`, so the facade's levels are the filter's.
fn sync_log_level() {
    let level = hostcalls::get_log_level().map_or(LogLevel::Info as u32, |l| l as u32);
    HOST_LOG_LEVEL.with(|l| l.set(level));
}

/// Writes `event` if the host keeps lines of its level; the line is only formatted then.
fn log_event(event: &LogEvent<'_>) {
    let level = match event.level {
        log::Level::Error => LogLevel::Error,
        log::Level::Warn => LogLevel::Warn,
        log::Level::Info => LogLevel::Info,
        log::Level::Debug => LogLevel::Debug,
        log::Level::Trace => LogLevel::Trace,
    };
    if HOST_LOG_LEVEL.with(Cell::get) <= level as u32 {
        let _ = hostcalls::log(level, &event.message.to_string());
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
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

/// Sends the engine's local reply.
fn send_local_reply(reply: &LocalReply<'_>) {
    let one: [Header<'_>; 1];
    let headers: &[Header<'_>] = match &reply.header {
        Some((name, value)) => {
            one = [(name, value.as_bytes())];
            &one
        }
        None => &[],
    };
    let grpc = reply.grpc_status.map_or(-1, |s| s as i32);
    send_local_response(
        reply.status,
        reply.details,
        reply.body.as_bytes(),
        headers,
        grpc,
    );
}

/// Sends a local response with response code details (the SDK's `send_http_response` has
/// no way to pass them); `grpc_status` -1 for none.
fn send_local_response(
    status: u32,
    details: &str,
    body: &[u8],
    headers: &[Header<'_>],
    grpc_status: i32,
) {
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
            grpc_status,
        );
    }
}

fn apply_header(map: MapType, op: &HeaderOp<'_>) {
    let _ = match op {
        HeaderOp::Remove(name) => hostcalls::set_map_value(map, name, None),
        HeaderOp::Set(name, value) => hostcalls::set_map_value(map, name, Some(value)),
        HeaderOp::Add(name, value) => hostcalls::add_map_value(map, name, value),
    };
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

/// The host's shared data (one store per VM id, with compare-and-swap).
struct HostShared;

impl SharedStore for HostShared {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(bytes), Some(cas))) => Some((bytes, cas)),
            _ => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Write {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Write::Done,
            Err(Status::CasMismatch) => Write::CasMismatch,
            Err(_) => Write::Failed,
        }
    }
}

/// The peer certificate's URI SAN, read at most once per request.
#[derive(Default)]
struct PeerSan(Option<Option<Vec<u8>>>);

impl Peer for PeerSan {
    fn uri_san(&mut self) -> Option<&[u8]> {
        self.0
            .get_or_insert_with(|| {
                hostcalls::get_property(vec!["connection", "uri_san_peer_certificate"])
                    .ok()
                    .flatten()
            })
            .as_deref()
    }
}

/// A configured plugin: the engine and the host's ids of its stats, in layout order.
struct Plugin {
    engine: Engine,
    stat_ids: Vec<u32>,
}

impl Plugin {
    fn id(&self, stat: Stat) -> Option<u32> {
        self.stat_ids
            .get(self.engine.stats().index(stat))
            .copied()
            .filter(|&id| id != u32::MAX)
    }

    fn bump<'a>(&self, stats: impl Iterator<Item = &'a Stat>) {
        for &stat in stats {
            if let Some(id) = self.id(stat) {
                let _ = hostcalls::increment_metric(id, 1);
            }
        }
    }

    fn set<'a>(&self, gauges: impl Iterator<Item = &'a (Stat, u64)>) {
        for &(stat, value) in gauges {
            if let Some(id) = self.id(stat) {
                let _ = hostcalls::record_metric(id, value);
            }
        }
    }
}

/// The root context: owns the configured plugin and the health-check probes in flight.
#[derive(Default)]
struct Root {
    plugin: Option<Rc<Plugin>>,
    probes: Vec<(u32, Probe)>,
}

impl Root {
    /// Executes a tick's outcome: sets gauges, sends the due probes.
    fn execute(&mut self, tick: TickOutcome<'_>) {
        let Some(plugin) = self.plugin.clone() else {
            return;
        };
        plugin.set(tick.gauges.iter());
        for call in tick.probes {
            let headers: Vec<(&str, &str)> =
                call.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let timeout = Duration::from_millis(call.timeout_ms);
            match hostcalls::dispatch_http_call(call.cluster, headers, None, vec![], timeout) {
                Ok(token) => self.probes.push((token, call.probe)),
                Err(_) => self.probe_answered(&plugin, call.probe, None),
            }
        }
    }

    fn probe_answered(&self, plugin: &Plugin, probe: Probe, status: Option<u32>) {
        let result = plugin
            .engine
            .on_probe_response(probe, status, &HostShared, now_ms());
        plugin.bump(result.stats.iter());
        if let Some(event) = &result.log {
            log_event(event);
        }
    }
}

/// The gateway's locality from Envoy's node, for what the config leaves out.
fn node_locality() -> LocalConfig {
    LocalConfig {
        cluster: property_string(&["node", "metadata", "CLUSTER_ID"]),
        region: property_string(&["node", "locality", "region"]),
        zone: property_string(&["node", "locality", "zone"]),
        subzone: property_string(&["node", "locality", "sub_zone"]),
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        _body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(at) = self.probes.iter().position(|(t, _)| *t == token_id) else {
            return;
        };
        let (_, probe) = self.probes.swap_remove(at);
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse().ok());
        if let Some(plugin) = self.plugin.clone() {
            self.probe_answered(&plugin, probe, status);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        sync_log_level();
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let policy = match Policy::from_json(&config, &node_locality()) {
            Ok(p) => p,
            Err(e) => {
                log_event(&LogEvent {
                    level: log::Level::Error,
                    message: Message::InvalidConfig(&e),
                });
                return false;
            }
        };
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            seed = now_ms().to_le_bytes();
        }
        let engine = Engine::new(policy, u64::from_le_bytes(seed));
        let stat_ids = engine
            .stats()
            .names(engine.policy())
            .iter()
            .map(|(kind, name)| {
                let kind = match kind {
                    StatKind::Counter => MetricType::Counter,
                    StatKind::Gauge => MetricType::Gauge,
                };
                hostcalls::define_metric(kind, name).unwrap_or(u32::MAX)
            })
            .collect();
        let plugin = Rc::new(Plugin { engine, stat_ids });
        log_event(&plugin.engine.configured());
        self.plugin = Some(Rc::clone(&plugin));
        self.probes.clear();
        self.execute(plugin.engine.on_configure(&HostShared, now_ms()));
        let _ = hostcalls::set_tick_period(TICK);
        true
    }

    fn on_tick(&mut self) {
        sync_log_level();
        if let Some(plugin) = self.plugin.clone() {
            self.execute(plugin.engine.on_tick(&HostShared, now_ms()));
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let plugin = self.plugin.clone()?;
        Some(Box::new(Stream {
            plugin,
            peer: PeerSan::default(),
            observe: None,
            replay: None,
            replaying: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One HTTP stream.
struct Stream {
    plugin: Rc<Plugin>,
    /// The caller's certificate, read at most once per stream.
    peer: PeerSan,
    /// What to observe on the response of a forwarded request.
    observe: Option<Observe>,
    /// The request, kept while it may be replayed to another target.
    replay: Option<Replay>,
    /// A replayed attempt is in flight: the failed response is held.
    replaying: bool,
}

impl Stream {
    /// Sends the held request to the next target the engine names; false when there is
    /// none left (the failed response then goes on).
    fn dispatch_replay(&mut self) -> bool {
        let plugin = Rc::clone(&self.plugin);
        let engine = &plugin.engine;
        while let Some(replay) = self.replay.as_mut() {
            let Some(call) = engine.replay_call(replay, &mut self.peer) else {
                break;
            };
            plugin.bump(std::iter::once(&call.stat));
            let headers: Vec<(&str, &str)> = call
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let timeout = Duration::from_millis(call.timeout_ms);
            let body = replay.body().filter(|b| !b.is_empty());
            if hostcalls::dispatch_http_call(call.cluster, headers, body, vec![], timeout).is_ok() {
                self.replaying = true;
                return true;
            }
            // The host refused the call (an unknown cluster): that target failed too.
            let result = engine.on_replay_response(replay, None, &HostShared, now_ms);
            plugin.bump(result.stat.iter());
            plugin.set(result.gauge.iter());
            if let Some(event) = &result.log {
                log_event(event);
            }
            if !result.again {
                break;
            }
        }
        self.replaying = false;
        false
    }
}

impl Context for Stream {
    fn on_http_call_response(
        &mut self,
        _token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let (Some(observe), Some(replay)) = (self.observe, self.replay.as_mut()) else {
            return;
        };
        // The answer is the filter's own: its response callbacks pass it through.
        self.observe = None;
        let answered_by = replay.current;
        let headers =
            hostcalls::get_map_bytes(MapType::HttpCallResponseHeaders).unwrap_or_default();
        let status = headers
            .iter()
            .find(|(n, _)| n == ":status")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok());
        let plugin = Rc::clone(&self.plugin);
        let result = plugin
            .engine
            .on_replay_response(replay, status, &HostShared, now_ms);
        plugin.bump(result.stat.iter());
        plugin.set(result.gauge.iter());
        if let Some(event) = &result.log {
            log_event(event);
        }
        if result.again && self.dispatch_replay() {
            return;
        }
        self.replaying = false;
        if result.failed {
            if let Some(replay) = &self.replay {
                plugin.bump(std::iter::once(&plugin.engine.replay_failed(replay)));
            }
        }
        let Some(status) = status else {
            // No attempt answered: the first failure goes on as it was.
            let _ = hostcalls::resume_http_response();
            return;
        };
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let decision =
            answered_by.and_then(|t| plugin.engine.replayed_decision_header(&observe, t));
        let mut reply_headers: Vec<Header<'_>> = headers
            .iter()
            .filter(|(n, _)| replay::answer_header(n))
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        if let Some((name, value)) = &decision {
            reply_headers.push((name, value.as_bytes()));
        }
        send_local_response(status, "xcluster_replayed", &body, &reply_headers, -1);
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let plugin = Rc::clone(&self.plugin);
        let engine = &plugin.engine;
        let raw = header_map_bytes(MapType::HttpRequestHeaders);
        let (observe, replied) = {
            let headers = raw.as_deref().and_then(parse_header_map);
            let out = match &headers {
                Some(headers) => engine.on_request_headers(headers, &mut self.peer),
                None => engine.on_unreadable_request(),
            };
            for op in out.headers.iter() {
                apply_header(MapType::HttpRequestHeaders, op);
            }
            if out.clear_route_cache {
                // Older hosts lack the function; Envoy then re-matches on its own.
                let _ = hostcalls::call_foreign_function("clear_route_cache", Some(&[]));
            }
            plugin.bump(out.stats.iter());
            if let Some(event) = &out.log {
                log_event(event);
            }
            if let Some(reply) = &out.reply {
                send_local_reply(reply);
            }
            (out.observe, out.reply.is_some())
        };
        self.observe = observe;
        if let (Some(observe), Some(raw)) = (observe, raw) {
            self.replay = engine.start_replay(&observe, raw);
        }
        if replied {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        if let Some(replay) = self.replay.as_mut() {
            match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size) {
                Ok(Some(chunk)) => replay.buffer_body(&chunk),
                Ok(None) => {}
                Err(_) => replay.spoil(),
            }
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if let Some(replay) = self.replay.as_mut() {
            replay.spoil();
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(observe) = self.observe else {
            return Action::Continue;
        };
        // The whole (small) map costs Envoy about what looking `:status` up does (the
        // bench's `status` and `response_headers` probes, within their spread).
        let status = if observe.status {
            header_map_bytes(MapType::HttpResponseHeaders)
                .as_deref()
                .and_then(|map| find_in_header_map(map, ":status"))
                .and_then(as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        let flags = || {
            hostcalls::get_property(vec!["response", "flags"])
                .ok()
                .flatten()
                .and_then(|b| b.get(..8).and_then(|b| b.try_into().ok()))
                .map_or(0, u64::from_le_bytes)
        };
        let plugin = Rc::clone(&self.plugin);
        let out = plugin.engine.on_response_headers(
            &observe,
            status,
            flags,
            &HostShared,
            now_ms,
            self.replay.as_ref(),
        );
        plugin.bump(out.stat.iter());
        plugin.set(out.gauge.iter());
        if let Some(event) = &out.log {
            log_event(event);
        }
        if out.replay {
            if self.dispatch_replay() {
                return Action::Pause;
            }
            if let Some(replay) = &self.replay {
                plugin.bump(std::iter::once(&plugin.engine.replay_failed(replay)));
            }
        }
        if let Some(op) = &out.header {
            apply_header(MapType::HttpResponseHeaders, op);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        if self.replaying {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}
