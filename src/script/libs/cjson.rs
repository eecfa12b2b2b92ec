//! `cjson`: lua-cjson 2.1.0 as Redis 7.0 ships it.
//!
//! Each module table (the global one, and each `cjson.new()`) has its own
//! configuration, a userdata shared as the first upvalue of its functions.
//! `encode` and `decode` keep two [`Scratch`] buffers in upvalues 2 and 3.
//! Both walk nested values with an explicit stack of levels (no Rust
//! recursion) while keeping on the Lua stack exactly what lua-cjson keeps
//! there, so the depth where `lua_checkstack` gives up is Redis's.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};

use mlua::{Lua, Table, ffi};

use super::{Msg, Scratch, State, add_functions, arg_error, c_int_of, format_g, msg, raise, set_string, string_at};

/// One module table's settings (lua-cjson's defaults below).
#[repr(C)]
#[derive(Clone, Copy)]
struct Config {
    sparse_convert: c_int,
    sparse_ratio: c_int,
    sparse_safe: c_int,
    encode_max_depth: c_int,
    decode_max_depth: c_int,
    /// 0 refuses NaN and infinities, 1 writes them, 2 writes `null`.
    encode_invalid_numbers: c_int,
    decode_invalid_numbers: c_int,
    encode_keep_buffer: c_int,
    precision: c_int,
}

const DEFAULTS: Config = Config {
    sparse_convert: 0,
    sparse_ratio: 2,
    sparse_safe: 10,
    encode_max_depth: 1000,
    decode_max_depth: 1000,
    encode_invalid_numbers: 0,
    decode_invalid_numbers: 1,
    encode_keep_buffer: 1,
    precision: 14,
};

/// The `cjson` table Redis puts in the globals.
pub fn install(lua: &Lua) -> mlua::Result<Table> {
    super::open(lua, open_module)
}

unsafe extern "C-unwind" fn open_module(l: State) -> c_int {
    unsafe { push_module(l) };
    1
}

/// Pushes a new module table with its own default configuration.
unsafe fn push_module(l: State) {
    let funcs: [(&CStr, ffi::lua_CFunction, c_int); 10] = [
        (c"encode", encode, 3),
        (c"decode", decode, 3),
        (c"encode_sparse_array", cfg_encode_sparse_array, 1),
        (c"encode_max_depth", cfg_encode_max_depth, 1),
        (c"decode_max_depth", cfg_decode_max_depth, 1),
        (c"encode_number_precision", cfg_encode_number_precision, 1),
        (c"encode_keep_buffer", cfg_encode_keep_buffer, 1),
        (c"encode_invalid_numbers", cfg_encode_invalid_numbers, 1),
        (c"decode_invalid_numbers", cfg_decode_invalid_numbers, 1),
        (c"new", new, 1),
    ];
    unsafe {
        ffi::lua_createtable(l, 0, 0);
        let t = ffi::lua_gettop(l);
        let cfg = ffi::lua_newuserdata(l, std::mem::size_of::<Config>()) as *mut Config;
        cfg.write(DEFAULTS);
        add_functions(l, t, &funcs, Some(t + 1));
        ffi::lua_settop(l, t);
        ffi::lua_pushlightuserdata(l, std::ptr::null_mut());
        ffi::lua_setfield(l, t, c"null".as_ptr());
        set_string(l, t, c"_NAME", c"cjson");
        set_string(l, t, c"_VERSION", c"2.1.0");
    }
}

/// The running function's configuration.
unsafe fn config(l: State) -> *mut Config {
    unsafe {
        let p = ffi::lua_touserdata(l, ffi::lua_upvalueindex(1)) as *mut Config;
        if p.is_null() {
            raise(l, b"BUG: Unable to fetch CJSON configuration");
        }
        p
    }
}

unsafe extern "C-unwind" fn new(l: State) -> c_int {
    unsafe { push_module(l) };
    1
}

// ===== Configuration functions =====

/// At most `args` arguments, padded with nils.
unsafe fn arg_init(l: State, args: c_int) -> *mut Config {
    unsafe {
        if ffi::lua_gettop(l) > args {
            arg_error(l, args + 1, b"found too many arguments");
        }
        while ffi::lua_gettop(l) < args {
            ffi::lua_pushnil(l);
        }
        config(l)
    }
}

/// Sets an integer option from argument `idx` when given (C's `int`
/// truncation of the integer included); pushes its value.
unsafe fn integer_option(l: State, idx: c_int, setting: *mut c_int, min: c_int, max: c_int) {
    unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TNIL {
            let value = ffi::luaL_checkinteger(l, idx) as c_int;
            if !(min..=max).contains(&value) {
                let m = msg!("expected integer between {min} and {max}");
                arg_error(l, 1, m.bytes());
            }
            *setting = value;
        }
        ffi::lua_pushinteger(l, *setting as ffi::lua_Integer);
    }
}

/// Sets an on/off option (or one of `options`, for `encode_invalid_numbers`)
/// from argument `idx` when given; pushes its value (a boolean for off/on).
unsafe fn enum_option(l: State, idx: c_int, setting: *mut c_int, with_null: bool) {
    let options: [*const c_char; 4] =
        [c"off".as_ptr(), c"on".as_ptr(), if with_null { c"null".as_ptr() } else { std::ptr::null() }, std::ptr::null()];
    unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TNIL {
            if ffi::lua_type(l, idx) == ffi::LUA_TBOOLEAN {
                *setting = ffi::lua_toboolean(l, idx);
            } else {
                *setting = ffi::luaL_checkoption(l, idx, std::ptr::null(), options.as_ptr());
            }
        }
        match *setting {
            0 | 1 => ffi::lua_pushboolean(l, *setting),
            _ => ffi::lua_pushstring_(l, c"null".as_ptr()),
        }
    }
}

unsafe extern "C-unwind" fn cfg_encode_sparse_array(l: State) -> c_int {
    unsafe {
        let cfg = arg_init(l, 3);
        enum_option(l, 1, &raw mut (*cfg).sparse_convert, false);
        integer_option(l, 2, &raw mut (*cfg).sparse_ratio, 0, c_int::MAX);
        integer_option(l, 3, &raw mut (*cfg).sparse_safe, 0, c_int::MAX);
    }
    3
}

unsafe extern "C-unwind" fn cfg_encode_max_depth(l: State) -> c_int {
    unsafe {
        let cfg = arg_init(l, 1);
        integer_option(l, 1, &raw mut (*cfg).encode_max_depth, 1, c_int::MAX);
    }
    1
}

unsafe extern "C-unwind" fn cfg_decode_max_depth(l: State) -> c_int {
    unsafe {
        let cfg = arg_init(l, 1);
        integer_option(l, 1, &raw mut (*cfg).decode_max_depth, 1, c_int::MAX);
    }
    1
}

unsafe extern "C-unwind" fn cfg_encode_number_precision(l: State) -> c_int {
    unsafe {
        let cfg = arg_init(l, 1);
        integer_option(l, 1, &raw mut (*cfg).precision, 1, 14);
    }
    1
}

unsafe extern "C-unwind" fn cfg_encode_keep_buffer(l: State) -> c_int {
    unsafe {
        let cfg = arg_init(l, 1);
        enum_option(l, 1, &raw mut (*cfg).encode_keep_buffer, false);
    }
    1
}

unsafe extern "C-unwind" fn cfg_encode_invalid_numbers(l: State) -> c_int {
    unsafe {
        let cfg = arg_init(l, 1);
        enum_option(l, 1, &raw mut (*cfg).encode_invalid_numbers, true);
    }
    1
}

unsafe extern "C-unwind" fn cfg_decode_invalid_numbers(l: State) -> c_int {
    unsafe {
        let cfg = arg_init(l, 1);
        enum_option(l, 1, &raw mut (*cfg).decode_invalid_numbers, false);
    }
    1
}

// ===== Encoding =====

/// A table being written: an array (its length, the last index written)
/// or an object (whose current key lua-cjson keeps on the Lua stack).
#[derive(Clone, Copy)]
enum Level {
    Array { len: c_int, done: c_int },
    Object { first: bool },
}

/// The name of the type at `idx`.
unsafe fn type_name<'a>(l: State, idx: c_int) -> &'a [u8] {
    unsafe {
        let p = ffi::lua_typename(l, ffi::lua_type(l, idx));
        if p.is_null() { b"?" } else { CStr::from_ptr(p).to_bytes() }
    }
}

/// `Cannot serialise <type>: <reason>` for the value at `idx`.
unsafe fn encode_error(l: State, idx: c_int, reason: &str) -> ! {
    unsafe {
        let m = msg!("Cannot serialise {}: {reason}", std::str::from_utf8(type_name(l, idx)).unwrap_or("?"));
        raise(l, m.bytes())
    }
}

unsafe extern "C-unwind" fn encode(l: State) -> c_int {
    unsafe {
        let cfg = *config(l);
        if ffi::lua_gettop(l) != 1 {
            arg_error(l, 1, b"expected 1 argument");
        }
        let mut out = Scratch::<u8>::open(l, 2);
        let mut levels = Scratch::<Level>::open(l, 3);
        let mut depth: c_int = 0;
        // The value on top of the Lua stack is the next to write.
        let mut value = true;
        loop {
            if value {
                value = false;
                match ffi::lua_type(l, -1) {
                    ffi::LUA_TSTRING => append_string(l, &mut out, -1),
                    ffi::LUA_TNUMBER => append_number(l, &cfg, &mut out, -1),
                    ffi::LUA_TBOOLEAN => {
                        out.extend(l, if ffi::lua_toboolean(l, -1) != 0 { b"true" } else { b"false" });
                    }
                    ffi::LUA_TNIL => out.extend(l, b"null"),
                    ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(l, -1).is_null() => out.extend(l, b"null"),
                    ffi::LUA_TTABLE => {
                        depth = depth.saturating_add(1);
                        // Room to walk the table (key, value) and to raise.
                        if depth > cfg.encode_max_depth || ffi::lua_checkstack(l, 3) == 0 {
                            let m = msg!("Cannot serialise, excessive nesting ({depth})");
                            raise(l, m.bytes());
                        }
                        let len = array_length(l, &cfg);
                        if len > 0 {
                            out.push(l, b'[');
                            levels.push(l, Level::Array { len, done: 0 });
                        } else {
                            out.push(l, b'{');
                            ffi::lua_pushnil(l);
                            levels.push(l, Level::Object { first: true });
                        }
                        continue;
                    }
                    _ => encode_error(l, -1, "type not supported"),
                }
                // A written item is popped (the argument itself stays).
                if levels.len() > 0 {
                    ffi::lua_pop(l, 1);
                }
            }
            let Some(&mut level) = levels.last_mut() else { break };
            match level {
                Level::Array { len, done } if done < len => {
                    let i = done + 1;
                    if let Some(Level::Array { done, .. }) = levels.last_mut() {
                        *done = i;
                    }
                    if i > 1 {
                        out.push(l, b',');
                    }
                    ffi::lua_rawgeti_(l, -1, i);
                    value = true;
                }
                Level::Object { first } if ffi::lua_next(l, -2) != 0 => {
                    if !first {
                        out.push(l, b',');
                    }
                    if let Some(Level::Object { first }) = levels.last_mut() {
                        *first = false;
                    }
                    match ffi::lua_type(l, -2) {
                        ffi::LUA_TNUMBER => {
                            out.push(l, b'"');
                            append_number(l, &cfg, &mut out, -2);
                            out.extend(l, b"\":");
                        }
                        ffi::LUA_TSTRING => {
                            append_string(l, &mut out, -2);
                            out.push(l, b':');
                        }
                        _ => encode_error(l, -2, "table key must be a number or string"),
                    }
                    value = true;
                }
                _ => {
                    out.push(l, if matches!(level, Level::Array { .. }) { b']' } else { b'}' });
                    levels.pop();
                    depth -= 1;
                    if levels.len() > 0 {
                        ffi::lua_pop(l, 1);
                    }
                }
            }
        }
        out.push_string(l);
        out.release(l);
        levels.release(l);
    }
    1
}

/// lua-cjson's array test for the table on top: its length when every key
/// is an integer >= 1 (holes allowed up to the sparse-array rules), else
/// -1 (an object). The largest key goes through C's `(int)`, as there.
unsafe fn array_length(l: State, cfg: &Config) -> c_int {
    let mut max: c_int = 0;
    let mut items: c_int = 0;
    unsafe {
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            if ffi::lua_type(l, -2) == ffi::LUA_TNUMBER {
                let k = ffi::lua_tonumber(l, -2);
                if k != 0.0 && k.floor() == k && k >= 1.0 {
                    if k > max as f64 {
                        max = c_int_of(k);
                    }
                    items = items.wrapping_add(1);
                    ffi::lua_pop(l, 1);
                    continue;
                }
            }
            ffi::lua_pop(l, 2);
            return -1;
        }
        if cfg.sparse_ratio > 0 && max > items.wrapping_mul(cfg.sparse_ratio) && max > cfg.sparse_safe {
            if cfg.sparse_convert == 0 {
                encode_error(l, -1, "excessively sparse array");
            }
            return -1;
        }
    }
    max
}

/// The number at `idx`, as lua-cjson writes it.
unsafe fn append_number(l: State, cfg: &Config, out: &mut Scratch<u8>, idx: c_int) {
    unsafe {
        let n = ffi::lua_tonumber(l, idx);
        match cfg.encode_invalid_numbers {
            0 if !n.is_finite() => encode_error(l, idx, "must not be NaN or Inf"),
            1 if n.is_nan() => return out.extend(l, b"nan"),
            2.. if !n.is_finite() => return out.extend(l, b"null"),
            _ => {}
        }
        let mut m = Msg::new();
        format_g(&mut m, n, cfg.precision.clamp(1, 14) as usize);
        out.extend(l, m.bytes());
    }
}

/// How lua-cjson escapes a byte in a string (None: as it is).
fn escape(b: u8) -> Option<[u8; 6]> {
    let short = |c: u8| Some([b'\\', c, 0, 0, 0, 0]);
    match b {
        b'"' => short(b'"'),
        b'\\' => short(b'\\'),
        b'/' => short(b'/'),
        0x08 => short(b'b'),
        0x09 => short(b't'),
        0x0a => short(b'n'),
        0x0c => short(b'f'),
        0x0d => short(b'r'),
        0..0x20 | 0x7f => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            Some([b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]])
        }
        _ => None,
    }
}

/// The string at `idx`, quoted and escaped.
unsafe fn append_string(l: State, out: &mut Scratch<u8>, idx: c_int) {
    unsafe {
        let s = string_at(l, idx);
        out.reserve(l, s.len().saturating_add(2));
        out.push(l, b'"');
        let mut start = 0;
        for (i, &b) in s.iter().enumerate() {
            if let Some(e) = escape(b) {
                out.extend(l, s.get(start..i).unwrap_or(&[]));
                let n = if e[1] == b'u' { 6 } else { 2 };
                out.extend(l, e.get(..n).unwrap_or(&[]));
                start = i + 1;
            }
        }
        out.extend(l, s.get(start..).unwrap_or(&[]));
        out.push(l, b'"');
    }
}

// ===== Decoding =====

unsafe extern "C" {
    /// The C library's strtod, which lua-cjson parses numbers with (hex,
    /// `inf`, `nan` and all).
    fn strtod(s: *const c_char, end: *mut *mut c_char) -> f64;
}

/// lua-cjson's token types, in its order (their names appear in errors).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Number,
    Boolean,
    Null,
    Colon,
    Comma,
    End,
    Error,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ObjBegin => "T_OBJ_BEGIN",
            Kind::ObjEnd => "T_OBJ_END",
            Kind::ArrBegin => "T_ARR_BEGIN",
            Kind::ArrEnd => "T_ARR_END",
            Kind::Str => "T_STRING",
            Kind::Number => "T_NUMBER",
            Kind::Boolean => "T_BOOLEAN",
            Kind::Null => "T_NULL",
            Kind::Colon => "T_COLON",
            Kind::Comma => "T_COMMA",
            Kind::End => "T_END",
            Kind::Error => "T_ERROR",
        }
    }
}

#[derive(Clone, Copy)]
struct Token {
    kind: Kind,
    /// Where it starts (0-based), or where the error is.
    index: usize,
    number: f64,
    boolean: bool,
    error: &'static str,
}

/// The input (read as C reads it: a NUL, or the end, ends it) and the
/// position in it.
#[derive(Clone, Copy)]
struct Parser<'a> {
    base: *const c_char,
    data: &'a [u8],
    pos: usize,
    depth: c_int,
    cfg: Config,
}

impl Parser<'_> {
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn starts_with(&self, word: &[u8]) -> bool {
        self.data.get(self.pos..).is_some_and(|rest| rest.starts_with(word))
    }

    fn token(&self, kind: Kind, index: usize) -> Token {
        Token { kind, index, number: 0.0, boolean: false, error: "" }
    }

    fn error(&self, what: &'static str) -> Token {
        Token { kind: Kind::Error, index: self.pos, number: 0.0, boolean: false, error: what }
    }

    /// lua-cjson's test for numbers strtod takes but JSON does not: a
    /// leading `+`, hex, leading zeros, `inf` and `nan`.
    fn invalid_number(&self) -> bool {
        let mut p = self.pos;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return (c2 | 0x20) == b'x' || c2.is_ascii_digit();
        }
        // C compares a signed char here: bytes from 0x80 count as below '9'.
        if (c as i8) <= b'9' as i8 {
            return false;
        }
        let word = [self.at(p), self.at(p + 1), self.at(p + 2)];
        word.eq_ignore_ascii_case(b"inf") || word.eq_ignore_ascii_case(b"nan")
    }

    fn number(&mut self) -> Token {
        let start = self.pos;
        let mut end: *mut c_char = std::ptr::null_mut();
        // SAFETY: the input is a Lua string, NUL-terminated past its end,
        // and `pos` is at most its length.
        let (value, used) = unsafe {
            let p = self.base.add(start);
            let v = strtod(p, &mut end);
            (v, if end.is_null() { 0 } else { (end as usize).saturating_sub(p as usize) })
        };
        if used == 0 {
            return self.error("invalid number");
        }
        self.pos = start.saturating_add(used);
        Token { kind: Kind::Number, index: start, number: value, boolean: false, error: "" }
    }

    /// Four hex digits at `i` (None when any is not one).
    fn hex4(&self, i: usize) -> Option<u32> {
        let mut v = 0;
        for k in 0..4 {
            let c = self.at(i + k);
            let d = match c {
                b'0'..=b'9' => c - b'0',
                _ => match c | 0x20 {
                    x @ b'a'..=b'f' => x - b'a' + 10,
                    _ => return None,
                },
            };
            v = (v << 4) | d as u32;
        }
        Some(v)
    }

    /// A `\uXXXX` escape (or a surrogate pair of them) at `pos`, appended
    /// as UTF-8; false when invalid.
    unsafe fn unicode_escape(&mut self, l: State, tmp: &mut Scratch<u8>) -> bool {
        let Some(mut cp) = self.hex4(self.pos + 2) else { return false };
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 || self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.pos + 8) else { return false };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        let mut utf8 = [0u8; 4];
        let n = match cp {
            0..=0x7F => {
                utf8[0] = cp as u8;
                1
            }
            0x80..=0x7FF => {
                utf8[0] = (cp >> 6) as u8 | 0xC0;
                utf8[1] = (cp & 0x3F) as u8 | 0x80;
                2
            }
            0x800..=0xFFFF => {
                utf8[0] = (cp >> 12) as u8 | 0xE0;
                utf8[1] = ((cp >> 6) & 0x3F) as u8 | 0x80;
                utf8[2] = (cp & 0x3F) as u8 | 0x80;
                3
            }
            _ => {
                utf8[0] = (cp >> 18) as u8 | 0xF0;
                utf8[1] = ((cp >> 12) & 0x3F) as u8 | 0x80;
                utf8[2] = ((cp >> 6) & 0x3F) as u8 | 0x80;
                utf8[3] = (cp & 0x3F) as u8 | 0x80;
                4
            }
        };
        unsafe { tmp.extend(l, utf8.get(..n).unwrap_or(&[])) };
        self.pos += len;
        true
    }

    /// A string token at `pos` (its opening quote), unescaped into `tmp`.
    unsafe fn string(&mut self, l: State, tmp: &mut Scratch<u8>) -> Token {
        let start = self.pos;
        self.pos += 1;
        tmp.clear();
        loop {
            let ch = self.at(self.pos);
            match ch {
                b'"' => break,
                0 => return self.error("unexpected end of string"),
                b'\\' => {
                    let c = match self.at(self.pos + 1) {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b't' => 0x09,
                        b'n' => 0x0a,
                        b'f' => 0x0c,
                        b'r' => 0x0d,
                        b'u' => {
                            if unsafe { self.unicode_escape(l, tmp) } {
                                continue;
                            }
                            return self.error("invalid unicode escape code");
                        }
                        _ => return self.error("invalid escape code"),
                    };
                    unsafe { tmp.push(l, c) };
                    self.pos += 2;
                }
                _ => {
                    // A run of plain bytes at once.
                    let rest = self.data.get(self.pos..).unwrap_or(&[]);
                    let n = rest.iter().position(|&b| b == b'"' || b == b'\\' || b == 0).unwrap_or(rest.len()).max(1);
                    unsafe { tmp.extend(l, rest.get(..n).unwrap_or(&[])) };
                    self.pos += n;
                }
            }
        }
        self.pos += 1;
        self.token(Kind::Str, start)
    }

    unsafe fn next_token(&mut self, l: State, tmp: &mut Scratch<u8>) -> Token {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let index = self.pos;
        let single = |p: &mut Self, kind| {
            p.pos += 1;
            p.token(kind, index)
        };
        match self.at(self.pos) {
            b'{' => single(self, Kind::ObjBegin),
            b'}' => single(self, Kind::ObjEnd),
            b'[' => single(self, Kind::ArrBegin),
            b']' => single(self, Kind::ArrEnd),
            b',' => single(self, Kind::Comma),
            b':' => single(self, Kind::Colon),
            0 => self.token(Kind::End, index),
            b'"' => unsafe { self.string(l, tmp) },
            b'-' | b'0'..=b'9' => {
                if self.cfg.decode_invalid_numbers == 0 && self.invalid_number() {
                    return self.error("invalid number");
                }
                self.number()
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' => {
                for (word, kind, value) in
                    [(&b"true"[..], Kind::Boolean, true), (b"false", Kind::Boolean, false), (b"null", Kind::Null, false)]
                {
                    if self.starts_with(word) {
                        self.pos += word.len();
                        return Token { boolean: value, ..self.token(kind, index) };
                    }
                }
                if self.cfg.decode_invalid_numbers != 0 && self.invalid_number() {
                    return self.number();
                }
                self.error("invalid token")
            }
            _ => self.error("invalid token"),
        }
    }

    /// Enters an array or object that needs `slots` Lua stack slots.
    unsafe fn descend(&mut self, l: State, slots: c_int) {
        self.depth = self.depth.saturating_add(1);
        if self.depth <= self.cfg.decode_max_depth && unsafe { ffi::lua_checkstack(l, slots) } != 0 {
            return;
        }
        let m = msg!("Found too many nested data structures ({}) at character {}", self.depth, self.pos);
        unsafe { raise(l, m.bytes()) }
    }
}

unsafe fn parse_error(l: State, expected: &str, t: Token) -> ! {
    let found = if t.kind == Kind::Error { t.error } else { t.kind.name() };
    let m = msg!("Expected {expected} but found {found} at character {}", t.index as u64 + 1);
    unsafe { raise(l, m.bytes()) }
}

/// In an object, after `{` or `,`: the key (pushed), the colon, and the
/// token that starts the value.
unsafe fn object_key(l: State, p: &mut Parser, tmp: &mut Scratch<u8>, t: Token) -> Token {
    unsafe {
        if t.kind != Kind::Str {
            parse_error(l, "object key string", t);
        }
        tmp.push_string(l);
        let t = p.next_token(l, tmp);
        if t.kind != Kind::Colon {
            parse_error(l, "colon", t);
        }
        p.next_token(l, tmp)
    }
}

unsafe extern "C-unwind" fn decode(l: State) -> c_int {
    unsafe {
        if ffi::lua_gettop(l) != 1 {
            arg_error(l, 1, b"expected 1 argument");
        }
        let cfg = *config(l);
        let mut len = 0usize;
        let base = ffi::luaL_checklstring(l, 1, &mut len);
        let data: &[u8] = if base.is_null() || len == 0 { &[] } else { std::slice::from_raw_parts(base as *const u8, len) };
        if len >= 2 && (data.first() == Some(&0) || data.get(1) == Some(&0)) {
            raise(l, b"JSON parser does not support UTF-16 or UTF-32");
        }
        let mut p = Parser { base, data, pos: 0, depth: 0, cfg };
        let mut tmp = Scratch::<u8>::open(l, 2);
        // Open containers: 0 an object, otherwise the next array index.
        let mut open = Scratch::<c_int>::open(l, 3);
        let mut t = p.next_token(l, &mut tmp);
        'value: loop {
            match t.kind {
                Kind::Str => tmp.push_string(l),
                Kind::Number => ffi::lua_pushnumber(l, t.number),
                Kind::Boolean => ffi::lua_pushboolean(l, t.boolean as c_int),
                Kind::Null => ffi::lua_pushlightuserdata(l, std::ptr::null_mut()),
                Kind::ObjBegin => {
                    // Table, key, value.
                    p.descend(l, 3);
                    ffi::lua_createtable(l, 0, 0);
                    t = p.next_token(l, &mut tmp);
                    if t.kind == Kind::ObjEnd {
                        p.depth -= 1;
                    } else {
                        open.push(l, 0);
                        t = object_key(l, &mut p, &mut tmp, t);
                        continue 'value;
                    }
                }
                Kind::ArrBegin => {
                    // Table, value.
                    p.descend(l, 2);
                    ffi::lua_createtable(l, 0, 0);
                    t = p.next_token(l, &mut tmp);
                    if t.kind == Kind::ArrEnd {
                        p.depth -= 1;
                    } else {
                        open.push(l, 1);
                        continue 'value;
                    }
                }
                _ => parse_error(l, "value", t),
            }
            // A value is on top: into its container, then what follows it.
            loop {
                let Some(&mut at) = open.last_mut() else { break 'value };
                if at == 0 {
                    ffi::lua_rawset(l, -3);
                    t = p.next_token(l, &mut tmp);
                    if t.kind == Kind::ObjEnd {
                        open.pop();
                        p.depth -= 1;
                        continue;
                    }
                    if t.kind != Kind::Comma {
                        parse_error(l, "comma or object end", t);
                    }
                    t = p.next_token(l, &mut tmp);
                    t = object_key(l, &mut p, &mut tmp, t);
                    continue 'value;
                }
                ffi::lua_rawseti_(l, -2, at);
                if let Some(i) = open.last_mut() {
                    *i = at.wrapping_add(1);
                }
                t = p.next_token(l, &mut tmp);
                if t.kind == Kind::ArrEnd {
                    open.pop();
                    p.depth -= 1;
                    continue;
                }
                if t.kind != Kind::Comma {
                    parse_error(l, "comma or array end", t);
                }
                t = p.next_token(l, &mut tmp);
                continue 'value;
            }
        }
        let t = p.next_token(l, &mut tmp);
        if t.kind != Kind::End {
            parse_error(l, "the end", t);
        }
        tmp.release(l);
        open.release(l);
    }
    1
}
