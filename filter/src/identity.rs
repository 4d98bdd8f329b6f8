//! Caller identity: parsing the peer certificate's URI SAN (or a trusted header) into a
//! Kubernetes ServiceAccount.

/// A caller's workload identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity<'a> {
    /// SPIFFE trust domain (for the `<sa>.<ns>.<td>` form, everything after the namespace).
    pub trust_domain: &'a str,
    /// Namespace of the ServiceAccount.
    pub namespace: &'a str,
    /// ServiceAccount name.
    pub service_account: &'a str,
}

/// Parses the identity forms meshes put in certificates:
/// - `spiffe://<td>/ns/<ns>/sa/<sa>` (Istio, SPIRE, FSM);
/// - `spiffe://<td>/<sa>/<ns>` (OSM);
/// - `<sa>.<ns>.<td>` (OSM certificate common name, e.g. `curl.curl.cluster.local`).
///
/// Returns `None` for anything else, including empty segments.
pub fn parse(raw: &str) -> Option<Identity<'_>> {
    let raw = raw.trim();
    if let Some(rest) = raw.strip_prefix("spiffe://") {
        let (trust_domain, path) = rest.split_once('/')?;
        let mut segments = path.split('/');
        let parsed = match (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) {
            (Some("ns"), Some(namespace), Some("sa"), Some(service_account)) => Identity {
                trust_domain,
                namespace,
                service_account,
            },
            (Some(service_account), Some(namespace), None, None) => Identity {
                trust_domain,
                namespace,
                service_account,
            },
            _ => return None,
        };
        return (segments.next().is_none() && parsed.is_complete()).then_some(parsed);
    }
    if raw.contains(['/', ':', ' ']) {
        return None;
    }
    let mut parts = raw.splitn(3, '.');
    let parsed = Identity {
        service_account: parts.next()?,
        namespace: parts.next()?,
        trust_domain: parts.next()?,
    };
    parsed.is_complete().then_some(parsed)
}

impl Identity<'_> {
    fn is_complete(&self) -> bool {
        !self.trust_domain.is_empty()
            && !self.namespace.is_empty()
            && !self.service_account.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn id<'a>(td: &'a str, ns: &'a str, sa: &'a str) -> Option<Identity<'a>> {
        Some(Identity {
            trust_domain: td,
            namespace: ns,
            service_account: sa,
        })
    }

    #[test]
    fn spiffe_istio_form() {
        assert_eq!(
            parse("spiffe://cluster.local/ns/curl/sa/curl"),
            id("cluster.local", "curl", "curl")
        );
    }

    #[test]
    fn spiffe_osm_form() {
        assert_eq!(
            parse("spiffe://cluster.local/bookbuyer/bookstore"),
            id("cluster.local", "bookstore", "bookbuyer")
        );
    }

    #[test]
    fn common_name_form() {
        assert_eq!(
            parse("curl.curl.cluster.local"),
            id("cluster.local", "curl", "curl")
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "spiffe://",
            "spiffe://td",
            "spiffe://td/ns/a/sa/",
            "spiffe://td/ns/a/sa/b/extra",
            "spiffe://td/only",
            "spiffe://td/a/b/c",
            "curl.curl",
            "a..b",
            "http://x/y",
        ] {
            assert_eq!(parse(bad), None, "{bad:?} must not parse");
        }
    }
}
