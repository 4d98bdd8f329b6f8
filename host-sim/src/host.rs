//! The simulated Envoy: compiles the module once, starts worker VMs that share its
//! state, drives virtual time (ticks, http-call timeouts) and exposes what the filter did.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use wasmi::{CompilationMode, Config, Engine, Linker, Module, Store};

use crate::abi::LogLevel;
use crate::error::SimError;
use crate::state::{HostState, HttpCall, LogEntry, MetricValue, START_TIME_NS};
use crate::stream::HttpStream;
use crate::vm::{CallbackScope, HttpCallResponse, SharedCore, VmCore, VmData, ROOT_CONTEXT_ID};

/// Options of a simulated host.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Seed of WASI `random_get` (each VM derives its own stream from it).
    pub seed: u64,
    /// Envoy's log level: lines below it are dropped, and `proxy_get_log_level` returns it
    /// (default trace, so tests see every line).
    pub log_level: LogLevel,
    /// Fuel (≈ wasm instructions) one callback may use before it traps as a runaway.
    pub fuel_per_callback: u64,
    /// Run the filter's response callbacks on its own local replies, as Envoy's filter
    /// chain does (a local reply is encoded through every encoder filter).
    pub local_reply_runs_response_callbacks: bool,
    /// Before the first worker VM of a plugin config, configure it once on a throw-away
    /// VM, as Envoy does to vet a config (proxy-wasm-cpp-host's canary): what the filter
    /// does there (shared data, a lease it takes) outlives a VM that never ticks.
    pub canary: bool,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            log_level: LogLevel::Trace,
            fuel_per_callback: 10_000_000_000,
            local_reply_runs_response_callbacks: true,
            canary: true,
        }
    }
}

/// How one VM (Envoy worker) is started.
#[derive(Debug, Clone, Default)]
pub struct VmConfig {
    /// Plugin configuration (Envoy `configuration`), given to `proxy_on_configure`.
    pub plugin_config: Vec<u8>,
    /// VM configuration, given to `proxy_on_vm_start`.
    pub vm_config: Vec<u8>,
    /// VM id; VMs with the same id share shared data and queues (Envoy semantics).
    pub vm_id: String,
    /// Plugin name (property `plugin_name`).
    pub plugin_name: String,
    /// Plugin root id (property `plugin_root_id`).
    pub root_id: String,
}

impl VmConfig {
    /// A VM with this plugin configuration and defaults for the rest.
    pub fn plugin(config: impl Into<Vec<u8>>) -> Self {
        Self {
            plugin_config: config.into(),
            plugin_name: "xcluster".into(),
            ..Self::default()
        }
    }
}

/// A property value, serialized as Envoy does: strings and bytes raw, integers as 8
/// bytes little-endian, booleans as one byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property(pub Vec<u8>);

impl From<&str> for Property {
    fn from(v: &str) -> Self {
        Self(v.as_bytes().to_vec())
    }
}
impl From<String> for Property {
    fn from(v: String) -> Self {
        Self(v.into_bytes())
    }
}
impl From<&[u8]> for Property {
    fn from(v: &[u8]) -> Self {
        Self(v.to_vec())
    }
}
impl From<Vec<u8>> for Property {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}
impl From<u64> for Property {
    fn from(v: u64) -> Self {
        Self(v.to_le_bytes().to_vec())
    }
}
impl From<i64> for Property {
    fn from(v: i64) -> Self {
        Self(v.to_le_bytes().to_vec())
    }
}
impl From<bool> for Property {
    fn from(v: bool) -> Self {
        Self(vec![u8::from(v)])
    }
}

/// Splits a property path given as segments into the host's key.
pub(crate) fn path_key(path: &[&str]) -> Vec<Vec<u8>> {
    path.iter().map(|s| s.as_bytes().to_vec()).collect()
}

struct HostInner {
    state: Rc<RefCell<HostState>>,
    engine: Engine,
    module: Module,
    linker: Linker<VmData>,
    options: HostOptions,
    vms: RefCell<Vec<SharedCore>>,
    /// Plugin configs a canary VM has configured already.
    canaried: RefCell<std::collections::HashSet<Vec<u8>>>,
}

/// A simulated Envoy running one wasm module in any number of worker VMs.
///
/// Cloning gives another handle to the same host.
#[derive(Clone)]
pub struct Host {
    inner: Rc<HostInner>,
}

impl Host {
    /// Compiles `wasm` (binary, or text when it starts with `(`) for a new host.
    pub fn new(wasm: &[u8], options: HostOptions) -> Result<Self, SimError> {
        let mut config = Config::default();
        config
            .consume_fuel(true)
            .compilation_mode(CompilationMode::Eager);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, wasm).map_err(|e| SimError::Load(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        crate::imports::link(&mut linker).map_err(|e| SimError::Load(e.to_string()))?;
        crate::wasi::link(&mut linker).map_err(|e| SimError::Load(e.to_string()))?;
        let state = Rc::new(RefCell::new(HostState::new(options.log_level)));
        Ok(Self {
            inner: Rc::new(HostInner {
                state,
                engine,
                module,
                linker,
                options,
                vms: RefCell::new(Vec::new()),
                canaried: RefCell::default(),
            }),
        })
    }

    /// Reads and compiles the module at `path`.
    pub fn load(path: &Path, options: HostOptions) -> Result<Self, SimError> {
        let wasm = std::fs::read(path)
            .map_err(|e| SimError::Io(format!("cannot read {}: {e}", path.display())))?;
        Self::new(&wasm, options)
    }

    /// The host's options.
    pub fn options(&self) -> &HostOptions {
        &self.inner.options
    }

    /// Starts a worker VM as Envoy does: instantiate, `_initialize` (or `_start`),
    /// create the root context, `proxy_on_vm_start`, `proxy_on_configure`.
    ///
    /// A plugin config the filter rejects is [`SimError::ConfigRejected`]; its log lines
    /// stay in [`Host::logs`].
    pub fn start_vm(&self, config: VmConfig) -> Result<Vm, SimError> {
        let index = self.inner.vms.borrow().len();
        let first = self
            .inner
            .canaried
            .borrow_mut()
            .insert(config.plugin_config.clone());
        if self.inner.options.canary && first {
            // Dropped once configured: it never gets a stream or a tick.
            self.boot(&config, usize::MAX)?;
        }
        let core = Rc::new(RefCell::new(self.boot(&config, index)?));
        self.inner.vms.borrow_mut().push(core.clone());
        let vm = Vm {
            host: self.clone(),
            core,
        };
        self.deliver_queue_events()?;
        Ok(vm)
    }

    /// Instantiates the module and runs it up to a configured root context.
    fn boot(&self, config: &VmConfig, index: usize) -> Result<VmCore, SimError> {
        let mut properties = HashMap::new();
        for (key, value) in [
            ("plugin_name", &config.plugin_name),
            ("plugin_root_id", &config.root_id),
            ("plugin_vm_id", &config.vm_id),
        ] {
            properties.insert(vec![key.as_bytes().to_vec()], value.as_bytes().to_vec());
        }
        let data = VmData {
            host: self.inner.state.clone(),
            index,
            vm_id: config.vm_id.clone(),
            plugin_config: config.plugin_config.clone(),
            vm_config: config.vm_config.clone(),
            properties: properties.into_iter().collect(),
            memory: None,
            malloc: None,
            effective: 0,
            streams: HashMap::new(),
            scope: CallbackScope::default(),
            tick_period_ms: 0,
            next_tick_ns: None,
            rng: self.inner.options.seed
                ^ (index as u64)
                    .wrapping_add(1)
                    .wrapping_mul(0xA076_1D64_78BD_642F),
            done: false,
            root_host_calls: Default::default(),
        };
        let mut store = Store::new(&self.inner.engine, data);
        store
            .set_fuel(self.inner.options.fuel_per_callback)
            .map_err(|e| SimError::Load(e.to_string()))?;
        let instance = self
            .inner
            .linker
            .instantiate_and_start(&mut store, &self.inner.module)
            .map_err(|e| SimError::Load(e.to_string()))?;
        if instance
            .get_func(&store, "proxy_abi_version_0_2_1")
            .is_none()
        {
            return Err(SimError::Abi(
                "the module does not export proxy_abi_version_0_2_1".into(),
            ));
        }
        let memory = instance.get_memory(&store, "memory");
        let malloc = ["proxy_on_memory_allocate", "malloc"]
            .iter()
            .find_map(|name| instance.get_typed_func::<u32, u32>(&store, name).ok());
        store.data_mut().memory = memory;
        store.data_mut().malloc = malloc;
        let mut core = VmCore::new(store, instance, self.inner.options.fuel_per_callback);
        if core.call("_initialize", 0, &[])?.is_none() {
            core.call("_start", 0, &[])?;
        }
        let root = ROOT_CONTEXT_ID;
        core.call("proxy_on_context_create", root, &[root, 0])?;
        let vm_config_len = config.vm_config.len() as u32;
        core.store.data_mut().scope.vm_config = true;
        let started = core.call_bool("proxy_on_vm_start", root, &[root, vm_config_len]);
        core.store.data_mut().scope.vm_config = false;
        if !started? {
            return Err(SimError::VmStartFailed);
        }
        let plugin_len = config.plugin_config.len() as u32;
        core.store.data_mut().scope.plugin_config = true;
        let configured = core.call_bool("proxy_on_configure", root, &[root, plugin_len]);
        core.store.data_mut().scope.plugin_config = false;
        if !configured? {
            return Err(SimError::ConfigRejected);
        }
        Ok(core)
    }

    /// The VM started `index`-th.
    pub fn vm(&self, index: usize) -> Option<Vm> {
        let core = self.inner.vms.borrow().get(index)?.clone();
        Some(Vm {
            host: self.clone(),
            core,
        })
    }

    /// Virtual time since the simulation started.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.state.borrow().now_ns - START_TIME_NS)
    }

    /// Virtual wall-clock time in ns since the Unix epoch (what the filter sees).
    pub fn now_ns(&self) -> u64 {
        self.inner.state.borrow().now_ns
    }

    /// Moves virtual time forward by `by`, firing every tick and http-call timeout that
    /// falls due on the way, in time order.
    pub fn advance(&self, by: Duration) -> Result<(), SimError> {
        let target = self
            .now_ns()
            .saturating_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX));
        while let Some(at) = self.next_event().filter(|at| *at <= target) {
            self.run_events_at(at)?;
        }
        self.inner.state.borrow_mut().now_ns = target;
        Ok(())
    }

    /// Advances virtual time to the next scheduled tick and fires it (every VM due then
    /// ticks). Returns how far time moved.
    pub fn tick(&self) -> Result<Duration, SimError> {
        let next = self
            .next_tick()
            .ok_or_else(|| SimError::Sequence("tick(): no VM has set a tick period".into()))?;
        let before = self.now_ns();
        self.advance(Duration::from_nanos(next.saturating_sub(before)))?;
        Ok(Duration::from_nanos(next.saturating_sub(before)))
    }

    fn next_tick(&self) -> Option<u64> {
        self.inner
            .vms
            .borrow()
            .iter()
            .filter_map(|vm| {
                let vm = vm.borrow();
                (!vm.failed).then(|| vm.store.data().next_tick_ns).flatten()
            })
            .min()
    }

    fn next_event(&self) -> Option<u64> {
        let timeout = self
            .inner
            .state
            .borrow()
            .http_calls
            .iter()
            .map(|c| c.deadline_ns)
            .min();
        match (self.next_tick(), timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn run_events_at(&self, at: u64) -> Result<(), SimError> {
        self.inner.state.borrow_mut().now_ns = at;
        let vms: Vec<SharedCore> = self.inner.vms.borrow().clone();
        for vm in vms {
            let due = {
                let core = vm.borrow();
                !core.failed && core.store.data().next_tick_ns.is_some_and(|t| t <= at)
            };
            if due {
                vm.borrow_mut().fire_tick()?;
                self.deliver_queue_events()?;
            }
        }
        let expired: Vec<u32> = self
            .inner
            .state
            .borrow()
            .http_calls
            .iter()
            .filter(|c| c.deadline_ns <= at)
            .map(|c| c.token)
            .collect();
        for token in expired {
            self.finish_http_call(token, None)?;
        }
        Ok(())
    }

    /// Log lines, in order.
    pub fn logs(&self) -> Vec<LogEntry> {
        self.inner.state.borrow().logs.clone()
    }

    /// Messages logged at exactly `level`, in order.
    pub fn logs_at(&self, level: LogLevel) -> Vec<String> {
        self.inner
            .state
            .borrow()
            .logs
            .iter()
            .filter(|l| l.level == level)
            .map(|l| l.message.clone())
            .collect()
    }

    /// Forgets the log lines so far.
    pub fn clear_logs(&self) {
        self.inner.state.borrow_mut().logs.clear();
    }

    /// Every metric the filter defined, with its value.
    pub fn metrics(&self) -> Vec<(String, MetricValue)> {
        self.inner.state.borrow().metrics()
    }

    /// A counter's value; `None` when the filter never defined it.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.metrics().into_iter().find_map(|(n, v)| match v {
            MetricValue::Counter(c) if n == name => Some(c),
            _ => None,
        })
    }

    /// A gauge's value; `None` when the filter never defined it.
    pub fn gauge(&self, name: &str) -> Option<i64> {
        self.metrics().into_iter().find_map(|(n, v)| match v {
            MetricValue::Gauge(g) if n == name => Some(g),
            _ => None,
        })
    }

    /// The values recorded into a histogram; `None` when the filter never defined it.
    pub fn histogram(&self, name: &str) -> Option<Vec<u64>> {
        self.metrics().into_iter().find_map(|(n, v)| match v {
            MetricValue::Histogram(h) if n == name => Some(h),
            _ => None,
        })
    }

    /// Shared data of the default VM id: value and CAS.
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.inner.state.borrow().get_shared("", key.as_bytes())
    }

    /// The keys of the default VM id's shared data, sorted.
    pub fn shared_data_keys(&self) -> Vec<String> {
        let state = self.inner.state.borrow();
        let mut keys: Vec<String> = state
            .shared
            .keys()
            .filter(|(vm, _)| vm.is_empty())
            .map(|(_, key)| String::from_utf8_lossy(key).into_owned())
            .collect();
        keys.sort();
        keys
    }

    /// Writes shared data of the default VM id (as another plugin would).
    pub fn set_shared_data(&self, key: &str, value: &[u8]) {
        self.inner
            .state
            .borrow_mut()
            .set_shared("", key.as_bytes(), value, 0);
    }

    /// Sets a host-wide property (for example `["node", "locality", "region"]`).
    pub fn set_property(&self, path: &[&str], value: impl Into<Property>) {
        self.inner
            .state
            .borrow_mut()
            .properties
            .insert(path_key(path), value.into().0);
    }

    /// Declares an upstream cluster, so `http_call` to it is accepted.
    pub fn add_cluster(&self, name: &str) {
        self.inner
            .state
            .borrow_mut()
            .clusters
            .insert(name.to_string());
    }

    /// Removes a foreign function (for example `clear_route_cache`, as on an older Envoy).
    pub fn remove_foreign_function(&self, name: &str) {
        self.inner.state.borrow_mut().foreign_functions.remove(name);
    }

    /// Makes import `name` (`proxy_get_header_map_pairs`, `random_get`, ...) fail from now
    /// on, as a broken host would: `InternalFailure` for `env.proxy_*`, `EIO` for WASI. The
    /// call is still counted.
    pub fn fail_import(&self, name: &str) {
        self.inner
            .state
            .borrow_mut()
            .failing_imports
            .insert(name.to_string());
    }

    /// Adds an environment variable the VMs see through WASI (set before `start_vm`).
    pub fn set_env(&self, key: &str, value: &str) {
        self.inner
            .state
            .borrow_mut()
            .env
            .push((key.to_string(), value.to_string()));
    }

    /// Outgoing http calls not answered yet.
    pub fn http_calls(&self) -> Vec<HttpCall> {
        self.inner.state.borrow().http_calls.clone()
    }

    /// Answers an outgoing http call: `proxy_on_http_call_response` runs in the context
    /// that made it.
    pub fn respond_http_call(
        &self,
        token: u32,
        response: HttpCallResponse,
    ) -> Result<(), SimError> {
        self.finish_http_call(token, Some(response))
    }

    /// Delivers a response (or, with `None`, a failure such as a timeout: no headers,
    /// no body) to the VM that made the call.
    fn finish_http_call(
        &self,
        token: u32,
        response: Option<HttpCallResponse>,
    ) -> Result<(), SimError> {
        let call = {
            let mut state = self.inner.state.borrow_mut();
            let at = state
                .http_calls
                .iter()
                .position(|c| c.token == token)
                .ok_or_else(|| SimError::Sequence(format!("no pending http call {token}")))?;
            state.http_calls.remove(at)
        };
        let vm = self
            .vm(call.vm)
            .ok_or_else(|| SimError::Sequence(format!("no vm {}", call.vm)))?;
        let response = response.unwrap_or_default();
        let counts = [
            response.headers.len() as u32,
            response.body.len() as u32,
            response.trailers.len() as u32,
        ];
        {
            let mut core = vm.core.borrow_mut();
            if !core.store.data().streams.contains_key(&call.context_id)
                && call.context_id != ROOT_CONTEXT_ID
            {
                return Ok(()); // the stream ended meanwhile: Envoy cancels the callout
            }
            core.store.data_mut().scope.http_call_response = Some(response);
            let result = core.call(
                "proxy_on_http_call_response",
                call.context_id,
                &[call.context_id, token, counts[0], counts[1], counts[2]],
            );
            core.store.data_mut().scope.http_call_response = None;
            result?;
            crate::stream::after_callback(&mut core, call.context_id, &self.inner.options, None)?;
        }
        self.deliver_queue_events()
    }

    /// Runs `proxy_on_queue_ready` for every enqueue since the last delivery.
    pub(crate) fn deliver_queue_events(&self) -> Result<(), SimError> {
        loop {
            let event = self.inner.state.borrow_mut().queue_events.pop_front();
            let Some((vm, context, queue)) = event else {
                return Ok(());
            };
            if let Some(core) = self.inner.vms.borrow().get(vm).cloned() {
                core.borrow_mut()
                    .call("proxy_on_queue_ready", context, &[context, queue])?;
            }
        }
    }
}

/// One worker VM of a [`Host`]. Cloning gives another handle to the same VM.
#[derive(Clone)]
pub struct Vm {
    pub(crate) host: Host,
    pub(crate) core: SharedCore,
}

impl Vm {
    /// Index of this VM in its host (0 for the first started).
    pub fn index(&self) -> usize {
        self.core.borrow().index()
    }

    /// The host this VM runs in.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Opens an HTTP stream: creates its context (`proxy_on_context_create`).
    pub fn http_stream(&self) -> Result<HttpStream, SimError> {
        HttpStream::open(self.clone())
    }

    /// Runs the root context's `proxy_on_tick` now, without moving time.
    pub fn tick(&self) -> Result<(), SimError> {
        self.core.borrow_mut().fire_tick()?;
        self.host.deliver_queue_events()
    }

    /// The tick period the filter set, if any.
    pub fn tick_period(&self) -> Option<Duration> {
        let period = self.core.borrow().store.data().tick_period_ms;
        (period > 0).then(|| Duration::from_millis(u64::from(period)))
    }

    /// Whether a callback trapped (the VM is dead, as in Envoy).
    pub fn is_failed(&self) -> bool {
        self.core.borrow().failed
    }

    /// Whether the root context called `proxy_done`.
    pub fn done_called(&self) -> bool {
        self.core.borrow().store.data().done
    }

    /// Sets a property of this VM only (it shadows the host's).
    pub fn set_property(&self, path: &[&str], value: impl Into<Property>) {
        self.core
            .borrow_mut()
            .store
            .data_mut()
            .properties
            .insert(path_key(path), value.into().0);
    }

    /// Host calls made outside any stream (start-up, root context, ticks), by import name.
    pub fn root_host_calls(&self) -> std::collections::BTreeMap<String, u64> {
        let core = self.core.borrow();
        let calls = &core.store.data().root_host_calls;
        calls.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    /// Wasm instructions (fuel) the last callback on this VM executed.
    pub fn last_instructions(&self) -> u64 {
        self.core.borrow().last_instructions
    }
}
