//! Number and text conversions as Redis 7.0's Lua bridge makes them (C's
//! `%g` formatting and `(long long)` casts), and a script's reply. The
//! conversions between replies and Lua values themselves work on the Lua
//! stack, in `bound`.

use crate::protocol::Out;

/// A script's result, already encoded in the client's protocol (straight
/// from the Lua stack: see `bound::encode_reply`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply(pub bytes::BytesMut);

impl Reply {
    pub fn write(&self, out: &mut Out) {
        out.buf.extend_from_slice(&self.0);
    }
}

/// C's `%.<precision>g`, as glibc prints it (`nan` keeps its sign).
fn c_g(n: f64, precision: usize) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan".into() } else { "nan".into() };
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if n == 0.0 {
        return if n.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let p = precision.max(1);
    // The exponent after rounding to `p` significant digits decides the style.
    let sci = format!("{:.*e}", p - 1, n);
    let (mantissa, exp) = sci.split_once('e').expect("an exponent");
    let exp: i32 = exp.parse().expect("a number");
    let trim = |s: &str| if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() };
    if exp < -4 || exp >= p as i32 {
        format!("{}e{}{:02}", trim(mantissa), if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        trim(&format!("{:.*}", (p as i32 - 1 - exp).max(0) as usize, n))
    }
}

/// `%.17g`: how a float argument to `redis.call` is sent, and a double reply.
pub fn c_number_text(n: f64) -> String {
    c_g(n, 17)
}

/// How Lua prints a number (`%.14g`).
pub fn lua_number_text(n: f64) -> String {
    c_g(n, 14)
}

/// A Lua number as C's `(long long)` cast of it on x86-64: truncation,
/// and the "integer indefinite" value for NaN, infinities and overflow.
pub(super) fn c_cast(n: f64) -> i64 {
    if n.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&n) { i64::MIN } else { n as i64 }
}

/// Error and status text as Redis sends it: no CR/LF inside.
pub(super) fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_lua() {
        assert_eq!(lua_number_text(3.0), "3");
        assert_eq!(lua_number_text(3.5), "3.5");
        assert_eq!(lua_number_text(0.1), "0.1");
        assert_eq!(lua_number_text(1e20), "1e+20");
        assert_eq!(lua_number_text(1.0 / 3.0), "0.33333333333333");
        assert_eq!(lua_number_text(-2.5e-7), "-2.5e-07");
        assert_eq!(c_number_text(0.1), "0.10000000000000001");
        assert_eq!(c_number_text(1e100), "1e+100");
        assert_eq!(c_number_text(2f64.powi(53)), "9007199254740992");
        assert_eq!(c_number_text(-0.0), "-0");
        assert_eq!(c_number_text(2.75), "2.75");
        assert_eq!(lua_number_text(1e15), "1e+15");
    }
}
