//! Glob-style matching as Redis's `stringmatchlen` does it, for KEYS, SCAN
//! MATCH and pub/sub patterns: `*`, `?`, `[abc]`, `[^a-z]`, `\x`.

/// Whether `s` matches `pattern`. Byte-wise; `nocase` folds ASCII letters.
pub fn matches(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    match_from(pattern, s, nocase, 0)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase { a.eq_ignore_ascii_case(&b) } else { a == b }
}

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
    use super::matches;

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
