//! What the fuzz targets share: the `request` target's input and fixed policy, and the
//! two ways of deciding a request, natively ([`decide_native`]) and in the real `.wasm`
//! ([`decide_wasm`], host-sim; the module from `$XCLUSTER_WASM`, which `make fuzz` sets).

use std::cell::RefCell;

use arbitrary::Arbitrary;
use xcluster_filter::config::LocalConfig;
use xcluster_filter::engine::{Engine, Peer};
use xcluster_filter::header_map::Header;
use xcluster_filter::outcome::HeaderOp;
use xcluster_filter::policy::Policy;
use xcluster_host_sim::{Host, HostOptions, LogLevel, Vm, VmConfig};

/// The caller of the `request` target, and the cluster header both deciders write.
const CLUSTER_HEADER: &str = "x-xcluster-cluster";

/// The `request` target's policy: enforce mode (curl may `GET` `/api/` and `/v[0-9]+/`
/// paths, `POST` with `x-env: dev`, on `a` or `b`), `FailOver` from the local `a`, a
/// rewrite on `b`, a destination with no local target (`Locality`: `503`), a sticky
/// cookie, and `404` for what matches no route. No response is fed back, so nothing is
/// ejected and every decision is deterministic.
pub const POLICY: &str = r#"{
  "version": 1,
  "local": {"cluster": "c1"},
  "unmatched": "deny",
  "decision_header": "x-decision",
  "access": {
    "mode": "enforce",
    "route_groups": [{"name": "g", "matches": [
      {"name": "api", "path_regex": "/api/", "methods": ["GET"]},
      {"name": "versioned", "path_regex": "/v[0-9]+/items/[a-z]+$"},
      {"name": "dev", "methods": ["POST"], "headers": {"x-env": "dev|staging"}}
    ]}],
    "traffic_targets": [
      {"name": "to-a", "destination": {"namespace": "ns", "name": "a"},
       "sources": [{"namespace": "ns", "name": "curl"}], "rules": [{"route_group": "g", "matches": ["api"]}]},
      {"name": "to-b", "destination": {"namespace": "ns", "name": "b"},
       "sources": [{"namespace": "ns", "name": "curl"}, {"namespace": "ops", "name": "admin"}],
       "rules": [{"route_group": "g"}]}
    ]
  },
  "routes": [
    {"name": "down", "match": {"hosts": ["down.example.com"]}, "destination": "down"},
    {"name": "exact", "match": {"hosts": ["*.example.com"], "path": {"exact": "/health"}}, "destination": "svc"},
    {"name": "svc", "match": {"hosts": ["svc.example.com", "*.svc.example.com", "[::1]"]}, "destination": "svc"}
  ],
  "destinations": [
    {"name": "svc", "policy": "FailOver", "sticky": {"cookie": "user"},
     "targets": [
       {"name": "a", "cluster": "c1", "envoy_cluster": "e-a", "service_account": {"namespace": "ns", "name": "a"}},
       {"name": "b", "cluster": "c2", "envoy_cluster": "e-b", "authority": "svc.remote", "path_prefix": "/c2",
        "service_account": {"namespace": "ns", "name": "b"}}
     ]},
    {"name": "down", "policy": "Locality",
     "targets": [{"name": "r", "cluster": "c9", "envoy_cluster": "e-r", "service_account": {"namespace": "ns", "name": "b"}}]}
  ]
}"#;

/// One request as a host hands it over: pseudo-headers, other headers, the peer SAN.
#[derive(Debug, Clone, Arbitrary)]
pub struct RequestInput {
    /// `:method`, absent when `None`.
    pub method: Option<Choice>,
    /// `:path`.
    pub path: Option<Vec<u8>>,
    /// `:authority`.
    pub authority: Option<Vec<u8>>,
    /// Other headers (names are lower-cased, as hosts deliver them).
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// `connection.uri_san_peer_certificate`.
    pub san: Option<Choice>,
}

/// A well-known value, or any bytes.
#[derive(Debug, Clone, Arbitrary)]
pub enum Choice {
    /// The `n`th known value (methods, or SANs).
    Known(u8),
    /// Anything.
    Bytes(Vec<u8>),
}

const METHODS: [&str; 4] = ["GET", "POST", "CONNECT", "get"];
const SANS: [&str; 4] = [
    "spiffe://cluster.local/ns/ns/sa/curl",
    "spiffe://cluster.local/ns/ops/sa/admin",
    "spiffe://cluster.local/curl/ns",
    "curl.ns.cluster.local",
];

impl Choice {
    fn bytes(&self, known: &[&str]) -> Vec<u8> {
        match self {
            Choice::Known(n) => known[*n as usize % known.len()].as_bytes().to_vec(),
            Choice::Bytes(b) => b.clone(),
        }
    }
}

impl RequestInput {
    /// The header map a host would hand over, names lower-cased.
    pub fn header_pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        if let Some(m) = &self.method {
            out.push((b":method".to_vec(), m.bytes(&METHODS)));
        }
        if let Some(p) = &self.path {
            out.push((b":path".to_vec(), p.clone()));
        }
        if let Some(a) = &self.authority {
            out.push((b":authority".to_vec(), a.clone()));
        }
        for (n, v) in self.headers.iter().take(64) {
            out.push((n.to_ascii_lowercase(), v.clone()));
        }
        out
    }

    /// The peer SAN, if any.
    pub fn san(&self) -> Option<Vec<u8>> {
        self.san.as_ref().map(|s| s.bytes(&SANS))
    }
}

/// What a decider did with a request: the local reply, or the headers it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A local reply: status and response code details.
    Reply(u32, String),
    /// Forwarded: the values of the cluster header, `:path` and `:authority` afterwards.
    Forwarded {
        /// Every value of the cluster header.
        cluster: Vec<Vec<u8>>,
        /// Every `:path`.
        path: Vec<Vec<u8>>,
        /// Every `:authority`.
        authority: Vec<Vec<u8>>,
    },
}

/// A peer with a fixed SAN.
pub struct FixedPeer(pub Option<Vec<u8>>);

impl Peer for FixedPeer {
    fn uri_san(&mut self) -> Option<&[u8]> {
        self.0.as_deref()
    }
}

/// A connection without a peer certificate.
pub struct NoPeer;

impl Peer for NoPeer {
    fn uri_san(&mut self) -> Option<&[u8]> {
        None
    }
}

/// A few requests an accepted policy of the `policy_json` target decides.
pub fn requests() -> Vec<Vec<Header<'static>>> {
    let base: [Header<'static>; 3] = [
        (":method", b"GET"),
        (":path", b"/api/items?x=1"),
        (":authority", b"svc.example.com:80"),
    ];
    let mut out = vec![base.to_vec()];
    let mut other = base.to_vec();
    other[1] = (":path", b"/");
    other.push(("cookie", b"user=u1"));
    other.push(("x-env", b"dev"));
    out.push(other);
    out.push(vec![(":authority", b"elsewhere")]);
    out
}

fn values(pairs: &[(Vec<u8>, Vec<u8>)], name: &str) -> Vec<Vec<u8>> {
    pairs
        .iter()
        .filter(|(n, _)| n.as_slice() == name.as_bytes())
        .map(|(_, v)| v.clone())
        .collect()
}

fn forwarded(pairs: &[(Vec<u8>, Vec<u8>)]) -> Decision {
    Decision::Forwarded {
        cluster: values(pairs, CLUSTER_HEADER),
        path: values(pairs, ":path"),
        authority: values(pairs, ":authority"),
    }
}

thread_local! {
    static NATIVE: Option<Engine> = Policy::from_json(POLICY.as_bytes(), &LocalConfig::default())
        .ok()
        .map(|p| Engine::new(p, 7));
    static WASM: RefCell<Option<(Host, Vm)>> = const { RefCell::new(None) };
}

/// The engine's decision, run natively, its header operations applied as a host would.
pub fn decide_native(input: &RequestInput) -> Option<Decision> {
    let mut pairs = input.header_pairs();
    let decision = NATIVE.with(|engine| {
        let engine = engine.as_ref()?;
        let headers: Vec<Header<'_>> = pairs
            .iter()
            .filter_map(|(n, v)| Some((std::str::from_utf8(n).ok()?, v.as_slice())))
            .collect();
        let mut peer = FixedPeer(input.san());
        let out = engine.on_request_headers(&headers, &mut peer);
        if let Some(reply) = &out.reply {
            return Some(Err(Decision::Reply(
                reply.status,
                reply.details.to_string(),
            )));
        }
        let ops: Vec<(String, Option<Vec<u8>>, bool)> = out
            .headers
            .iter()
            .map(|op| match op {
                HeaderOp::Remove(n) => (n.to_string(), None, false),
                HeaderOp::Set(n, v) => (n.to_string(), Some(v.as_bytes().to_vec()), false),
                HeaderOp::Add(n, v) => (n.to_string(), Some(v.as_bytes().to_vec()), true),
            })
            .collect();
        Some(Ok(ops))
    })?;
    match decision {
        Err(reply) => Some(reply),
        Ok(ops) => {
            for (name, value, add) in ops {
                let name = name.to_ascii_lowercase().into_bytes();
                if !add {
                    pairs.retain(|(n, _)| *n != name);
                }
                if let Some(v) = value {
                    pairs.push((name, v));
                }
            }
            Some(forwarded(&pairs))
        }
    }
}

/// The real `.wasm`'s decision in host-sim (one VM for the process, configured with
/// [`POLICY`]). A trap or a failed VM is a finding: it panics.
pub fn decide_wasm(input: &RequestInput) -> Option<Decision> {
    WASM.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = start_wasm();
        }
        let (_, vm) = slot.as_ref()?;
        let mut stream = match vm.http_stream() {
            Ok(s) => s,
            Err(e) => unreachable_finding(&format!("http_stream: {e}")),
        };
        if let Some(san) = input.san() {
            stream.set_property(&["connection", "uri_san_peer_certificate"], san);
            stream.set_property(&["connection", "mtls"], true);
        }
        if let Err(e) = stream.request_headers(&input.header_pairs(), true) {
            unreachable_finding(&format!("on_request_headers trapped: {e} for {input:?}"));
        }
        let decision = match stream.local_reply() {
            Some(reply) => Decision::Reply(reply.status, reply.details),
            None => forwarded(stream.request_headers_now().pairs()),
        };
        if let Err(e) = stream.finish() {
            unreachable_finding(&format!("finishing the stream trapped: {e}"));
        }
        if vm.is_failed() {
            unreachable_finding(&format!("the VM failed on {input:?}"));
        }
        Some(decision)
    })
}

fn start_wasm() -> Option<(Host, Vm)> {
    let path = xcluster_host_sim::filter_wasm().ok()?;
    let options = HostOptions {
        log_level: LogLevel::Warn,
        ..HostOptions::default()
    };
    let host = Host::load(&path, options).ok()?;
    let vm = host.start_vm(VmConfig::plugin(POLICY)).ok()?;
    Some((host, vm))
}

/// Reports a finding: libFuzzer saves the input that caused it.
#[allow(clippy::panic)]
fn unreachable_finding(what: &str) -> ! {
    panic!("{what}")
}
