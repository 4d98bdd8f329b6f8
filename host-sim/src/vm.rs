//! One worker VM: a wasm instance of the module with its root context, run with fuel
//! metering so every callback reports the wasm instructions it executed.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use wasmi::{Func, Instance, Memory, Store, TypedFunc, Val};

use crate::abi::{Action, StreamType};
use crate::error::SimError;
use crate::headers::HeaderMap;
use crate::state::{HostState, PropertyMap};

/// Context id of every VM's root context (Envoy allocates ids per VM starting at 1).
pub const ROOT_CONTEXT_ID: u32 = 1;

/// The local reply a filter sent with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status code.
    pub status: u32,
    /// Response code details (Envoy's `%RESPONSE_CODE_DETAILS%`).
    pub details: String,
    /// Extra response headers, names lower-cased.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
    /// gRPC status, or -1 for none.
    pub grpc_status: i32,
}

/// What an `http_call` upstream answered, fed by the test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpCallResponse {
    /// Response headers (with `:status`).
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
    /// Trailers.
    pub trailers: HeaderMap,
}

/// State of one HTTP stream context, written by the host calls of the filter.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub request_headers: Option<HeaderMap>,
    pub request_trailers: Option<HeaderMap>,
    pub response_headers: Option<HeaderMap>,
    pub response_trailers: Option<HeaderMap>,
    pub request_body: Option<Vec<u8>>,
    pub response_body: Option<Vec<u8>>,
    pub local_reply: Option<LocalReply>,
    /// A local reply was sent and its encoder pass (response callbacks) has not run yet.
    pub local_reply_pending: bool,
    pub properties: PropertyMap,
    pub route_cache_cleared: u32,
    pub continued: Vec<StreamType>,
    pub closed: Vec<StreamType>,
    /// Host calls the filter made in this stream's context, by import name.
    pub host_calls: BTreeMap<&'static str, u64>,
    /// Each host call in order, with the fuel left when it was made.
    pub host_call_trace: Vec<(&'static str, u64)>,
    /// Property paths the filter read (segments joined with `.`), in order.
    pub property_reads: Vec<String>,
}

/// What the host makes visible only during one callback.
#[derive(Debug, Default)]
pub(crate) struct CallbackScope {
    pub plugin_config: bool,
    pub vm_config: bool,
    pub http_call_response: Option<HttpCallResponse>,
}

/// The data of a VM's wasm store: everything host calls read and write.
pub(crate) struct VmData {
    pub host: Rc<RefCell<HostState>>,
    pub index: usize,
    pub vm_id: String,
    pub plugin_config: Vec<u8>,
    pub vm_config: Vec<u8>,
    pub properties: PropertyMap,
    pub memory: Option<Memory>,
    pub malloc: Option<TypedFunc<u32, u32>>,
    pub effective: u32,
    pub streams: HashMap<u32, StreamState>,
    pub scope: CallbackScope,
    pub tick_period_ms: u32,
    pub next_tick_ns: Option<u64>,
    pub rng: u64,
    pub done: bool,
    /// Host calls made outside any stream (root context, start-up), by import name.
    pub root_host_calls: BTreeMap<&'static str, u64>,
}

impl VmData {
    /// The stream of the effective context, if it is one.
    pub fn stream(&mut self) -> Option<&mut StreamState> {
        self.streams.get_mut(&self.effective)
    }

    /// Next bytes of the VM's deterministic random stream (SplitMix64).
    pub fn fill_random(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// A VM's wasm store and instance.
pub(crate) struct VmCore {
    pub store: Store<VmData>,
    pub instance: Instance,
    pub failed: bool,
    pub fuel_budget: u64,
    /// Instructions executed by the last top-level call.
    pub last_instructions: u64,
    next_context_id: u32,
}

impl VmCore {
    pub fn new(store: Store<VmData>, instance: Instance, fuel_budget: u64) -> Self {
        Self {
            store,
            instance,
            failed: false,
            fuel_budget,
            last_instructions: 0,
            next_context_id: ROOT_CONTEXT_ID + 1,
        }
    }

    pub fn index(&self) -> usize {
        self.store.data().index
    }

    /// Allocates the id of a new stream context.
    pub fn next_context(&mut self) -> u32 {
        let id = self.next_context_id;
        self.next_context_id = self.next_context_id.wrapping_add(1);
        id
    }

    fn export(&self, name: &str) -> Option<Func> {
        self.instance.get_func(&self.store, name)
    }

    /// Calls export `name` with `args` in `context`; `Ok(None)` when the module does not
    /// export it. Counts the instructions; a trap fails the VM.
    pub fn call(
        &mut self,
        name: &str,
        context: u32,
        args: &[u32],
    ) -> Result<Option<u32>, SimError> {
        let vm = self.index();
        if self.failed {
            return Err(SimError::VmFailed { vm });
        }
        let Some(func) = self.export(name) else {
            return Ok(None);
        };
        let results = func.ty(&self.store).results().len();
        let inputs: Vec<Val> = args.iter().map(|a| Val::I32(*a as i32)).collect();
        let mut outputs = vec![Val::I32(0); results];
        self.store.data_mut().effective = context;
        self.store
            .set_fuel(self.fuel_budget)
            .map_err(|e| SimError::Load(format!("fuel metering is off: {e}")))?;
        let outcome = func.call(&mut self.store, &inputs, &mut outputs);
        let left = self.store.get_fuel().unwrap_or(0);
        self.last_instructions = self.fuel_budget.saturating_sub(left);
        if let Err(error) = outcome {
            if error.i32_exit_status() == Some(0) {
                return Ok(None);
            }
            self.failed = true;
            return Err(SimError::Trap {
                vm,
                callback: name.to_string(),
                message: error.to_string(),
            });
        }
        Ok(outputs.first().and_then(|v| match v {
            Val::I32(x) => Some(*x as u32),
            Val::I64(x) => Some(*x as u32),
            _ => None,
        }))
    }

    /// Calls a callback that returns a filter action (`Continue` when not exported).
    pub fn call_action(
        &mut self,
        name: &str,
        context: u32,
        args: &[u32],
    ) -> Result<Action, SimError> {
        match self.call(name, context, args)? {
            None => Ok(Action::Continue),
            Some(raw) => Action::from_raw(raw)
                .ok_or_else(|| SimError::Abi(format!("{name} returned invalid action {raw}"))),
        }
    }

    /// Calls a callback that returns a bool (`true` when not exported).
    pub fn call_bool(&mut self, name: &str, context: u32, args: &[u32]) -> Result<bool, SimError> {
        Ok(self.call(name, context, args)?.is_none_or(|v| v != 0))
    }

    /// Runs `on_tick` on the root context and schedules the next tick.
    pub fn fire_tick(&mut self) -> Result<(), SimError> {
        let data = self.store.data_mut();
        let now = data.host.borrow().now_ns;
        if data.tick_period_ms > 0 {
            data.next_tick_ns = Some(now + u64::from(data.tick_period_ms) * 1_000_000);
        }
        self.call("proxy_on_tick", ROOT_CONTEXT_ID, &[ROOT_CONTEXT_ID])?;
        Ok(())
    }
}

/// A handle to a VM's core, shared by the [`crate::Vm`] and its streams.
pub(crate) type SharedCore = Rc<RefCell<VmCore>>;
