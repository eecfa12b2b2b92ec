//! Request parsing, in place, with Redis 7.0's limits and error strings.
//!
//! [`parse_request`] looks at the unconsumed part of a connection's read
//! buffer and either reports that more bytes are needed, or records where each
//! argument of the next request lies ([`Argv`]) and how many bytes it used.
//! Multibulk arguments are never copied; inline requests (telnet style) are
//! unquoted into a small scratch buffer that [`Argv`] reuses.
//!
//! Every limit here exists so that a hostile stream cannot make the server
//! allocate without bound: nothing is reserved from a length header, and the
//! caller caps the total buffered query at `client-query-buffer-limit`.

use thiserror::Error;

/// Longest inline request, and longest `*`/`$` count line (PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX: usize = 64 * 1024;
/// Before AUTH, a request may have at most this many arguments...
pub const UNAUTH_MAX_ARGS: i64 = 10;
/// ...each at most this long (CVE-2021-32675).
pub const UNAUTH_MAX_BULK: i64 = 16 * 1024;

/// What the parser must enforce for one connection right now.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `proto-max-bulk-len`.
    pub max_bulk_len: i64,
    /// True while a password is required and the client has not authenticated.
    pub unauthenticated: bool,
}

/// A malformed request. The connection replies with the message and closes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: too big mbulk count string")]
    TooBigMbulkCount,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulk,
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulk,
}

/// Where the arguments of the last parsed request are.
///
/// Reused across requests so that parsing allocates nothing in steady state.
#[derive(Debug, Default)]
pub struct Argv {
    spans: Vec<(usize, usize)>,
    inline: Vec<u8>,
    from_inline: bool,
    /// Where an incomplete multibulk request stopped, so the next call
    /// resumes there instead of parsing its arguments again (a request
    /// trickling in byte by byte costs what it sends, not its square).
    resume: Option<Resume>,
}

/// An incomplete multibulk request: its argument count, and where the next
/// argument's `$` line starts (its complete arguments are in `spans`).
#[derive(Debug, Clone, Copy)]
struct Resume {
    count: usize,
    pos: usize,
}

impl Argv {
    /// Number of arguments (0 for an empty request).
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The arguments as slices of `buf` (the buffer that was parsed) or of the
    /// inline scratch buffer.
    pub fn iter<'a>(&'a self, buf: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let src: &'a [u8] = if self.from_inline { &self.inline } else { buf };
        self.spans.iter().map(move |&(s, e)| &src[s..e])
    }

    fn clear(&mut self) {
        self.spans.clear();
        self.inline.clear();
        self.from_inline = false;
        self.resume = None;
    }
}

/// Parses the next request at the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, or `Ok(Some(consumed))`
/// with `argv` filled (possibly empty: blank lines, `*0` and `*-1` are
/// consumed and ignored, as Redis does).
///
/// After `Ok(None)` the next call with the same `argv` must pass the same
/// bytes with more appended (as a connection's read buffer grows): it goes
/// on from where the last one stopped.
pub fn parse_request(buf: &[u8], limits: &Limits, argv: &mut Argv) -> Result<Option<usize>, ProtocolError> {
    if let Some(r) = argv.resume.take()
        && buf.first() == Some(&b'*')
        && r.pos <= buf.len()
    {
        return parse_bulks(buf, limits, argv, r);
    }
    argv.clear();
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, limits, argv),
        Some(_) => parse_inline(buf, argv),
    }
}

/// Finds the `\r\n`-terminated line starting at `from`: returns the index of
/// `\r`, `Ok(None)` if incomplete, or `too_big` if no `\r` within the limit.
fn find_crlf(buf: &[u8], from: usize, too_big: ProtocolError) -> Result<Option<usize>, ProtocolError> {
    match memchr(b'\r', &buf[from..]) {
        None if buf.len() - from > INLINE_MAX => Err(too_big),
        None => Ok(None),
        // Redis needs the '\n' too before it looks at the line.
        Some(i) if from + i + 1 >= buf.len() => Ok(None),
        Some(i) => Ok(Some(from + i)),
    }
}

/// Finds `needle` the way C's `strchr` does on Redis's NUL-terminated query
/// buffer: a NUL byte before it hides it (so the request stays incomplete).
fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle || b == 0).filter(|&i| hay[i] == needle)
}

fn parse_multibulk(buf: &[u8], limits: &Limits, argv: &mut Argv) -> Result<Option<usize>, ProtocolError> {
    let Some(cr) = find_crlf(buf, 1, ProtocolError::TooBigMbulkCount)? else {
        return Ok(None);
    };
    let count = match parse_i64(&buf[1..cr]) {
        Some(n) if n <= i32::MAX as i64 => n,
        _ => return Err(ProtocolError::InvalidMultibulkLength),
    };
    if limits.unauthenticated && count > UNAUTH_MAX_ARGS {
        return Err(ProtocolError::UnauthenticatedMultibulk);
    }
    let pos = cr + 2;
    if count <= 0 {
        return Ok(Some(pos));
    }
    parse_bulks(buf, limits, argv, Resume { count: count as usize, pos })
}

/// Parses the `$` arguments of a multibulk request from `at` on; when more
/// bytes are needed, records where to resume.
fn parse_bulks(buf: &[u8], limits: &Limits, argv: &mut Argv, at: Resume) -> Result<Option<usize>, ProtocolError> {
    let mut pos = at.pos;
    while argv.spans.len() < at.count {
        let (cr, len) = match short_bulk_header(buf, pos) {
            Some(header) => header,
            None => {
                let Some(cr) = (if pos >= buf.len() { None } else { find_crlf(buf, pos, ProtocolError::TooBigBulkCount)? }) else {
                    argv.resume = Some(Resume { pos, ..at });
                    return Ok(None);
                };
                if buf[pos] != b'$' {
                    return Err(ProtocolError::ExpectedDollar(buf[pos] as char));
                }
                match parse_i64(&buf[pos + 1..cr]) {
                    Some(n) if n >= 0 => (cr, n),
                    _ => return Err(ProtocolError::InvalidBulkLength),
                }
            }
        };
        if len > limits.max_bulk_len {
            return Err(ProtocolError::InvalidBulkLength);
        }
        if limits.unauthenticated && len > UNAUTH_MAX_BULK {
            return Err(ProtocolError::UnauthenticatedBulk);
        }
        let start = cr + 2;
        let end = start + len as usize;
        // Like Redis, the two bytes after the payload are skipped unchecked.
        if end + 2 > buf.len() {
            argv.resume = Some(Resume { pos, ..at });
            return Ok(None);
        }
        argv.spans.push((start, end));
        pos = end + 2;
    }
    Ok(Some(pos))
}

/// A complete `$<digits>\r` header at `pos` in its common form (no sign,
/// no leading zero, at most 18 digits, a byte after the CR), read in one
/// pass: (CR's index, length). Anything else is `None`, and the general
/// path (`find_crlf`, `parse_i64`) decides, so both agree by construction.
#[inline]
fn short_bulk_header(buf: &[u8], pos: usize) -> Option<(usize, i64)> {
    if buf.get(pos) != Some(&b'$') {
        return None;
    }
    let digits = buf.get(pos + 1..)?;
    let n = digits.iter().take(19).take_while(|b| b.is_ascii_digit()).count();
    let cr = pos + 1 + n;
    if n == 0 || n > 18 || (n > 1 && digits[0] == b'0') || buf.get(cr) != Some(&b'\r') || cr + 1 >= buf.len() {
        return None;
    }
    Some((cr, digits[..n].iter().fold(0i64, |v, d| v * 10 + (d - b'0') as i64)))
}

fn parse_inline(buf: &[u8], argv: &mut Argv) -> Result<Option<usize>, ProtocolError> {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(None);
    };
    if nl > INLINE_MAX {
        return Err(ProtocolError::TooBigInline);
    }
    let mut line = &buf[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    argv.from_inline = true;
    split_args(line, &mut argv.inline, &mut argv.spans)?;
    Ok(Some(nl + 1))
}

/// Redis's `sdssplitargs` over one line (shebang lines, for instance): the
/// words, or None for unbalanced quotes.
pub fn split_words(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let (mut out, mut spans) = (Vec::new(), Vec::new());
    split_args(line, &mut out, &mut spans).ok()?;
    Some(spans.into_iter().map(|(a, b)| out[a..b].to_vec()).collect())
}

/// Splits an inline request like Redis's `sdssplitargs`: whitespace separated,
/// with "double quotes" (C escapes, `\xHH`) and 'single quotes'.
fn split_args(line: &[u8], out: &mut Vec<u8>, spans: &mut Vec<(usize, usize)>) -> Result<(), ProtocolError> {
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        // A NUL ends the request, as it ends the C string Redis splits.
        if p >= line.len() || line[p] == 0 {
            return Ok(());
        }
        let start = out.len();
        p = split_one(line, p, out)?;
        spans.push((start, out.len()));
    }
}

/// C's `isspace`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn hex_val(b: u8) -> u8 {
    (b as char).to_digit(16).unwrap_or(0) as u8
}

/// Reads one token starting at `p`, appending its bytes to `out`.
fn split_one(line: &[u8], mut p: usize, out: &mut Vec<u8>) -> Result<usize, ProtocolError> {
    let (mut in_dq, mut in_sq) = (false, false);
    let closed_ok = |q: usize| q + 1 >= line.len() || line[q + 1] == 0 || is_space(line[q + 1]);
    loop {
        if p >= line.len() {
            if in_dq || in_sq {
                return Err(ProtocolError::UnbalancedQuotes);
            }
            return Ok(p);
        }
        let c = line[p];
        if in_dq {
            if c == b'\\' && p + 3 < line.len() && line[p + 1] == b'x' && is_hex(line[p + 2]) && is_hex(line[p + 3]) {
                out.push(hex_val(line[p + 2]) * 16 + hex_val(line[p + 3]));
                p += 3;
            } else if c == b'\\' && p + 1 < line.len() {
                p += 1;
                out.push(match line[p] {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 8,
                    b'a' => 7,
                    other => other,
                });
            } else if c == b'"' {
                if !closed_ok(p) {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                return Ok(p + 1);
            } else {
                out.push(c);
            }
        } else if in_sq {
            if c == b'\\' && p + 1 < line.len() && line[p + 1] == b'\'' {
                p += 1;
                out.push(b'\'');
            } else if c == b'\'' {
                if !closed_ok(p) {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                return Ok(p + 1);
            } else {
                out.push(c);
            }
        } else {
            match c {
                b' ' | b'\n' | b'\r' | b'\t' | 0 => return Ok(p),
                b'"' => in_dq = true,
                b'\'' => in_sq = true,
                _ => out.push(c),
            }
        }
        p += 1;
    }
}

/// Parses a decimal i64 exactly like Redis's `string2ll`: no sign `+`, no
/// leading zeros, no spaces, no overflow.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] => return if neg { None } else { Some(0) },
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    if digits.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    if neg { if v > i64::MAX as u64 + 1 { None } else { Some((v as i64).wrapping_neg()) } } else { i64::try_from(v).ok() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_header_agrees_with_the_general_path() {
        // Every buffer of up to six bytes over the bytes that matter, and
        // long digit runs: wherever the one-pass read answers, the general
        // path finds the same CR and the same length.
        const BYTES: &[u8] = b"$019-\r\n\0a";
        let mut cases: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..6 {
            let longer: Vec<Vec<u8>> = cases
                .iter()
                .filter(|c| c.len() == cases.last().unwrap().len())
                .flat_map(|c| BYTES.iter().map(move |&b| [&c[..], &[b]].concat()))
                .collect();
            cases.extend(longer);
        }
        for digits in 15..22 {
            for lead in [b'0', b'1', b'9'] {
                let mut c = vec![b'$', lead];
                c.extend(std::iter::repeat_n(b'9', digits - 1));
                c.extend_from_slice(b"\r\nx");
                cases.push(c);
            }
        }
        let mut answered = 0;
        for c in &cases {
            if let Some((cr, len)) = short_bulk_header(c, 0) {
                answered += 1;
                assert_eq!(find_crlf(c, 0, ProtocolError::TooBigBulkCount).ok().flatten(), Some(cr), "{c:?}");
                assert_eq!(parse_i64(&c[1..cr]), Some(len), "{c:?}");
            }
        }
        assert!(answered > 100, "{answered}");
    }

    type Parsed = Option<(usize, Vec<Vec<u8>>)>;

    fn parse(buf: &[u8]) -> Result<Parsed, ProtocolError> {
        let mut argv = Argv::default();
        let limits = Limits { max_bulk_len: 512 << 20, unauthenticated: false };
        Ok(parse_request(buf, &limits, &mut argv)?.map(|n| (n, argv.iter(buf).map(|a| a.to_vec()).collect())))
    }

    #[test]
    fn multibulk_and_incomplete() {
        let req = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        assert_eq!(parse(req).unwrap(), Some((req.len(), vec![b"GET".to_vec(), b"k".to_vec()])));
        for cut in 0..req.len() {
            assert_eq!(parse(&req[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn inline_quotes() {
        let (_, args) = parse(b"set \"a b\\x41\" 'c\\'d'\r\n").unwrap().unwrap();
        assert_eq!(args, vec![b"set".to_vec(), b"a bA".to_vec(), b"c'd".to_vec()]);
        assert_eq!(parse(b"set \"foo bar\r\n"), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(parse(b"get \"a\"b\n"), Err(ProtocolError::UnbalancedQuotes));
        // A NUL hides the newline from Redis's strchr: the request stays incomplete.
        assert_eq!(parse(b"get a\0b c\n"), Ok(None));
        assert_eq!(parse(b"*1\0\r\n"), Ok(None));
    }

    #[test]
    fn string2ll_rules() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [&b"+1"[..], b"01", b"-0", b"", b"-", b"1 ", b"9223372036854775808"] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }
}
