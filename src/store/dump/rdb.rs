//! RDB's primitives: lengths (6, 14, 32 or 64 bits, big-endian), strings
//! (raw, as a small integer, or LZF-compressed), doubles, millisecond times
//! and 128-bit stream IDs; a bounded reader and the writer.

use std::borrow::Cow;

use super::{DumpError, Limits, lzf};
use crate::store::stream::StreamId;

type Result<T> = std::result::Result<T, DumpError>;

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Reads a payload's body strictly within its bytes. `held` is what the
/// value being built accounts for so far, so that no string is allocated
/// past the caller's `max_decoded`.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: Limits,
    pub held: usize,
}

/// A length, or the special string encoding after a `11xxxxxx` byte.
enum Len {
    Plain(u64),
    Encoded(u8),
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], limits: Limits) -> Reader<'a> {
        Reader { buf, pos: 0, limits, held: 0 }
    }

    pub fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether `extra` more bytes fit in what the caller may hold.
    pub fn fits(&self, extra: usize) -> Result<()> {
        match self.held.checked_add(extra) {
            Some(n) if n <= self.limits.max_decoded => Ok(()),
            _ => Err(DumpError::TooLarge),
        }
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.left() {
            return Err(DumpError::BadData);
        }
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.bytes(N)?.try_into().expect("N bytes"))
    }

    fn len_or_encoding(&mut self) -> Result<Len> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => Len::Plain((b & 0x3f) as u64),
            1 => Len::Plain(((b & 0x3f) as u64) << 8 | self.u8()? as u64),
            3 => Len::Encoded(b & 0x3f),
            _ if b == 0x80 => Len::Plain(u32::from_be_bytes(self.array()?) as u64),
            _ if b == 0x81 => Len::Plain(u64::from_be_bytes(self.array()?)),
            _ => return Err(DumpError::BadData),
        })
    }

    /// A length (the special string forms are refused where a length is meant).
    pub fn len(&mut self) -> Result<u64> {
        match self.len_or_encoding()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(DumpError::BadData),
        }
    }

    /// A count of items that take at least `min_size` bytes each: no more
    /// than what is left can hold.
    pub fn count(&mut self, min_size: usize) -> Result<usize> {
        let n = self.len()?;
        if n > (self.left() / min_size.max(1)) as u64 {
            return Err(DumpError::BadData);
        }
        Ok(n as usize)
    }

    /// A string: borrowed when stored raw, decoded otherwise. Its length is
    /// checked against the bytes left, proto-max-bulk-len and the caller's
    /// memory before anything is allocated.
    pub fn string(&mut self) -> Result<Cow<'a, [u8]>> {
        let n = match self.len_or_encoding()? {
            Len::Plain(n) => n,
            Len::Encoded(ENC_INT8) => return Ok(int_text(self.array::<1>()?[0] as i8 as i64)),
            Len::Encoded(ENC_INT16) => return Ok(int_text(i16::from_le_bytes(self.array()?) as i64)),
            Len::Encoded(ENC_INT32) => return Ok(int_text(i32::from_le_bytes(self.array()?) as i64)),
            Len::Encoded(ENC_LZF) => return self.lzf().map(Cow::Owned),
            Len::Encoded(_) => return Err(DumpError::BadData),
        };
        if n > self.left() as u64 || n > self.limits.max_bulk as u64 {
            return Err(DumpError::BadData);
        }
        self.fits(n as usize)?;
        self.bytes(n as usize).map(Cow::Borrowed)
    }

    fn lzf(&mut self) -> Result<Vec<u8>> {
        let (clen, ulen) = (self.len()?, self.len()?);
        if clen > self.left() as u64 || ulen == 0 {
            return Err(DumpError::BadData);
        }
        if ulen > clen.saturating_mul(lzf::MAX_EXPANSION as u64) || ulen > self.limits.max_bulk as u64 {
            return Err(DumpError::BadData);
        }
        self.fits(ulen as usize)?;
        let input = self.bytes(clen as usize)?;
        lzf::decompress(input, ulen as usize).ok_or(DumpError::BadData)
    }

    /// An 8-byte little-endian double (ZSET_2 scores).
    pub fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// An 8-byte little-endian millisecond time.
    pub fn millis(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A stream ID as 16 raw bytes (ms and seq, big-endian).
    pub fn raw_id(&mut self) -> Result<StreamId> {
        let b: [u8; 16] = self.array()?;
        Ok(id_from_bytes(&b))
    }

    /// A stream ID as two lengths.
    pub fn len_id(&mut self) -> Result<StreamId> {
        Ok(StreamId::new(self.len()?, self.len()?))
    }
}

pub fn id_from_bytes(b: &[u8; 16]) -> StreamId {
    StreamId::new(u64::from_be_bytes(b[..8].try_into().expect("8")), u64::from_be_bytes(b[8..].try_into().expect("8")))
}

pub fn id_bytes(id: StreamId) -> [u8; 16] {
    let mut b = [0; 16];
    b[..8].copy_from_slice(&id.ms.to_be_bytes());
    b[8..].copy_from_slice(&id.seq.to_be_bytes());
    b
}

fn int_text(v: i64) -> Cow<'static, [u8]> {
    Cow::Owned(itoa::Buffer::new().format(v).as_bytes().to_vec())
}

/// Writes RDB primitives as Redis 7.0 does.
#[derive(Default)]
pub struct Writer {
    pub out: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, b: u8) {
        self.out.push(b);
    }

    /// The shortest form of a length.
    pub fn len(&mut self, n: u64) {
        if n < 64 {
            self.out.push(n as u8);
        } else if n < 16384 {
            self.out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
        } else if n <= u32::MAX as u64 {
            self.out.push(0x80);
            self.out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.out.push(0x81);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// A string as Redis's `rdbSaveRawString` writes it: a canonical
    /// integer of up to 11 characters that fits 32 bits as 1, 2 or 4 bytes;
    /// longer than 20 bytes LZF-compressed if that saves at least 4 bytes;
    /// otherwise raw.
    pub fn string(&mut self, s: &[u8]) {
        if s.len() <= 11
            && let Some(v) = crate::protocol::parse::parse_i64(s)
            && self.int(v)
        {
            return;
        }
        if s.len() > 20
            && let Some(c) = lzf::compress(s, s.len() - 4)
        {
            self.out.push(0xc0 | ENC_LZF);
            self.len(c.len() as u64);
            self.len(s.len() as u64);
            self.out.extend_from_slice(&c);
            return;
        }
        self.len(s.len() as u64);
        self.out.extend_from_slice(s);
    }

    /// `v` in the smallest integer form; false if it needs more than 32 bits.
    fn int(&mut self, v: i64) -> bool {
        if let Ok(b) = i8::try_from(v) {
            self.out.extend_from_slice(&[0xc0 | ENC_INT8, b as u8]);
        } else if let Ok(b) = i16::try_from(v) {
            self.out.push(0xc0 | ENC_INT16);
            self.out.extend_from_slice(&b.to_le_bytes());
        } else if let Ok(b) = i32::try_from(v) {
            self.out.push(0xc0 | ENC_INT32);
            self.out.extend_from_slice(&b.to_le_bytes());
        } else {
            return false;
        }
        true
    }

    pub fn f64(&mut self, d: f64) {
        self.out.extend_from_slice(&d.to_le_bytes());
    }

    pub fn millis(&mut self, ms: u64) {
        self.out.extend_from_slice(&ms.to_le_bytes());
    }

    pub fn raw_id(&mut self, id: StreamId) {
        self.out.extend_from_slice(&id_bytes(id));
    }

    pub fn len_id(&mut self, id: StreamId) {
        self.len(id.ms);
        self.len(id.seq);
    }
}
