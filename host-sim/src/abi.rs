//! proxy-wasm ABI 0.2.1 constants and the wire format of header maps, as Envoy and the
//! proxy-wasm SDKs use them. Pure data: no wasm engine here.

use std::fmt;

/// Result codes of host calls (`WasmResult` in proxy-wasm-cpp-host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The key, property, queue, metric or function does not exist.
    NotFound = 1,
    /// An argument is invalid (also: the object is not available in this callback).
    BadArgument = 2,
    /// A value could not be serialized.
    SerializationFailure = 3,
    /// A value could not be parsed.
    ParseFailure = 4,
    /// A pointer or length points outside the module's memory.
    InvalidMemoryAccess = 6,
    /// A queue is empty.
    Empty = 7,
    /// The shared-data CAS token is stale.
    CasMismatch = 8,
    /// The host failed internally (for example no gRPC services in the simulator).
    InternalFailure = 10,
    /// The call is not implemented by the host.
    Unimplemented = 12,
}

/// Log levels of `proxy_log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum LogLevel {
    /// Trace.
    Trace = 0,
    /// Debug.
    Debug = 1,
    /// Info.
    Info = 2,
    /// Warn.
    Warn = 3,
    /// Error.
    Error = 4,
    /// Critical (the SDK's panic hook logs here).
    Critical = 5,
}

impl LogLevel {
    /// The level for a raw ABI value, if valid.
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            5 => Self::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Critical => "critical",
        };
        f.write_str(name)
    }
}

/// What a stream callback returned (Envoy's `FilterHeadersStatus` / `FilterDataStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Continue filter iteration.
    Continue,
    /// Stop iteration (the Rust SDK's `Action::Pause`).
    Pause,
    /// Continue and end the stream.
    ContinueAndEndStream,
    /// Stop all iteration and buffer.
    StopAllIterationAndBuffer,
    /// Stop all iteration with watermark.
    StopAllIterationAndWatermark,
}

impl Action {
    /// The action for a raw ABI value, if valid.
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Continue,
            1 => Self::Pause,
            2 => Self::ContinueAndEndStream,
            3 => Self::StopAllIterationAndBuffer,
            4 => Self::StopAllIterationAndWatermark,
            _ => return None,
        })
    }

    /// Whether the filter let the stream go on.
    pub fn is_continue(self) -> bool {
        matches!(self, Self::Continue | Self::ContinueAndEndStream)
    }
}

/// Header map types of `proxy_*_header_map_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapType {
    /// Request headers.
    RequestHeaders,
    /// Request trailers.
    RequestTrailers,
    /// Response headers.
    ResponseHeaders,
    /// Response trailers.
    ResponseTrailers,
    /// gRPC initial metadata.
    GrpcInitialMetadata,
    /// gRPC trailing metadata.
    GrpcTrailingMetadata,
    /// Headers of an `http_call` response.
    HttpCallResponseHeaders,
    /// Trailers of an `http_call` response.
    HttpCallResponseTrailers,
}

impl MapType {
    /// The map type for a raw ABI value, if valid.
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::RequestHeaders,
            1 => Self::RequestTrailers,
            2 => Self::ResponseHeaders,
            3 => Self::ResponseTrailers,
            4 => Self::GrpcInitialMetadata,
            5 => Self::GrpcTrailingMetadata,
            6 => Self::HttpCallResponseHeaders,
            7 => Self::HttpCallResponseTrailers,
            _ => return None,
        })
    }
}

/// Buffer types of `proxy_get_buffer_bytes` / `proxy_set_buffer_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferType {
    /// Request body.
    RequestBody,
    /// Response body.
    ResponseBody,
    /// Downstream data (TCP).
    DownstreamData,
    /// Upstream data (TCP).
    UpstreamData,
    /// Body of an `http_call` response.
    HttpCallResponseBody,
    /// gRPC receive buffer.
    GrpcReceiveBuffer,
    /// VM configuration (during `proxy_on_vm_start`).
    VmConfiguration,
    /// Plugin configuration (during `proxy_on_configure`).
    PluginConfiguration,
    /// Foreign-function call data.
    CallData,
}

impl BufferType {
    /// The buffer type for a raw ABI value, if valid.
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::RequestBody,
            1 => Self::ResponseBody,
            2 => Self::DownstreamData,
            3 => Self::UpstreamData,
            4 => Self::HttpCallResponseBody,
            5 => Self::GrpcReceiveBuffer,
            6 => Self::VmConfiguration,
            7 => Self::PluginConfiguration,
            8 => Self::CallData,
            _ => return None,
        })
    }
}

/// Metric kinds of `proxy_define_metric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricKind {
    /// Monotonic counter.
    Counter,
    /// Gauge.
    Gauge,
    /// Histogram.
    Histogram,
}

impl MetricKind {
    /// The metric kind for a raw ABI value, if valid.
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Counter,
            1 => Self::Gauge,
            2 => Self::Histogram,
            _ => return None,
        })
    }
}

/// Stream types of `proxy_continue_stream` / `proxy_close_stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    /// The HTTP request direction.
    HttpRequest,
    /// The HTTP response direction.
    HttpResponse,
    /// Downstream connection (TCP filters).
    Downstream,
    /// Upstream connection (TCP filters).
    Upstream,
}

impl StreamType {
    /// The stream type for a raw ABI value, if valid.
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::HttpRequest,
            1 => Self::HttpResponse,
            2 => Self::Downstream,
            3 => Self::Upstream,
            _ => return None,
        })
    }
}

/// Header (or trailer, or metadata) pairs, in order; names and values are raw bytes.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Serializes pairs the way the host hands maps to the module:
/// `count: u32`, then `(name_len: u32, value_len: u32)` per pair, then every
/// `name \0 value \0`; all integers little-endian.
pub fn serialize_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| 10 + k.len() + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&len_u32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len_u32(k.len()).to_le_bytes());
        out.extend_from_slice(&len_u32(v.len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Parses pairs serialized by a module (the format of [`serialize_pairs`]). An empty
/// input is an empty map. `None` when the bytes are malformed.
pub fn deserialize_pairs(bytes: &[u8]) -> Option<Pairs> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let read_u32 = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let count = read_u32(0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    if data > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    for n in 0..count {
        let key_len = read_u32(4 + n * 8)?;
        let value_len = read_u32(8 + n * 8)?;
        let key_end = data.checked_add(key_len)?;
        let key = bytes.get(data..key_end)?.to_vec();
        data = key_end.checked_add(1)?;
        let value_end = data.checked_add(value_len)?;
        let value = bytes.get(data..value_end)?.to_vec();
        data = value_end.checked_add(1)?;
        if data > bytes.len() {
            return None;
        }
        pairs.push((key, value));
    }
    Some(pairs)
}

/// Splits a serialized property path (segments separated by `\0`) into its segments.
pub fn split_property_path(path: &[u8]) -> Vec<Vec<u8>> {
    if path.is_empty() {
        return Vec::new();
    }
    path.split(|b| *b == 0).map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Pairs {
        list.iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn serializes_like_the_rust_sdk() {
        // The SDK's own test vector (proxy-wasm 0.2.5 hostcalls::utils::tests).
        let map = pairs(&[(":method", "GET"), (":path", "/bytes/1")]);
        let bytes = serialize_pairs(&map);
        let mut expected = vec![2, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, 8, 0, 0, 0];
        expected.extend_from_slice(b":method\0GET\0:path\0/bytes/1\0");
        assert_eq!(bytes, expected);
        assert_eq!(deserialize_pairs(&bytes), Some(map));
    }

    #[test]
    fn empty_maps_round_trip() {
        assert_eq!(serialize_pairs(&[]), vec![0, 0, 0, 0]);
        assert_eq!(deserialize_pairs(&[]), Some(vec![]));
        assert_eq!(deserialize_pairs(&[0, 0, 0, 0]), Some(vec![]));
    }

    #[test]
    fn malformed_maps_are_rejected() {
        assert_eq!(deserialize_pairs(&[1, 0, 0]), None);
        assert_eq!(
            deserialize_pairs(&[1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
        assert_eq!(deserialize_pairs(&[255, 255, 255, 255]), None);
    }

    #[test]
    fn property_paths_split_on_nul() {
        assert_eq!(
            split_property_path(b"node\0locality\0region"),
            vec![b"node".to_vec(), b"locality".to_vec(), b"region".to_vec()]
        );
        assert!(split_property_path(b"").is_empty());
    }
}
