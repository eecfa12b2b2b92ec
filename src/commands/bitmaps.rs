//! Bitmaps: strings read and written bit by bit (SETBIT, GETBIT, BITCOUNT,
//! BITPOS, BITOP, BITFIELD). Bit 0 is the most significant bit of byte 0,
//! as in Redis. Every offset is bounded by `proto-max-bulk-len` before a
//! byte is allocated, and admission counts the bytes a write would pad
//! (`admission::growth`).

use super::args::{int, is};
use super::notify::STRING;
use super::strings::as_str;
use super::{CmdError, CmdResult, Ctx};
use crate::protocol::parse::parse_i64;
use crate::store::value::StrBytes;
use crate::store::{Slot, Value};

const OFFSET_ERR: &str = "ERR bit offset is not an integer or out of range";
const TYPE_ERR: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

fn max_bytes(ctx: &Ctx) -> u64 {
    ctx.state.proto_max_bulk_len.load(std::sync::atomic::Ordering::Relaxed)
}

/// A bit offset as Redis reads one: `#n` (BITFIELD only) counts in units of
/// the field's width; the byte it reaches must lie under `max_bytes`.
fn bit_offset(a: &[u8], field_bits: Option<u32>, max_bytes: u64) -> Result<u64, CmdError> {
    let (digits, unit) = match (a.first(), field_bits) {
        (Some(b'#'), Some(bits)) => (&a[1..], bits as i64),
        _ => (a, 1),
    };
    let off = parse_i64(digits).and_then(|n| n.checked_mul(unit)).ok_or_else(|| CmdError::msg(OFFSET_ERR))?;
    if off < 0 || (off as u64 >> 3) >= max_bytes {
        return Err(CmdError::msg(OFFSET_ERR));
    }
    Ok(off as u64)
}

fn bit_at(s: &[u8], bit: u64) -> bool {
    s.get((bit >> 3) as usize).is_some_and(|b| b & (0x80 >> (bit & 7)) != 0)
}

/// Grows the string at the slot (creating it) so that byte `last_byte`
/// exists; returns it and whether it was created or grown.
fn string_for_bits<'s>(slot: &'s mut Slot<'_>, last_byte: usize) -> Result<(&'s mut StrBytes, bool), CmdError> {
    let grown = match slot.value() {
        Some(v) => as_str(v)?.len() <= last_byte,
        None => {
            slot.set(Value::string(b""));
            true
        }
    };
    let Some(Value::Str(s, raw)) = slot.value_mut() else { unreachable!("checked string") };
    if s.len() <= last_byte {
        s.resize(last_byte + 1, 0);
    }
    *raw = true;
    Ok((s, grown))
}

pub fn setbit(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let offset = bit_offset(a[2], None, max_bytes(ctx))?;
    let on = match parse_i64(a[3]) {
        Some(v @ (0 | 1)) => v == 1,
        _ => return Err(CmdError::msg("ERR bit is not an integer or out of range")),
    };
    let (was, changed) = ctx.db().write(a[1], ctx.now_ms, |slot| {
        let (s, grown) = string_for_bits(slot, (offset >> 3) as usize)?;
        let was = bit_at(s, offset);
        let mask = 0x80u8 >> (offset & 7);
        let byte = &mut s[(offset >> 3) as usize];
        *byte = if on { *byte | mask } else { *byte & !mask };
        Ok::<_, CmdError>((was, grown || was != on))
    })?;
    if changed {
        ctx.notify(STRING, "setbit", a[1]);
    }
    ctx.client.unchanged = !changed;
    ctx.out.int(was as i64);
    Ok(())
}

pub fn getbit(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let offset = bit_offset(a[2], None, max_bytes(ctx))?;
    let bit = ctx.db().read(a[1], ctx.now_ms, ctx.touch, |e| as_str(&e.value).map(|s| bit_at(s, offset)));
    ctx.looked_up(a[1], bit.is_some());
    let bit = bit.transpose()?;
    ctx.out.int(bit.unwrap_or(false) as i64);
    Ok(())
}

/// A string's copy for commands that read it whole (BITCOUNT, BITPOS):
/// `None` if the key is missing.
fn read_string<R>(ctx: &Ctx, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, CmdError> {
    let r = ctx.db().read(key, ctx.now_ms, ctx.touch, |e| as_str(&e.value).map(f)).transpose();
    ctx.looked_up(key, !matches!(r, Ok(None)));
    r
}

/// The `BYTE|BIT` unit of a range; true for bits.
fn range_unit(a: &[u8]) -> Result<bool, CmdError> {
    if is(a, "bit") {
        Ok(true)
    } else if is(a, "byte") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// Clamps a start..=end range (negative from the end) to `0..total`, in
/// the unit of `total`; `None` when it is empty.
fn clamp_bits(start: i64, end: i64, total: i64) -> Option<(u64, u64)> {
    let fix = |i: i64| if i < 0 { (total + i).max(0) } else { i };
    let (start, end) = (fix(start), fix(end).min(total - 1));
    (start <= end).then_some((start as u64, end as u64))
}

/// Set bits in `bytes`, eight bytes at a time, with the CPU's popcount
/// instruction when it has one (the baseline x86-64 target does not
/// assume it, and a software count is several times slower).
fn popcount(bytes: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU has the instruction the function is compiled for.
        return unsafe { popcount_hw(bytes) };
    }
    popcount_words(bytes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn popcount_hw(bytes: &[u8]) -> u64 {
    popcount_words(bytes)
}

#[inline(always)]
fn popcount_words(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut n: u64 = words.by_ref().map(|w| u64::from_ne_bytes(w.try_into().expect("eight bytes")).count_ones() as u64).sum();
    n += words.remainder().iter().map(|b| b.count_ones() as u64).sum::<u64>();
    n
}

fn count_ones(s: &[u8], first: u64, last: u64) -> u64 {
    let (fb, lb) = ((first >> 3) as usize, (last >> 3) as usize);
    let whole = popcount(&s[fb..=lb]);
    // Bits of the edge bytes outside the range: above `first`, below `last`.
    let before = (s[fb] as u32 >> (8 - (first & 7))).count_ones() as u64;
    let after = (s[lb] as u32 & (0xff >> ((last & 7) + 1))).count_ones() as u64;
    whole - before - after
}

pub fn bitcount(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let Some(n) = read_string(ctx, a[1], |s| -> Result<u64, CmdError> {
        let total = s.len() as i64;
        let (start, end, bits) = match a.len() {
            2 => return Ok(if s.is_empty() { 0 } else { count_ones(s, 0, total as u64 * 8 - 1) }),
            4 | 5 => {
                let (start, end) = (int(a[2])?, int(a[3])?);
                if start < 0 && end < 0 && start > end {
                    return Ok(0);
                }
                let bits = a.len() == 5 && range_unit(a[4])?;
                (start, end, bits)
            }
            _ => return Err(CmdError::Syntax),
        };
        let range = if bits { clamp_bits(start, end, total * 8) } else { clamp_bits(start, end, total).map(|(s, e)| (s * 8, e * 8 + 7)) };
        Ok(range.map_or(0, |(first, last)| count_ones(s, first, last)))
    })?
    else {
        ctx.out.int(0);
        return Ok(());
    };
    ctx.out.int(n? as i64);
    Ok(())
}

/// The first bit equal to `bit` in `first..=last`.
fn find_bit(s: &[u8], bit: bool, first: u64, last: u64) -> Option<u64> {
    let mut i = first;
    while i <= last {
        let byte = s[(i >> 3) as usize];
        // Whole bytes that cannot hold the bit are skipped at once.
        if i & 7 == 0 && i + 7 <= last && byte == if bit { 0 } else { 0xff } {
            i += 8;
            continue;
        }
        if bit_at(s, i) == bit {
            return Some(i);
        }
        i += 1;
    }
    None
}

pub fn bitpos(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let bit = match int(a[2])? {
        b @ (0 | 1) => b == 1,
        _ => return Err(CmdError::err("The bit argument must be 1 or 0.")),
    };
    let found = read_string(ctx, a[1], |s| -> Result<i64, CmdError> {
        let total = s.len() as i64;
        let (mut first, mut last, mut end_given) = (0i64, total * 8 - 1, false);
        match a.len() {
            3 => {}
            4..=6 => {
                let start = int(a[3])?;
                let bits = a.len() == 6 && range_unit(a[5])?;
                let end = match a.get(4) {
                    Some(e) => {
                        end_given = true;
                        int(e)?
                    }
                    None if bits => total * 8 + 7,
                    None => total - 1,
                };
                let range =
                    if bits { clamp_bits(start, end, total * 8) } else { clamp_bits(start, end, total).map(|(s, e)| (s * 8, e * 8 + 7)) };
                let Some((f, l)) = range else { return Ok(-1) };
                (first, last) = (f as i64, l as i64);
            }
            _ => return Err(CmdError::Syntax),
        }
        if first > last {
            return Ok(-1);
        }
        Ok(match find_bit(s, bit, first as u64, last as u64) {
            Some(p) => p as i64,
            // Past an explicit end nothing is known; past the string's end
            // every bit is clear.
            None if bit || end_given => -1,
            None => (last / 8 + 1) * 8,
        })
    })?;
    ctx.out.int(match found {
        Some(r) => r?,
        None if bit => -1,
        None => 0,
    });
    Ok(())
}

pub fn bitop(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    #[derive(Clone, Copy, PartialEq)]
    enum Op {
        And,
        Or,
        Xor,
        Not,
    }
    let op = [("and", Op::And), ("or", Op::Or), ("xor", Op::Xor), ("not", Op::Not)]
        .into_iter()
        .find(|(n, _)| is(a[1], n))
        .map(|(_, o)| o)
        .ok_or(CmdError::Syntax)?;
    if op == Op::Not && a.len() != 4 {
        return Err(CmdError::err("BITOP NOT must be called with a single source key."));
    }
    let mut sources: Vec<Vec<u8>> = Vec::with_capacity(a.len() - 3);
    for k in &a[3..] {
        sources.push(read_string(ctx, k, |s| s.to_vec())?.unwrap_or_default());
    }
    let len = sources.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = vec![0u8; len];
    for (i, o) in out.iter_mut().enumerate() {
        let mut bytes = sources.iter().map(|s| s.get(i).copied().unwrap_or(0));
        let first = bytes.next().unwrap_or(0);
        *o = match op {
            Op::Not => !first,
            Op::And => bytes.fold(first, |x, y| x & y),
            Op::Or => bytes.fold(first, |x, y| x | y),
            Op::Xor => bytes.fold(first, |x, y| x ^ y),
        };
    }
    ctx.store_or_delete(a[2], (len > 0).then(|| Value::string(&out)), STRING, "set");
    ctx.out.int(len as i64);
    Ok(())
}

/// How a BITFIELD write handles a value outside its field.
#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// One BITFIELD operation: a field of `bits` bits (signed or not) at `offset`.
#[derive(Clone, Copy)]
struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

fn field_type(a: &[u8]) -> Result<(bool, u32), CmdError> {
    let signed = match a.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(CmdError::msg(TYPE_ERR)),
    };
    match parse_i64(&a[1..]) {
        Some(b) if b >= 1 && b <= if signed { 64 } else { 63 } => Ok((signed, b as u32)),
        _ => Err(CmdError::msg(TYPE_ERR)),
    }
}

fn parse_fields(a: &[&[u8]], max_bytes: u64) -> Result<Vec<Field>, CmdError> {
    let (mut fields, mut overflow, mut j) = (Vec::new(), Overflow::Wrap, 2);
    while j < a.len() {
        let left = a.len() - j - 1;
        let sub = a[j];
        let op = if is(sub, "get") && left >= 2 {
            FieldOp::Get
        } else if (is(sub, "set") || is(sub, "incrby")) && left >= 3 {
            FieldOp::Set(0)
        } else if is(sub, "overflow") && left >= 1 {
            let w = a[j + 1];
            overflow = if is(w, "wrap") {
                Overflow::Wrap
            } else if is(w, "sat") {
                Overflow::Sat
            } else if is(w, "fail") {
                Overflow::Fail
            } else {
                return Err(CmdError::err("Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(CmdError::Syntax);
        };
        let (signed, bits) = field_type(a[j + 1])?;
        let offset = bit_offset(a[j + 2], Some(bits), max_bytes)?;
        let op = match op {
            FieldOp::Get => FieldOp::Get,
            _ if is(sub, "set") => FieldOp::Set(int(a[j + 3])?),
            _ => FieldOp::IncrBy(int(a[j + 3])?),
        };
        fields.push(Field { op, signed, bits, offset, overflow });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    Ok(fields)
}

/// The last byte a BITFIELD's writes reach, if it writes at all.
fn last_written_byte(fields: &[Field]) -> Option<u64> {
    fields.iter().filter(|f| f.op != FieldOp::Get).map(|f| (f.offset + f.bits as u64 - 1) >> 3).max()
}

/// The bytes a BITFIELD or SETBIT may pad a string with: what admission counts.
pub fn padded_bytes(name: &str, a: &[&[u8]]) -> u64 {
    let max = u64::MAX >> 4;
    match name {
        "setbit" => bit_offset(a[2], None, max).map_or(0, |o| (o >> 3) + 1),
        "bitfield" => parse_fields(a, max).ok().and_then(|f| last_written_byte(&f)).map_or(0, |b| b + 1),
        _ => 0,
    }
}

fn read_field(s: &[u8], offset: u64, bits: u32) -> u64 {
    (0..bits as u64).fold(0u64, |v, i| (v << 1) | bit_at(s, offset + i) as u64)
}

fn write_field(s: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        let on = value >> (bits as u64 - 1 - i) & 1 == 1;
        let (byte, mask) = (((offset + i) >> 3) as usize, 0x80u8 >> ((offset + i) & 7));
        s[byte] = if on { s[byte] | mask } else { s[byte] & !mask };
    }
}

fn sign_extend(v: u64, bits: u32) -> i64 {
    if bits == 64 { v as i64 } else { ((v << (64 - bits)) as i64) >> (64 - bits) }
}

/// `value + incr` in a field: `Ok` when it fits, else `Err` with what Wrap
/// or Sat make of it.
fn add_signed(value: i64, incr: i64, bits: u32, overflow: Overflow) -> Result<i64, i64> {
    let max = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let sum = value as i128 + incr as i128;
    if sum >= min as i128 && sum <= max as i128 {
        return Ok(sum as i64);
    }
    Err(match overflow {
        Overflow::Sat if sum > max as i128 => max,
        Overflow::Sat => min,
        _ => sign_extend((value as u64).wrapping_add(incr as u64), bits),
    })
}

fn add_unsigned(value: u64, incr: i64, bits: u32, overflow: Overflow) -> Result<u64, u64> {
    let max = (1u64 << bits) - 1;
    let sum = value as i128 + incr as i128;
    if value <= max && sum >= 0 && sum <= max as i128 {
        return Ok(sum as u64);
    }
    Err(match overflow {
        // A value above the field (SET of a negative number) saturates high, as in Redis.
        Overflow::Sat if value > max || sum > max as i128 => max,
        Overflow::Sat => 0,
        _ => value.wrapping_add(incr as u64) & max,
    })
}

/// Runs one write on the string; `None` for an overflow under FAIL.
fn apply_field(s: &mut [u8], f: &Field) -> Option<(i64, bool)> {
    let old_raw = read_field(s, f.offset, f.bits);
    let (delta, base, reply_old) = match f.op {
        FieldOp::Set(v) => (0, v, true),
        FieldOp::IncrBy(d) => (d, 0, false),
        FieldOp::Get => unreachable!("writes only"),
    };
    let (old, new) = if f.signed {
        let old = sign_extend(old_raw, f.bits);
        let start = if reply_old { base } else { old };
        let new = add_signed(start, delta, f.bits, f.overflow);
        if new.is_err() && f.overflow == Overflow::Fail {
            return None;
        }
        (old, new.unwrap_or_else(|w| w))
    } else {
        let start = if reply_old { base as u64 } else { old_raw };
        let new = add_unsigned(start, delta, f.bits, f.overflow);
        if new.is_err() && f.overflow == Overflow::Fail {
            return None;
        }
        (old_raw as i64, new.unwrap_or_else(|w| w) as i64)
    };
    write_field(s, f.offset, f.bits, new as u64);
    Some((if reply_old { old } else { new }, old != new))
}

fn get_field(s: &[u8], f: &Field) -> i64 {
    let raw = read_field(s, f.offset, f.bits);
    if f.signed { sign_extend(raw, f.bits) } else { raw as i64 }
}

fn bitfield_generic(ctx: &mut Ctx, a: &[&[u8]], read_only: bool) -> CmdResult {
    let fields = parse_fields(a, max_bytes(ctx))?;
    let now = ctx.now_ms;
    let Some(last) = last_written_byte(&fields) else {
        // A missing key reads as zeros.
        let values = read_string(ctx, a[1], |s| fields.iter().map(|f| get_field(s, f)).collect::<Vec<_>>())?;
        let values = values.unwrap_or_else(|| vec![0; fields.len()]);
        ctx.out.array(values.len());
        values.into_iter().for_each(|v| ctx.out.int(v));
        return Ok(());
    };
    if read_only {
        return Err(CmdError::err("BITFIELD_RO only supports the GET subcommand"));
    }
    let (replies, changed, set) = ctx.db().write(a[1], now, |slot| {
        let (s, grown) = string_for_bits(slot, last as usize)?;
        let (mut changed, mut set) = (grown, false);
        let mut replies = Vec::with_capacity(fields.len());
        for f in &fields {
            replies.push(match f.op {
                FieldOp::Get => Some(get_field(s, f)),
                _ => apply_field(s, f).map(|(reply, diff)| {
                    changed |= diff;
                    // Redis counts a write that changed bits or grew the string.
                    set |= grown || diff;
                    reply
                }),
            });
        }
        Ok::<_, CmdError>((replies, changed, set))
    })?;
    if set {
        ctx.notify(STRING, "setbit", a[1]);
    }
    ctx.client.unchanged = !changed;
    ctx.out.array(replies.len());
    for r in replies {
        match r {
            Some(v) => ctx.out.int(v),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

pub fn bitfield(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    bitfield_generic(ctx, a, false)
}

pub fn bitfield_ro(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    bitfield_generic(ctx, a, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_a_bit_range_matches_bit_by_bit() {
        let s = [0b1011_0110u8, 0xff, 0b0000_0001, 0b1000_0000];
        for first in 0..32 {
            for last in first..32 {
                let slow = (first..=last).filter(|&i| bit_at(&s, i)).count() as u64;
                assert_eq!(count_ones(&s, first, last), slow, "{first}..={last}");
            }
        }
    }

    #[test]
    fn fields_round_trip_and_wrap_like_twos_complement() {
        let mut s = vec![0u8; 10];
        write_field(&mut s, 5, 13, 0x1abc);
        assert_eq!(read_field(&s, 5, 13), 0x1abc);
        assert_eq!(sign_extend(0xff, 8), -1);
        assert_eq!(add_signed(127, 1, 8, Overflow::Wrap), Err(-128));
        assert_eq!(add_signed(127, 1, 8, Overflow::Sat), Err(127));
        assert_eq!(add_signed(i64::MAX, 1, 64, Overflow::Wrap), Err(i64::MIN));
        assert_eq!(add_unsigned(255, 1, 8, Overflow::Wrap), Err(0));
        assert_eq!(add_unsigned(0, -1, 8, Overflow::Sat), Err(0));
        assert_eq!(add_unsigned(-1i64 as u64, 0, 8, Overflow::Sat), Err(255));
    }
}
