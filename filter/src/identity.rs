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
    // Byte scans, not `split`: this runs on every authorized request.
    let raw = raw.trim_ascii();
    if let Some(rest) = raw.strip_prefix("spiffe://") {
        let (trust_domain, path) = split_at_byte(rest, b'/')?;
        let (first, path) = split_at_byte(path, b'/')?;
        let parsed = match split_at_byte(path, b'/') {
            // `<td>/ns/<ns>/sa/<sa>`: exactly four segments.
            Some((namespace, rest)) if first == "ns" => {
                let service_account = rest.strip_prefix("sa/")?;
                if service_account.contains('/') {
                    return None;
                }
                Identity {
                    trust_domain,
                    namespace,
                    service_account,
                }
            }
            Some(_) => return None,
            // `<td>/<sa>/<ns>`.
            None => Identity {
                trust_domain,
                namespace: path,
                service_account: first,
            },
        };
        return parsed.is_complete().then_some(parsed);
    }
    if raw.bytes().any(|b| matches!(b, b'/' | b':' | b' ')) {
        return None;
    }
    let (service_account, rest) = split_at_byte(raw, b'.')?;
    let (namespace, trust_domain) = split_at_byte(rest, b'.')?;
    let parsed = Identity {
        trust_domain,
        namespace,
        service_account,
    };
    parsed.is_complete().then_some(parsed)
}

/// `s` split around the first `sep` (an ASCII byte), without it.
fn split_at_byte(s: &str, sep: u8) -> Option<(&str, &str)> {
    let at = s.bytes().position(|b| b == sep)?;
    Some((s.get(..at)?, s.get(at + 1..)?))
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
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(parse(" spiffe://td/ns/n/sa/s\t"), id("td", "n", "s"));
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
            "spiffe://td/ns/a/sb/b",
            "spiffe://td/xs/a/sa/b",
            "spiffe://td//b",
            "spiffe://td/a/",
        ] {
            assert_eq!(parse(bad), None, "{bad:?} must not parse");
        }
    }
}
