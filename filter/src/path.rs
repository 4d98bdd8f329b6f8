//! The normal form of a request path: the only form the filter authorizes.
//!
//! Upstreams resolve a path before they serve it: they decode percent-escapes, treat `\` as
//! `/` (some), drop `;` parameters from segments (Tomcat, Jetty, Spring) and remove dot
//! segments. A path that such an upstream would serve as another path can walk past an
//! `HTTPRouteGroup` prefix (`/public/..;/private`, the class of Envoy's CVE-2019-9901). A
//! path is in normal form when no such step changes it: no `.` or `..` segment (also
//! before a `;`), no `\`, and no percent-escape of an unreserved character or of `/`, `\`
//! or `;` (nor a malformed escape). Repeated slashes are left alone: they cannot move a path
//! out of a prefix.

/// Why a path is not in normal form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathIssue {
    /// A `.` or `..` segment, possibly followed by `;` parameters.
    DotSegment,
    /// A percent-escape an upstream would decode into another path (or a malformed one).
    EncodedCharacter,
    /// A `\`, which some upstreams read as `/`.
    Backslash,
}

impl PathIssue {
    /// The name used in stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DotSegment => "dot_segment",
            Self::EncodedCharacter => "encoded_character",
            Self::Backslash => "backslash",
        }
    }
}

/// What a percent-escape decodes to, as far as the normal form cares.
enum Escape {
    /// A character an upstream decodes and then treats as itself (`A`, `.`, `;`, `/`...).
    Decoded(u8),
    /// Any other byte: left encoded.
    Kept,
    /// Not `%` followed by two hex digits.
    Malformed,
}

fn escape(rest: &[u8]) -> Escape {
    let hex = |b: u8| char::from(b).to_digit(16);
    match (
        rest.get(1).copied().and_then(hex),
        rest.get(2).copied().and_then(hex),
    ) {
        (Some(hi), Some(lo)) => {
            let b = (hi * 16 + lo) as u8;
            let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
            if unreserved || matches!(b, b'/' | b'\\' | b';') {
                Escape::Decoded(b)
            } else {
                Escape::Kept
            }
        }
        _ => Escape::Malformed,
    }
}

/// Whether a segment is `.` or `..` once its `;` parameters are dropped.
fn is_dot(segment: &[u8]) -> bool {
    let name = segment
        .iter()
        .position(|&b| b == b';')
        .map_or(segment, |end| &segment[..end]);
    name == b"." || name == b".."
}

/// Whether `bytes` holds a `%`, `\\` or `.`: without one a path is in normal form. Eight
/// bytes at a time (a zero byte of `word ^ pattern` marks a match).
fn has_special(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        if zero_byte(w ^ (ONES * 0x25))
            || zero_byte(w ^ (ONES * 0x5c))
            || zero_byte(w ^ (ONES * 0x2e))
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| matches!(b, b'%' | b'\\' | b'.'))
}

/// The first reason `path` (without its query) is not in normal form, if any.
pub fn check(path: &str) -> Option<PathIssue> {
    let bytes = path.as_bytes();
    if !has_special(bytes) {
        return None;
    }
    let mut segment = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'/' => {
                if is_dot(&bytes[segment..i]) {
                    return Some(PathIssue::DotSegment);
                }
                segment = i + 1;
            }
            b'\\' => return Some(PathIssue::Backslash),
            b'%' if !matches!(escape(&bytes[i..]), Escape::Kept) => {
                return Some(PathIssue::EncodedCharacter)
            }
            _ => {}
        }
    }
    is_dot(&bytes[segment..]).then_some(PathIssue::DotSegment)
}

/// `path` (without its query) as an upstream would resolve it: `\` and escaped `/` or `\`
/// as `/`, escapes of unreserved characters and of `;` decoded, dot segments removed (RFC
/// 3986 section 5.2.4, a dot segment's `;` parameters with it). A malformed escape is
/// kept, so the result is not in normal form either.
pub fn normalize(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => decoded.push(b'/'),
            b'%' => {
                if let Escape::Decoded(c) = escape(&bytes[i..]) {
                    decoded.push(if c == b'\\' { b'/' } else { c });
                    i += 3;
                    continue;
                }
                decoded.push(b);
            }
            _ => decoded.push(b),
        }
        i += 1;
    }
    let mut out: Vec<&[u8]> = Vec::new();
    let mut segments = decoded.split(|&b| b == b'/').peekable();
    // A path starts with `/`: the first (empty) segment is the root.
    if decoded.first() == Some(&b'/') {
        segments.next();
    }
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if is_dot(segment) {
            let name_len = segment
                .iter()
                .position(|&b| b == b';')
                .unwrap_or(segment.len());
            if name_len == 2 {
                out.pop();
            }
            if last {
                out.push(b"");
            }
        } else {
            out.push(segment);
        }
    }
    let mut normalized = Vec::with_capacity(decoded.len());
    for segment in &out {
        normalized.push(b'/');
        normalized.extend_from_slice(segment);
    }
    if normalized.is_empty() {
        normalized.push(b'/');
    }
    // Only ASCII bytes were decoded, and only at escape boundaries: still UTF-8.
    String::from_utf8(normalized).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// The table of issue 9: paths that walked past `pathRegex: "/public/"`.
    const BYPASSES: [(&str, PathIssue); 6] = [
        ("/public/../private", PathIssue::DotSegment),
        ("/public/%2e%2e/private", PathIssue::EncodedCharacter),
        ("/public/..%2fprivate", PathIssue::EncodedCharacter),
        ("/public/%2E%2E%2Fprivate", PathIssue::EncodedCharacter),
        ("/public/./../private", PathIssue::DotSegment),
        ("/public/..;/private", PathIssue::DotSegment),
    ];

    #[test]
    fn every_known_bypass_is_not_in_normal_form_and_resolves_outside_the_prefix() {
        for (path, issue) in BYPASSES {
            assert_eq!(check(path), Some(issue), "{path}");
            let resolved = normalize(path);
            assert_eq!(resolved, "/private", "{path}");
            assert_eq!(check(&resolved), None);
        }
    }

    #[test]
    fn normal_paths_pass_untouched() {
        for path in [
            "/",
            "",
            "*",
            "/public/a.b/c..d/.e/f.",
            "/a//b",
            "/search/100%25/%20x/%C3%A9",
            "/app;jsessionid=1/x",
            "/...",
            "/a/.../b",
        ] {
            assert_eq!(check(path), None, "{path}");
        }
    }

    #[test]
    fn other_spellings_are_caught() {
        assert_eq!(check("/a/.."), Some(PathIssue::DotSegment));
        assert_eq!(check("/a/."), Some(PathIssue::DotSegment));
        assert_eq!(check("/.;x/b"), Some(PathIssue::DotSegment));
        assert_eq!(check("/a\\..\\b"), Some(PathIssue::Backslash));
        assert_eq!(check("/%61dmin"), Some(PathIssue::EncodedCharacter));
        assert_eq!(check("/a%5cb"), Some(PathIssue::EncodedCharacter));
        assert_eq!(check("/..%3bx/b"), Some(PathIssue::EncodedCharacter));
        assert_eq!(check("/a%2"), Some(PathIssue::EncodedCharacter));
        assert_eq!(check("/a%zz"), Some(PathIssue::EncodedCharacter));
    }

    #[test]
    fn the_word_scan_finds_every_special_byte_at_every_offset() {
        for len in 0..20 {
            let plain = "a".repeat(len);
            assert!(!has_special(plain.as_bytes()), "{len}");
            for at in 0..len {
                for special in [b'%', b'\\', b'.'] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = special;
                    assert!(has_special(&bytes), "{len} {at} {special}");
                }
                let mut near = plain.clone().into_bytes();
                near[at] = 0xae; // '.' | 0x80: not a match
                assert!(!has_special(&near), "{len} {at}");
            }
        }
    }

    #[test]
    fn normalization_follows_rfc_3986() {
        let cases = [
            ("/a/b/c/./../../g", "/a/g"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/..", "/"),
            ("/../../x", "/x"),
            ("/a\\..\\b", "/b"),
            ("/%61dmin", "/admin"),
            ("/a;x/..;y/b", "/b"),
            ("/a//b/../c", "/a//c"),
            ("/keep%20space", "/keep%20space"),
        ];
        for (path, want) in cases {
            assert_eq!(normalize(path), want, "{path}");
        }
        assert_eq!(check(&normalize("/a%2")), Some(PathIssue::EncodedCharacter));
    }
}
