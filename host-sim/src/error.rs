//! Errors of the simulator.

use std::fmt;

/// Anything that can go wrong while loading or driving a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// The module could not be read, compiled or instantiated.
    Load(String),
    /// The module breaks the proxy-wasm ABI (missing export, bad return value, ...).
    Abi(String),
    /// A callback trapped (panic, `unreachable`, out of fuel, `proc_exit`, ...). The VM is
    /// failed from now on, as in Envoy.
    Trap {
        /// Index of the VM.
        vm: usize,
        /// The export that trapped.
        callback: String,
        /// The trap message.
        message: String,
    },
    /// The VM trapped earlier and cannot be called again.
    VmFailed {
        /// Index of the VM.
        vm: usize,
    },
    /// `proxy_on_vm_start` returned false.
    VmStartFailed,
    /// `proxy_on_configure` returned false: Envoy rejects the plugin config.
    ConfigRejected,
    /// The test drove the stream in an order a real Envoy never would.
    Sequence(String),
    /// Reading a file or building the module failed.
    Io(String),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Load(m) => write!(f, "cannot load the wasm module: {m}"),
            Self::Abi(m) => write!(f, "proxy-wasm ABI violation: {m}"),
            Self::Trap {
                vm,
                callback,
                message,
            } => write!(f, "vm {vm} trapped in {callback}: {message}"),
            Self::VmFailed { vm } => write!(f, "vm {vm} failed earlier (it trapped)"),
            Self::VmStartFailed => f.write_str("proxy_on_vm_start returned false"),
            Self::ConfigRejected => {
                f.write_str("proxy_on_configure returned false (plugin config rejected)")
            }
            Self::Sequence(m) => write!(f, "call out of sequence: {m}"),
            Self::Io(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SimError {}

impl From<xcluster_wasm_build::BuildError> for SimError {
    fn from(e: xcluster_wasm_build::BuildError) -> Self {
        Self::Io(e.0)
    }
}
