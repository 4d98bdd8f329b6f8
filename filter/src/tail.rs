//! A bit-parallel matcher for simple regex tails (what follows a `pathRegex`'s literal
//! prefix), equivalent to regex-lite's `^(?:tail)` on ASCII input and far cheaper.
//!
//! The supported subset is a sequence of single-character atoms, each optionally
//! quantified, with an optional final `$`. Each atom expands to positions of a linear
//! Glushkov NFA (counted repetitions become copies) whose state fits in a `u64`
//! (Shift-And). Anything outside the subset is refused at compile time, so the caller
//! keeps regex-lite for it.

/// The most positions a tail may expand to: bit 63 is left for "matched".
const MAX_POSITIONS: usize = 63;

/// A set of ASCII bytes, bit `b` for byte `b`.
type AsciiSet = u128;

/// ASCII bytes `lo..=hi`.
const fn range(lo: u8, hi: u8) -> AsciiSet {
    (AsciiSet::MAX >> (127 - hi)) & (AsciiSet::MAX << lo)
}

const fn byte(b: u8) -> AsciiSet {
    1 << b
}

const DIGIT: AsciiSet = range(b'0', b'9');
const WORD: AsciiSet = DIGIT | range(b'A', b'Z') | range(b'a', b'z') | byte(b'_');
// `\t \n \v \f \r` and space, as regex-lite's `\s`.
const SPACE: AsciiSet = range(b'\t', b'\r') | byte(b' ');
const DOT: AsciiSet = !byte(b'\n');

/// A compiled simple regex tail: matches like regex-lite's `^(?:tail)` (`is_match`) on
/// ASCII input.
#[derive(Debug, Clone)]
pub struct TailMatcher {
    /// Bit `p` of `table[b]`: position `p` accepts byte `b`.
    table: [u64; 128],
    /// Positions that may be skipped (`?`, `*`, copies beyond the minimum count).
    optional: u64,
    /// Positions that may consume again after consuming (`*`, `+`).
    repeat: u64,
    /// The positions ready before the first byte.
    start: u64,
    /// The bit after the last position: reaching it means the tail matched.
    end: u64,
    /// `end`, or 0 when the tail ends with `$` (a match must then consume everything).
    early: u64,
}

impl TailMatcher {
    /// Compiles `tail`, or None if it uses anything outside the supported subset (the
    /// caller then keeps using regex-lite) or expands to more than 63 positions.
    ///
    /// Subset: printable ASCII literals but ``\ . + * ? ( ) | [ ] { } ^ $``; `\` + ASCII
    /// punctuation other than `<` `>`; `.`; `\d \D \w \W \s \S`; classes `[...]`/`[^...]`
    /// of literals, ranges, escaped punctuation and `\d`-style classes (a `-` only first,
    /// last or in a range; no `[` inside, no empty class, no `&&`/`~~`/`--`); each atom
    /// optionally followed by `*`, `+`, `?`, `{n}`, `{n,}` or `{n,m}` and then an optional
    /// lazy `?`; and an optional `$` as the very last character.
    pub fn compile(tail: &str) -> Option<Self> {
        let bytes = tail.as_bytes();
        let mut positions = Positions::default();
        let mut anchored_end = false;
        let mut i = 0;
        while let Some(&c) = bytes.get(i) {
            i += 1;
            let class = match c {
                b'$' if i == bytes.len() => {
                    anchored_end = true;
                    break;
                }
                b'.' => DOT,
                b'\\' => {
                    let class = escape(*bytes.get(i)?)?;
                    i += 1;
                    class
                }
                b'[' => {
                    let (class, next) = bracket(bytes, i)?;
                    i = next;
                    class
                }
                c if is_plain(c) => byte(c),
                _ => return None,
            };
            let (min, max, next) = quantifier(bytes, i)?;
            i = next;
            positions.push(class, min, max)?;
        }
        Some(positions.build(anchored_end))
    }

    /// Some(whether `^(?:tail)` matches a prefix of `haystack` — or the whole of it when
    /// the tail ends with `$`), or None when a non-ASCII byte is reached before the answer
    /// is known (the caller then falls back to regex-lite).
    pub fn is_match(&self, haystack: &str) -> Option<bool> {
        let mut ready = self.start;
        if ready & self.early != 0 {
            return Some(true);
        }
        for &b in haystack.as_bytes() {
            // None for b >= 128: the table covers ASCII only.
            let consumed = ready & *self.table.get(usize::from(b))?;
            ready = self.close((consumed << 1) | (consumed & self.repeat));
            if ready & self.early != 0 {
                return Some(true);
            }
            if ready == 0 {
                return Some(false);
            }
        }
        Some(ready & self.end != 0)
    }

    /// Adds the positions reachable by skipping optional ones.
    fn close(&self, mut ready: u64) -> u64 {
        loop {
            let next = ready | ((ready & self.optional) << 1);
            if next == ready {
                return ready;
            }
            ready = next;
        }
    }
}

/// The positions of a tail being compiled.
#[derive(Default)]
struct Positions {
    classes: Vec<AsciiSet>,
    optional: u64,
    repeat: u64,
}

impl Positions {
    /// Appends `class{min,max}` (`max` None: unbounded) as copies of the class.
    fn push(&mut self, class: AsciiSet, min: usize, max: Option<usize>) -> Option<()> {
        let (plain, optional, star_or_plus) = match max {
            Some(max) => (min, max.checked_sub(min)?, false),
            None => (min.saturating_sub(1), 0, true),
        };
        for _ in 0..plain {
            self.one(class, false, false)?;
        }
        for _ in 0..optional {
            self.one(class, true, false)?;
        }
        if star_or_plus {
            self.one(class, min == 0, true)?;
        }
        Some(())
    }

    fn one(&mut self, class: AsciiSet, optional: bool, repeat: bool) -> Option<()> {
        if self.classes.len() >= MAX_POSITIONS {
            return None;
        }
        let bit = 1u64 << self.classes.len();
        self.classes.push(class);
        if optional {
            self.optional |= bit;
        }
        if repeat {
            self.repeat |= bit;
        }
        Some(())
    }

    fn build(self, anchored_end: bool) -> TailMatcher {
        let mut table = [0u64; 128];
        for (p, class) in self.classes.iter().enumerate() {
            for (b, entry) in table.iter_mut().enumerate() {
                if (class >> b) & 1 != 0 {
                    *entry |= 1 << p;
                }
            }
        }
        let end = 1u64 << self.classes.len();
        let mut matcher = TailMatcher {
            table,
            optional: self.optional,
            repeat: self.repeat,
            start: 1,
            end,
            early: if anchored_end { 0 } else { end },
        };
        matcher.start = matcher.close(1);
        matcher
    }
}

/// A literal matching itself outside a class: printable ASCII but the metacharacters.
fn is_plain(c: u8) -> bool {
    matches!(c, b' '..=b'~') && !b"\\.+*?()|[]{}^$".contains(&c)
}

/// The class of `\c` (after the backslash), in or out of a bracket class.
fn escape(c: u8) -> Option<AsciiSet> {
    Some(match c {
        b'd' => DIGIT,
        b'D' => !DIGIT,
        b'w' => WORD,
        b'W' => !WORD,
        b's' => SPACE,
        b'S' => !SPACE,
        // `\<` and `\>` are word boundaries in regex-lite.
        b'<' | b'>' => return None,
        c if c.is_ascii_punctuation() => byte(c),
        _ => return None,
    })
}

/// A bracket class whose `[` ends just before `i`: its set and the index after its `]`.
fn bracket(bytes: &[u8], mut i: usize) -> Option<(AsciiSet, usize)> {
    let negated = bytes.get(i) == Some(&b'^');
    i += usize::from(negated);
    let mut set = 0;
    let mut empty = true;
    if bytes.get(i) == Some(&b'-') {
        set |= byte(b'-');
        empty = false;
        i += 1;
    }
    loop {
        let c = *bytes.get(i)?;
        let next = bytes.get(i + 1).copied();
        match c {
            // `[]…` and `[^]…` (a literal `]` in regex-lite) are refused.
            b']' if empty => return None,
            b']' => return Some((if negated { !set } else { set }, i + 1)),
            b'-' if next == Some(b']') => {
                set |= byte(b'-');
                i += 1;
            }
            b'[' | b'-' => return None,
            b'&' | b'~' if next == Some(c) => return None,
            _ => {
                let (item, single, after) = class_item(bytes, i)?;
                i = after;
                let dash_next = bytes.get(i + 1).copied();
                if bytes.get(i) == Some(&b'-') && !matches!(dash_next, Some(b']' | b'-')) {
                    let (_, hi, after) = class_item(bytes, i + 1)?;
                    let (lo, hi) = (single?, hi?);
                    if lo > hi {
                        return None;
                    }
                    set |= range(lo, hi);
                    i = after;
                } else {
                    set |= item;
                }
            }
        }
        empty = false;
    }
}

/// One item of a bracket class at `i`: its set, the byte when it is a single one (a
/// possible range end), and the index after it.
fn class_item(bytes: &[u8], i: usize) -> Option<(AsciiSet, Option<u8>, usize)> {
    match *bytes.get(i)? {
        b'\\' => {
            let c = *bytes.get(i + 1)?;
            let set = escape(c)?;
            let single = c.is_ascii_punctuation().then_some(c);
            Some((set, single, i + 2))
        }
        c if matches!(c, b' '..=b'~') && !matches!(c, b'[' | b']' | b'-') => {
            Some((byte(c), Some(c), i + 1))
        }
        _ => None,
    }
}

/// The quantifier at `i` (if any) as `(min, max, index after it)`; `(1, Some(1), i)`
/// when there is none. None for a malformed `{…}` or counts above the position limit.
fn quantifier(bytes: &[u8], i: usize) -> Option<(usize, Option<usize>, usize)> {
    let (min, max, mut i) = match bytes.get(i) {
        Some(b'*') => (0, None, i + 1),
        Some(b'+') => (1, None, i + 1),
        Some(b'?') => (0, Some(1), i + 1),
        Some(b'{') => {
            let (min, after) = count(bytes, i + 1)?;
            match bytes.get(after) {
                Some(b'}') => (min, Some(min), after + 1),
                Some(b',') if bytes.get(after + 1) == Some(&b'}') => (min, None, after + 2),
                Some(b',') => {
                    let (max, after) = count(bytes, after + 1)?;
                    if bytes.get(after) != Some(&b'}') {
                        return None;
                    }
                    (min, Some(max), after + 1)
                }
                _ => return None,
            }
        }
        _ => return Some((1, Some(1), i)),
    };
    // A lazy `?` changes which match is found, not whether there is one.
    if bytes.get(i) == Some(&b'?') {
        i += 1;
    }
    Some((min, max, i))
}

/// A decimal count at `i` (at most [`MAX_POSITIONS`]) and the index after its digits.
fn count(bytes: &[u8], mut i: usize) -> Option<(usize, usize)> {
    let start = i;
    let mut n = 0usize;
    while let Some(&d) = bytes.get(i).filter(|d| d.is_ascii_digit()) {
        n = n * 10 + usize::from(d - b'0');
        if n > MAX_POSITIONS {
            return None;
        }
        i += 1;
    }
    (i > start).then_some((n, i))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use regex_lite::Regex;

    fn m(tail: &str, haystack: &str) -> Option<bool> {
        TailMatcher::compile(tail)
            .unwrap_or_else(|| panic!("{tail:?} should compile"))
            .is_match(haystack)
    }

    fn oracle(tail: &str, haystack: &str) -> bool {
        Regex::new(&format!("^(?:{tail})"))
            .unwrap_or_else(|e| panic!("{tail:?}: {e}"))
            .is_match(haystack)
    }

    #[test]
    fn hand_cases() {
        let cases: &[(&str, &str, bool)] = &[
            ("[0-9]+/items/", "2/items/42", true),
            ("[0-9]+/items/", "/items/42", false),
            ("[0-9]+/items/", "123/item", false),
            ("[0-9]+/items/", "12a/items/", false),
            (r"\d{2,3}x", "12x", true),
            (r"\d{2,3}x", "123x", true),
            (r"\d{2,3}x", "1x", false),
            (r"\d{2,3}x", "1234x", false),
            (r"\d{2,3}x", "12", false),
            (".*z$", "abcz", true),
            (".*z$", "abcza", false),
            (".*z$", "a\nz", false),
            (".*z$", "z", true),
            ("[^/]+/x", "abc/x", true),
            ("[^/]+/x", "/x", false),
            ("[^/]+/x", "a/b/x", false),
            (r"\w+\.json$", "data_1.json", true),
            (r"\w+\.json$", "data-1.json", false),
            (r"\w+\.json$", "a.json.bak", false),
            (r"\w+\.json$", ".json", false),
            ("", "anything", true),
            ("", "", true),
            ("$", "", true),
            ("$", "x", false),
            ("a{0}b", "b", true),
            ("a{2,}$", "aaaaa", true),
            ("a{2,}$", "a", false),
            ("a?b??c*?d+?$", "d", true),
            ("a?b??c*?d+?$", "abccdd", true),
            ("[-a]x", "-x", true),
            ("[a-]x", "-x", true),
            ("[^-]", "-", false),
            (r"[\]\-\\]", "]", true),
            (r"[\]\-\\]", "\\", true),
            (r"[\d_]", "_", true),
            (r"[^\D]", "5", true),
            (r"[^\D]", "a", false),
            ("[^a]", "\n", true),
            (".", "\n", false),
            (r"\s\S", "\t.", true),
            (r"\s", "\x0b", true),
            ("/a-b~c&d#", "/a-b~c&d#", true),
        ];
        for &(tail, haystack, want) in cases {
            assert_eq!(m(tail, haystack), Some(want), "{tail:?} on {haystack:?}");
            assert_eq!(
                oracle(tail, haystack),
                want,
                "oracle {tail:?} on {haystack:?}"
            );
        }
        let long = "a".repeat(10_000);
        assert_eq!(m("a*a*a*b", &long), Some(false));
        assert_eq!(m("a*a*a*b", &format!("{long}b")), Some(true));
        assert_eq!(m("a*a*a*$", &long), Some(true));
    }

    #[test]
    fn non_ascii_haystacks() {
        assert_eq!(m("[0-9]+/x", "12é/x"), None);
        assert_eq!(m(".*$", "aé"), None);
    }

    #[test]
    fn non_ascii_after_the_answer_is_known() {
        // The answer is decided by the ASCII prefix, as regex-lite would find it too.
        for (tail, haystack) in [("ab", "abé"), ("ab", "xé"), ("a$", "bé")] {
            assert_eq!(m(tail, haystack), Some(oracle(tail, haystack)));
        }
    }

    #[test]
    fn rejections() {
        // Space-separated, plus the ones containing whitespace.
        let refused = r"é a|b (a) (?i)a ^a \b \B \A \z \< \> \n \t \x41 \p{L} \pL \1 \e \ a$b $$
            *a + ? {2} a** a+* a{2}{3} a{ a{} a{,2} a{2 a{2, a{2,3 a{3,2} a{x} a{64} a{0,64}
            a{99999999999999999999} []a] [^]a] [] [^] [a [a- [a-z [[:alpha:]] [a[b]] [a&&b]
            [a--b] [a~~b] [z-a] [\d-z] [a-\d] [a-b-c] [--a] [\n] [é] ] } ) .{63}x";
        let refused = refused
            .split_whitespace()
            .chain(["a{ 2}", "a\tb", "[ -\t]"]);
        for tail in refused {
            assert!(
                TailMatcher::compile(tail).is_none(),
                "{tail:?} should be refused"
            );
        }
        assert!(TailMatcher::compile(&"a".repeat(63)).is_some());
        assert!(TailMatcher::compile(&"a".repeat(64)).is_none());
        assert!(TailMatcher::compile("a{63}$").is_some());
    }

    /// A deterministic xorshift generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    /// Bytes near class boundaries and the metacharacters' neighbours.
    const INTERESTING: &[u8] = b"\0\t\n\x0b\r /-.09:@AZ[\\]^_`az{|}~\x7f_.1b";

    /// An atom of the supported grammar: its text and the bytes it accepts (per
    /// regex-lite, queried byte by byte).
    fn atom(rng: &mut Rng) -> (String, Vec<u8>) {
        let text = match rng.below(6) {
            0 => (*rng.pick(&["a", "b", "/", "-", "~", "&", "_", "0", "9", " "])).to_string(),
            1 => (*rng.pick(&[r"\.", r"\/", r"\-", r"\$", r"\\", r"\[", r"\{", r"\*"])).to_string(),
            2 => ".".to_string(),
            3 => (*rng.pick(&[r"\d", r"\D", r"\w", r"\W", r"\s", r"\S"])).to_string(),
            _ => {
                let mut class = String::from("[");
                if rng.below(3) == 0 {
                    class.push('^');
                }
                if rng.below(6) == 0 {
                    class.push('-');
                }
                let mut last = "";
                for _ in 0..1 + rng.below(3) {
                    let item = *rng.pick(&[
                        "a", "z", "/", "0-9", "a-f", "A-Z", ":-@", "!-/", r"\d", r"\W", r"\s",
                        r"\]", r"\-", r"\\", r"\^", "x^", ".", "_", "&", "~", "$", " ", r"\[-`",
                        "{-~",
                    ]);
                    // `&&` and `~~` are class operations, refused by both.
                    if item != last {
                        class.push_str(item);
                    }
                    last = item;
                }
                if rng.below(6) == 0 {
                    class.push('-');
                }
                class.push(']');
                class
            }
        };
        let single = Regex::new(&format!("^(?:{text})$")).unwrap();
        let accepted = (0u8..128)
            .filter(|&b| single.is_match(char::from(b).encode_utf8(&mut [0; 4])))
            .collect();
        (text, accepted)
    }

    /// A quantifier: its text and its (min, max) with an unbounded max capped at 3 more.
    fn quantifier_text(rng: &mut Rng) -> (String, usize, usize) {
        let (text, min, max) = match rng.below(10) {
            0 => ("*".to_string(), 0, 3),
            1 => ("+".to_string(), 1, 4),
            2 => ("?".to_string(), 0, 1),
            3 => {
                let n = rng.below(4);
                (format!("{{{n}}}"), n, n)
            }
            4 => {
                let n = rng.below(3);
                (format!("{{{n},}}"), n, n + 3)
            }
            5 => {
                let (n, k) = (rng.below(3), rng.below(3));
                (format!("{{{n},{}}}", n + k), n, n + k)
            }
            _ => (String::new(), 1, 1),
        };
        if !text.is_empty() && rng.below(4) == 0 {
            (format!("{text}?"), min, max)
        } else {
            (text, min, max)
        }
    }

    /// A random tail, and a haystack generator biased to produce matches.
    fn tail(rng: &mut Rng) -> (String, Vec<(Vec<u8>, usize, usize)>) {
        let mut text = String::new();
        let mut atoms = Vec::new();
        for _ in 0..1 + rng.below(5) {
            let (atom, accepted) = atom(rng);
            let (quantifier, min, max) = quantifier_text(rng);
            text.push_str(&atom);
            text.push_str(&quantifier);
            atoms.push((accepted, min, max));
        }
        if rng.below(3) == 0 {
            text.push('$');
        }
        (text, atoms)
    }

    fn haystack(rng: &mut Rng, atoms: &[(Vec<u8>, usize, usize)]) -> String {
        let mut out = Vec::new();
        if rng.below(5) == 0 {
            // Random noise.
            for _ in 0..rng.below(8) {
                out.push(*rng.pick(INTERESTING));
            }
        } else {
            for (accepted, min, max) in atoms {
                for _ in 0..min + rng.below(max - min + 1) {
                    if !accepted.is_empty() {
                        out.push(*rng.pick(accepted));
                    }
                }
            }
            match rng.below(5) {
                0 if !out.is_empty() => {
                    let at = rng.below(out.len());
                    out[at] = *rng.pick(INTERESTING);
                }
                1 => out.push(*rng.pick(INTERESTING)),
                2 => out.truncate(rng.below(out.len() + 1)),
                _ => {}
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn agrees_with_regex_lite_on_generated_tails() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut pairs, mut matched, mut undecided) = (0, 0, 0);
        for _ in 0..400 {
            let (tail, atoms) = tail(&mut rng);
            let matcher = TailMatcher::compile(&tail)
                .unwrap_or_else(|| panic!("generated tail {tail:?} should compile"));
            let regex = Regex::new(&format!("^(?:{tail})")).unwrap();
            for _ in 0..12 {
                let haystack = haystack(&mut rng, &atoms);
                let want = regex.is_match(&haystack);
                assert_eq!(
                    matcher.is_match(&haystack),
                    Some(want),
                    "{tail:?} on {haystack:?}"
                );
                pairs += 1;
                matched += usize::from(want);
            }
            // Non-ASCII: no answer, unless the tail decides before reaching it.
            match matcher.is_match("é") {
                None => undecided += 1,
                answer => assert_eq!(answer, Some(regex.is_match("é")), "{tail:?}"),
            }
        }
        println!("{pairs} pairs, {matched} matches, {undecided} decided before non-ASCII");
        assert!(pairs >= 4000);
        assert!(undecided > 100, "{undecided}");
        // Both answers are well represented, or the comparison would prove little.
        assert!(
            matched > pairs / 5 && matched < pairs * 4 / 5,
            "{matched}/{pairs}"
        );
    }

    #[test]
    fn accepted_soup_agrees_with_regex_lite() {
        // Random strings over the syntax's characters: whatever compiles must be a valid
        // regex-lite pattern with the same answers.
        const SOUP: &[u8] = b"ab0-9.\\[]^$*+?{},|()dDwWsSn&~<>:_/";
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let (mut compiled, mut pairs) = (0, 0);
        for _ in 0..20_000 {
            let len = 1 + rng.below(8);
            let tail: String = (0..len).map(|_| char::from(*rng.pick(SOUP))).collect();
            let Some(matcher) = TailMatcher::compile(&tail) else {
                continue;
            };
            compiled += 1;
            let regex = Regex::new(&format!("^(?:{tail})"))
                .unwrap_or_else(|e| panic!("accepted {tail:?} but regex-lite says {e}"));
            for _ in 0..4 {
                let haystack: String = (0..rng.below(6))
                    .map(|_| char::from(*rng.pick(SOUP)))
                    .collect();
                assert_eq!(
                    matcher.is_match(&haystack),
                    Some(regex.is_match(&haystack)),
                    "{tail:?} on {haystack:?}"
                );
                pairs += 1;
            }
        }
        println!("{compiled} of 20000 random tails compiled, {pairs} pairs compared");
        assert!(compiled > 1000, "{compiled}");
        assert!(pairs > 4000, "{pairs}");
    }

    #[test]
    #[ignore = "timing only: cargo test -p xcluster-filter --release tail -- --ignored --nocapture"]
    fn timing_against_regex_lite() {
        use std::hint::black_box;
        use std::time::Instant;
        let (tail, haystack) = ("[0-9]+/items/", "2/items/42");
        let matcher = TailMatcher::compile(tail).unwrap();
        let regex = Regex::new(&format!("^(?:{tail})")).unwrap();
        let n = 100_000;
        let t = Instant::now();
        let hits = (0..n)
            .filter(|_| black_box(&matcher).is_match(black_box(haystack)) == Some(true))
            .count();
        let fast = t.elapsed();
        let t = Instant::now();
        let slow_hits = (0..n)
            .filter(|_| black_box(&regex).is_match(black_box(haystack)))
            .count();
        let slow = t.elapsed();
        assert_eq!(hits, slow_hits);
        println!(
            "{n} matches of {tail:?} on {haystack:?}: tail {fast:?} ({:.1} ns each), \
             regex-lite {slow:?} ({:.1} ns each)",
            fast.as_nanos() as f64 / n as f64,
            slow.as_nanos() as f64 / n as f64
        );
    }
}
