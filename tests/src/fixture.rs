//! The usual world of a test or the demo: three loopback clusters with one Envoy gateway
//! in front, plus a tally of who answered.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ClientConfig;
use xcluster_envoy::UpstreamProtocol;

use crate::client::{Client, Response};
use crate::envoy::{Bootstrap, Config, Envoy, Listener, Options};
use crate::scenario::{served_by, CLUSTERS};
use crate::upstream::Upstream;

/// Boxed error of fixture set-up.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Three upstream clusters (`cluster-1..3`) and an Envoy (the filter on every listener)
/// routing to them. Dropping it stops Envoy, then the upstreams.
pub struct Gateway {
    /// The Envoy process.
    pub envoy: Envoy,
    /// The upstreams, in [`CLUSTERS`] order.
    pub clusters: Vec<Upstream>,
}

impl Gateway {
    /// Builds the filter if needed, starts the three upstreams and an Envoy named `name`
    /// with `listeners`, and waits until it is ready.
    pub fn start(name: &str, listeners: Vec<Listener>) -> Result<Self, Error> {
        Self::start_with(&Options::named(name), listeners)
    }

    /// [`Gateway::start`] with Envoy run as `options` say (e.g. more workers).
    pub fn start_with(options: &Options, listeners: Vec<Listener>) -> Result<Self, Error> {
        let wasm = xcluster_wasm_build::filter_wasm()?;
        let clusters = CLUSTERS
            .iter()
            .map(|name| Upstream::start(name))
            .collect::<io::Result<Vec<_>>>()?;
        let bootstrap = Bootstrap {
            wasm,
            listeners,
            clusters: clusters
                .iter()
                .map(|u| (u.name().to_string(), u.addr()))
                .collect(),
            upstream_protocol: UpstreamProtocol::Http1,
        };
        let envoy = Envoy::start_with(options, Config::Json(&bootstrap.render()))?;
        Ok(Self { envoy, clusters })
    }

    /// The address of listener `name`.
    pub fn listener(&self, name: &str) -> SocketAddr {
        self.envoy.listener(name)
    }

    /// A plaintext client of listener `name`.
    pub fn client(&self, name: &str) -> Client {
        Client::plain(self.listener(name))
    }

    /// An mTLS client of listener `name` (server certificate for `localhost`).
    pub fn tls_client(&self, name: &str, config: Arc<ClientConfig>) -> io::Result<Client> {
        Client::tls(self.listener(name), config, "localhost")
    }

    /// The upstream named `name`.
    ///
    /// # Panics
    /// If there is no such cluster (a test bug).
    #[expect(
        clippy::panic,
        reason = "a harness bug: the calling test names what is not there"
    )]
    pub fn upstream(&mut self, name: &str) -> &mut Upstream {
        match self.clusters.iter_mut().find(|u| u.name() == name) {
            Some(upstream) => upstream,
            None => panic!("no upstream {name:?}"),
        }
    }
}

/// What a response amounts to: the cluster that served it (`cluster-2`), or
/// `<status> <body>` for anything else (`503 no healthy target`).
pub fn outcome(resp: &Response) -> String {
    match served_by(&resp.body) {
        Some(cluster) if resp.status == 200 => cluster.to_string(),
        _ => format!("{} {}", resp.status, resp.body),
    }
}

/// Counts of outcomes over a series of requests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    counts: BTreeMap<String, usize>,
    total: usize,
}

impl Tally {
    /// Records one response.
    pub fn record(&mut self, resp: &Response) {
        self.add(outcome(resp), 1);
    }

    /// Adds `n` occurrences of `outcome`.
    pub fn add(&mut self, outcome: String, n: usize) {
        *self.counts.entry(outcome).or_default() += n;
        self.total += n;
    }

    /// Merges another tally into this one.
    pub fn merge(&mut self, other: &Tally) {
        for (outcome, n) in &other.counts {
            self.add(outcome.clone(), *n);
        }
    }

    /// How often `outcome` occurred.
    pub fn count(&self, outcome: &str) -> usize {
        self.counts.get(outcome).copied().unwrap_or(0)
    }

    /// The fraction of all responses that were `outcome` (0 when empty).
    pub fn share(&self, outcome: &str) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.count(outcome) as f64 / self.total as f64
        }
    }

    /// Asserts that each outcome's share is within `points` percentage points of the one
    /// wanted (`0.75` for 75 %).
    pub fn assert_shares(&self, want: &[(&str, f64)], points: f64) {
        for &(outcome, want) in want {
            let got = self.share(outcome);
            assert!(
                (got - want).abs() * 100.0 <= points,
                "{outcome}: {:.1}% instead of {:.0}% ± {points}: {self}",
                got * 100.0,
                want * 100.0
            );
        }
    }

    /// Number of responses recorded.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The distinct outcomes, sorted.
    pub fn outcomes(&self) -> Vec<&str> {
        self.counts.keys().map(String::as_str).collect()
    }

    /// Sends `n` requests with `send` and tallies the responses; transport errors count
    /// as `error: <message>`.
    pub fn collect(n: usize, mut send: impl FnMut() -> io::Result<Response>) -> Self {
        let mut tally = Self::default();
        for _ in 0..n {
            match send() {
                Ok(resp) => tally.record(&resp),
                Err(e) => tally.add(format!("error: {e}"), 1),
            }
        }
        tally
    }

    /// Sends `per_client` GETs of `host` `path` on every client, each on its own thread,
    /// reconnecting every 50 requests so that both Envoy workers serve, and merges the
    /// tallies.
    pub fn collect_parallel(
        clients: Vec<Client>,
        per_client: usize,
        host: &'static str,
        path: &'static str,
    ) -> Self {
        let workers: Vec<_> = clients
            .into_iter()
            .map(|mut client| {
                std::thread::spawn(move || {
                    let mut sent = 0;
                    Tally::collect(per_client, || {
                        sent += 1;
                        if sent % 50 == 0 {
                            client.disconnect();
                        }
                        client.get(host, path)
                    })
                })
            })
            .collect();
        let mut tally = Self::default();
        for worker in workers {
            match worker.join() {
                Ok(t) => tally.merge(&t),
                Err(_) => tally.add("error: client thread panicked".into(), per_client),
            }
        }
        tally
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(outcome, n)| {
                format!(
                    "{outcome}: {n} ({:.1}%)",
                    100.0 * *n as f64 / self.total.max(1) as f64
                )
            })
            .collect();
        write!(f, "{}", parts.join(", "))
    }
}
