//! The state one simulated Envoy shares between its worker VMs: the virtual clock, shared
//! data (with CAS), shared queues, metrics, logs, properties, upstream clusters, foreign
//! functions and outgoing http calls. Pure logic: no wasm engine here.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::abi::{LogLevel, MetricKind, Pairs, Status};

/// Virtual wall-clock time at which every simulation starts (2024-01-01T00:00:00Z), in ns.
pub const START_TIME_NS: u64 = 1_704_067_200_000_000_000;

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// `proxy_log`.
    Proxy,
    /// WASI `fd_write` to stdout.
    Stdout,
    /// WASI `fd_write` to stderr.
    Stderr,
}

/// One log line written by a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Index of the VM that wrote it.
    pub vm: usize,
    /// Context the VM was running in (0 outside any context).
    pub context_id: u32,
    /// Level (stdout lines are `Info`, stderr lines `Error`).
    pub level: LogLevel,
    /// Where the line came from.
    pub source: LogSource,
    /// The text (non-UTF-8 bytes replaced).
    pub message: String,
}

/// The value of a metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricValue {
    /// A counter's total.
    Counter(u64),
    /// A gauge's current value.
    Gauge(i64),
    /// Every value recorded into a histogram, in order.
    Histogram(Vec<u64>),
}

#[derive(Debug, Clone)]
pub(crate) struct Metric {
    pub name: String,
    pub value: MetricValue,
}

/// An `http_call` the filter dispatched and nobody answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// Token the host returned to the filter.
    pub token: u32,
    /// VM that made the call.
    pub vm: usize,
    /// Context that made the call.
    pub context_id: u32,
    /// Upstream cluster name.
    pub upstream: String,
    /// Request headers.
    pub headers: Pairs,
    /// Request body.
    pub body: Vec<u8>,
    /// Request trailers.
    pub trailers: Pairs,
    /// Timeout in milliseconds.
    pub timeout_ms: u32,
    /// Virtual time (ns) at which the call times out.
    pub deadline_ns: u64,
}

#[derive(Debug)]
pub(crate) struct Queue {
    pub vm_id: String,
    pub name: String,
    pub owner_vm: usize,
    pub owner_context: u32,
    pub items: VecDeque<Vec<u8>>,
}

/// A property path (segments) and its serialized value.
pub(crate) type PropertyMap = BTreeMap<Vec<Vec<u8>>, Vec<u8>>;

/// Shared state of one simulated host.
#[derive(Debug)]
pub(crate) struct HostState {
    pub now_ns: u64,
    pub log_level: LogLevel,
    pub shared: HashMap<(String, Vec<u8>), (Vec<u8>, u32)>,
    next_cas: u32,
    metrics: Vec<Metric>,
    metric_ids: HashMap<(MetricKind, String), u32>,
    pub logs: Vec<LogEntry>,
    pub properties: PropertyMap,
    pub clusters: BTreeSet<String>,
    pub foreign_functions: BTreeSet<String>,
    /// Imports that fail as a broken host would (`InternalFailure`, or WASI `EIO`).
    pub failing_imports: BTreeSet<String>,
    pub http_calls: Vec<HttpCall>,
    next_token: u32,
    pub queues: Vec<Queue>,
    pub queue_events: VecDeque<(usize, u32, u32)>,
    pub env: Vec<(String, String)>,
}

/// First metric id handed out; Envoy's ids are opaque, so start away from 0.
const METRIC_ID_BASE: u32 = 1000;

impl HostState {
    pub fn new(log_level: LogLevel) -> Self {
        Self {
            now_ns: START_TIME_NS,
            log_level,
            shared: HashMap::new(),
            next_cas: 1,
            metrics: Vec::new(),
            metric_ids: HashMap::new(),
            logs: Vec::new(),
            properties: PropertyMap::new(),
            clusters: BTreeSet::new(),
            foreign_functions: ["clear_route_cache".to_string()].into_iter().collect(),
            failing_imports: BTreeSet::new(),
            http_calls: Vec::new(),
            next_token: 1,
            queues: Vec::new(),
            queue_events: VecDeque::new(),
            env: Vec::new(),
        }
    }

    /// `proxy_get_shared_data`: the value and its CAS token.
    pub fn get_shared(&self, vm_id: &str, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        self.shared.get(&(vm_id.to_string(), key.to_vec())).cloned()
    }

    /// `proxy_set_shared_data`: CAS 0 always writes; otherwise it must match.
    pub fn set_shared(&mut self, vm_id: &str, key: &[u8], value: &[u8], cas: u32) -> Status {
        let next = self.next_cas;
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        let slot = (vm_id.to_string(), key.to_vec());
        match self.shared.get_mut(&slot) {
            Some(entry) => {
                if cas != 0 && cas != entry.1 {
                    return Status::CasMismatch;
                }
                *entry = (value.to_vec(), next);
            }
            None => {
                self.shared.insert(slot, (value.to_vec(), next));
            }
        }
        Status::Ok
    }

    /// `proxy_define_metric`: one id per (kind, name), shared by every VM.
    pub fn define_metric(&mut self, kind: MetricKind, name: &str) -> u32 {
        if let Some(id) = self.metric_ids.get(&(kind, name.to_string())) {
            return *id;
        }
        let id = METRIC_ID_BASE + u32::try_from(self.metrics.len()).unwrap_or(u32::MAX - 1);
        let value = match kind {
            MetricKind::Counter => MetricValue::Counter(0),
            MetricKind::Gauge => MetricValue::Gauge(0),
            MetricKind::Histogram => MetricValue::Histogram(Vec::new()),
        };
        self.metrics.push(Metric {
            name: name.to_string(),
            value,
        });
        self.metric_ids.insert((kind, name.to_string()), id);
        id
    }

    fn metric_mut(&mut self, id: u32) -> Option<&mut Metric> {
        let index = usize::try_from(id.checked_sub(METRIC_ID_BASE)?).ok()?;
        self.metrics.get_mut(index)
    }

    /// `proxy_get_metric`.
    pub fn get_metric(&mut self, id: u32) -> Result<u64, Status> {
        match &self.metric_mut(id).ok_or(Status::NotFound)?.value {
            MetricValue::Counter(v) => Ok(*v),
            MetricValue::Gauge(v) => Ok(*v as u64),
            MetricValue::Histogram(_) => Err(Status::BadArgument),
        }
    }

    /// `proxy_record_metric`: counters add, gauges set, histograms record.
    pub fn record_metric(&mut self, id: u32, value: u64) -> Status {
        let Some(metric) = self.metric_mut(id) else {
            return Status::NotFound;
        };
        match &mut metric.value {
            MetricValue::Counter(v) => *v = v.wrapping_add(value),
            MetricValue::Gauge(v) => *v = value as i64,
            MetricValue::Histogram(values) => values.push(value),
        }
        Status::Ok
    }

    /// `proxy_increment_metric`: counters only up, gauges both ways, histograms never.
    pub fn increment_metric(&mut self, id: u32, offset: i64) -> Status {
        let Some(metric) = self.metric_mut(id) else {
            return Status::NotFound;
        };
        match &mut metric.value {
            MetricValue::Counter(v) if offset > 0 => *v = v.wrapping_add(offset as u64),
            MetricValue::Counter(_) => return Status::BadArgument,
            MetricValue::Gauge(v) => *v = v.wrapping_add(offset),
            MetricValue::Histogram(_) => return Status::BadArgument,
        }
        Status::Ok
    }

    /// Every metric by name (a name defined as two kinds appears twice).
    pub fn metrics(&self) -> Vec<(String, MetricValue)> {
        self.metrics
            .iter()
            .map(|m| (m.name.clone(), m.value.clone()))
            .collect()
    }

    /// Appends a log line if its level passes the host's log level (as Envoy filters).
    pub fn log(
        &mut self,
        vm: usize,
        context_id: u32,
        level: LogLevel,
        source: LogSource,
        msg: &[u8],
    ) {
        if level < self.log_level {
            return;
        }
        self.logs.push(LogEntry {
            vm,
            context_id,
            level,
            source,
            message: String::from_utf8_lossy(msg).into_owned(),
        });
    }

    /// Records an outgoing http call and returns its token.
    #[allow(clippy::too_many_arguments)]
    pub fn add_http_call(
        &mut self,
        vm: usize,
        context_id: u32,
        upstream: String,
        headers: Pairs,
        body: Vec<u8>,
        trailers: Pairs,
        timeout_ms: u32,
    ) -> u32 {
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(1);
        self.http_calls.push(HttpCall {
            token,
            vm,
            context_id,
            upstream,
            headers,
            body,
            trailers,
            timeout_ms,
            deadline_ns: self
                .now_ns
                .saturating_add(u64::from(timeout_ms) * 1_000_000),
        });
        token
    }

    /// `proxy_register_shared_queue`: the id of (vm_id, name), owned by the caller.
    pub fn register_queue(&mut self, vm_id: &str, name: &str, vm: usize, context: u32) -> u32 {
        if let Some(id) = self.find_queue(vm_id, name) {
            if let Some(q) = self.queues.get_mut(id as usize) {
                q.owner_vm = vm;
                q.owner_context = context;
            }
            return id;
        }
        self.queues.push(Queue {
            vm_id: vm_id.to_string(),
            name: name.to_string(),
            owner_vm: vm,
            owner_context: context,
            items: VecDeque::new(),
        });
        u32::try_from(self.queues.len() - 1).unwrap_or(u32::MAX)
    }

    /// `proxy_resolve_shared_queue`.
    pub fn find_queue(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// `proxy_enqueue_shared_queue`: queues the item and an `on_queue_ready` for the owner.
    pub fn enqueue(&mut self, id: u32, item: &[u8]) -> Status {
        let Some(queue) = self.queues.get_mut(id as usize) else {
            return Status::NotFound;
        };
        queue.items.push_back(item.to_vec());
        let event = (queue.owner_vm, queue.owner_context, id);
        self.queue_events.push_back(event);
        Status::Ok
    }

    /// `proxy_dequeue_shared_queue`.
    pub fn dequeue(&mut self, id: u32) -> Result<Vec<u8>, Status> {
        let queue = self.queues.get_mut(id as usize).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_data_cas_follows_envoy() {
        let mut s = HostState::new(LogLevel::Trace);
        assert_eq!(s.get_shared("", b"k"), None);
        assert_eq!(s.set_shared("", b"k", b"v1", 0), Status::Ok);
        let (v, cas) = s.get_shared("", b"k").unwrap();
        assert_eq!(v, b"v1");
        assert_eq!(s.set_shared("", b"k", b"v2", cas), Status::Ok);
        assert_eq!(s.set_shared("", b"k", b"v3", cas), Status::CasMismatch);
        assert_eq!(s.get_shared("", b"k").unwrap().0, b"v2");
        assert_eq!(s.get_shared("other-vm-id", b"k"), None);
    }

    #[test]
    fn metrics_follow_envoy() {
        let mut s = HostState::new(LogLevel::Trace);
        let c = s.define_metric(MetricKind::Counter, "c");
        assert_eq!(s.define_metric(MetricKind::Counter, "c"), c);
        let g = s.define_metric(MetricKind::Gauge, "g");
        let h = s.define_metric(MetricKind::Histogram, "h");
        assert_eq!(s.increment_metric(c, 2), Status::Ok);
        assert_eq!(s.increment_metric(c, -1), Status::BadArgument);
        assert_eq!(s.record_metric(c, 3), Status::Ok);
        assert_eq!(s.get_metric(c), Ok(5));
        assert_eq!(s.increment_metric(g, -4), Status::Ok);
        assert_eq!(s.get_metric(g), Ok(-4i64 as u64));
        assert_eq!(s.record_metric(h, 7), Status::Ok);
        assert_eq!(s.get_metric(h), Err(Status::BadArgument));
        assert_eq!(s.increment_metric(h, 1), Status::BadArgument);
        assert_eq!(s.get_metric(1), Err(Status::NotFound));
        assert_eq!(s.record_metric(99_999, 1), Status::NotFound);
    }

    #[test]
    fn logs_below_the_level_are_dropped() {
        let mut s = HostState::new(LogLevel::Info);
        s.log(0, 1, LogLevel::Debug, LogSource::Proxy, b"hidden");
        s.log(0, 1, LogLevel::Warn, LogSource::Proxy, b"shown\xff");
        assert_eq!(s.logs.len(), 1);
        assert_eq!(s.logs[0].message, "shown\u{fffd}");
    }

    #[test]
    fn queues_deliver_in_order() {
        let mut s = HostState::new(LogLevel::Trace);
        let id = s.register_queue("", "q", 0, 1);
        assert_eq!(s.find_queue("", "q"), Some(id));
        assert_eq!(s.find_queue("x", "q"), None);
        assert_eq!(s.dequeue(id), Err(Status::Empty));
        assert_eq!(s.enqueue(id, b"a"), Status::Ok);
        assert_eq!(s.enqueue(id + 1, b"a"), Status::NotFound);
        assert_eq!(s.queue_events.pop_front(), Some((0, 1, id)));
        assert_eq!(s.dequeue(id), Ok(b"a".to_vec()));
    }
}
