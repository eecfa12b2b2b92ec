//! Conversions between replies and Lua values, as Redis 7.0's Lua bridge
//! makes them: a command's reply becomes a Lua value for `redis.call`, and
//! a script's return value becomes the client's reply.

use mlua::{Lua, Value as LuaValue};

use crate::protocol::{Frame, Out};

/// A script's result, ready to write in either protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Int(i64),
    Bulk(Vec<u8>),
    /// Lua's nil (or false under RESP2): null in the client's protocol.
    Nil,
    Status(String),
    Error(String),
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(f64),
    Bool(bool),
    BigNumber(String),
    Verbatim(String, Vec<u8>),
}

impl Reply {
    pub fn write(&self, out: &mut Out) {
        match self {
            Reply::Int(n) => out.int(*n),
            Reply::Bulk(b) => out.bulk(b),
            Reply::Nil => out.null(),
            Reply::Status(s) => out.simple(s),
            Reply::Error(e) => out.error_bytes(e.as_bytes()),
            Reply::Array(items) => {
                out.array(items.len());
                items.iter().for_each(|r| r.write(out));
            }
            Reply::Map(pairs) if out.resp3 => {
                out.map(pairs.len());
                for (k, v) in pairs {
                    k.write(out);
                    v.write(out);
                }
            }
            Reply::Map(pairs) => {
                out.array(pairs.len() * 2);
                for (k, v) in pairs {
                    k.write(out);
                    v.write(out);
                }
            }
            Reply::Set(items) => {
                if out.resp3 {
                    out.set(items.len())
                } else {
                    out.array(items.len())
                }
                items.iter().for_each(|r| r.write(out));
            }
            Reply::Double(d) if out.resp3 => out.buf.extend_from_slice(format!(",{}\r\n", c_number_text(*d)).as_bytes()),
            Reply::Double(d) => out.bulk(c_number_text(*d).as_bytes()),
            Reply::Bool(b) if out.resp3 => out.buf.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Bool(b) => out.int(*b as i64),
            Reply::BigNumber(n) if out.resp3 => out.buf.extend_from_slice(format!("({n}\r\n").as_bytes()),
            Reply::BigNumber(n) => out.bulk(n.as_bytes()),
            Reply::Verbatim(_, text) if !out.resp3 => out.bulk(text),
            Reply::Verbatim(format, text) => {
                out.buf.extend_from_slice(format!("={}\r\n{format}:", text.len() + 4).as_bytes());
                out.buf.extend_from_slice(text);
                out.buf.extend_from_slice(b"\r\n");
            }
        }
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

/// A command's reply as the Lua value `redis.call` returns (Redis's
/// RESP2 and RESP3 rules: nulls are false, status and error replies are
/// tables with `ok` and `err`, RESP3's types are tagged tables).
pub fn frame_to_lua(lua: &Lua, f: Frame) -> mlua::Result<LuaValue> {
    frame_to_lua_in(lua, f, false)
}

/// `frame_to_lua` for a script that called `redis.setresp(3)` (`resp3`):
/// RESP3's null is nil there, false under RESP2.
pub fn frame_to_lua_in(lua: &Lua, f: Frame, resp3: bool) -> mlua::Result<LuaValue> {
    let table_with = |key: &str, v: LuaValue| -> mlua::Result<LuaValue> {
        let t = lua.create_table()?;
        t.raw_set(key, v)?;
        Ok(LuaValue::Table(t))
    };
    Ok(match f {
        Frame::Integer(n) => LuaValue::Integer(n),
        Frame::Bulk(b) => LuaValue::String(lua.create_string(&b)?),
        Frame::Null if resp3 => LuaValue::Nil,
        Frame::Null => LuaValue::Boolean(false),
        Frame::Simple(s) => table_with("ok", LuaValue::String(lua.create_string(&s)?))?,
        Frame::Error(e) => table_with("err", LuaValue::String(lua.create_string(&e)?))?,
        Frame::Array(items) | Frame::Push(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, x) in items.into_iter().enumerate() {
                t.raw_set(i + 1, frame_to_lua_in(lua, x, resp3)?)?;
            }
            LuaValue::Table(t)
        }
        Frame::Map(pairs) => {
            let inner = lua.create_table()?;
            for (k, v) in pairs {
                inner.raw_set(frame_to_lua_in(lua, k, resp3)?, frame_to_lua_in(lua, v, resp3)?)?;
            }
            table_with("map", LuaValue::Table(inner))?
        }
        Frame::Set(items) => {
            let inner = lua.create_table()?;
            for x in items {
                inner.raw_set(frame_to_lua_in(lua, x, resp3)?, true)?;
            }
            table_with("set", LuaValue::Table(inner))?
        }
        Frame::Double(d) => table_with("double", LuaValue::Number(d.parse().unwrap_or(f64::NAN)))?,
        Frame::Boolean(b) => LuaValue::Boolean(b),
        Frame::BigNumber(n) => table_with("big_number", LuaValue::String(lua.create_string(&n)?))?,
        Frame::Verbatim(v) => {
            let t = lua.create_table()?;
            let (format, text) = if v.len() >= 4 && v[3] == b':' { (&v[..3], &v[4..]) } else { (&b"txt"[..], &v[..]) };
            t.raw_set("string", lua.create_string(text)?)?;
            t.raw_set("format", lua.create_string(format)?)?;
            table_with("verbatim_string", LuaValue::Table(t))?
        }
    })
}

/// A Lua number as C's `(long long)` cast of it on x86-64: truncation,
/// and the "integer indefinite" value for NaN, infinities and overflow.
fn c_cast(n: f64) -> i64 {
    if n.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&n) { i64::MIN } else { n as i64 }
}

/// Error and status text as Redis sends it: no CR/LF inside.
fn one_line(s: &str, trim: bool) -> String {
    let s = if trim { s.trim_matches(|c| c == '\r' || c == '\n') } else { s };
    s.replace(['\r', '\n'], " ")
}

/// A script's return value as the reply (Redis's rules: numbers cast as C
/// casts them, booleans by the script's protocol, nil and other types
/// null, a table tagged by its first matching field, else an array up to
/// its first nil).
pub fn lua_to_reply(v: &LuaValue, script_resp3: bool) -> Reply {
    match v {
        LuaValue::Boolean(b) if script_resp3 => Reply::Bool(*b),
        LuaValue::Boolean(true) => Reply::Int(1),
        LuaValue::Integer(n) => Reply::Int(*n),
        LuaValue::Number(n) => Reply::Int(c_cast(*n)),
        LuaValue::String(s) => Reply::Bulk(s.as_bytes().to_vec()),
        LuaValue::Table(t) => table_to_reply(t, script_resp3),
        _ => Reply::Nil,
    }
}

fn field(t: &mlua::Table, name: &str) -> Option<LuaValue> {
    t.raw_get::<LuaValue>(name).ok().filter(|v| !v.is_nil())
}

fn table_to_reply(t: &mlua::Table, resp3: bool) -> Reply {
    if let Some(LuaValue::String(e)) = field(t, "err") {
        return Reply::Error(one_line(e.to_string_lossy().trim_end_matches(['\r', '\n']), false));
    }
    if let Some(LuaValue::String(s)) = field(t, "ok") {
        return Reply::Status(one_line(&s.to_string_lossy(), false));
    }
    match field(t, "double") {
        Some(LuaValue::Number(n)) => return Reply::Double(n),
        Some(LuaValue::Integer(n)) => return Reply::Double(n as f64),
        _ => {}
    }
    if let Some(LuaValue::String(n)) = field(t, "big_number") {
        return Reply::BigNumber(one_line(&n.to_string_lossy(), false));
    }
    if let Some(LuaValue::Table(v)) = field(t, "verbatim_string")
        && let (Ok(LuaValue::String(format)), Ok(LuaValue::String(text))) =
            (v.raw_get::<LuaValue>("format"), v.raw_get::<LuaValue>("string"))
    {
        let mut f: String = format.to_string_lossy().chars().take(3).collect();
        while f.len() < 3 {
            f.push(' ');
        }
        return Reply::Verbatim(f, text.as_bytes().to_vec());
    }
    if let Some(LuaValue::Table(m)) = field(t, "map") {
        let pairs = m
            .pairs::<LuaValue, LuaValue>()
            .filter_map(Result::ok)
            .map(|(k, v)| (lua_to_reply(&k, resp3), lua_to_reply(&v, resp3)))
            .collect();
        return Reply::Map(pairs);
    }
    if let Some(LuaValue::Table(s)) = field(t, "set") {
        let items = s.pairs::<LuaValue, LuaValue>().filter_map(Result::ok).map(|(k, _)| lua_to_reply(&k, resp3)).collect();
        return Reply::Set(items);
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<LuaValue>(i) {
            Ok(LuaValue::Nil) | Err(_) => break,
            Ok(v) => items.push(lua_to_reply(&v, resp3)),
        }
    }
    Reply::Array(items)
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
