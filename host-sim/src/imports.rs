//! The `env.proxy_*` host calls of proxy-wasm ABI 0.2.1, with Envoy's status codes.

use wasmi::{errors::LinkerError, Linker};

use crate::abi::{
    deserialize_pairs, serialize_pairs, split_property_path, BufferType, LogLevel, MapType,
    MetricKind, Status, StreamType,
};
use crate::headers::HeaderMap;
use crate::memory::{
    copy_out, read, read_string, status, write_u32, write_u64, Ctx, Fail, HostResult,
};
use crate::state::LogSource;
use crate::vm::{LocalReply, VmData, ROOT_CONTEXT_ID};

type Ret = Result<u32, wasmi::Error>;

/// Defines every `env.proxy_*` import in `linker`.
pub(crate) fn link(linker: &mut Linker<VmData>) -> Result<(), LinkerError> {
    const M: &str = "env";
    linker.func_wrap(
        M,
        "proxy_log",
        |mut c: Ctx, level: u32, p: u32, n: u32| -> Ret {
            if note(&mut c, "proxy_log") {
                return Ok(Status::InternalFailure as u32);
            }
            status(log(&mut c, level, p, n))
        },
    )?;
    linker.func_wrap(M, "proxy_get_log_level", |mut c: Ctx, out: u32| -> Ret {
        if note(&mut c, "proxy_get_log_level") {
            return Ok(Status::InternalFailure as u32);
        }
        let level = c.data().host.borrow().log_level as u32;
        status(write_u32(&mut c, out, level))
    })?;
    linker.func_wrap(
        M,
        "proxy_get_current_time_nanoseconds",
        |mut c: Ctx, out: u32| -> Ret {
            if note(&mut c, "proxy_get_current_time_nanoseconds") {
                return Ok(Status::InternalFailure as u32);
            }
            let now = c.data().host.borrow().now_ns;
            status(write_u64(&mut c, out, now))
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_set_tick_period_milliseconds",
        |mut c: Ctx, period: u32| -> Ret {
            if note(&mut c, "proxy_set_tick_period_milliseconds") {
                return Ok(Status::InternalFailure as u32);
            }
            let data = c.data_mut();
            let now = data.host.borrow().now_ns;
            data.tick_period_ms = period;
            data.next_tick_ns = (period > 0).then(|| now + u64::from(period) * 1_000_000);
            Ok(Status::Ok as u32)
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_get_buffer_bytes",
        |mut c: Ctx, t: u32, start: u32, max: u32, pp: u32, sp: u32| -> Ret {
            if note(&mut c, "proxy_get_buffer_bytes") {
                return Ok(Status::InternalFailure as u32);
            }
            status(get_buffer(&mut c, t, start, max, pp, sp))
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_set_buffer_bytes",
        |mut c: Ctx, t: u32, start: u32, size: u32, p: u32, n: u32| -> Ret {
            if note(&mut c, "proxy_set_buffer_bytes") {
                return Ok(Status::InternalFailure as u32);
            }
            status(set_buffer(&mut c, t, start, size, p, n))
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_get_header_map_pairs",
        |mut c: Ctx, t: u32, pp: u32, sp: u32| -> Ret {
            if note(&mut c, "proxy_get_header_map_pairs") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let bytes = serialize_pairs(map(&mut c, t)?.pairs());
                copy_out(&mut c, &bytes, pp, sp)
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_set_header_map_pairs",
        |mut c: Ctx, t: u32, p: u32, n: u32| -> Ret {
            if note(&mut c, "proxy_set_header_map_pairs") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let pairs = deserialize_pairs(&read(&c, p, n)?).ok_or(Status::BadArgument)?;
                map(&mut c, t)?.set_all(&pairs);
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_get_header_map_value",
        |mut c: Ctx, t: u32, kp: u32, kn: u32, pp: u32, sp: u32| -> Ret {
            if note(&mut c, "proxy_get_header_map_value") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let key = read(&c, kp, kn)?;
                let value = map(&mut c, t)?
                    .get(&key)
                    .map(<[u8]>::to_vec)
                    .ok_or(Status::NotFound)?;
                copy_out(&mut c, &value, pp, sp)
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_remove_header_map_value",
        |mut c: Ctx, t: u32, kp: u32, kn: u32| -> Ret {
            if note(&mut c, "proxy_remove_header_map_value") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let key = read(&c, kp, kn)?;
                map(&mut c, t)?.remove(&key);
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_replace_header_map_value",
        |mut c: Ctx, t: u32, kp: u32, kn: u32, vp: u32, vn: u32| -> Ret {
            if note(&mut c, "proxy_replace_header_map_value") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let (key, value) = (read(&c, kp, kn)?, read(&c, vp, vn)?);
                map(&mut c, t)?.replace(&key, &value);
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_add_header_map_value",
        |mut c: Ctx, t: u32, kp: u32, kn: u32, vp: u32, vn: u32| -> Ret {
            if note(&mut c, "proxy_add_header_map_value") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let (key, value) = (read(&c, kp, kn)?, read(&c, vp, vn)?);
                map(&mut c, t)?.add(&key, &value);
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_get_property",
        |mut c: Ctx, p: u32, n: u32, pp: u32, sp: u32| -> Ret {
            if note(&mut c, "proxy_get_property") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let path = split_property_path(&read(&c, p, n)?);
                if let Some(stream) = c.data_mut().stream() {
                    let dotted: Vec<String> = path
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect();
                    stream.property_reads.push(dotted.join("."));
                }
                let value = property(c.data(), &path).ok_or(Status::NotFound)?;
                copy_out(&mut c, &value, pp, sp)
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_set_property",
        |mut c: Ctx, p: u32, n: u32, vp: u32, vn: u32| -> Ret {
            if note(&mut c, "proxy_set_property") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let path = split_property_path(&read(&c, p, n)?);
                let value = read(&c, vp, vn)?;
                let data = c.data_mut();
                match data.stream() {
                    Some(stream) => stream.properties.insert(path, value),
                    None => data.properties.insert(path, value),
                };
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_get_shared_data",
        |mut c: Ctx, kp: u32, kn: u32, pp: u32, sp: u32, cas: u32| -> Ret {
            if note(&mut c, "proxy_get_shared_data") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let key = read(&c, kp, kn)?;
                let found = {
                    let data = c.data();
                    data.host.borrow().get_shared(&data.vm_id, &key)
                };
                let (value, token) = found.ok_or(Status::NotFound)?;
                copy_out(&mut c, &value, pp, sp)?;
                write_u32(&mut c, cas, token)
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_set_shared_data",
        |mut c: Ctx, kp: u32, kn: u32, vp: u32, vn: u32, cas: u32| -> Ret {
            if note(&mut c, "proxy_set_shared_data") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let (key, value) = (read(&c, kp, kn)?, read(&c, vp, vn)?);
                let data = c.data();
                let result = data
                    .host
                    .borrow_mut()
                    .set_shared(&data.vm_id, &key, &value, cas);
                check(result)
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_register_shared_queue",
        |mut c: Ctx, p: u32, n: u32, out: u32| -> Ret {
            if note(&mut c, "proxy_register_shared_queue") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let name = read_string(&c, p, n)?;
                let data = c.data();
                let id = data.host.borrow_mut().register_queue(
                    &data.vm_id,
                    &name,
                    data.index,
                    ROOT_CONTEXT_ID,
                );
                write_u32(&mut c, out, id)
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_resolve_shared_queue",
        |mut c: Ctx, vp: u32, vn: u32, p: u32, n: u32, out: u32| -> Ret {
            if note(&mut c, "proxy_resolve_shared_queue") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let (vm_id, name) = (read_string(&c, vp, vn)?, read_string(&c, p, n)?);
                let id = c.data().host.borrow().find_queue(&vm_id, &name);
                write_u32(&mut c, out, id.ok_or(Status::NotFound)?)
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_dequeue_shared_queue",
        |mut c: Ctx, id: u32, pp: u32, sp: u32| -> Ret {
            if note(&mut c, "proxy_dequeue_shared_queue") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let item = c.data().host.borrow_mut().dequeue(id)?;
                copy_out(&mut c, &item, pp, sp)
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_enqueue_shared_queue",
        |mut c: Ctx, id: u32, p: u32, n: u32| -> Ret {
            if note(&mut c, "proxy_enqueue_shared_queue") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let item = read(&c, p, n)?;
                let result = c.data().host.borrow_mut().enqueue(id, &item);
                check(result)
            })())
        },
    )?;
    linker.func_wrap(M, "proxy_continue_stream", |mut c: Ctx, t: u32| -> Ret {
        if note(&mut c, "proxy_continue_stream") {
            return Ok(Status::InternalFailure as u32);
        }
        status(stream_op(&mut c, t, true))
    })?;
    linker.func_wrap(M, "proxy_close_stream", |mut c: Ctx, t: u32| -> Ret {
        if note(&mut c, "proxy_close_stream") {
            return Ok(Status::InternalFailure as u32);
        }
        status(stream_op(&mut c, t, false))
    })?;
    linker.func_wrap(
        M,
        "proxy_send_local_response",
        |mut c: Ctx,
         code: u32,
         dp: u32,
         dn: u32,
         bp: u32,
         bn: u32,
         hp: u32,
         hn: u32,
         grpc: i32|
         -> Ret {
            if note(&mut c, "proxy_send_local_response") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let details = read_string(&c, dp, dn)?;
                let body = read(&c, bp, bn)?;
                let headers = deserialize_pairs(&read(&c, hp, hn)?).ok_or(Status::BadArgument)?;
                let stream = c.data_mut().stream().ok_or(Status::BadArgument)?;
                if stream.local_reply.is_some() {
                    return Err(Status::BadArgument.into());
                }
                stream.local_reply = Some(LocalReply {
                    status: code,
                    details,
                    headers: HeaderMap::from_pairs(&headers),
                    body,
                    grpc_status: grpc,
                });
                stream.local_reply_pending = true;
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_http_call",
        |mut c: Ctx,
         up: u32,
         un: u32,
         hp: u32,
         hn: u32,
         bp: u32,
         bn: u32,
         tp: u32,
         tn: u32,
         timeout: u32,
         out: u32|
         -> Ret {
            if note(&mut c, "proxy_http_call") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let upstream = read_string(&c, up, un)?;
                let headers = deserialize_pairs(&read(&c, hp, hn)?).ok_or(Status::BadArgument)?;
                let body = read(&c, bp, bn)?;
                let trailers = deserialize_pairs(&read(&c, tp, tn)?).ok_or(Status::BadArgument)?;
                let map = HeaderMap::from_pairs(&headers);
                let required = [&b":method"[..], b":path", b":authority"];
                if required.iter().any(|h| map.get(h).is_none()) {
                    return Err(Status::BadArgument.into());
                }
                let token = {
                    let data = c.data();
                    let mut host = data.host.borrow_mut();
                    if !host.clusters.contains(&upstream) {
                        return Err(Status::BadArgument.into());
                    }
                    host.add_http_call(
                        data.index,
                        data.effective,
                        upstream,
                        map.pairs().clone(),
                        body,
                        trailers,
                        timeout,
                    )
                };
                write_u32(&mut c, out, token)
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_grpc_call",
        |mut c: Ctx,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32|
         -> Ret {
            if note(&mut c, "proxy_grpc_call") {
                return Ok(Status::InternalFailure as u32);
            }
            Ok(Status::InternalFailure as u32)
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_grpc_stream",
        |mut c: Ctx,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32|
         -> Ret {
            if note(&mut c, "proxy_grpc_stream") {
                return Ok(Status::InternalFailure as u32);
            }
            Ok(Status::InternalFailure as u32)
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_grpc_send",
        |mut c: Ctx, _: u32, _: u32, _: u32, _: u32| -> Ret {
            if note(&mut c, "proxy_grpc_send") {
                return Ok(Status::InternalFailure as u32);
            }
            Ok(Status::NotFound as u32)
        },
    )?;
    linker.func_wrap(M, "proxy_grpc_cancel", |mut c: Ctx, _: u32| -> Ret {
        if note(&mut c, "proxy_grpc_cancel") {
            return Ok(Status::InternalFailure as u32);
        }
        Ok(Status::NotFound as u32)
    })?;
    linker.func_wrap(M, "proxy_grpc_close", |mut c: Ctx, _: u32| -> Ret {
        if note(&mut c, "proxy_grpc_close") {
            return Ok(Status::InternalFailure as u32);
        }
        Ok(Status::NotFound as u32)
    })?;
    linker.func_wrap(
        M,
        "proxy_get_status",
        |mut c: Ctx, _: u32, _: u32, _: u32| -> Ret {
            if note(&mut c, "proxy_get_status") {
                return Ok(Status::InternalFailure as u32);
            }
            Ok(Status::NotFound as u32)
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_set_effective_context",
        |mut c: Ctx, id: u32| -> Ret {
            if note(&mut c, "proxy_set_effective_context") {
                return Ok(Status::InternalFailure as u32);
            }
            let data = c.data_mut();
            if id == ROOT_CONTEXT_ID || data.streams.contains_key(&id) {
                data.effective = id;
                Ok(Status::Ok as u32)
            } else {
                Ok(Status::BadArgument as u32)
            }
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_call_foreign_function",
        |mut c: Ctx, np: u32, nn: u32, _ap: u32, _an: u32, _pp: u32, _sp: u32| -> Ret {
            if note(&mut c, "proxy_call_foreign_function") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let name = read_string(&c, np, nn)?;
                let data = c.data_mut();
                if !data.host.borrow().foreign_functions.contains(&name) {
                    return Err(Status::NotFound.into());
                }
                if name == "clear_route_cache" {
                    if let Some(stream) = data.stream() {
                        stream.route_cache_cleared += 1;
                    }
                }
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(M, "proxy_done", |mut c: Ctx| -> Ret {
        if note(&mut c, "proxy_done") {
            return Ok(Status::InternalFailure as u32);
        }
        c.data_mut().done = true;
        Ok(Status::Ok as u32)
    })?;
    linker.func_wrap(
        M,
        "proxy_define_metric",
        |mut c: Ctx, t: u32, p: u32, n: u32, out: u32| -> Ret {
            if note(&mut c, "proxy_define_metric") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let kind = MetricKind::from_raw(t).ok_or(Status::BadArgument)?;
                let name = read_string(&c, p, n)?;
                let id = c.data().host.borrow_mut().define_metric(kind, &name);
                write_u32(&mut c, out, id)
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_get_metric",
        |mut c: Ctx, id: u32, out: u32| -> Ret {
            if note(&mut c, "proxy_get_metric") {
                return Ok(Status::InternalFailure as u32);
            }
            status((|| {
                let value = c.data().host.borrow_mut().get_metric(id)?;
                write_u64(&mut c, out, value)
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_record_metric",
        |mut c: Ctx, id: u32, value: u64| -> Ret {
            if note(&mut c, "proxy_record_metric") {
                return Ok(Status::InternalFailure as u32);
            }
            let result = c.data().host.borrow_mut().record_metric(id, value);
            Ok(result as u32)
        },
    )?;
    linker.func_wrap(
        M,
        "proxy_increment_metric",
        |mut c: Ctx, id: u32, offset: i64| -> Ret {
            if note(&mut c, "proxy_increment_metric") {
                return Ok(Status::InternalFailure as u32);
            }
            let result = c.data().host.borrow_mut().increment_metric(id, offset);
            Ok(result as u32)
        },
    )?;
    Ok(())
}

/// Counts a host call against the effective context (a stream, or the VM's root); true
/// when the test made this import fail ([`crate::Host::fail_import`]).
fn note(c: &mut Ctx<'_>, name: &'static str) -> bool {
    let fuel = c.get_fuel().unwrap_or(0);
    let data = c.data_mut();
    let calls = match data.streams.get_mut(&data.effective) {
        Some(stream) => {
            stream.host_call_trace.push((name, fuel));
            &mut stream.host_calls
        }
        None => &mut data.root_host_calls,
    };
    *calls.entry(name).or_default() += 1;
    data.host.borrow().failing_imports.contains(name)
}

fn check(result: Status) -> HostResult {
    match result {
        Status::Ok => Ok(()),
        other => Err(other.into()),
    }
}

fn log(c: &mut Ctx<'_>, level: u32, p: u32, n: u32) -> HostResult {
    let level = LogLevel::from_raw(level).ok_or(Status::BadArgument)?;
    let message = read(c, p, n)?;
    let data = c.data();
    data.host.borrow_mut().log(
        data.index,
        data.effective,
        level,
        LogSource::Proxy,
        &message,
    );
    Ok(())
}

/// The header map `raw` names, in the effective context; `BadArgument` when it is not
/// available in this callback (as Envoy).
fn map<'a>(c: &'a mut Ctx<'_>, raw: u32) -> Result<&'a mut HeaderMap, Fail> {
    let kind = MapType::from_raw(raw).ok_or(Status::BadArgument)?;
    let data = c.data_mut();
    let found = match kind {
        MapType::HttpCallResponseHeaders => data
            .scope
            .http_call_response
            .as_mut()
            .map(|r| &mut r.headers),
        MapType::HttpCallResponseTrailers => data
            .scope
            .http_call_response
            .as_mut()
            .map(|r| &mut r.trailers),
        MapType::GrpcInitialMetadata | MapType::GrpcTrailingMetadata => None,
        MapType::RequestHeaders => data.stream().and_then(|s| s.request_headers.as_mut()),
        MapType::RequestTrailers => data.stream().and_then(|s| s.request_trailers.as_mut()),
        MapType::ResponseHeaders => data.stream().and_then(|s| s.response_headers.as_mut()),
        MapType::ResponseTrailers => data.stream().and_then(|s| s.response_trailers.as_mut()),
    };
    found.ok_or(Fail::Status(Status::BadArgument))
}

/// The buffer `kind` in the effective context: `(bytes, mutable)`.
fn buffer(data: &mut VmData, kind: BufferType) -> Option<(&mut Vec<u8>, bool)> {
    match kind {
        BufferType::PluginConfiguration if data.scope.plugin_config => {
            Some((&mut data.plugin_config, false))
        }
        BufferType::VmConfiguration if data.scope.vm_config => Some((&mut data.vm_config, false)),
        BufferType::HttpCallResponseBody => data
            .scope
            .http_call_response
            .as_mut()
            .map(|r| (&mut r.body, false)),
        BufferType::RequestBody => data
            .stream()
            .and_then(|s| s.request_body.as_mut())
            .map(|b| (b, true)),
        BufferType::ResponseBody => data
            .stream()
            .and_then(|s| s.response_body.as_mut())
            .map(|b| (b, true)),
        _ => None,
    }
}

fn get_buffer(c: &mut Ctx<'_>, t: u32, start: u32, max: u32, pp: u32, sp: u32) -> HostResult {
    let kind = BufferType::from_raw(t).ok_or(Status::BadArgument)?;
    let (start, max) = (start as usize, max as usize);
    let slice = {
        let (bytes, _) = buffer(c.data_mut(), kind).ok_or(Status::NotFound)?;
        if start > bytes.len() {
            return Err(Status::BadArgument.into());
        }
        let end = start.saturating_add(max).min(bytes.len());
        bytes[start..end].to_vec()
    };
    if slice.is_empty() {
        return Ok(());
    }
    copy_out(c, &slice, pp, sp)
}

fn set_buffer(c: &mut Ctx<'_>, t: u32, start: u32, size: u32, p: u32, n: u32) -> HostResult {
    let kind = BufferType::from_raw(t).ok_or(Status::BadArgument)?;
    let value = read(c, p, n)?;
    let (bytes, mutable) = buffer(c.data_mut(), kind).ok_or(Status::NotFound)?;
    if !mutable {
        return Err(Status::BadArgument.into());
    }
    // Envoy's Buffer::copyFrom: replace a prefix, or append at the end; nothing else.
    let (start, size) = (start as usize, size as usize);
    if start == 0 {
        bytes.drain(..size.min(bytes.len()));
        bytes.splice(0..0, value);
    } else if start >= bytes.len() {
        bytes.extend_from_slice(&value);
    } else {
        return Err(Status::BadArgument.into());
    }
    Ok(())
}

fn stream_op(c: &mut Ctx<'_>, raw: u32, resume: bool) -> HostResult {
    let kind = StreamType::from_raw(raw).ok_or(Status::BadArgument)?;
    if !matches!(kind, StreamType::HttpRequest | StreamType::HttpResponse) {
        return Err(Status::BadArgument.into());
    }
    let stream = c.data_mut().stream().ok_or(Status::BadArgument)?;
    if resume {
        stream.continued.push(kind);
    } else {
        stream.closed.push(kind);
    }
    Ok(())
}

/// Looks a property up: the stream's own (including `request.headers.<name>` and
/// `response.headers.<name>`), then the VM's, then the host's.
pub(crate) fn property(data: &VmData, path: &[Vec<u8>]) -> Option<Vec<u8>> {
    if let Some(stream) = data.streams.get(&data.effective) {
        if let Some(v) = stream.properties.get(path) {
            return Some(v.clone());
        }
        if let [dir, headers, name] = path {
            if headers == b"headers" {
                let map = match dir.as_slice() {
                    b"request" => stream.request_headers.as_ref(),
                    b"response" => stream.response_headers.as_ref(),
                    _ => None,
                };
                if let Some(value) = map.and_then(|m| m.get(name)) {
                    return Some(value.to_vec());
                }
            }
        }
    }
    if let Some(v) = data.properties.get(path) {
        return Some(v.clone());
    }
    data.host.borrow().properties.get(path).cloned()
}
