//! `cmsgpack`: lua-cmsgpack 0.4.0 as Redis 7.0 ships it.
//!
//! `pack` writes each argument into a [`Scratch`] buffer (upvalue 1) and
//! concatenates the pieces; tables nest at most 16 deep (deeper ones are
//! written as nil, as there), so it may recurse. The `unpack` functions
//! decode with an explicit stack of open arrays and maps (upvalue 1),
//! keeping on the Lua stack what lua-cmsgpack keeps there: the depth
//! where `luaL_checkstack` gives up is Redis's.

use std::ffi::CStr;
use std::os::raw::c_int;

use mlua::{Lua, Table, ffi};

use super::{Scratch, State, add_functions, arg_error, c_i64_of, c_int_of, check_stack, msg, push_bytes, raise, set_string, string_at};

/// Tables nested deeper than this are written as nil.
const MAX_NESTING: c_int = 16;

/// The `cmsgpack` table Redis puts in the globals.
pub fn install(lua: &Lua) -> mlua::Result<Table> {
    super::open(lua, open_module)
}

unsafe extern "C-unwind" fn open_module(l: State) -> c_int {
    let funcs: [(&CStr, ffi::lua_CFunction, c_int); 4] =
        [(c"pack", pack, 1), (c"unpack", unpack, 1), (c"unpack_one", unpack_one, 1), (c"unpack_limit", unpack_limit, 1)];
    unsafe {
        ffi::lua_createtable(l, 0, 0);
        let t = ffi::lua_gettop(l);
        add_functions(l, t, &funcs, None);
        set_string(l, t, c"_NAME", c"cmsgpack");
        set_string(l, t, c"_VERSION", c"lua-cmsgpack 0.4.0");
        set_string(l, t, c"_COPYRIGHT", c"Copyright (C) 2012, Salvatore Sanfilippo");
        set_string(l, t, c"_DESCRIPTION", c"MessagePack C implementation for Lua");
    }
    1
}

// ===== Packing =====

unsafe extern "C-unwind" fn pack(l: State) -> c_int {
    unsafe {
        let nargs = ffi::lua_gettop(l);
        if nargs == 0 {
            arg_error(l, 0, b"MessagePack pack needs input.");
        }
        if ffi::lua_checkstack(l, nargs) == 0 {
            arg_error(l, 0, b"Too many arguments for MessagePack pack.");
        }
        let mut out = Scratch::<u8>::open(l, 1);
        for i in 1..=nargs {
            check_stack(l, 1, c"in function mp_check");
            ffi::lua_pushvalue(l, i);
            encode_value(l, &mut out, 0);
            out.push_string(l);
            out.clear();
        }
        out.release(l);
        ffi::lua_concat(l, nargs);
    }
    1
}

/// Writes the value on top of the Lua stack and pops it.
unsafe fn encode_value(l: State, out: &mut Scratch<u8>, level: c_int) {
    unsafe {
        let mut t = ffi::lua_type(l, -1);
        if t == ffi::LUA_TTABLE && level == MAX_NESTING {
            t = ffi::LUA_TNIL;
        }
        match t {
            ffi::LUA_TSTRING => {
                let s = string_at(l, -1);
                let n = s.len();
                match n {
                    0..32 => out.push(l, 0xa0 | n as u8),
                    32..=0xff => out.extend(l, &[0xd9, n as u8]),
                    0x100..=0xffff => out.extend(l, &[0xda, (n >> 8) as u8, n as u8]),
                    _ => {
                        out.push(l, 0xdb);
                        out.extend(l, &(n as u32).to_be_bytes());
                    }
                }
                out.extend(l, s);
            }
            ffi::LUA_TBOOLEAN => out.push(l, if ffi::lua_toboolean(l, -1) != 0 { 0xc3 } else { 0xc2 }),
            ffi::LUA_TNUMBER => encode_number(l, out, ffi::lua_tonumber(l, -1)),
            ffi::LUA_TTABLE => encode_table(l, out, level),
            _ => out.push(l, 0xc0),
        }
        ffi::lua_pop(l, 1);
    }
}

/// An integer when the number is one that fits 64 bits (by C's cast), a
/// float when float32 holds it exactly, else a double.
unsafe fn encode_number(l: State, out: &mut Scratch<u8>, n: f64) {
    unsafe {
        let i = c_i64_of(n);
        if !n.is_infinite() && i as f64 == n {
            encode_int(l, out, i);
        } else if (n as f32) as f64 == n {
            out.push(l, 0xca);
            out.extend(l, &(n as f32).to_bits().to_be_bytes());
        } else {
            out.push(l, 0xcb);
            out.extend(l, &n.to_bits().to_be_bytes());
        }
    }
}

unsafe fn encode_int(l: State, out: &mut Scratch<u8>, n: i64) {
    unsafe {
        match n {
            0..=127 => out.push(l, n as u8),
            128..=0xff => out.extend(l, &[0xcc, n as u8]),
            0x100..=0xffff => {
                out.push(l, 0xcd);
                out.extend(l, &(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(l, 0xce);
                out.extend(l, &(n as u32).to_be_bytes());
            }
            0x1_0000_0000.. => {
                out.push(l, 0xcf);
                out.extend(l, &n.to_be_bytes());
            }
            -32..=-1 => out.push(l, n as i8 as u8),
            -128..=-33 => out.extend(l, &[0xd0, n as i8 as u8]),
            -32768..=-129 => {
                out.push(l, 0xd1);
                out.extend(l, &(n as i16).to_be_bytes());
            }
            -2_147_483_648..=-32769 => {
                out.push(l, 0xd2);
                out.extend(l, &(n as i32).to_be_bytes());
            }
            _ => {
                out.push(l, 0xd3);
                out.extend(l, &n.to_be_bytes());
            }
        }
    }
}

/// A table with the keys 1..n and no others is an array (keys are tested
/// with C's `(int)` cast, as there); anything else a map.
unsafe fn is_array(l: State) -> bool {
    let mut count: c_int = 0;
    let mut max: c_int = 0;
    unsafe {
        let top = ffi::lua_gettop(l);
        check_stack(l, 2, c"in function table_is_an_array");
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            ffi::lua_pop(l, 1);
            let n = ffi::lua_tonumber(l, -1);
            if ffi::lua_type(l, -1) != ffi::LUA_TNUMBER || n <= 0.0 || n.is_infinite() || c_int_of(n) as f64 != n {
                ffi::lua_settop(l, top);
                return false;
            }
            if n > max as f64 {
                max = c_int_of(n);
            }
            count = count.wrapping_add(1);
        }
        ffi::lua_settop(l, top);
    }
    max == count
}

/// A container header: `fix` (with the count in its low nibble), then the
/// 16- and 32-bit forms.
unsafe fn encode_header(l: State, out: &mut Scratch<u8>, n: usize, fix: u8, wide: u8) {
    unsafe {
        match n {
            0..=15 => out.push(l, fix | n as u8),
            16..=0xffff => {
                out.push(l, wide);
                out.extend(l, &(n as u16).to_be_bytes());
            }
            _ => {
                out.push(l, wide + 1);
                out.extend(l, &(n as u32).to_be_bytes());
            }
        }
    }
}

unsafe fn encode_table(l: State, out: &mut Scratch<u8>, level: c_int) {
    unsafe {
        if is_array(l) {
            let len = ffi::lua_objlen(l, -1);
            encode_header(l, out, len, 0x90, 0xdc);
            check_stack(l, 1, c"in function mp_encode_lua_table_as_array");
            for j in 1..=len {
                ffi::lua_pushnumber(l, j as f64);
                ffi::lua_rawget_(l, -2);
                encode_value(l, out, level + 1);
            }
        } else {
            check_stack(l, 3, c"in function mp_encode_lua_table_as_map");
            let mut len = 0usize;
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, -2) != 0 {
                ffi::lua_pop(l, 1);
                len += 1;
            }
            encode_header(l, out, len, 0x80, 0xde);
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, -2) != 0 {
                // Key, value, and a copy of the key to write (and pop).
                ffi::lua_pushvalue(l, -2);
                encode_value(l, out, level + 1);
                encode_value(l, out, level + 1);
            }
        }
    }
}

// ===== Unpacking =====

/// An array or map being filled.
#[derive(Clone, Copy)]
enum Open {
    /// Items still to read after the current one, and the next index.
    Array { left: u64, next: u64 },
    /// Pairs still to read, counting the current one; whether its key is
    /// read (and on the Lua stack).
    Map { left: u64, has_key: bool },
}

unsafe extern "C-unwind" fn unpack(l: State) -> c_int {
    unsafe { unpack_full(l, 0, 0) }
}

unsafe extern "C-unwind" fn unpack_one(l: State) -> c_int {
    unsafe {
        let offset = ffi::luaL_optinteger(l, 2, 0);
        // Only the string stays (the offset would be returned otherwise).
        ffi::lua_settop(l, -(ffi::lua_gettop(l) - 1) - 1);
        unpack_full(l, 1, offset)
    }
}

unsafe extern "C-unwind" fn unpack_limit(l: State) -> c_int {
    unsafe {
        let limit = ffi::luaL_checkinteger(l, 2);
        let offset = ffi::luaL_optinteger(l, 3, 0);
        ffi::lua_settop(l, -(ffi::lua_gettop(l) - 1) - 1);
        unpack_full(l, limit, offset)
    }
}

/// Decodes up to `limit` values from byte `offset` (everything when both
/// are 0); unless both are 0, the offset after them (-1 at the end) comes
/// first.
unsafe fn unpack_full(l: State, limit: i64, offset: i64) -> c_int {
    unsafe {
        let data = super::check_string(l, 1);
        let len = data.len();
        let decode_all = limit == 0 && offset == 0;
        if offset < 0 || limit < 0 {
            let m = msg!("Invalid request to unpack with offset of {} and limit of {}.", offset as i32, len as i32);
            raise(l, m.bytes());
        } else if offset as u64 > len as u64 {
            let m = msg!("Start offset {} greater than input length {}.", offset as i32, len as i32);
            raise(l, m.bytes());
        }
        let limit = if decode_all { c_int::MAX as i64 } else { limit };
        let mut pos = offset as usize;
        let mut count: c_int = 0;
        let mut open = Scratch::<Open>::open(l, 1);
        while pos < len && (count as i64) < limit {
            decode_one(l, data, &mut pos, &mut open);
            count += 1;
        }
        open.release(l);
        if !decode_all {
            check_stack(l, 1, c"in function mp_unpack_full");
            ffi::lua_pushinteger(l, if pos >= len { -1 } else { pos as ffi::lua_Integer });
            ffi::lua_insert(l, 2);
            count += 1;
        }
        count
    }
}

/// The `n` bytes at `pos`, or the missing-bytes error.
unsafe fn need(l: State, data: &[u8], pos: usize, n: usize) -> &[u8] {
    match pos.checked_add(n).and_then(|end| data.get(pos..end)) {
        Some(b) => b,
        None => unsafe { raise(l, b"Missing bytes in input.") },
    }
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |v, &b| (v << 8) | b as u64)
}

/// Decodes one value at `pos` onto the Lua stack.
unsafe fn decode_one(l: State, data: &[u8], pos: &mut usize, open: &mut Scratch<Open>) {
    unsafe {
        'value: loop {
            let tag = need(l, data, *pos, 1)[0];
            check_stack(l, 1, c"too many return values at once; use unpack_one or unpack_limit instead.");
            // A container's header: (is a map, item count, header size).
            let mut container = None;
            match tag {
                0xcc => ffi::lua_pushinteger(l, need(l, data, *pos, 2)[1] as ffi::lua_Integer),
                0xd0 => ffi::lua_pushinteger(l, need(l, data, *pos, 2)[1] as i8 as ffi::lua_Integer),
                0xcd => ffi::lua_pushinteger(l, be(&need(l, data, *pos, 3)[1..]) as ffi::lua_Integer),
                0xd1 => ffi::lua_pushinteger(l, be(&need(l, data, *pos, 3)[1..]) as u16 as i16 as ffi::lua_Integer),
                0xce => ffi::lua_pushinteger(l, be(&need(l, data, *pos, 5)[1..]) as ffi::lua_Integer),
                0xd2 => ffi::lua_pushinteger(l, be(&need(l, data, *pos, 5)[1..]) as u32 as i32 as ffi::lua_Integer),
                0xcf => ffi::lua_pushinteger(l, be(&need(l, data, *pos, 9)[1..]) as ffi::lua_Integer),
                0xd3 => ffi::lua_pushnumber(l, be(&need(l, data, *pos, 9)[1..]) as i64 as f64),
                0xc0 => ffi::lua_pushnil(l),
                0xc2 | 0xc3 => ffi::lua_pushboolean(l, (tag == 0xc3) as c_int),
                0xca => ffi::lua_pushnumber(l, f32::from_bits(be(&need(l, data, *pos, 5)[1..]) as u32) as f64),
                0xcb => ffi::lua_pushnumber(l, f64::from_bits(be(&need(l, data, *pos, 9)[1..]))),
                0xd9..=0xdb => {
                    let head = 1 + (1 << (tag - 0xd9));
                    let n = be(&need(l, data, *pos, head)[1..]) as usize;
                    push_bytes(l, &need(l, data, *pos, head.saturating_add(n))[head..]);
                }
                0xa0..=0xbf => {
                    let n = (tag & 0x1f) as usize;
                    push_bytes(l, &need(l, data, *pos, 1 + n)[1..]);
                }
                0xdc | 0xdd => {
                    let head = if tag == 0xdc { 3 } else { 5 };
                    container = Some((false, be(&need(l, data, *pos, head)[1..]), head));
                }
                0xde | 0xdf => {
                    let head = if tag == 0xde { 3 } else { 5 };
                    container = Some((true, be(&need(l, data, *pos, head)[1..]), head));
                }
                0x00..=0x7f => ffi::lua_pushinteger(l, tag as ffi::lua_Integer),
                0xe0..=0xff => ffi::lua_pushinteger(l, tag as i8 as ffi::lua_Integer),
                0x90..=0x9f => container = Some((false, (tag & 0xf) as u64, 1)),
                0x80..=0x8f => container = Some((true, (tag & 0xf) as u64, 1)),
                _ => raise(l, b"Bad data format in input."),
            }
            *pos += value_size(data, *pos, tag);
            if let Some((map, n, head)) = container {
                *pos += head;
                if map {
                    if n > 0 {
                        open.push(l, Open::Map { left: n, has_key: false });
                    }
                    ffi::lua_createtable(l, 0, 0);
                } else {
                    if n > 0 {
                        open.push(l, Open::Array { left: n - 1, next: 2 });
                    }
                    ffi::lua_createtable(l, 0, 0);
                    check_stack(l, 1, c"in function mp_decode_to_lua_array");
                }
                if n > 0 {
                    if !map {
                        ffi::lua_pushnumber(l, 1.0);
                    }
                    continue 'value;
                }
            }
            // A value is on top: into its container, then the next item.
            loop {
                let Some(&mut at) = open.last_mut() else { return };
                match at {
                    Open::Array { left, next } => {
                        ffi::lua_settable(l, -3);
                        if left == 0 {
                            open.pop();
                            continue;
                        }
                        if let Some(o) = open.last_mut() {
                            *o = Open::Array { left: left - 1, next: next + 1 };
                        }
                        ffi::lua_pushnumber(l, next as f64);
                        continue 'value;
                    }
                    Open::Map { left, has_key: false } => {
                        if let Some(o) = open.last_mut() {
                            *o = Open::Map { left, has_key: true };
                        }
                        continue 'value;
                    }
                    Open::Map { left, has_key: true } => {
                        ffi::lua_settable(l, -3);
                        if left <= 1 {
                            open.pop();
                            continue;
                        }
                        if let Some(o) = open.last_mut() {
                            *o = Open::Map { left: left - 1, has_key: false };
                        }
                        continue 'value;
                    }
                }
            }
        }
    }
}

/// The size of the scalar at `pos` with this tag (already checked to be
/// there); 0 for container headers, which the caller skips.
fn value_size(data: &[u8], pos: usize, tag: u8) -> usize {
    match tag {
        0xcc | 0xd0 => 2,
        0xcd | 0xd1 => 3,
        0xce | 0xd2 | 0xca => 5,
        0xcf | 0xd3 | 0xcb => 9,
        0xd9..=0xdb => {
            let head = 1 + (1usize << (tag - 0xd9));
            head + data.get(pos + 1..pos + head).map_or(0, |b| be(b) as usize)
        }
        0xa0..=0xbf => 1 + (tag & 0x1f) as usize,
        0xdc..=0xdf | 0x80..=0x9f => 0,
        _ => 1,
    }
}
