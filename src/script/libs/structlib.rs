//! `struct`: Roberto Ierusalimschy's struct library (0.2) as Redis 7.0
//! ships it, for x86-64 (little-endian native order, 8-byte `long` and
//! `size_t`, alignment up to 8).
//!
//! `pack` builds its result with Lua's own `luaL_Buffer` after the nil
//! marker struct pushes, as the original does: what a missing argument is
//! reported as (`got nil`, the marker) depends on that stack.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_char, c_int};

use mlua::{Lua, Table, ffi};

use super::{Msg, State, add_functions, arg_error, c_i64_of, c_u64_of, check_stack, check_string, msg, push_bytes, raise};

const BIG: u8 = 0;
const LITTLE: u8 = 1;

/// The largest alignment `!` takes by default (a double's, on x86-64).
const MAX_ALIGN: c_int = 8;

/// The largest integer size, in bytes.
const MAX_INT_SIZE: c_int = 32;

#[derive(Clone, Copy)]
struct Header {
    endian: u8,
    align: c_int,
}

const DEFAULT_HEADER: Header = Header { endian: LITTLE, align: 1 };

/// The `struct` table Redis puts in the globals.
pub fn install(lua: &Lua) -> mlua::Result<Table> {
    super::open(lua, open_module)
}

unsafe extern "C-unwind" fn open_module(l: State) -> c_int {
    let funcs: [(&CStr, ffi::lua_CFunction, c_int); 3] = [(c"pack", pack, 0), (c"unpack", unpack, 0), (c"size", size, 0)];
    unsafe {
        ffi::lua_createtable(l, 0, 0);
        let t = ffi::lua_gettop(l);
        add_functions(l, t, &funcs, None);
    }
    1
}

/// The format argument, read as C reads it (up to a NUL).
unsafe fn format<'a>(l: State) -> &'a [u8] {
    let f = unsafe { check_string(l, 1) };
    f.split(|&b| b == 0).next().unwrap_or(&[])
}

/// A decimal number at `i` in the format, or `default` when none.
unsafe fn get_num(l: State, fmt: &[u8], i: &mut usize, default: c_int) -> c_int {
    if !fmt.get(*i).is_some_and(u8::is_ascii_digit) {
        return default;
    }
    let mut a: c_int = 0;
    while let Some(&c) = fmt.get(*i)
        && c.is_ascii_digit()
    {
        let d = (c - b'0') as c_int;
        if a > c_int::MAX / 10 || a * 10 > c_int::MAX - d {
            unsafe { raise(l, b"integral size overflow") };
        }
        a = a * 10 + d;
        *i += 1;
    }
    a
}

/// The size of option `opt` (reading its number from the format).
unsafe fn opt_size(l: State, opt: u8, fmt: &[u8], i: &mut usize) -> usize {
    match opt {
        b'B' | b'b' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' | b'd' => 8,
        b'f' => 4,
        b'x' => 1,
        b'c' => unsafe { get_num(l, fmt, i, 1) }.max(0) as usize,
        b'i' | b'I' => {
            let size = unsafe { get_num(l, fmt, i, 4) };
            if size > MAX_INT_SIZE {
                let m = msg!("integral size {size} is larger than limit of {MAX_INT_SIZE}");
                unsafe { raise(l, m.bytes()) };
            }
            size.max(0) as usize
        }
        _ => 0,
    }
}

/// Padding to align an item of `size` at `len`.
fn to_align(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align.max(1) as usize);
    size.wrapping_sub(len & (size - 1)) & (size - 1)
}

/// Endianness, alignment and spaces; any other character is an error.
unsafe fn control(l: State, opt: u8, fmt: &[u8], i: &mut usize, h: &mut Header) {
    match opt {
        b' ' => {}
        b'>' => h.endian = BIG,
        b'<' => h.endian = LITTLE,
        b'!' => {
            let a = unsafe { get_num(l, fmt, i, MAX_ALIGN) };
            if !(a > 0 && a & (a - 1) == 0) {
                let m = msg!("alignment {a} is not a power of 2");
                unsafe { raise(l, m.bytes()) };
            }
            h.align = a;
        }
        _ => {
            let mut m = Msg::new();
            m.push_bytes(b"invalid format option '");
            m.push_bytes(&[opt]);
            m.push_bytes(b"'");
            unsafe { arg_error(l, 1, m.bytes()) }
        }
    }
}

unsafe fn add_bytes(b: *mut ffi::luaL_Buffer, s: &[u8]) {
    if !s.is_empty() {
        unsafe { ffi::luaL_addlstring(b, s.as_ptr() as *const c_char, s.len()) }
    }
}

unsafe extern "C-unwind" fn pack(l: State) -> c_int {
    unsafe {
        let fmt = format(l);
        let mut h = DEFAULT_HEADER;
        let mut arg: c_int = 2;
        let mut total: usize = 0;
        // The marker between the arguments and the buffer's pieces.
        ffi::lua_pushnil(l);
        let mut buffer = MaybeUninit::<ffi::luaL_Buffer>::uninit();
        let b = buffer.as_mut_ptr();
        ffi::luaL_buffinit(l, b);
        let mut i = 0;
        while let Some(&opt) = fmt.get(i) {
            i += 1;
            let mut size = opt_size(l, opt, fmt, &mut i);
            let pad = to_align(total, &h, opt, size);
            total = total.wrapping_add(pad);
            for _ in 0..pad {
                ffi::luaL_addchar(b, 0);
            }
            match opt {
                b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                    let n = ffi::luaL_checknumber(l, arg);
                    arg += 1;
                    let mut value = if n < 0.0 { c_i64_of(n) as u64 } else { c_u64_of(n) };
                    let mut bytes = [0u8; MAX_INT_SIZE as usize];
                    let field = bytes.get_mut(..size).unwrap_or(&mut []);
                    if h.endian == LITTLE {
                        for byte in field.iter_mut() {
                            *byte = value as u8;
                            value >>= 8;
                        }
                    } else {
                        for byte in field.iter_mut().rev() {
                            *byte = value as u8;
                            value >>= 8;
                        }
                    }
                    add_bytes(b, field);
                }
                b'x' => ffi::luaL_addchar(b, 0),
                b'f' => {
                    let f = ffi::luaL_checknumber(l, arg) as f32;
                    arg += 1;
                    add_bytes(b, &if h.endian == BIG { f.to_be_bytes() } else { f.to_le_bytes() });
                }
                b'd' => {
                    let d = ffi::luaL_checknumber(l, arg);
                    arg += 1;
                    add_bytes(b, &if h.endian == BIG { d.to_be_bytes() } else { d.to_le_bytes() });
                }
                b'c' | b's' => {
                    let s = check_string(l, arg);
                    arg += 1;
                    if size == 0 {
                        size = s.len();
                    }
                    // (The argument number is the next one's, as in struct.)
                    if s.len() < size {
                        arg_error(l, arg, b"string too short");
                    }
                    add_bytes(b, s.get(..size).unwrap_or(&[]));
                    if opt == b's' {
                        ffi::luaL_addchar(b, 0);
                        size += 1;
                    }
                }
                _ => control(l, opt, fmt, &mut i, &mut h),
            }
            total = total.wrapping_add(size);
        }
        ffi::luaL_pushresult(b);
    }
    1
}

/// An integer field's value as a Lua number; for sizes past 8 bytes only
/// the last 8 read count, and the sign mask is shifted as x86 shifts (by
/// the count modulo 64), as in struct.
fn get_integer(bytes: &[u8], endian: u8, signed: bool) -> f64 {
    let fold = |v: u64, &b: &u8| (v << 8) | b as u64;
    let v = if endian == BIG { bytes.iter().fold(0, fold) } else { bytes.iter().rev().fold(0, fold) };
    if !signed {
        return v as f64;
    }
    let shift = ((bytes.len() as i64 * 8 - 1) as u32) & 63;
    let mask = u64::MAX << shift;
    let v = if v & mask != 0 { v | mask } else { v };
    v as i64 as f64
}

unsafe extern "C-unwind" fn unpack(l: State) -> c_int {
    unsafe {
        let fmt = format(l);
        let data = check_string(l, 2);
        let ld = data.len();
        let mut pos = ffi::luaL_optinteger(l, 3, 1) as usize;
        if pos == 0 {
            arg_error(l, 3, b"offset must be 1 or greater");
        }
        pos -= 1;
        let mut n: c_int = 0;
        let mut h = DEFAULT_HEADER;
        let mut i = 0;
        let too_short = |l: State| -> ! { arg_error(l, 2, b"data string too short") };
        while let Some(&opt) = fmt.get(i) {
            i += 1;
            let mut size = opt_size(l, opt, fmt, &mut i);
            pos = pos.wrapping_add(to_align(pos, &h, opt, size));
            if !(size <= ld && pos <= ld - size) {
                too_short(l);
            }
            // Room for the item and the next position.
            check_stack(l, 2, c"too many results");
            let field = data.get(pos..pos + size).unwrap_or(&[]);
            match opt {
                b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                    ffi::lua_pushnumber(l, get_integer(field, h.endian, opt.is_ascii_lowercase()));
                    n += 1;
                }
                b'x' => {}
                b'f' => {
                    let mut raw = [0u8; 4];
                    raw.copy_from_slice(field.get(..4).unwrap_or(&[0; 4]));
                    let f = if h.endian == BIG { f32::from_be_bytes(raw) } else { f32::from_le_bytes(raw) };
                    ffi::lua_pushnumber(l, f as f64);
                    n += 1;
                }
                b'd' => {
                    let mut raw = [0u8; 8];
                    raw.copy_from_slice(field.get(..8).unwrap_or(&[0; 8]));
                    let d = if h.endian == BIG { f64::from_be_bytes(raw) } else { f64::from_le_bytes(raw) };
                    ffi::lua_pushnumber(l, d);
                    n += 1;
                }
                b'c' => {
                    if size == 0 {
                        // The length is the previous result.
                        if n == 0 || ffi::lua_isnumber(l, -1) == 0 {
                            raise(l, b"format 'c0' needs a previous size");
                        }
                        size = c_u64_of(ffi::lua_tonumber(l, -1)) as usize;
                        ffi::lua_settop(l, -2);
                        n -= 1;
                        if !(size <= ld && pos <= ld - size) {
                            too_short(l);
                        }
                    }
                    push_bytes(l, data.get(pos..pos + size).unwrap_or(&[]));
                    n += 1;
                }
                b's' => {
                    let rest = data.get(pos..).unwrap_or(&[]);
                    let Some(end) = rest.iter().position(|&b| b == 0) else { raise(l, b"unfinished string in data") };
                    size = end + 1;
                    push_bytes(l, rest.get(..end).unwrap_or(&[]));
                    n += 1;
                }
                _ => control(l, opt, fmt, &mut i, &mut h),
            }
            pos = pos.wrapping_add(size);
        }
        ffi::lua_pushinteger(l, pos.wrapping_add(1) as ffi::lua_Integer);
        n + 1
    }
}

unsafe extern "C-unwind" fn size(l: State) -> c_int {
    unsafe {
        let fmt = format(l);
        let mut h = DEFAULT_HEADER;
        let mut pos: usize = 0;
        let mut i = 0;
        while let Some(&opt) = fmt.get(i) {
            i += 1;
            let size = opt_size(l, opt, fmt, &mut i);
            pos = pos.wrapping_add(to_align(pos, &h, opt, size));
            if opt == b's' {
                arg_error(l, 1, b"option 's' has no fixed size");
            } else if opt == b'c' && size == 0 {
                arg_error(l, 1, b"option 'c0' has no fixed size");
            }
            if !opt.is_ascii_alphanumeric() {
                control(l, opt, fmt, &mut i, &mut h);
            }
            pos = pos.wrapping_add(size);
        }
        ffi::lua_pushinteger(l, pos as ffi::lua_Integer);
    }
    1
}
