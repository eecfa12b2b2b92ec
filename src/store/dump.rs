//! DUMP and RESTORE payloads, in Redis 7.0's format: a type byte, the value
//! as Redis's RDB (version 10) writes it, the RDB version as two bytes and a
//! CRC-64 of everything before it, both little-endian.
//!
//! [`encode`] writes what Redis 7.0 would write for the same value (the type
//! its encoding maps to, LZF compression as Redis applies it), so Redis
//! restores Ferrite's payloads and the deterministic ones match byte for byte.
//! [`decode`] reads every type Redis 7.0 restores, older ones included.
//!
//! A payload comes from a client and is treated as hostile: the envelope is
//! checked first, then the body is read strictly within its bytes; every
//! length is checked against what is left before anything is allocated, a
//! compressed string's length against what LZF can expand its bytes to and
//! the caller's limits, and every listpack, ziplist and intset is fully
//! validated (as Redis's `sanitize-dump-payload yes`). Values are rebuilt
//! through the types' own insert paths, so accounting and encodings are
//! exactly those of the same data written by commands, and duplicates (which
//! our collections cannot hold) are refused as corrupt data.

mod lzf;
mod rdb;
mod read;
mod stream;
mod write;
mod ziplist;

#[cfg(test)]
mod tests;

use thiserror::Error;

use super::value::Value;

/// The RDB version Redis 7.0 writes, and the newest it reads.
pub const RDB_VERSION: u16 = 10;
/// Version and checksum.
const FOOTER: usize = 10;

/// Why a payload was refused. Redis has exactly two messages; the third
/// case is ours: a value bigger than the caller may hold.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DumpError {
    #[error("ERR DUMP payload version or checksum are wrong")]
    VersionOrChecksum,
    #[error("ERR Bad data format")]
    BadData,
    /// Decoding would hold more than `Limits::max_decoded` bytes.
    #[error("the decoded value is larger than the memory left")]
    TooLarge,
}

/// What a decoded payload may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest string (proto-max-bulk-len).
    pub max_bulk: usize,
    /// Bytes the value may account for (see `Value::mem`), counting any
    /// buffer decoding holds on the way.
    pub max_decoded: usize,
}

impl Limits {
    pub fn unlimited() -> Limits {
        Limits { max_bulk: usize::MAX, max_decoded: usize::MAX }
    }
}

/// Redis's CRC-64 (Jones polynomial, reflected, no final xor).
pub fn crc64(data: &[u8]) -> u64 {
    const CRC: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);
    CRC.checksum(data)
}

/// The DUMP payload of `v`.
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = write::object(v);
    seal(&mut out);
    out
}

/// Appends the version and the checksum to a type byte and body.
pub fn seal(out: &mut Vec<u8>) {
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(out);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// The value a payload holds. The envelope (version, checksum) is checked
/// before anything is parsed; the body must be exactly one object.
pub fn decode(payload: &[u8], limits: Limits) -> Result<Value, DumpError> {
    let body = verify(payload)?;
    let (&kind, object) = body.split_first().ok_or(DumpError::BadData)?;
    let mut r = rdb::Reader::new(object, limits);
    let v = read::object(&mut r, kind)?;
    if r.left() != 0 {
        // Redis ignores bytes after the object, but never writes any.
        return Err(DumpError::BadData);
    }
    r.fits(v.mem())?;
    Ok(v)
}

/// Redis 7.0's opcode before each library in FUNCTION DUMP (and an RDB).
const OPCODE_FUNCTION2: u8 = 245;
/// The same in 7.0's release candidates: name, engine, description, code.
const OPCODE_FUNCTION: u8 = 246;

/// FUNCTION DUMP's payload: each library's code after its opcode, then
/// the version and checksum.
pub fn encode_functions<'a>(codes: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut w = rdb::Writer::default();
    for code in codes {
        w.u8(OPCODE_FUNCTION2);
        w.string(code);
    }
    let mut out = w.out;
    seal(&mut out);
    out
}

/// FUNCTION RESTORE: the libraries' code a payload holds, or Redis's
/// reason (without its `ERR `) why it cannot be read.
pub fn decode_functions(payload: &[u8], limits: Limits) -> Result<Vec<Vec<u8>>, String> {
    let body = verify(payload).map_err(|_| "DUMP payload version or checksum are wrong".to_string())?;
    let mut r = rdb::Reader::new(body, limits);
    let mut codes = Vec::new();
    while r.left() > 0 {
        let kind = r.u8().map_err(|_| "can not read data type".to_string())?;
        let code = match kind {
            OPCODE_FUNCTION2 => r.string().map_err(|_| "Failed loading library payload".to_string())?.into_owned(),
            OPCODE_FUNCTION => old_library(&mut r)?,
            _ => return Err("given type is not a function".into()),
        };
        codes.push(code);
    }
    Ok(codes)
}

/// A library as 7.0's release candidates saved it, in today's form.
fn old_library(r: &mut rdb::Reader) -> Result<Vec<u8>, String> {
    fn fail(what: &'static str) -> impl Fn(DumpError) -> String {
        move |_| format!("Failed loading {what}")
    }
    let name = r.string().map_err(fail("library name"))?.into_owned();
    let engine = r.string().map_err(fail("engine name"))?.into_owned();
    if r.len().map_err(fail("library description indicator"))? != 0 {
        r.string().map_err(fail("library description"))?;
    }
    let blob = r.string().map_err(fail("library blob"))?;
    let mut code = b"#!".to_vec();
    code.extend_from_slice(&engine);
    code.extend_from_slice(b" name=");
    code.extend_from_slice(&name);
    code.push(b'\n');
    code.extend_from_slice(&blob);
    Ok(code)
}

/// The type byte and body, once the version and checksum are right.
fn verify(payload: &[u8]) -> Result<&[u8], DumpError> {
    if payload.len() < FOOTER {
        return Err(DumpError::VersionOrChecksum);
    }
    let (signed, crc) = payload.split_at(payload.len() - 8);
    let (body, version) = signed.split_at(signed.len() - 2);
    if u16::from_le_bytes([version[0], version[1]]) > RDB_VERSION {
        return Err(DumpError::VersionOrChecksum);
    }
    if crc64(signed).to_le_bytes() != crc {
        return Err(DumpError::VersionOrChecksum);
    }
    Ok(body)
}
