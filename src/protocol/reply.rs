//! Reply encoding: appends RESP2 or RESP3 to a connection's write buffer.
//!
//! Commands write their replies straight into [`Out`] instead of building a
//! frame tree, so a reply costs no allocation and a pipelined batch leaves as
//! one buffer in one write. Each method picks the RESP2 or RESP3 spelling
//! (maps, sets, doubles, nulls, pushes) from the connection's protocol.

use bytes::{BufMut, BytesMut};

/// A connection's pending output.
#[derive(Debug)]
pub struct Out {
    pub buf: BytesMut,
    /// True after `HELLO 3`.
    pub resp3: bool,
    /// The most this connection may hold unsent (its output buffer limit);
    /// replies whose size the client chooses (random members with repeats)
    /// stop when they pass it, and the connection is closed as Redis closes
    /// a client over its `client-output-buffer-limit`.
    pub limit: usize,
}

impl Default for Out {
    fn default() -> Self {
        Out { buf: BytesMut::new(), resp3: false, limit: usize::MAX }
    }
}

impl Out {
    pub fn new(resp3: bool) -> Self {
        Out { buf: BytesMut::with_capacity(16 * 1024), resp3, limit: usize::MAX }
    }

    /// True once the pending output passed the connection's limit.
    pub fn over_limit(&self) -> bool {
        self.buf.len() > self.limit
    }

    fn header(&mut self, tag: u8, n: usize) {
        self.buf.put_u8(tag);
        self.buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    pub fn simple(&mut self, s: &str) {
        self.buf.put_u8(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `msg` carries its own prefix (`ERR ...`, `WRONGTYPE ...`). Newlines
    /// would break the protocol, so they are replaced as Redis does.
    pub fn error(&mut self, msg: &str) {
        self.error_bytes(msg.as_bytes());
    }

    /// An error whose text may hold arbitrary bytes (echoed command names).
    pub fn error_bytes(&mut self, msg: &[u8]) {
        self.buf.put_u8(b'-');
        for &b in msg {
            self.buf.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn int(&mut self, n: i64) {
        self.buf.put_u8(b':');
        self.buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn bulk(&mut self, b: &[u8]) {
        self.header(b'$', b.len());
        self.buf.extend_from_slice(b);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer as a bulk string (how Redis replies with a number kept
    /// as one in a listpack).
    pub fn bulk_int(&mut self, n: i64) {
        self.bulk(itoa::Buffer::new().format(n).as_bytes());
    }

    /// Writes an array header for `n` elements at `at`, in front of the
    /// elements already written from there: for a reply whose length is
    /// known only once it is written, in one pass.
    pub fn array_at(&mut self, at: usize, n: usize) {
        let mut head = [0u8; 24];
        head[0] = b'*';
        let mut text = itoa::Buffer::new();
        let digits = text.format(n).as_bytes();
        head[1..1 + digits.len()].copy_from_slice(digits);
        let digits = digits.len();
        head[1 + digits..3 + digits].copy_from_slice(b"\r\n");
        let h = 3 + digits;
        let end = self.buf.len();
        self.buf.extend_from_slice(&head[..h]);
        self.buf.copy_within(at..end, at + h);
        self.buf[at..at + h].copy_from_slice(&head[..h]);
    }

    pub fn bulk_opt(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => self.bulk(b),
            None => self.null(),
        }
    }

    /// A missing value: `$-1` in RESP2.
    pub fn null(&mut self) {
        self.buf.extend_from_slice(if self.resp3 { b"_\r\n" } else { b"$-1\r\n" });
    }

    /// A missing aggregate: `*-1` in RESP2.
    pub fn null_array(&mut self) {
        self.buf.extend_from_slice(if self.resp3 { b"_\r\n" } else { b"*-1\r\n" });
    }

    pub fn array(&mut self, n: usize) {
        self.header(b'*', n);
    }

    /// `n` key/value pairs follow.
    pub fn map(&mut self, n: usize) {
        if self.resp3 { self.header(b'%', n) } else { self.header(b'*', n * 2) }
    }

    pub fn set(&mut self, n: usize) {
        self.header(if self.resp3 { b'~' } else { b'*' }, n);
    }

    /// An out-of-band message (pub/sub); an ordinary array in RESP2.
    pub fn push(&mut self, n: usize) {
        self.header(if self.resp3 { b'>' } else { b'*' }, n);
    }

    /// A score or other double, formatted like Redis 7.0 (`%.17g`).
    pub fn double(&mut self, d: f64) {
        let s = format_double(d);
        if self.resp3 {
            self.buf.put_u8(b',');
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s.as_bytes());
        }
    }

    /// Text meant for humans (INFO, CLIENT LIST): verbatim string in RESP3.
    pub fn verbatim(&mut self, text: &[u8]) {
        if self.resp3 {
            self.header(b'=', text.len() + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(text);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    pub fn bulks<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a [u8]>) {
        self.array(items.len());
        for i in items {
            self.bulk(i);
        }
    }
}

/// Formats a double as C's `printf("%.17g")`, with `inf`/`-inf`/`nan` as Redis spells them.
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return "nan".into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let e = format!("{:.16e}", d);
    let (mant, exp) = e.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut s = String::with_capacity(24);
    if neg {
        s.push('-');
    }
    if (-4..17).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            s.push_str(&digits[..int_len]);
            let frac = digits[int_len..].trim_end_matches('0');
            if !frac.is_empty() {
                s.push('.');
                s.push_str(frac);
            }
        } else {
            s.push_str("0.");
            for _ in 0..(-exp - 1) {
                s.push('0');
            }
            s.push_str(digits.trim_end_matches('0'));
        }
    } else {
        s.push_str(&digits[..1]);
        let frac = digits[1..].trim_end_matches('0');
        if !frac.is_empty() {
            s.push('.');
            s.push_str(frac);
        }
        s.push('e');
        s.push(if exp < 0 { '-' } else { '+' });
        s.push_str(&format!("{:02}", exp.abs()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::{Out, format_double};

    #[test]
    fn an_array_header_goes_in_front_of_what_was_written_after_it() {
        let mut out = Out::new(false);
        out.ok();
        let at = out.buf.len();
        for i in 0..12 {
            out.bulk_int(i);
        }
        out.array_at(at, 12);
        let mut want = Out::new(false);
        want.ok();
        want.array(12);
        for i in 0..12 {
            want.bulk(i.to_string().as_bytes());
        }
        assert_eq!(out.buf, want.buf);
    }

    #[test]
    fn percent_17g() {
        assert_eq!(format_double(1.1), "1.1000000000000001");
        assert_eq!(format_double(1.0), "1");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(0.0001), "0.0001");
        assert_eq!(format_double(0.00001), "1.0000000000000001e-05");
        assert_eq!(format_double(123456789.0), "123456789");
    }
}
