//! An empty proxy-wasm HTTP filter for the benchmark's arm (b): it creates a root and an
//! http context per request and otherwise does nothing (every callback keeps the SDK's
//! default, `Continue`), so it costs exactly what hosting any wasm filter costs.
//!
//! Build: `cargo build -p xcluster-bench-noop --release --target wasm32-wasip1`. On other
//! targets the crate is empty.

#[cfg(target_arch = "wasm32")]
mod filter {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{ContextType, LogLevel};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_| Box::new(Root));
    }}

    struct Root;

    impl Context for Root {}

    impl RootContext for Root {
        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Noop))
        }
    }

    struct Noop;

    impl Context for Noop {}

    impl HttpContext for Noop {}
}
