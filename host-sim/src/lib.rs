//! A native proxy-wasm host (ABI 0.2.1) that runs the built xcluster filter.
//!
//! The [`Host`] loads the real `.wasm` with the pure-Rust engine wasmi, provides the
//! `env.proxy_*` and WASI imports with Envoy's semantics and status codes, and runs any
//! number of worker [`Vm`]s that share its state (shared data, metrics, logs, clock), as
//! Envoy runs one VM per worker thread. A test drives an [`HttpStream`] and then asserts
//! on the state the filter left: headers, the local reply, metrics, logs, http calls.
//! Time is virtual ([`Host::advance`], [`Host::tick`]) and every callback's cost is
//! counted in wasm instructions (wasmi fuel), so it is deterministic.
//!
//! ```no_run
//! use xcluster_host_sim::{Action, Host, HostOptions, VmConfig};
//!
//! # fn main() -> Result<(), xcluster_host_sim::SimError> {
//! let host = Host::load(&xcluster_host_sim::filter_wasm()?, HostOptions::default())?;
//! let vm = host.start_vm(VmConfig::plugin(r#"{"version": 1}"#))?;
//! let mut stream = vm.http_stream()?;
//! stream.set_peer_uri_san("spiffe://cluster.local/ns/default/sa/curl");
//! let action = stream.request_headers(
//!     &[(":method", "GET"), (":path", "/"), (":authority", "reviews")],
//!     true,
//! )?;
//! assert_eq!(action, Action::Continue);
//! assert_eq!(stream.local_reply(), None);
//! assert_eq!(host.counter("xcluster_unmatched_total"), Some(1));
//! println!("{} wasm instructions", stream.instructions());
//! # Ok(()) }
//! ```

pub mod abi;
pub mod dryrun;
mod error;
pub mod headers;
mod host;
mod imports;
mod memory;
pub mod profile;
mod state;
mod stream;
mod vm;
mod wasi;
pub mod yaml;

pub use abi::{Action, LogLevel, Status};
pub use error::SimError;
pub use headers::HeaderMap;
pub use host::{Host, HostOptions, Property, Vm, VmConfig};
pub use state::{HttpCall, LogEntry, LogSource, MetricValue, START_TIME_NS};
pub use stream::{CallbackCost, HttpStream};
pub use vm::{HttpCallResponse, LocalReply};
pub use xcluster_wasm_build::{filter_wasm, WASM_ENV};
