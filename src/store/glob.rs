//! Glob-style matching as Redis's `stringmatchlen` does it, for KEYS, SCAN
//! MATCH and pub/sub patterns: `*`, `?`, `[abc]`, `[^a-z]`, `\x`.

/// Whether `s` matches `pattern`. Byte-wise; `nocase` folds ASCII letters.
///
/// Every token but `*` consumes exactly one byte, so on a mismatch only the
/// last `*` seen needs to take one more byte (earlier stars could only take
/// what it can): at most `|pattern| x |s|` steps, never the exponential
/// backtracking of a recursive matcher (Redis's CVE-2022-36021).
pub fn matches(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let (mut p, mut i) = (0, 0);
    // Where to resume after the last star: its pattern position, and the
    // string position it has taken up to.
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if let Some(next) = step(pattern, p, s[i], nocase) {
            match next {
                Step::Star => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, i));
                }
                Step::Matched(next_p) => {
                    p = next_p;
                    i += 1;
                }
            }
            continue;
        }
        let Some((sp, si)) = star else { return false };
        star = Some((sp, si + 1));
        (p, i) = (sp, si + 1);
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

enum Step {
    Star,
    /// The byte matched; the pattern goes on at this position.
    Matched(usize),
}

/// The pattern token at `p` against byte `c`: None on a mismatch.
fn step(pattern: &[u8], p: usize, c: u8, nocase: bool) -> Option<Step> {
    let rest = pattern.get(p..).filter(|r| !r.is_empty())?;
    let (matched, len) = match rest[0] {
        b'*' => return Some(Step::Star),
        b'?' => (true, 1),
        b'[' => {
            let (m, after) = match_class(&rest[1..], c, nocase);
            (m, rest.len() - after.len())
        }
        b'\\' if rest.len() >= 2 => (eq(rest[1], c, nocase), 2),
        x => (eq(x, c, nocase), 1),
    };
    matched.then_some(Step::Matched(p + len))
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase { a.eq_ignore_ascii_case(&b) } else { a == b }
}

/// Matches one byte against a `[...]` class; returns the pattern after `]`.
fn match_class(mut p: &[u8], c: u8, nocase: bool) -> (bool, &[u8]) {
    let negate = p.first() == Some(&b'^');
    if negate {
        p = &p[1..];
    }
    let mut matched = false;
    loop {
        match p {
            [] => break,
            [b'\\', x, rest @ ..] => {
                matched |= eq(*x, c, nocase);
                p = rest;
            }
            [b']', rest @ ..] => {
                p = rest;
                return (matched != negate, p);
            }
            [a, b'-', b, rest @ ..] if *b != b']' => {
                let (lo, hi) = if a <= b { (*a, *b) } else { (*b, *a) };
                let (cl, lol, hil) =
                    if nocase { (c.to_ascii_lowercase(), lo.to_ascii_lowercase(), hi.to_ascii_lowercase()) } else { (c, lo, hi) };
                matched |= cl >= lol && cl <= hil;
                p = rest;
            }
            [x, rest @ ..] => {
                matched |= eq(*x, c, nocase);
                p = rest;
            }
        }
    }
    // Unterminated class: Redis treats the end of pattern as the end of the class.
    (matched != negate, p)
}

#[cfg(test)]
mod tests {
    use super::{eq, match_class, matches};
    use proptest::prelude::*;

    /// The recursive matcher this module had (Redis's algorithm before its
    /// fix): exponential on `a*a*a*...b`, and the oracle for short inputs.
    fn match_from(mut p: &[u8], mut s: &[u8], nocase: bool, depth: u32) -> bool {
        // Like Redis, bound recursion so a pathological pattern cannot blow the stack.
        if depth > 1000 {
            return false;
        }
        while !p.is_empty() && !s.is_empty() {
            match p[0] {
                b'*' => {
                    while p.len() > 1 && p[1] == b'*' {
                        p = &p[1..];
                    }
                    if p.len() == 1 {
                        return true;
                    }
                    for i in 0..=s.len() {
                        if match_from(&p[1..], &s[i..], nocase, depth + 1) {
                            return true;
                        }
                    }
                    return false;
                }
                b'?' => {
                    s = &s[1..];
                    p = &p[1..];
                    continue;
                }
                b'[' => {
                    let (matched, rest) = match_class(&p[1..], s[0], nocase);
                    if !matched {
                        return false;
                    }
                    p = rest;
                    s = &s[1..];
                    continue;
                }
                b'\\' if p.len() >= 2 => {
                    if !eq(p[1], s[0], nocase) {
                        return false;
                    }
                    p = &p[2..];
                    s = &s[1..];
                    continue;
                }
                c => {
                    if !eq(c, s[0], nocase) {
                        return false;
                    }
                    p = &p[1..];
                    s = &s[1..];
                }
            }
        }
        // Trailing stars match the empty rest.
        s.is_empty() && p.iter().all(|&c| c == b'*')
    }

    #[test]
    fn pathological_patterns_are_linear() {
        let key = vec![b'a'; 37];
        let pattern = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let start = std::time::Instant::now();
        for _ in 0..100 {
            assert!(!matches(pattern, &key, false));
        }
        let long_key = vec![b'a'; 100_000];
        assert!(!matches(&[b"*a".repeat(500), b"b".to_vec()].concat(), &long_key, false));
        // The recursive matcher takes about a minute for the first alone.
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "{:?}", start.elapsed());
    }

    proptest! {
        #[test]
        fn same_answers_as_the_recursive_matcher(
            pattern in proptest::collection::vec(prop::sample::select(b"ab*?[]^-\\".to_vec()), 0..10),
            s in proptest::collection::vec(prop::sample::select(b"abAB*-]".to_vec()), 0..10),
            nocase: bool,
        ) {
            prop_assert_eq!(matches(&pattern, &s, nocase), match_from(&pattern, &s, nocase, 0));
        }
    }

    #[test]
    fn globs() {
        assert!(matches(b"*", b"anything", false));
        assert!(matches(b"h?llo", b"hello", false));
        assert!(matches(b"h[ae]llo", b"hallo", false));
        assert!(!matches(b"h[^e]llo", b"hello", false));
        assert!(matches(b"h[a-b]llo", b"hbllo", false));
        assert!(matches(b"user:*", b"user:1", false));
        assert!(!matches(b"user:*", b"use", false));
        assert!(matches(b"a\\*b", b"a*b", false));
        assert!(matches(b"HELLO", b"hello", true));
        assert!(matches(b"a*", b"a", false));
        assert!(!matches(b"", b"a", false));
    }
}
