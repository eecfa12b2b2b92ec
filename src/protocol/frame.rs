//! Decoded RESP2/RESP3 replies.
//!
//! The server encodes replies directly ([`super::Out`]); this tree is for the
//! other direction: tests, the differential harness and benchmarks read what
//! a server sent, normalise it and compare.

use std::fmt;

/// One reply, as a tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or RESP3 `_`.
    Null,
    Array(Vec<Frame>),
    Map(Vec<(Frame, Frame)>),
    Set(Vec<Frame>),
    Push(Vec<Frame>),
    Double(String),
    Boolean(bool),
    BigNumber(String),
    Verbatim(Vec<u8>),
}

impl Frame {
    /// Decodes one frame from the front of `buf`: `Ok(None)` if incomplete,
    /// else the frame and the bytes it used.
    pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
        let mut pos = 0;
        match decode_at(buf, &mut pos)? {
            Some(f) => Ok(Some((f, pos))),
            None => Ok(None),
        }
    }

    /// Sorts aggregate children, for replies whose order Redis leaves undefined.
    pub fn sorted(self) -> Frame {
        match self {
            Frame::Array(mut v) => {
                v.sort_by_key(|f| f.to_string());
                Frame::Array(v)
            }
            Frame::Set(mut v) => {
                v.sort_by_key(|f| f.to_string());
                Frame::Set(v)
            }
            Frame::Map(mut v) => {
                v.sort_by_key(|(k, _)| k.to_string());
                Frame::Map(v)
            }
            other => other,
        }
    }
}

fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let start = *pos;
    let rel = buf[start..].windows(2).position(|w| w == b"\r\n")?;
    *pos = start + rel + 2;
    Some(&buf[start..start + rel])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn num(b: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad number {:?}", text(b)))
}

fn decode_many(buf: &[u8], pos: &mut usize, n: i64) -> Result<Option<Vec<Frame>>, String> {
    let mut v = Vec::with_capacity(n.clamp(0, 1024) as usize);
    for _ in 0..n {
        match decode_at(buf, pos)? {
            Some(f) => v.push(f),
            None => return Ok(None),
        }
    }
    Ok(Some(v))
}

fn decode_at(buf: &[u8], pos: &mut usize) -> Result<Option<Frame>, String> {
    if *pos >= buf.len() {
        return Ok(None);
    }
    let tag = buf[*pos];
    *pos += 1;
    let Some(l) = line(buf, pos) else {
        return Ok(None);
    };
    let frame = match tag {
        b'+' => Frame::Simple(text(l)),
        b'-' => Frame::Error(text(l)),
        b':' => Frame::Integer(num(l)?),
        b',' => Frame::Double(text(l)),
        b'(' => Frame::BigNumber(text(l)),
        b'#' => Frame::Boolean(l == b"t"),
        b'_' => Frame::Null,
        b'$' | b'=' => {
            let n = num(l)?;
            if n < 0 {
                return Ok(Some(Frame::Null));
            }
            let end = *pos + n as usize;
            if end + 2 > buf.len() {
                return Ok(None);
            }
            let data = buf[*pos..end].to_vec();
            *pos = end + 2;
            if tag == b'=' { Frame::Verbatim(data) } else { Frame::Bulk(data) }
        }
        b'*' | b'~' | b'>' => {
            let n = num(l)?;
            if n < 0 {
                return Ok(Some(Frame::Null));
            }
            let Some(items) = decode_many(buf, pos, n)? else {
                return Ok(None);
            };
            match tag {
                b'*' => Frame::Array(items),
                b'~' => Frame::Set(items),
                _ => Frame::Push(items),
            }
        }
        b'%' => {
            let n = num(l)?;
            let Some(items) = decode_many(buf, pos, n * 2)? else {
                return Ok(None);
            };
            let mut it = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Frame::Map(pairs)
        }
        other => return Err(format!("unknown reply type byte {:?}", other as char)),
    };
    Ok(Some(frame))
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, open: &str, v: &[Frame]| {
            write!(f, "{open}")?;
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{x}")?;
            }
            write!(f, "]")
        };
        match self {
            Frame::Simple(s) => write!(f, "+{s}"),
            Frame::Error(s) => write!(f, "-{s}"),
            Frame::Integer(n) => write!(f, "{n}"),
            Frame::Bulk(b) => write!(f, "{:?}", text(b)),
            Frame::Verbatim(b) => write!(f, "verbatim {:?}", text(b)),
            Frame::Null => write!(f, "(nil)"),
            Frame::Double(d) => write!(f, "double {d}"),
            Frame::BigNumber(d) => write!(f, "big {d}"),
            Frame::Boolean(b) => write!(f, "{b}"),
            Frame::Array(v) => list(f, "[", v),
            Frame::Set(v) => list(f, "set[", v),
            Frame::Push(v) => list(f, "push[", v),
            Frame::Map(v) => {
                write!(f, "{{")?;
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k}: {x}")?;
                }
                write!(f, "}}")
            }
        }
    }
}
