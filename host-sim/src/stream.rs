//! An HTTP stream through the filter, driven by a test the way Envoy drives it, with
//! sequence guards against orders a real Envoy never produces.

use crate::abi::{Action, StreamType};
use crate::error::SimError;
use crate::headers::HeaderMap;
use crate::host::{path_key, HostOptions, Property, Vm};
use crate::vm::{LocalReply, StreamState, VmCore, ROOT_CONTEXT_ID};

/// Instructions one callback executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackCost {
    /// The export that ran (`proxy_on_request_headers`, ...).
    pub callback: &'static str,
    /// Wasm instructions executed (wasmi fuel: one per operator, bulk memory by size).
    pub instructions: u64,
}

/// One HTTP stream (an Envoy http context) of a [`Vm`].
///
/// Drive it with [`request_headers`](Self::request_headers),
/// [`response_headers`](Self::response_headers), ... then assert on its state:
/// [`request_header`](Self::request_header), [`local_reply`](Self::local_reply), ...
pub struct HttpStream {
    vm: Vm,
    id: u32,
    request_started: bool,
    request_ended: bool,
    request_forwarded: bool,
    response_started: bool,
    response_ended: bool,
    finished: bool,
    costs: Vec<CallbackCost>,
    /// The stream's state once finished (the VM forgets it, the handle keeps it).
    ended: Option<StreamState>,
}

impl HttpStream {
    pub(crate) fn open(vm: Vm) -> Result<Self, SimError> {
        let id = {
            let mut core = vm.core.borrow_mut();
            let id = core.next_context();
            core.store
                .data_mut()
                .streams
                .insert(id, StreamState::default());
            core.call("proxy_on_context_create", id, &[id, ROOT_CONTEXT_ID])?;
            id
        };
        Ok(Self {
            vm,
            id,
            request_started: false,
            request_ended: false,
            request_forwarded: false,
            response_started: false,
            response_ended: false,
            finished: false,
            costs: Vec::new(),
            ended: None,
        })
    }

    /// The stream's context id.
    pub fn context_id(&self) -> u32 {
        self.id
    }

    fn with_state<T>(&self, f: impl FnOnce(&StreamState) -> T) -> Option<T> {
        if let Some(state) = &self.ended {
            return Some(f(state));
        }
        let core = self.vm.core.borrow();
        core.store.data().streams.get(&self.id).map(f)
    }

    fn with_state_mut<T>(&self, f: impl FnOnce(&mut StreamState) -> T) -> Option<T> {
        let mut core = self.vm.core.borrow_mut();
        core.store.data_mut().streams.get_mut(&self.id).map(f)
    }

    fn guard(&self, what: &str) -> Result<(), SimError> {
        let fail = |why: &str| Err(SimError::Sequence(format!("{what}: {why}")));
        if self.finished {
            return fail("the stream is finished");
        }
        if self.with_state(|s| s.local_reply.is_some()) == Some(true) {
            return fail("the filter already answered with a local reply");
        }
        if self.with_state(|s| !s.closed.is_empty()) == Some(true) {
            return fail("the filter reset the stream");
        }
        Ok(())
    }

    /// Runs a stream callback, records its cost and handles what the filter did.
    fn run(&mut self, callback: &'static str, args: &[u32]) -> Result<Action, SimError> {
        let options = self.vm.host.options().clone();
        let action = {
            let mut core = self.vm.core.borrow_mut();
            let action = core.call_action(callback, self.id, args);
            self.costs.push(CallbackCost {
                callback,
                instructions: core.last_instructions,
            });
            let action = action?;
            after_callback(&mut core, self.id, &options, Some(&mut self.costs))?;
            action
        };
        self.vm.host.deliver_queue_events()?;
        Ok(action)
    }

    fn resumed(&self, kind: StreamType) -> bool {
        self.with_state(|s| s.continued.contains(&kind)) == Some(true)
    }

    /// Delivers the request headers (names lower-cased, as Envoy's codecs do).
    pub fn request_headers<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        headers: &[(K, V)],
        end_of_stream: bool,
    ) -> Result<Action, SimError> {
        self.guard("request_headers")?;
        if self.request_started {
            return Err(SimError::Sequence(
                "request_headers: already delivered".into(),
            ));
        }
        let map = HeaderMap::from_pairs(headers);
        let count = map.len() as u32;
        self.with_state_mut(|s| {
            for (key, header) in [
                ("path", ":path"),
                ("host", ":authority"),
                ("method", ":method"),
                ("scheme", ":scheme"),
            ] {
                if let Some(v) = map.get(header.as_bytes()) {
                    s.properties.insert(path_key(&["request", key]), v.to_vec());
                }
            }
            if let Some(path) = map.get(b":path") {
                let url_path = path.split(|b| *b == b'?').next().unwrap_or(path);
                s.properties
                    .insert(path_key(&["request", "url_path"]), url_path.to_vec());
            }
            s.request_headers = Some(map);
        });
        self.request_started = true;
        self.request_ended = end_of_stream;
        let action = self.run(
            "proxy_on_request_headers",
            &[self.id, count, u32::from(end_of_stream)],
        )?;
        self.request_forwarded |= action.is_continue();
        Ok(action)
    }

    /// Delivers a request body chunk. The filter sees everything buffered so far (Envoy
    /// buffers while the filter returns `Pause`).
    pub fn request_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Result<Action, SimError> {
        self.guard("request_body")?;
        if !self.request_started || self.request_ended {
            return Err(SimError::Sequence(
                "request_body: needs request headers without end_of_stream, before the request ended"
                    .into(),
            ));
        }
        let size = self
            .with_state_mut(|s| {
                let body = s.request_body.get_or_insert_with(Vec::new);
                body.extend_from_slice(chunk);
                body.len() as u32
            })
            .unwrap_or(0);
        self.request_ended = end_of_stream;
        let action = self.run(
            "proxy_on_request_body",
            &[self.id, size, u32::from(end_of_stream)],
        )?;
        if action.is_continue() {
            self.request_forwarded = true;
            self.with_state_mut(|s| s.request_body = Some(Vec::new()));
        }
        Ok(action)
    }

    /// Delivers request trailers; they end the request.
    pub fn request_trailers<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        trailers: &[(K, V)],
    ) -> Result<Action, SimError> {
        self.guard("request_trailers")?;
        if !self.request_started || self.request_ended {
            return Err(SimError::Sequence(
                "request_trailers: needs request headers without end_of_stream, before the request ended"
                    .into(),
            ));
        }
        let map = HeaderMap::from_pairs(trailers);
        let count = map.len() as u32;
        self.with_state_mut(|s| s.request_trailers = Some(map));
        self.request_ended = true;
        let action = self.run("proxy_on_request_trailers", &[self.id, count])?;
        self.request_forwarded |= action.is_continue();
        Ok(action)
    }

    /// Sets a property of this stream (it shadows the VM's and the host's).
    pub fn set_property(&mut self, path: &[&str], value: impl Into<Property>) {
        let value = value.into().0;
        self.with_state_mut(|s| s.properties.insert(path_key(path), value));
    }

    /// The caller's mTLS identity: `connection.uri_san_peer_certificate` (and
    /// `connection.mtls` true).
    pub fn set_peer_uri_san(&mut self, uri: &str) {
        self.set_property(&["connection", "uri_san_peer_certificate"], uri);
        self.set_property(&["connection", "mtls"], true);
    }

    /// Envoy's response flags for this stream (`response.flags`, u64), e.g. `0x20` (UF:
    /// upstream connection failure). Set before [`response_headers`](Self::response_headers).
    pub fn set_response_flags(&mut self, flags: u64) {
        self.set_property(&["response", "flags"], flags);
    }

    /// Delivers the upstream's response headers. Needs the request to have been
    /// forwarded (a callback returned `Continue` or the filter resumed it).
    pub fn response_headers<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        headers: &[(K, V)],
        end_of_stream: bool,
    ) -> Result<Action, SimError> {
        self.guard("response_headers")?;
        if !self.request_started {
            return Err(SimError::Sequence(
                "response_headers: the request has not started".into(),
            ));
        }
        if !self.request_forwarded && !self.resumed(StreamType::HttpRequest) {
            return Err(SimError::Sequence(
                "response_headers: the filter paused the request and never resumed it, so no upstream answered"
                    .into(),
            ));
        }
        if self.response_started {
            return Err(SimError::Sequence(
                "response_headers: already delivered".into(),
            ));
        }
        let map = HeaderMap::from_pairs(headers);
        let count = map.len() as u32;
        self.with_state_mut(|s| set_response_properties(s, map));
        self.response_started = true;
        self.response_ended = end_of_stream;
        self.run(
            "proxy_on_response_headers",
            &[self.id, count, u32::from(end_of_stream)],
        )
    }

    /// Delivers a response body chunk (buffered while the filter returns `Pause`).
    pub fn response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Result<Action, SimError> {
        self.guard("response_body")?;
        if !self.response_started || self.response_ended {
            return Err(SimError::Sequence(
                "response_body: needs response headers without end_of_stream, before the response ended"
                    .into(),
            ));
        }
        let size = self
            .with_state_mut(|s| {
                let body = s.response_body.get_or_insert_with(Vec::new);
                body.extend_from_slice(chunk);
                body.len() as u32
            })
            .unwrap_or(0);
        self.response_ended = end_of_stream;
        let action = self.run(
            "proxy_on_response_body",
            &[self.id, size, u32::from(end_of_stream)],
        )?;
        if action.is_continue() {
            self.with_state_mut(|s| s.response_body = Some(Vec::new()));
        }
        Ok(action)
    }

    /// Delivers response trailers; they end the response.
    pub fn response_trailers<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        trailers: &[(K, V)],
    ) -> Result<Action, SimError> {
        self.guard("response_trailers")?;
        if !self.response_started || self.response_ended {
            return Err(SimError::Sequence(
                "response_trailers: needs response headers without end_of_stream, before the response ended"
                    .into(),
            ));
        }
        let map = HeaderMap::from_pairs(trailers);
        let count = map.len() as u32;
        self.with_state_mut(|s| s.response_trailers = Some(map));
        self.response_ended = true;
        self.run("proxy_on_response_trailers", &[self.id, count])
    }

    /// Ends the stream as Envoy does: `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`.
    pub fn finish(&mut self) -> Result<(), SimError> {
        if self.finished {
            return Err(SimError::Sequence("finish: already finished".into()));
        }
        self.finished = true;
        for callback in ["proxy_on_done", "proxy_on_log", "proxy_on_delete"] {
            self.run(callback, &[self.id])?;
        }
        let mut core = self.vm.core.borrow_mut();
        self.ended = core.store.data_mut().streams.remove(&self.id);
        Ok(())
    }

    /// The request headers as they are now (after the filter's changes).
    pub fn request_headers_now(&self) -> HeaderMap {
        self.with_state(|s| s.request_headers.clone())
            .flatten()
            .unwrap_or_default()
    }

    /// A request header's first value now (lossy text); `None` when absent.
    pub fn request_header(&self, name: &str) -> Option<String> {
        self.request_headers_now().get_str(name)
    }

    /// The response headers as they are now (after the filter's changes). For a local
    /// reply these are the reply's headers with `:status`.
    pub fn response_headers_now(&self) -> HeaderMap {
        self.with_state(|s| s.response_headers.clone())
            .flatten()
            .unwrap_or_default()
    }

    /// A response header's first value now (lossy text); `None` when absent.
    pub fn response_header(&self, name: &str) -> Option<String> {
        self.response_headers_now().get_str(name)
    }

    /// The request body buffered by the filter now (empty when it let the chunks pass).
    pub fn request_body_now(&self) -> Vec<u8> {
        self.with_state(|s| s.request_body.clone())
            .flatten()
            .unwrap_or_default()
    }

    /// The local reply the filter sent, if any.
    pub fn local_reply(&self) -> Option<LocalReply> {
        self.with_state(|s| s.local_reply.clone()).flatten()
    }

    /// How often the filter called the `clear_route_cache` foreign function.
    pub fn route_cache_cleared(&self) -> u32 {
        self.with_state(|s| s.route_cache_cleared).unwrap_or(0)
    }

    /// Whether the filter resumed the request with `proxy_continue_stream`.
    pub fn request_resumed(&self) -> bool {
        self.resumed(StreamType::HttpRequest)
    }

    /// Whether the filter resumed the response it paused (`proxy_continue_stream`).
    pub fn response_resumed(&self) -> bool {
        self.resumed(StreamType::HttpResponse)
    }

    /// Whether the filter reset the stream with `proxy_close_stream`.
    pub fn was_reset(&self) -> bool {
        self.with_state(|s| !s.closed.is_empty()) == Some(true)
    }

    /// Host calls the filter made for this stream, by import name (how often it crossed
    /// the VM boundary, and for what).
    pub fn host_calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.with_state(|s| {
            s.host_calls
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect()
        })
        .unwrap_or_default()
    }

    /// Property paths the filter read for this stream (segments joined with `.`), in order.
    pub fn property_reads(&self) -> Vec<String> {
        self.with_state(|s| s.property_reads.clone())
            .unwrap_or_default()
    }

    /// Instructions of every callback that ran on this stream, in order.
    pub fn costs(&self) -> &[CallbackCost] {
        &self.costs
    }

    /// Total wasm instructions the filter executed for this stream.
    pub fn instructions(&self) -> u64 {
        self.costs.iter().map(|c| c.instructions).sum()
    }

    /// The VM this stream runs on.
    pub fn vm(&self) -> &Vm {
        &self.vm
    }
}

/// Installs response headers and the properties Envoy derives from them.
fn set_response_properties(s: &mut StreamState, map: HeaderMap) {
    if let Some(code) = map
        .get(b":status")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        s.properties
            .insert(path_key(&["response", "code"]), code.to_le_bytes().to_vec());
    }
    s.properties
        .entry(path_key(&["response", "flags"]))
        .or_insert_with(|| 0u64.to_le_bytes().to_vec());
    s.response_headers = Some(map);
}

/// After a callback in `context`: if the filter sent a local reply, encode it through
/// the filter's response callbacks as Envoy's filter chain does.
pub(crate) fn after_callback(
    core: &mut VmCore,
    context: u32,
    options: &HostOptions,
    mut costs: Option<&mut Vec<CallbackCost>>,
) -> Result<(), SimError> {
    let reply = {
        let Some(s) = core.store.data_mut().streams.get_mut(&context) else {
            return Ok(());
        };
        if !s.local_reply_pending {
            return Ok(());
        }
        s.local_reply_pending = false;
        let Some(reply) = s.local_reply.clone() else {
            return Ok(());
        };
        let mut headers = HeaderMap::default();
        headers.add(b":status", reply.status.to_string().as_bytes());
        for (k, v) in reply.headers.pairs() {
            headers.add(k, v);
        }
        if !reply.body.is_empty() {
            headers.replace(b"content-length", reply.body.len().to_string().as_bytes());
            if headers.get(b"content-type").is_none() {
                headers.add(b"content-type", b"text/plain");
            }
        }
        set_response_properties(s, headers);
        reply
    };
    if !options.local_reply_runs_response_callbacks {
        return Ok(());
    }
    let mut record = |core: &VmCore, callback: &'static str| {
        if let Some(costs) = costs.as_deref_mut() {
            costs.push(CallbackCost {
                callback,
                instructions: core.last_instructions,
            });
        }
    };
    let count = core
        .store
        .data()
        .streams
        .get(&context)
        .and_then(|s| s.response_headers.as_ref())
        .map_or(0, |h| h.len() as u32);
    let body_len = reply.body.len() as u32;
    core.call_action(
        "proxy_on_response_headers",
        context,
        &[context, count, u32::from(body_len == 0)],
    )?;
    record(core, "proxy_on_response_headers");
    if body_len > 0 {
        if let Some(s) = core.store.data_mut().streams.get_mut(&context) {
            s.response_body = Some(reply.body.clone());
        }
        core.call_action("proxy_on_response_body", context, &[context, body_len, 1])?;
        record(core, "proxy_on_response_body");
    }
    Ok(())
}
