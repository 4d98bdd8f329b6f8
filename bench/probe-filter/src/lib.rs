//! A probe filter for the benchmark: per request it makes exactly the host calls its
//! plugin configuration names (comma-separated), and nothing else, so the benchmark can
//! price each kind of host call xcluster makes against the empty filter:
//!
//! - `headers`: read the whole request header map (`proxy_get_header_map_pairs`);
//! - `values`: read `:path`, `:method`, `:authority` and `x-caller` one by one
//!   (`proxy_get_header_map_value`), the alternative to `headers`;
//! - `set_header`: set request header `x-xcluster-cluster` to `c0`, `c1` or `c2`, 75/15/10
//!   in a fixed cycle of 20 (the benchmark then routes as for xcluster: by that header,
//!   over three clusters);
//! - `clear_route_cache`: call the foreign function `clear_route_cache`;
//! - `metric`: increment a counter;
//! - `status`: read the response `:status` (`proxy_get_header_map_value`);
//! - `response_headers`: read the whole response header map, the alternative to `status`
//!   (xcluster's way);
//! - `log`: log one info line.
//!
//! Unknown names fail the configuration. Build: `cargo build -p xcluster-bench-probe
//! --release --target wasm32-wasip1`. On other targets the crate is empty.

#[cfg(target_arch = "wasm32")]
mod filter {
    use std::cell::Cell;
    use std::ptr::null_mut;
    use std::rc::Rc;

    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{
        Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status,
    };

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| Box::new(Root::default()));
    }}

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_pairs(
            map_type: MapType,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> Status;
    }

    /// Reads a whole header map (`proxy_get_header_map_pairs`) and frees it.
    fn read_map(map: MapType) {
        let mut data: *mut u8 = null_mut();
        let mut size = 0usize;
        // SAFETY: the host hands over a buffer it allocated with
        // `proxy_on_memory_allocate` (exactly `size` bytes); we free it at once.
        unsafe {
            if let Status::Ok = proxy_get_header_map_pairs(map, &mut data, &mut size) {
                if !data.is_null() {
                    drop(Vec::from_raw_parts(data, size, size));
                }
            }
        }
    }

    /// Which calls to make.
    #[derive(Default, Clone, Copy)]
    struct Calls {
        headers: bool,
        values: bool,
        set_header: bool,
        clear_route_cache: bool,
        metric: Option<u32>,
        status: bool,
        response_headers: bool,
        log: bool,
    }

    /// The cluster of the `i`th request of every 20: 15 × c0, 3 × c1, 2 × c2 (75/15/10).
    fn cluster(i: u32) -> &'static str {
        match i % 20 {
            0..15 => "c0",
            15..18 => "c1",
            _ => "c2",
        }
    }

    #[derive(Default)]
    struct Root {
        calls: Rc<Calls>,
        /// Requests seen, for the split of `set_header`.
        requests: Rc<Cell<u32>>,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, size: usize) -> bool {
            let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
                .ok()
                .flatten()
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&config);
            let mut calls = Calls::default();
            for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                match name {
                    "headers" => calls.headers = true,
                    "values" => calls.values = true,
                    "set_header" => calls.set_header = true,
                    "clear_route_cache" => calls.clear_route_cache = true,
                    "metric" => {
                        calls.metric =
                            hostcalls::define_metric(MetricType::Counter, "probe.requests").ok()
                    }
                    "status" => calls.status = true,
                    "response_headers" => calls.response_headers = true,
                    "log" => calls.log = true,
                    other => {
                        log::error!("probe: unknown host call {other:?}");
                        return false;
                    }
                }
            }
            self.calls = Rc::new(calls);
            true
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Probe {
                calls: Rc::clone(&self.calls),
                requests: Rc::clone(&self.requests),
            }))
        }
    }

    struct Probe {
        calls: Rc<Calls>,
        requests: Rc<Cell<u32>>,
    }

    impl Context for Probe {}

    impl HttpContext for Probe {
        fn on_http_request_headers(&mut self, _num_headers: usize, _eos: bool) -> Action {
            let c = *self.calls;
            if c.headers {
                read_map(MapType::HttpRequestHeaders);
            }
            if c.values {
                for name in [":path", ":method", ":authority", "x-caller"] {
                    let _ = hostcalls::get_map_value(MapType::HttpRequestHeaders, name);
                }
            }
            if c.set_header {
                let i = self.requests.get();
                self.requests.set(i.wrapping_add(1));
                let _ = hostcalls::set_map_value(
                    MapType::HttpRequestHeaders,
                    "x-xcluster-cluster",
                    Some(cluster(i)),
                );
            }
            if c.clear_route_cache {
                let _ = hostcalls::call_foreign_function("clear_route_cache", Some(&[]));
            }
            if let Some(id) = c.metric {
                let _ = hostcalls::increment_metric(id, 1);
            }
            if c.log {
                log::info!("probe: request");
            }
            Action::Continue
        }

        fn on_http_response_headers(&mut self, _num_headers: usize, _eos: bool) -> Action {
            if self.calls.status {
                let _ = hostcalls::get_map_value(MapType::HttpResponseHeaders, ":status");
            }
            if self.calls.response_headers {
                read_map(MapType::HttpResponseHeaders);
            }
            Action::Continue
        }
    }
}
