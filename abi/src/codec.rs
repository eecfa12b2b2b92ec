//! The byte encoding: a writer that appends and a reader that never panics
//! on short or hostile input (both sides decode what the other wrote).

use alloc::string::String;
use alloc::vec::Vec;

/// Input that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ended inside a value.
    Truncated,
    /// A tag byte that names nothing.
    BadTag(u8),
    /// A string that is not UTF-8.
    BadUtf8,
    /// Bytes left over after the value.
    Trailing(usize),
    /// A varint longer than ten bytes or past 64 bits.
    BadVarint,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("buffer ends inside a value"),
            DecodeError::BadTag(t) => write!(f, "unknown tag {t}"),
            DecodeError::BadUtf8 => f.write_str("string is not UTF-8"),
            DecodeError::Trailing(n) => write!(f, "{n} bytes after the value"),
            DecodeError::BadVarint => f.write_str("malformed varint"),
        }
    }
}

/// Appends values to a buffer.
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Default for Writer {
    /// Room for a typical message, so encoding rarely reallocates.
    fn default() -> Self {
        Writer { buf: Vec::with_capacity(1024) }
    }
}

impl Writer {
    pub fn with_capacity(n: usize) -> Writer {
        Writer { buf: Vec::with_capacity(n) }
    }

    #[inline]
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    #[inline]
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    #[inline]
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    #[inline]
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    #[inline]
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    #[inline]
    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// An unsigned LEB128 varint: one byte below 128, at most ten.
    #[inline]
    pub fn var(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }
    /// Bytes prefixed with their length as a varint.
    #[inline]
    pub fn var_bytes(&mut self, v: &[u8]) -> &mut Self {
        self.var(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }
    #[inline]
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
        self
    }
    #[inline]
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
}

/// Reads values from a buffer, front to back.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// The next `n` bytes, borrowed.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// An unsigned LEB128 varint; more than ten bytes, or bits past 64, is
    /// [`DecodeError::BadVarint`].
    pub fn var(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            let bits = (b & 0x7f) as u64;
            if i == 9 && bits > 1 {
                return Err(DecodeError::BadVarint);
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::BadVarint)
    }

    /// Bytes prefixed with their length as a varint.
    pub fn var_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = usize::try_from(self.var()?).map_err(|_| DecodeError::Truncated)?;
        self.take(n)
    }
    pub fn string(&mut self) -> Result<String, DecodeError> {
        self.str().map(String::from)
    }

    /// A string borrowed from the buffer.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        core::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::BadUtf8)
    }

    /// A count of items, refused when the buffer cannot hold that many of at
    /// least `min_item` bytes each (so a hostile count cannot reserve memory).
    pub fn count(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        self.bounded(n, min_item)
    }

    /// [`Reader::count`] with the count as a varint.
    pub fn var_count(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.var()?).map_err(|_| DecodeError::Truncated)?;
        self.bounded(n, min_item)
    }

    fn bounded(&self, n: usize, min_item: usize) -> Result<usize, DecodeError> {
        if n.saturating_mul(min_item.max(1)) > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    /// Succeeds only when everything was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() { Ok(()) } else { Err(DecodeError::Trailing(self.buf.len())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_malformed_ones_are_refused() {
        for v in [0, 1, 127, 128, 300, 1 << 41, u64::MAX] {
            let mut w = Writer::default();
            w.var(v).var_bytes(b"xy");
            let mut r = Reader::new(&w.buf);
            assert_eq!((r.var(), r.var_bytes()), (Ok(v), Ok(&b"xy"[..])));
            assert_eq!(r.finish(), Ok(()));
        }
        assert_eq!(Reader::new(&[0x80; 11]).var(), Err(DecodeError::BadVarint));
        assert_eq!(Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).var(), Err(DecodeError::BadVarint));
        assert_eq!(Reader::new(&[0x80]).var(), Err(DecodeError::Truncated));
        // A count no buffer could hold is refused before anything is reserved.
        assert_eq!(Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]).var_count(1), Err(DecodeError::Truncated));
    }
}
