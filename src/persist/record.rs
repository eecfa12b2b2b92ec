//! What the log and the snapshot are made of: framed, checksummed records.
//!
//! A file is a 16-byte magic (which names its kind and format version)
//! followed by frames: `u32 length | u32 CRC-32 of the payload | payload`.
//! A frame cut short at the end of a file is a *truncated* tail (a crash
//! while writing); anything else that does not check out is *corruption*,
//! reported with the file and the offset of the bad frame.

use std::path::{Path, PathBuf};

use ferrite_policy_abi::{DecodeError, Reader, Writer};

use crate::tenancy::image::TenantImage;

pub const AOF_MAGIC: &[u8; 16] = b"FERRITE-AOF\0\0\0\0\x01";
pub const SNAPSHOT_MAGIC: &[u8; 16] = b"FERRITE-SNAP\0\0\0\x01";

/// One change, or one piece of a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A write command as it ran: when, in which space and database.
    Command {
        now_ms: u64,
        space: Option<String>,
        db: u32,
        argv: Vec<Vec<u8>>,
    },
    /// The write commands of one EXEC, applied all or nothing.
    Batch(Vec<Record>),
    Tenant(TenantImage),
    TenantDelete(String),
    /// A tenant's own CONFIG settings (`Tenant::own_settings`).
    TenantSettings {
        tenant: String,
        settings: Vec<(String, String)>,
    },
    /// A moving tenant's statistics and billing: its counters and meter
    /// (`Tenant::counters`) and its ledger's line items.
    TenantStats {
        tenant: String,
        counters: Vec<u64>,
        ledger: Vec<crate::tenancy::billing::LineItem>,
    },
    /// A tenant being moved here (`open`: its import began; its records
    /// follow) or made this node's (`open` false: the move committed). One
    /// still open at start-up never committed: its source still owns it, and
    /// the copy is discarded.
    Import {
        tenant: String,
        open: bool,
    },
    /// A tenant that moved to the node at `to`: its data is gone from here,
    /// its connections are forwarded there (the address only: after a
    /// restart, forwarding authenticates with the `[cluster] secret`).
    Moved {
        tenant: String,
        to: String,
    },
    /// A tenant's policy module and CONFIG, or none.
    Policy {
        tenant: String,
        module: Option<(Vec<u8>, Vec<u8>)>,
    },
    /// A tenant's copy: how many keys its database `db` holds, sent ahead
    /// of them so the receiving side makes room once.
    KeyspaceSize {
        space: Option<String>,
        db: u32,
        keys: u64,
    },
    /// Snapshot: the next entries belong to this space and database.
    Keyspace {
        space: Option<String>,
        db: u32,
    },
    /// Snapshot: entries in the format of [`crate::store::encode`].
    Entries(Vec<u8>),
    /// Snapshot: the end; a snapshot without it is incomplete.
    End {
        entries: u64,
    },
    /// Snapshot header: the log generation that continues it, and its time.
    Base {
        generation: u64,
        cut_ms: u64,
    },
}

impl Record {
    /// The tenant's own settings, if it has any.
    pub fn settings_of(t: &crate::tenancy::Tenant) -> Option<Record> {
        let settings = t.own_settings();
        (!settings.is_empty()).then(|| Record::TenantSettings { tenant: t.id().to_string(), settings })
    }

    /// The tenant's policy module and CONFIG as they are now (or none).
    pub fn policy_of(t: &crate::tenancy::Tenant) -> Record {
        let module = t.policy.module().map(|m| (m.bytes.to_vec(), m.config.to_vec()));
        Record::Policy { tenant: t.id().to_string(), module }
    }
}

fn put_space<S: AsRef<str>>(w: &mut Writer, space: &Option<S>) {
    match space {
        Some(s) => w.u8(1).str(s.as_ref()),
        None => w.u8(0),
    };
}

fn get_space(r: &mut Reader<'_>) -> Result<Option<String>, DecodeError> {
    Ok(match r.u8()? {
        0 => None,
        _ => Some(r.string()?),
    })
}

/// A command record with varint numbers (tag 10): most of the log, so its
/// bytes are what the writer copies and what makes the log compact itself;
/// fixed-width numbers made a SET's record 60 bytes, these 43. Tag 1, the
/// fixed-width form, is still read.
fn encode_command(w: &mut Writer, now_ms: u64, space: Option<&str>, db: u32, argv: &[&[u8]]) {
    w.u8(10).var(now_ms);
    match space {
        Some(s) => w.u8(1).var_bytes(s.as_bytes()),
        None => w.u8(0),
    };
    w.var(db as u64).var(argv.len() as u64);
    argv.iter().for_each(|a| {
        w.var_bytes(a);
    });
}

/// A logged command read in place: its arguments go to the caller's
/// reused vector, borrowed from the file's bytes (replay runs a million
/// commands a second; an allocation per argument was a third of it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommandRef<'a> {
    pub now_ms: u64,
    pub space: Option<&'a str>,
    pub db: u32,
}

fn decode_command_ref<'a>(r: &mut Reader<'a>, argv: &mut Vec<&'a [u8]>) -> Result<CommandRef<'a>, DecodeError> {
    let now_ms = r.var()?;
    let space = match r.u8()? {
        0 => None,
        _ => Some(core::str::from_utf8(r.var_bytes()?).map_err(|_| DecodeError::BadUtf8)?),
    };
    let db = u32::try_from(r.var()?).map_err(|_| DecodeError::BadVarint)?;
    let n = r.var_count(1)?;
    argv.clear();
    for _ in 0..n {
        argv.push(r.var_bytes()?);
    }
    Ok(CommandRef { now_ms, space, db })
}

impl CommandRef<'_> {
    /// The owned record, with the arguments read alongside.
    pub fn to_record(self, argv: &[&[u8]]) -> Record {
        let argv = argv.iter().map(|a| a.to_vec()).collect();
        Record::Command { now_ms: self.now_ms, space: self.space.map(String::from), db: self.db, argv }
    }
}

fn decode_command(r: &mut Reader<'_>) -> Result<Record, DecodeError> {
    let mut argv = Vec::new();
    Ok(decode_command_ref(r, &mut argv)?.to_record(&argv))
}

/// Frames a command record straight from its arguments (the hot path: no
/// `Record` is built), its checksum left for [`seal`]: the log's writer
/// thread computes it, off the command path.
pub fn frame_command_unsealed(out: &mut Vec<u8>, now_ms: u64, space: Option<&str>, db: u32, argv: &[&[u8]]) {
    frame_unsealed(out, |w| encode_command(w, now_ms, space, db, argv));
}

/// Frames a snapshot's block of encoded entries without copying it into a `Record`.
pub fn frame_entries(out: &mut Vec<u8>, entries: &[u8]) {
    frame_with(out, |w| put_entries(w, entries));
}

/// A block of entries, LZ4-compressed (tag 11: its size, then the
/// compressed bytes). Tag 7, the same uncompressed, is still read.
///
/// Compressed straight into the frame's buffer, which the snapshot reuses
/// from block to block: `lz4_flex::block::compress` would return a fresh,
/// zeroed megabyte per block and copy it again to shrink it (a third of a
/// compaction's time went to those pages and copies).
fn put_entries(w: &mut Writer, entries: &[u8]) {
    w.u8(11).var(entries.len() as u64);
    let at = w.buf.len();
    w.buf.resize(at + 4 + lz4_flex::block::get_maximum_output_size(entries.len()), 0);
    let n = lz4_flex::block::compress_into(entries, &mut w.buf[at + 4..]).expect("room for the worst case");
    w.buf.truncate(at + 4 + n);
    w.buf[at..at + 4].copy_from_slice(&(n as u32).to_le_bytes());
}

fn get_entries(r: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
    let size = r.var()?;
    let packed = r.bytes()?;
    // LZ4 expands at most about 255 times: a larger claim is damage, and
    // must not become an allocation.
    if size > (packed.len() as u64).saturating_mul(255) + 16 {
        return Err(DecodeError::Truncated);
    }
    let mut raw = vec![0; size as usize];
    match lz4_flex::block::decompress_into(packed, &mut raw) {
        Ok(n) if n == raw.len() => Ok(raw),
        _ => Err(DecodeError::Truncated),
    }
}

/// Appends one frame whose payload `encode` writes.
fn frame_with(out: &mut Vec<u8>, encode: impl FnOnce(&mut Writer)) {
    let start = out.len();
    frame_unsealed(out, encode);
    seal(&mut out[start..]);
}

/// Appends one frame with its length but a zero checksum.
fn frame_unsealed(out: &mut Vec<u8>, encode: impl FnOnce(&mut Writer)) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    let mut w = Writer { buf: std::mem::take(out) };
    encode(&mut w);
    *out = w.buf;
    let len = (out.len() - start - 8) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Fills in the checksum of every frame in `frames`, a run of whole frames
/// this process framed (so their lengths are trusted).
pub fn seal(frames: &mut [u8]) {
    let mut at = 0;
    while at + 8 <= frames.len() {
        let len = u32::from_le_bytes(frames[at..at + 4].try_into().expect("4 bytes")) as usize;
        let end = at + 8 + len;
        let crc = crc32fast::hash(&frames[at + 8..end]);
        frames[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
    debug_assert_eq!(at, frames.len(), "a partial frame");
}

impl Record {
    fn encode(&self, w: &mut Writer) {
        match self {
            Record::Command { now_ms, space, db, argv } => {
                let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
                encode_command(w, *now_ms, space.as_deref(), *db, &args);
            }
            Record::Batch(v) => {
                w.u8(2).u32(v.len() as u32);
                v.iter().for_each(|r| r.encode(w));
            }
            Record::Tenant(img) => {
                w.u8(3);
                img.encode(w);
            }
            Record::TenantDelete(id) => {
                w.u8(4).str(id);
            }
            Record::TenantSettings { tenant, settings } => {
                w.u8(12).str(tenant).u32(settings.len() as u32);
                settings.iter().for_each(|(name, value)| {
                    w.str(name).str(value);
                });
            }
            Record::TenantStats { tenant, counters, ledger } => {
                w.u8(13).str(tenant).u32(counters.len() as u32);
                counters.iter().for_each(|c| {
                    w.u64(*c);
                });
                w.u32(ledger.len() as u32);
                ledger.iter().for_each(|i| {
                    w.str(&i.name).u64(i.quantity.to_bits()).str(&i.unit).u64(i.amount.to_bits());
                });
            }
            Record::Import { tenant, open } => {
                w.u8(14).str(tenant).u8(u8::from(*open));
            }
            Record::Moved { tenant, to } => {
                w.u8(15).str(tenant).str(to);
            }
            Record::Policy { tenant, module } => {
                w.u8(5).str(tenant);
                match module {
                    Some((bytes, config)) => w.u8(1).bytes(bytes).bytes(config),
                    None => w.u8(0),
                };
            }
            Record::KeyspaceSize { space, db, keys } => {
                w.u8(16);
                put_space(w, space);
                w.u32(*db).u64(*keys);
            }
            Record::Keyspace { space, db } => {
                w.u8(6);
                put_space(w, space);
                w.u32(*db);
            }
            Record::Entries(b) => put_entries(w, b),
            Record::End { entries } => {
                w.u8(8).u64(*entries);
            }
            Record::Base { generation, cut_ms } => {
                w.u8(9).u64(*generation).u64(*cut_ms);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Record, DecodeError> {
        let tag = r.u8()?;
        Record::decode_tagged(tag, r)
    }

    fn decode_tagged(tag: u8, r: &mut Reader<'_>) -> Result<Record, DecodeError> {
        Ok(match tag {
            1 => {
                let (now_ms, space, db) = (r.u64()?, get_space(r)?, r.u32()?);
                let n = r.count(4)?;
                let mut argv = Vec::with_capacity(n);
                for _ in 0..n {
                    argv.push(r.bytes()?.to_vec());
                }
                Record::Command { now_ms, space, db, argv }
            }
            10 => decode_command(r)?,
            2 => {
                let n = r.count(1)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(Record::decode(r)?);
                }
                Record::Batch(v)
            }
            3 => Record::Tenant(TenantImage::decode(r)?),
            4 => Record::TenantDelete(r.string()?),
            12 => {
                let tenant = r.string()?;
                let n = r.count(2)?;
                let mut settings = Vec::with_capacity(n);
                for _ in 0..n {
                    settings.push((r.string()?, r.string()?));
                }
                Record::TenantSettings { tenant, settings }
            }
            13 => {
                let tenant = r.string()?;
                let n = r.count(8)?;
                let counters = (0..n).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
                let n = r.count(20)?;
                let mut ledger = Vec::with_capacity(n);
                for _ in 0..n {
                    let (name, quantity, unit, amount) = (r.string()?, f64::from_bits(r.u64()?), r.string()?, f64::from_bits(r.u64()?));
                    ledger.push(crate::tenancy::billing::LineItem { name, quantity, unit, amount });
                }
                Record::TenantStats { tenant, counters, ledger }
            }
            15 => Record::Moved { tenant: r.string()?, to: r.string()? },
            14 => Record::Import { tenant: r.string()?, open: r.u8()? != 0 },
            5 => {
                let tenant = r.string()?;
                let module = match r.u8()? {
                    0 => None,
                    _ => Some((r.bytes()?.to_vec(), r.bytes()?.to_vec())),
                };
                Record::Policy { tenant, module }
            }
            6 => Record::Keyspace { space: get_space(r)?, db: r.u32()? },
            16 => Record::KeyspaceSize { space: get_space(r)?, db: r.u32()?, keys: r.u64()? },
            7 => Record::Entries(r.bytes()?.to_vec()),
            11 => Record::Entries(get_entries(r)?),
            8 => Record::End { entries: r.u64()? },
            9 => Record::Base { generation: r.u64()?, cut_ms: r.u64()? },
            t => return Err(DecodeError::BadTag(t)),
        })
    }

    /// Appends this record as one frame.
    pub fn frame_into(&self, out: &mut Vec<u8>) {
        frame_with(out, |w| self.encode(w));
    }

    /// Appends this record as one frame whose checksum [`seal`] fills in later.
    pub fn frame_unsealed(&self, out: &mut Vec<u8>) {
        frame_unsealed(out, |w| self.encode(w));
    }
}

/// Why a file cannot be read to its end.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    #[error("{file}: truncated record at offset {offset}")]
    Truncated { file: PathBuf, offset: u64 },
    #[error("{file}: corrupt at offset {offset}: {why}")]
    Corrupt { file: PathBuf, offset: u64, why: String },
}

/// Reads the frames of a file held in memory.
pub struct Frames<'a> {
    file: &'a Path,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Frames<'a> {
    /// Checks the magic; `data` is the whole file.
    pub fn new(file: &'a Path, data: &'a [u8], magic: &[u8; 16]) -> Result<Frames<'a>, ReadError> {
        if data.len() < 16 {
            return Err(ReadError::Truncated { file: file.into(), offset: 0 });
        }
        if data[..16] != magic[..] {
            return Err(ReadError::Corrupt { file: file.into(), offset: 0, why: "not a Ferrite file of this kind or version".into() });
        }
        Ok(Frames { file, data, pos: 16 })
    }

    /// Offset of the next frame (after the last good one).
    pub fn offset(&self) -> u64 {
        self.pos as u64
    }

    /// The next record; `Ok(None)` at a clean end.
    pub fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        self.decode_next(Record::decode)
    }

    /// The next record, a command read in place (its arguments into
    /// `argv`) and anything else as a [`Record`]; `Ok(None)` at a clean end.
    pub fn next_in_place(&mut self, argv: &mut Vec<&'a [u8]>) -> Result<Option<Next<'a>>, ReadError> {
        self.decode_next(|r| match r.u8()? {
            10 => decode_command_ref(r, argv).map(Next::Command),
            tag => Record::decode_tagged(tag, r).map(Next::Other),
        })
    }

    /// Checks the next frame's length and checksum, then decodes its
    /// payload, which must be used up.
    fn decode_next<T>(&mut self, decode: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>) -> Result<Option<T>, ReadError> {
        let data = self.data;
        let rest = &data[self.pos..];
        if rest.is_empty() {
            return Ok(None);
        }
        let truncated = || ReadError::Truncated { file: self.file.into(), offset: self.pos as u64 };
        if rest.len() < 8 {
            return Err(truncated());
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let Some(payload) = rest.get(8..8 + len) else { return Err(truncated()) };
        let corrupt = |why: String| ReadError::Corrupt { file: self.file.into(), offset: self.pos as u64, why };
        if crc32fast::hash(payload) != crc {
            // A bad last frame is a write torn by a crash, like a short one.
            return Err(if 8 + len == rest.len() { truncated() } else { corrupt("checksum mismatch".into()) });
        }
        let mut r = Reader::new(payload);
        let v = decode(&mut r).and_then(|v| r.finish().map(|_| v)).map_err(|e| corrupt(e.to_string()))?;
        self.pos += 8 + len;
        Ok(Some(v))
    }
}

/// A frame as replay wants it (see [`Frames::next_in_place`]).
#[derive(Debug)]
pub enum Next<'a> {
    Command(CommandRef<'a>),
    Other(Record),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(records: &[Record]) -> Vec<u8> {
        let mut out = AOF_MAGIC.to_vec();
        records.iter().for_each(|r| r.frame_into(&mut out));
        out
    }

    fn cmd(i: u8) -> Record {
        Record::Command { now_ms: 7, space: Some("t".into()), db: 2, argv: vec![b"SET".to_vec(), vec![i]] }
    }

    #[test]
    fn commands_read_in_place_are_the_records_written() {
        let del = Record::Command { now_ms: 9, space: None, db: 0, argv: vec![b"DEL".to_vec(), b"k".to_vec()] };
        let recs = vec![cmd(1), Record::TenantDelete("x".into()), Record::Batch(vec![cmd(2)]), del, cmd(3)];
        let data = file(&recs);
        let mut f = Frames::new(Path::new("f"), &data, AOF_MAGIC).unwrap();
        let (mut argv, mut back, mut in_place) = (Vec::new(), Vec::new(), 0);
        while let Some(next) = f.next_in_place(&mut argv).unwrap() {
            back.push(match next {
                Next::Command(c) => {
                    in_place += 1;
                    c.to_record(&argv)
                }
                Next::Other(r) => r,
            });
        }
        assert_eq!(back, recs);
        assert_eq!(in_place, 3, "the batch's command comes inside its record");
    }

    #[test]
    fn records_round_trip_and_damage_is_classified() {
        let recs = vec![cmd(1), Record::Batch(vec![cmd(2), cmd(3)]), Record::TenantDelete("x".into()), cmd(4)];
        let data = file(&recs);
        let p = Path::new("f");
        let mut f = Frames::new(p, &data, AOF_MAGIC).unwrap();
        let mut back = Vec::new();
        while let Some(r) = f.next_record().unwrap() {
            back.push(r);
        }
        assert_eq!(back, recs);
        // Cut anywhere inside the last frame: truncated at its offset.
        let last = data.len() - {
            let mut v = Vec::new();
            cmd(4).frame_into(&mut v);
            v.len()
        };
        for cut in last + 1..data.len() {
            let mut f = Frames::new(p, &data[..cut], AOF_MAGIC).unwrap();
            let err = loop {
                match f.next_record() {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("cut at {cut} read clean"),
                    Err(e) => break e,
                }
            };
            assert_eq!(err, ReadError::Truncated { file: p.into(), offset: last as u64 });
        }
        // A flipped byte in the first frame: corruption at offset 16.
        let mut bad = data.clone();
        bad[30] ^= 0xff;
        let mut f = Frames::new(p, &bad, AOF_MAGIC).unwrap();
        assert!(matches!(f.next_record(), Err(ReadError::Corrupt { offset: 16, .. })));
        assert!(matches!(Frames::new(p, b"FERRITE-SNAP\0\0\0\x01", AOF_MAGIC), Err(ReadError::Corrupt { offset: 0, .. })));
    }

    #[test]
    fn command_records_of_the_fixed_width_form_still_read() {
        let mut w = Writer::default();
        w.u8(1).u64(7).u8(1).str("t").u32(2).u32(2).bytes(b"SET").bytes(&[5]);
        assert_eq!(Record::decode(&mut Reader::new(&w.buf)), Ok(cmd(5)));
        let mut compact = Writer::default();
        cmd(5).encode(&mut compact);
        assert!(compact.buf.len() < w.buf.len(), "{} >= {}", compact.buf.len(), w.buf.len());
        assert_eq!(Record::decode(&mut Reader::new(&compact.buf)), Ok(cmd(5)));
    }

    #[test]
    fn entry_blocks_are_compressed_and_the_uncompressed_form_still_reads() {
        let block: Vec<u8> = (0..20_000u32).flat_map(|i| format!("key:{i}=value").into_bytes()).collect();
        let mut w = Writer::default();
        Record::Entries(block.clone()).encode(&mut w);
        assert!(w.buf.len() < block.len() / 2, "{} of {}", w.buf.len(), block.len());
        assert_eq!(Record::decode(&mut Reader::new(&w.buf)), Ok(Record::Entries(block.clone())));
        let mut plain = Writer::default();
        plain.u8(7).bytes(&block);
        assert_eq!(Record::decode(&mut Reader::new(&plain.buf)), Ok(Record::Entries(block)));
        // A size no block of that length could expand to is refused before allocating.
        let mut lie = Writer::default();
        lie.u8(11).var(1 << 40).bytes(b"tiny");
        assert!(Record::decode(&mut Reader::new(&lie.buf)).is_err());
        // Bytes that are not LZ4 are refused, not misread.
        let mut junk = Writer::default();
        junk.u8(11).var(100).bytes(&[0xff; 40]);
        assert!(Record::decode(&mut Reader::new(&junk.buf)).is_err());
    }

    #[test]
    fn frames_sealed_later_equal_frames_sealed_at_once() {
        let recs = vec![cmd(1), Record::TenantDelete("x".into()), cmd(2)];
        let mut later = Vec::new();
        recs.iter().for_each(|r| r.frame_unsealed(&mut later));
        frame_command_unsealed(&mut later, 7, Some("t"), 2, &[b"SET", &[3]]);
        assert_ne!(later[..], file(&[recs.clone(), vec![cmd(3)]].concat())[AOF_MAGIC.len()..], "unsealed frames carry no checksum");
        seal(&mut later);
        assert_eq!(later[..], file(&[recs, vec![cmd(3)]].concat())[AOF_MAGIC.len()..]);
    }
}
