//! Regexes of the config: compiled once per distinct pattern with size limits, and the
//! shape analysis that lets an SMI `pathRegex` use the authorizer's prefix trie.

use std::rc::Rc;

use regex_lite::{Regex, RegexBuilder};

use crate::hash::Map;
use crate::tail::TailMatcher;

/// Compiled regexes may use at most this much memory (bytes).
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Regex patterns may be at most this long (bytes).
pub const REGEX_MAX_LEN: usize = 4096;

/// Compiles `pattern` with the configured limits, anchored as `prefix …` (start) and
/// optionally at the end.
pub fn compile_regex(pattern: &str, anchor_end: bool) -> Result<Regex, String> {
    if pattern.len() > REGEX_MAX_LEN {
        return Err(format!(
            "regex is {} bytes long, the limit is {REGEX_MAX_LEN}",
            pattern.len()
        ));
    }
    let anchored = if anchor_end {
        format!("^(?:{pattern})$")
    } else {
        format!("^(?:{pattern})")
    };
    RegexBuilder::new(&anchored)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regex \"{pattern}\": {e}"))
}

/// Compiles each distinct pattern once (large policies repeat the same regexes).
#[derive(Debug, Default)]
pub struct RegexCache {
    /// Pattern → index in `compiled`, start-anchored only (`[0]`) and at both ends (`[1]`).
    index: [Map<String, u32>; 2],
    compiled: Vec<Regex>,
    tails: Vec<Option<Rc<TailMatcher>>>,
}

impl RegexCache {
    /// [`compile_regex`], or a clone of the regex compiled before for the same pattern.
    pub fn compile(&mut self, pattern: &str, anchor_end: bool) -> Result<Regex, String> {
        let i = self.entry(pattern, anchor_end)?;
        Ok(self.compiled[i].clone())
    }

    /// A start-anchored regex for `pattern` and, when the pattern is simple enough, the
    /// fast [`TailMatcher`] for it (shared by every rule with the same tail).
    pub fn compile_tail(
        &mut self,
        pattern: &str,
    ) -> Result<(Regex, Option<Rc<TailMatcher>>), String> {
        let i = self.entry(pattern, false)?;
        Ok((self.compiled[i].clone(), self.tails[i].clone()))
    }

    /// The index of `pattern`'s compiled form, compiling it the first time.
    fn entry(&mut self, pattern: &str, anchor_end: bool) -> Result<usize, String> {
        let index = &mut self.index[usize::from(anchor_end)];
        if let Some(&i) = index.get(pattern) {
            return Ok(i as usize);
        }
        let regex = compile_regex(pattern, anchor_end)?;
        let i = self.compiled.len();
        index.insert(pattern.to_owned(), i as u32);
        self.compiled.push(regex);
        self.tails.push(
            (!anchor_end)
                .then(|| TailMatcher::compile(pattern).map(Rc::new))
                .flatten(),
        );
        Ok(i)
    }
}

/// Splits an SMI `pathRegex` (anchored at the start) into what a prefix index can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegexShape {
    /// The regex is a plain literal: it matches exactly the paths starting with it.
    Prefix(String),
    /// The regex is a literal followed by `$`: it matches exactly this path.
    Exact(String),
    /// Any match starts with `literal` (possibly empty); the regex decides the rest.
    Regex {
        /// The literal every match starts with.
        literal: String,
        /// When set, the pattern from this byte offset on, anchored at the end of the
        /// literal, is equivalent to the whole regex: it can run on the path after the
        /// literal alone (and be shared by every pattern with the same rest).
        rest: Option<usize>,
    },
}

/// Analyzes a start-anchored regex: a leading `^` is implied. Conservative: anything
/// unusual yields `Regex` with no literal and no rest.
pub fn regex_shape(pattern: &str) -> RegexShape {
    let skip = usize::from(pattern.starts_with('^'));
    let body = &pattern[skip..];
    if has_top_level_alternation(body) {
        return RegexShape::Regex {
            literal: String::new(),
            rest: None,
        };
    }
    let mut literal = String::new();
    // Byte offset (in `body`) where the last literal atom starts, for quantifiers.
    let mut atom = 0;
    let mut chars = body.char_indices().peekable();
    let stop = |literal: String, at: usize| {
        let rest = (!literal.is_empty() && splittable(&body[at..])).then_some(skip + at);
        RegexShape::Regex { literal, rest }
    };
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&(_, n)) if n.is_ascii_punctuation() => {
                    literal.push(n);
                    chars.next();
                    atom = at;
                }
                _ => return stop(literal, at),
            },
            '$' if chars.peek().is_none() => return RegexShape::Exact(literal),
            '*' | '?' | '{' | '+' => {
                literal.pop();
                return stop(literal, atom);
            }
            '.' | '[' | '(' | ')' | '|' | '^' | '$' | ']' | '}' => return stop(literal, at),
            c => {
                literal.push(c);
                atom = at;
            }
        }
    }
    RegexShape::Prefix(literal)
}

/// Whether a pattern tail can be matched on its own, anchored where the literal before it
/// ended: it must not assert anything about what comes before it (`^`, word boundaries,
/// flags that change anchors).
fn splittable(rest: &str) -> bool {
    let (mut in_class, mut escaped) = (false, false);
    let bytes = rest.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
            if !in_class && matches!(b, b'b' | b'B' | b'A' | b'<' | b'>') {
                return false;
            }
            continue;
        }
        match b {
            b'\\' => escaped = true,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'^' if !in_class => return false,
            b'(' if !in_class
                && bytes.get(i + 1) == Some(&b'?')
                && bytes.get(i + 2) != Some(&b':') =>
            {
                return false;
            }
            _ => {}
        }
    }
    !rest.is_empty()
}

fn has_top_level_alternation(pattern: &str) -> bool {
    let (mut depth, mut in_class, mut escaped) = (0i32, false, false);
    for c in pattern.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => depth -= 1,
            '|' if !in_class && depth == 0 => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn regex_cache_compiles_once_and_keeps_anchoring_apart() {
        let mut cache = RegexCache::default();
        let start = cache.compile("a+", false).unwrap();
        let whole = cache.compile("a+", true).unwrap();
        assert!(start.is_match("aab") && !whole.is_match("aab"));
        assert!(cache.compile("a+", false).unwrap().is_match("ab"));
        assert_eq!(cache.compiled.len(), 2);
        assert!(cache.compile("(", false).is_err());
    }

    #[test]
    fn regex_limits() {
        assert!(compile_regex("(", false).is_err());
        assert!(compile_regex(&"a".repeat(REGEX_MAX_LEN + 1), false).is_err());
        assert!(compile_regex("(a{1000}){1000}", false).is_err());
        let r = compile_regex("/api", false).unwrap();
        assert!(r.is_match("/api/v1") && r.is_match("/apix") && !r.is_match("/x/api"));
    }

    /// Splitting never changes what a pattern matches.
    #[test]
    fn split_patterns_match_like_the_whole() {
        let patterns = [
            "/api/v[0-9]+/items/",
            "/ab*c",
            "/a\\.+x",
            "/(a|b)c$",
            "/x\\d{2}",
            "/a[^/]*/b",
            "/a(?:b|c)+d",
            "/u.*z$",
        ];
        let paths = [
            "/api/v12/items/3",
            "/api/v/items/",
            "/ac",
            "/abbbc",
            "/a..x",
            "/ax",
            "/ac",
            "/bc",
            "/ac/",
            "/x12",
            "/x1",
            "/a/b",
            "/aq/b",
            "/abcd",
            "/ad",
            "/uz",
            "/u/z/",
            "",
        ];
        for pattern in patterns {
            let RegexShape::Regex {
                literal,
                rest: Some(rest),
            } = regex_shape(pattern)
            else {
                panic!("{pattern} should split");
            };
            let whole = compile_regex(pattern, false).unwrap();
            let tail = compile_regex(&pattern[rest..], false).unwrap();
            for path in paths {
                let split = path
                    .strip_prefix(literal.as_str())
                    .is_some_and(|after| tail.is_match(after));
                assert_eq!(whole.is_match(path), split, "{pattern} on {path}");
            }
        }
    }

    #[test]
    fn regex_shapes() {
        assert_eq!(
            regex_shape("/metrics"),
            RegexShape::Prefix("/metrics".into())
        );
        assert_eq!(
            regex_shape("^/metrics$"),
            RegexShape::Exact("/metrics".into())
        );
        assert_eq!(regex_shape("/a\\.b"), RegexShape::Prefix("/a.b".into()));
        let re = |literal: &str, rest: Option<usize>| RegexShape::Regex {
            literal: literal.into(),
            rest,
        };
        assert_eq!(regex_shape("/api/v[0-9]"), re("/api/v", Some(6)));
        assert_eq!(regex_shape("^/api/v[0-9]"), re("/api/v", Some(7)));
        assert_eq!(regex_shape("/ab*"), re("/a", Some(2)));
        assert_eq!(regex_shape("/ab+"), re("/a", Some(2)));
        assert_eq!(regex_shape("/a\\.+"), re("/a", Some(2)));
        assert_eq!(regex_shape("/a|/b"), re("", None));
        assert_eq!(regex_shape("/(a|b)"), re("/", Some(1)));
        assert_eq!(regex_shape("/x\\d"), re("/x", Some(2)));
        assert_eq!(regex_shape(".*"), re("", None));
        assert_eq!(regex_shape(""), RegexShape::Prefix("".into()));
        // Tails that look behind the split point are never split.
        assert_eq!(regex_shape("/a\\bc"), re("/a", None));
        assert_eq!(regex_shape("/a[0-9]*\\bx"), re("/a", None));
        assert_eq!(regex_shape("/a(?i)b"), re("/a", None));
        assert_eq!(regex_shape("/a^b"), re("/a", None));
        assert_eq!(regex_shape("/a[^b]c"), re("/a", Some(2)));
        assert_eq!(regex_shape("/a(?:b|c)"), re("/a", Some(2)));
    }
}
