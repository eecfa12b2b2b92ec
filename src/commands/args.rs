//! Argument parsing shared by the command families: numbers as Redis reads
//! them, and option words.

use super::error::CmdError;
use crate::protocol::Out;
use crate::protocol::parse::parse_i64;

pub fn int(a: &[u8]) -> Result<i64, CmdError> {
    parse_i64(a).ok_or(CmdError::NotInteger)
}

/// A non-negative integer; `what` names it in the error.
pub fn uint(a: &[u8], err: CmdError) -> Result<u64, CmdError> {
    match parse_i64(a) {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(err),
    }
}

/// Parses a double like Redis's `string2d`: `inf`, `-inf`, `+inf` accepted;
/// NaN, empty strings and spaces refused.
pub fn parse_f64(a: &[u8]) -> Option<f64> {
    // Plain numbers (every score a client usually sends) go straight to the
    // parser: with only digits, signs, dots and exponents it cannot read
    // `inf` or `nan`, so the checks below (and their lowercase copy) are for
    // the rest.
    if !a.is_empty() && a.iter().all(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')) {
        let v: f64 = std::str::from_utf8(a).ok()?.parse().ok()?;
        return (!out_of_range(a, v)).then_some(v);
    }
    let s = std::str::from_utf8(a).ok()?;
    if s.is_empty() || s.starts_with(|c: char| c.is_whitespace()) || s.ends_with(|c: char| c.is_whitespace()) {
        return None;
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        l if l.contains("nan") || l.contains("inf") => return None,
        _ => s.parse().ok()?,
    };
    Some(v)
}

/// What C's `strtod` reports as ERANGE (which Redis refuses): a number
/// too large for a double, or one too small to keep its precision.
fn out_of_range(text: &[u8], v: f64) -> bool {
    let mantissa = text.split(|&b| b == b'e' || b == b'E').next().unwrap_or(text);
    v.is_infinite() || (v != 0.0 && v.abs() < f64::MIN_POSITIVE) || (v == 0.0 && mantissa.iter().any(|b| (b'1'..=b'9').contains(b)))
}

pub fn float(a: &[u8]) -> Result<f64, CmdError> {
    parse_f64(a).ok_or(CmdError::NotFloat)
}

/// Case-insensitive option match.
pub fn is(a: &[u8], word: &str) -> bool {
    a.eq_ignore_ascii_case(word.as_bytes())
}

/// Lowercase copy of a command or subcommand name, for lookups and errors.
pub fn lower(a: &[u8]) -> String {
    String::from_utf8_lossy(a).to_ascii_lowercase()
}

/// Parses a blocking timeout in seconds (a double) into milliseconds; 0 = forever.
pub fn timeout_ms(a: &[u8]) -> Result<u64, CmdError> {
    let t = parse_f64(a).filter(|t| t.is_finite()).ok_or(CmdError::TimeoutNotFloat)?;
    if t < 0.0 {
        return Err(CmdError::TimeoutNegative);
    }
    let ms = t * 1000.0;
    if ms > (i64::MAX / 2) as f64 {
        return Err(CmdError::TimeoutNotFloat);
    }
    Ok(ms.ceil() as u64)
}

/// Normalises Redis-style inclusive indexes (negative from the end) against
/// `len`; None if the range is empty.
pub fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let s = if start < 0 { (len + start).max(0) } else { start };
    let e = if end < 0 { len + end } else { end.min(len - 1) };
    if s > e || s >= len || e < 0 { None } else { Some((s as usize, e as usize)) }
}

/// The count of SRANDMEMBER, HRANDFIELD and ZRANDMEMBER, read as Redis reads
/// it: anything but `i64::MIN`; with pairs (WITHVALUES, WITHSCORES) at most
/// half that either way, so the reply's length cannot overflow.
pub fn random_count(a: &[u8], pairs: bool) -> Result<i64, CmdError> {
    let n = int(a)?;
    if n == i64::MIN {
        return Err(CmdError::err("value is out of range, value must between -9223372036854775807 and 9223372036854775807"));
    }
    if pairs && !(-i64::MAX / 2..=i64::MAX / 2).contains(&n) {
        return Err(CmdError::err("value is out of range"));
    }
    Ok(n)
}

/// Writes SRANDMEMBER's, HRANDFIELD's or ZRANDMEMBER's reply from an
/// `n`-element collection: one element without a count, else the picks of
/// [`random_picks`], each with its value or score when `with` (pairs in
/// RESP3, flat in RESP2). `emit(out, i, with)` writes element `i`. False
/// when the reply stopped at the output limit.
pub fn reply_random(out: &mut Out, n: usize, count: Option<i64>, with: bool, mut emit: impl FnMut(&mut Out, usize, bool)) -> bool {
    let Some(count) = count else {
        emit(out, fastrand::usize(..n), false);
        return true;
    };
    let len = picks_len(n, count);
    let pairs = with && out.resp3;
    out.array(if with && !pairs { len * 2 } else { len });
    random_picks(n, count, |i| {
        if pairs {
            out.array(2);
        }
        emit(out, i, with);
        !out.over_limit()
    })
}

/// The arguments of HRANDFIELD/ZRANDMEMBER: `key [count [<with>]]`, where
/// `with` is WITHVALUES or WITHSCORES; returns (with, count).
pub fn random_args(a: &[&[u8]], with_word: &str) -> Result<(bool, Option<i64>), CmdError> {
    let with = match a.len() {
        2 | 3 => false,
        4 if is(a[3], with_word) => true,
        _ => return Err(CmdError::Syntax),
    };
    Ok((with, a.get(2).map(|c| random_count(c, with)).transpose()?))
}

/// How many positions [`random_picks`] yields for `count` from `n` members.
pub fn picks_len(n: usize, count: i64) -> usize {
    if count >= 0 { n.min(count as usize) } else { count.unsigned_abs() as usize }
}

/// Calls `emit` with the positions SRANDMEMBER/HRANDFIELD/ZRANDMEMBER return
/// from an `n`-element collection (`n > 0`): distinct ones for `count >= 0`
/// (all of them once it reaches `n`), `|count|` with repeats for `count < 0`.
/// Repeats are drawn one at a time, so a count of -10^15 allocates nothing;
/// `emit` returns false to stop (the reply passed its output limit), and so
/// does this function then.
pub fn random_picks(n: usize, count: i64, mut emit: impl FnMut(usize) -> bool) -> bool {
    if count < 0 {
        return (0..count.unsigned_abs()).all(|_| emit(fastrand::usize(..n)));
    }
    if count as u64 >= n as u64 {
        return (0..n).all(emit);
    }
    // The first `count` steps of a Fisher-Yates shuffle.
    let mut all: Vec<usize> = (0..n).collect();
    (0..count as usize).all(|i| {
        all.swap(i, fastrand::usize(i..n));
        emit(all[i])
    })
}

#[cfg(test)]
mod tests {
    use super::parse_f64;

    #[test]
    fn doubles_parse_as_redis_reads_them() {
        for (text, want) in [
            ("1.5", 1.5),
            ("-3", -3.0),
            ("+2e3", 2000.0),
            (".5", 0.5),
            ("7.", 7.0),
            ("inf", f64::INFINITY),
            ("-INF", f64::NEG_INFINITY),
            ("+Infinity", f64::INFINITY),
        ] {
            assert_eq!(parse_f64(text.as_bytes()), Some(want), "{text}");
        }
        for bad in ["", " 1", "1 ", "nan", "NaN", "-nan", "1e", "e", "+", "--1", "1.2.3", "abc", "infx"] {
            assert_eq!(parse_f64(bad.as_bytes()), None, "{bad}");
        }
    }
}
