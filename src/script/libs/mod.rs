//! The three libraries Redis 7.0 loads into its Lua state besides Lua's
//! own: `cjson`, `cmsgpack` and `struct`, written here as Lua C functions
//! that behave as Redis's (lua-cjson 2.1.0, lua-cmsgpack 0.4.0, struct 0.2)
//! do, down to their error texts and the Lua stack they use (so the same
//! nesting gives the same "stack overflow" or "excessive nesting" errors).
//!
//! They are raw C functions rather than mlua callbacks so a script sees
//! what Redis gives it: errors are plain strings raised as `luaL_error`
//! raises them (`user_script:1: ...` when a script called the function,
//! no prefix through `pcall`), and `bad argument #n to 'name'` names the
//! function as the caller spelled it.
//!
//! Raising a Lua error jumps (longjmp) over the Rust frames between the
//! Lua call and the raise. That is only sound over frames that own nothing
//! to drop, so these functions keep no heap values: messages are formatted
//! into arrays on the stack, and their working buffers are Lua userdata
//! kept in the C closure's upvalues ([`Scratch`]), which also puts them
//! under the Lua state's memory limit. Nothing here may panic either (a
//! panic cannot cross Lua's C frames): indexing is checked, arithmetic is
//! checked or wrapping.

pub mod cjson;
pub mod cmsgpack;
pub mod structlib;

use std::fmt::Write as _;
use std::os::raw::{c_char, c_int};

use mlua::ffi;

pub(crate) type State = *mut ffi::lua_State;

/// The largest buffer a library function builds (Redis's default
/// proto-max-bulk-len); the Lua state's memory limit usually stops a
/// script well before.
const MAX_BUFFER: usize = 512 << 20;

/// Scratch buffers larger than this are let go after each call rather
/// than kept in the closure for the next one.
const KEEP_BUFFER: usize = 64 << 10;

/// A message formatted on the stack (longer text is cut).
pub(crate) struct Msg {
    buf: [u8; 192],
    len: usize,
}

impl Msg {
    pub(crate) fn new() -> Msg {
        Msg { buf: [0; 192], len: 0 }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    pub(crate) fn push_bytes(&mut self, s: &[u8]) {
        // One byte stays free for the NUL `c_str` adds.
        let room = self.buf.len() - 1 - self.len;
        let n = s.len().min(room);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), s.get(..n)) {
            dst.copy_from_slice(src);
            self.len += n;
        }
    }

    /// The text as a C string (cut at an embedded NUL, as C would read it).
    pub(crate) fn c_str(&mut self) -> *const c_char {
        if let Some(b) = self.buf.get_mut(self.len) {
            *b = 0;
        }
        self.buf.as_ptr() as *const c_char
    }
}

impl std::fmt::Write for Msg {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push_bytes(s.as_bytes());
        Ok(())
    }
}

/// Builds a [`Msg`] with `format_args!` syntax.
macro_rules! msg {
    ($($arg:tt)*) => {{
        let mut m = $crate::script::libs::Msg::new();
        let _ = std::fmt::Write::write_fmt(&mut m, format_args!($($arg)*));
        m
    }};
}
pub(crate) use msg;

/// Makes room to raise an error: a failing check can leave the stack
/// full (Lua's own C libraries then write into its reserve, which an
/// assert-checked Lua refuses). What is on the stack is lost to the error
/// anyway, so it is dropped when there is no room.
unsafe fn room_to_raise(l: State) {
    unsafe {
        if ffi::lua_checkstack(l, 4) == 0 {
            ffi::lua_settop(l, 0);
        }
    }
}

/// Raises `msg` as `luaL_error` does: prefixed with the position of the
/// Lua code that called the running C function (nothing when C called it).
///
/// # Safety
/// `l` is the running C function's state; no frame between it and here
/// owns anything to drop. `msg` is not in a Lua string (the stack may be
/// cleared first).
pub(crate) unsafe fn raise(l: State, msg: &[u8]) -> ! {
    unsafe {
        room_to_raise(l);
        ffi::luaL_where(l, 1);
        push_bytes(l, msg);
        ffi::lua_concat(l, 2);
        ffi::lua_error(l)
    }
}

/// Raises `msg` as it is (as Lua's own runtime errors from C functions are).
///
/// # Safety
/// As [`raise`].
pub(crate) unsafe fn raise_plain(l: State, msg: &[u8]) -> ! {
    unsafe {
        room_to_raise(l);
        push_bytes(l, msg);
        ffi::lua_error(l)
    }
}

/// `luaL_argerror`: `bad argument #narg to 'name' (msg)`.
///
/// # Safety
/// As [`raise`].
pub(crate) unsafe fn arg_error(l: State, narg: c_int, msg: &[u8]) -> ! {
    let mut m = Msg::new();
    m.push_bytes(msg);
    unsafe {
        room_to_raise(l);
        ffi::luaL_argerror(l, narg, m.c_str());
        // luaL_argerror does not return.
        ffi::lua_error(l)
    }
}

/// Pushes bytes as a Lua string.
///
/// # Safety
/// `l` is a valid state with a free stack slot.
pub(crate) unsafe fn push_bytes(l: State, s: &[u8]) {
    let p = if s.is_empty() { c"".as_ptr() } else { s.as_ptr() as *const c_char };
    unsafe { ffi::lua_pushlstring_(l, p, s.len()) }
}

/// The bytes of the string at `idx` (which must be a string, or a number,
/// which Lua converts in place), valid while it stays on the stack.
///
/// # Safety
/// `l` is valid and `idx` holds a string or number.
pub(crate) unsafe fn string_at<'a>(l: State, idx: c_int) -> &'a [u8] {
    let mut len = 0usize;
    unsafe {
        let p = ffi::lua_tolstring(l, idx, &mut len);
        if p.is_null() || len == 0 { &[] } else { std::slice::from_raw_parts(p as *const u8, len) }
    }
}

/// `luaL_checklstring`: the argument's bytes, or the argument error.
///
/// # Safety
/// As [`raise`].
pub(crate) unsafe fn check_string<'a>(l: State, narg: c_int) -> &'a [u8] {
    let mut len = 0usize;
    unsafe {
        let p = ffi::luaL_checklstring(l, narg, &mut len);
        if p.is_null() || len == 0 { &[] } else { std::slice::from_raw_parts(p as *const u8, len) }
    }
}

/// `luaL_checkstack`, Lua 5.1's: `stack overflow (msg)` when `n` more
/// slots would pass the C stack limit. (mlua's own helper asks for 20
/// more slots than 5.1's does, and Lua's would write its error past a
/// full stack.)
///
/// # Safety
/// As [`raise`].
pub(crate) unsafe fn check_stack(l: State, n: c_int, msg: &std::ffi::CStr) {
    unsafe {
        if ffi::lua_checkstack(l, n) == 0 {
            let mut m = Msg::new();
            m.push_bytes(b"stack overflow (");
            m.push_bytes(msg.to_bytes());
            m.push_bytes(b")");
            raise(l, m.bytes());
        }
    }
}

/// Sets C closures into the table at absolute index `t`, each with `ups`
/// upvalues: the first the value at absolute index `first_up` when given,
/// the rest nil (room for [`Scratch`] buffers).
///
/// # Safety
/// `l` is valid; `t` (and `first_up`) are absolute indices.
pub(crate) unsafe fn add_functions(l: State, t: c_int, funcs: &[(&std::ffi::CStr, ffi::lua_CFunction, c_int)], first_up: Option<c_int>) {
    unsafe {
        for &(name, f, ups) in funcs {
            for i in 0..ups {
                match (i, first_up) {
                    (0, Some(idx)) => ffi::lua_pushvalue(l, idx),
                    _ => ffi::lua_pushnil(l),
                }
            }
            ffi::lua_pushcclosure(l, f, ups);
            ffi::lua_setfield(l, t, name.as_ptr());
        }
    }
}

/// Sets `t[name] = s` for the table at absolute index `t`.
///
/// # Safety
/// `l` is valid; `t` is an absolute index.
pub(crate) unsafe fn set_string(l: State, t: c_int, name: &std::ffi::CStr, s: &std::ffi::CStr) {
    unsafe {
        ffi::lua_pushstring_(l, s.as_ptr());
        ffi::lua_setfield(l, t, name.as_ptr());
    }
}

/// Runs a C function that pushes a library table, in protected mode, and
/// returns the table.
pub(crate) fn open(lua: &mlua::Lua, f: ffi::lua_CFunction) -> mlua::Result<mlua::Table> {
    // SAFETY: `f` follows Lua's C function protocol and returns one table.
    let open = unsafe { lua.create_c_function(f)? };
    open.call(())
}

/// A growable array kept in a full userdata in one of the running C
/// closure's upvalues, so its memory belongs to Lua (counted against the
/// state's limit, reclaimed by the collector after an error) and a raised
/// error can jump past it. Copy, with no destructor.
#[derive(Clone, Copy)]
pub(crate) struct Scratch<T: Copy> {
    ptr: *mut T,
    len: usize,
    cap: usize,
    upvalue: c_int,
}

impl<T: Copy> Scratch<T> {
    const FITS: () = assert!(std::mem::align_of::<T>() <= 8 && std::mem::size_of::<T>() > 0);

    /// Takes the buffer kept in upvalue `n` (none yet when it is nil),
    /// emptied.
    ///
    /// # Safety
    /// The running function is a C closure with at least `n` upvalues, and
    /// the buffer is used only while that call runs.
    pub(crate) unsafe fn open(l: State, n: c_int) -> Scratch<T> {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS;
        let upvalue = ffi::lua_upvalueindex(n);
        unsafe {
            let p = ffi::lua_touserdata(l, upvalue);
            let cap = if p.is_null() { 0 } else { ffi::lua_objlen(l, upvalue) / std::mem::size_of::<T>() };
            Scratch { ptr: p as *mut T, len: 0, cap, upvalue }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        if self.ptr.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: the first `len` items of the userdata are written.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub(crate) fn last_mut(&mut self) -> Option<&mut T> {
        if self.ptr.is_null() || self.len == 0 {
            return None;
        }
        // SAFETY: item `len - 1` is written and inside the userdata.
        unsafe { Some(&mut *self.ptr.add(self.len - 1)) }
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        let v = *self.last_mut()?;
        self.len -= 1;
        Some(v)
    }

    /// Room for `extra` more items: a larger userdata replaces the old one
    /// (errors as Lua's allocator does past the memory limit, or with "not
    /// enough memory" past [`MAX_BUFFER`]).
    ///
    /// # Safety
    /// As [`raise`].
    pub(crate) unsafe fn reserve(&mut self, l: State, extra: usize) {
        if self.cap - self.len >= extra {
            return;
        }
        let size = std::mem::size_of::<T>();
        let Some(need) = self.len.checked_add(extra) else { unsafe { raise_plain(l, b"not enough memory") } };
        if need > MAX_BUFFER / size {
            unsafe { raise_plain(l, b"not enough memory") }
        }
        // Doubling, up to the cap.
        let cap = need.max(self.cap.saturating_mul(2).min(MAX_BUFFER / size)).max(64 / size + 1);
        let bytes = cap * size;
        unsafe {
            // The new userdata takes a stack slot until it replaces the old.
            if ffi::lua_checkstack(l, 1) == 0 {
                raise_plain(l, b"stack overflow");
            }
            let p = ffi::lua_newuserdata(l, bytes) as *mut T;
            if !self.ptr.is_null() && self.len > 0 {
                std::ptr::copy_nonoverlapping(self.ptr, p, self.len);
            }
            ffi::lua_replace(l, self.upvalue);
            self.ptr = p;
            self.cap = cap;
        }
    }

    /// # Safety
    /// As [`raise`].
    pub(crate) unsafe fn push(&mut self, l: State, v: T) {
        unsafe {
            self.reserve(l, 1);
            self.ptr.add(self.len).write(v);
        }
        self.len += 1;
    }

    /// # Safety
    /// As [`raise`].
    pub(crate) unsafe fn extend(&mut self, l: State, items: &[T]) {
        if items.is_empty() {
            return;
        }
        unsafe {
            self.reserve(l, items.len());
            std::ptr::copy_nonoverlapping(items.as_ptr(), self.ptr.add(self.len), items.len());
        }
        self.len += items.len();
    }

    /// Drops a large buffer from the closure so it is not kept after the
    /// call.
    ///
    /// # Safety
    /// As [`Scratch::open`].
    pub(crate) unsafe fn release(&self, l: State) {
        if self.cap.saturating_mul(std::mem::size_of::<T>()) > KEEP_BUFFER {
            unsafe {
                if ffi::lua_checkstack(l, 1) == 0 {
                    return;
                }
                ffi::lua_pushnil(l);
                ffi::lua_replace(l, self.upvalue);
            }
        }
    }
}

impl Scratch<u8> {
    /// Pushes the bytes as a Lua string.
    ///
    /// # Safety
    /// As [`raise`].
    pub(crate) unsafe fn push_string(&self, l: State) {
        unsafe { push_bytes(l, self.as_slice()) }
    }
}

/// C's `(int)x` for a double as x86-64 does it: truncation, and INT_MIN
/// for NaN and values out of range.
pub(crate) fn c_int_of(x: f64) -> i32 {
    if x.is_nan() || x >= 2_147_483_648.0 || x <= -2_147_483_649.0 { i32::MIN } else { x as i32 }
}

/// C's `(int64_t)x` on x86-64: truncation, INT64_MIN for NaN and values
/// out of range.
pub(crate) fn c_i64_of(x: f64) -> i64 {
    if x.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&x) { i64::MIN } else { x as i64 }
}

/// C's `(uint64_t)x` as gcc does it on x86-64: values below 2^63 (and
/// NaN) convert as signed, larger ones have 2^63 taken off first and the
/// top bit flipped back.
pub(crate) fn c_u64_of(x: f64) -> u64 {
    if x >= 9_223_372_036_854_775_808.0 { (c_i64_of(x - 9_223_372_036_854_775_808.0) as u64) ^ (1 << 63) } else { c_i64_of(x) as u64 }
}

/// C's `%.<precision>g` (glibc's output) into `out`.
pub(crate) fn format_g(out: &mut Msg, n: f64, precision: usize) {
    if n.is_nan() {
        out.push_bytes(if n.is_sign_negative() { b"-nan" } else { b"nan" });
        return;
    }
    if n.is_infinite() {
        out.push_bytes(if n > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    if n == 0.0 {
        out.push_bytes(if n.is_sign_negative() { b"-0" } else { b"0" });
        return;
    }
    let p = precision.clamp(1, 17);
    // The exponent after rounding to `p` significant digits picks the style.
    let mut sci = Msg::new();
    let _ = write!(sci, "{:.*e}", p - 1, n);
    let text = sci.bytes();
    let Some(e) = text.iter().position(|&b| b == b'e') else { return };
    let (mantissa, exp_text) = (text.get(..e).unwrap_or(&[]), text.get(e + 1..).unwrap_or(&[]));
    let mut exp: i32 = 0;
    let mut negative = false;
    for &b in exp_text {
        match b {
            b'-' => negative = true,
            b'0'..=b'9' => exp = exp.saturating_mul(10).saturating_add((b - b'0') as i32),
            _ => {}
        }
    }
    if negative {
        exp = -exp;
    }
    if exp < -4 || exp >= p as i32 {
        out.push_bytes(trim_zeros(mantissa));
        let mut e = Msg::new();
        let _ = write!(e, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.unsigned_abs());
        out.push_bytes(e.bytes());
    } else {
        let mut fixed = Msg::new();
        let _ = write!(fixed, "{:.*}", (p as i32 - 1 - exp).max(0) as usize, n);
        out.push_bytes(trim_zeros(fixed.bytes()));
    }
}

/// Drops trailing zeros after a decimal point, and the point if bare.
fn trim_zeros(s: &[u8]) -> &[u8] {
    if !s.contains(&b'.') {
        return s;
    }
    let mut end = s.len();
    while end > 0 && s.get(end - 1) == Some(&b'0') {
        end -= 1;
    }
    if end > 0 && s.get(end - 1) == Some(&b'.') {
        end -= 1;
    }
    s.get(..end).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use mlua::{Lua, Value};
    use proptest::prelude::*;

    use super::*;

    fn g(n: f64, p: usize) -> String {
        let mut m = Msg::new();
        format_g(&mut m, n, p);
        String::from_utf8_lossy(m.bytes()).into_owned()
    }

    #[test]
    fn g_format_matches_c() {
        assert_eq!(g(1.0 / 3.0, 14), "0.33333333333333");
        assert_eq!(g(123456789012345.0, 14), "1.2345678901234e+14");
        assert_eq!(g(1e-7, 14), "1e-07");
        assert_eq!(g(-0.0, 14), "-0");
        assert_eq!(g(100.0, 14), "100");
        assert_eq!(g(1e15, 14), "1e+15");
        assert_eq!(g(0.0001, 14), "0.0001");
        assert_eq!(g(0.125, 2), "0.12");
        assert_eq!(g(0.375, 2), "0.38");
        assert_eq!(g(1e300, 14), "1e+300");
        assert_eq!(g(f64::INFINITY, 14), "inf");
        assert_eq!(g(5e-324, 14), "4.9406564584125e-324");
        assert_eq!(g(2f64.powi(53), 14), "9.007199254741e+15");
    }

    #[test]
    fn c_casts() {
        assert_eq!(c_int_of(1e10), i32::MIN);
        assert_eq!(c_int_of(-2147483648.5), -2147483648);
        assert_eq!(c_i64_of(2f64.powi(63)), i64::MIN);
        assert_eq!(c_i64_of(f64::NAN), i64::MIN);
        assert_eq!(c_u64_of(1e20), 0);
        assert_eq!(c_u64_of(f64::NAN), 1 << 63);
        assert_eq!(c_u64_of(2f64.powi(63)), 1 << 63);
        assert_eq!(c_u64_of(f64::INFINITY), 0);
    }

    /// A plain Lua state with the three libraries and a deep comparison.
    fn state() -> Lua {
        let lua = Lua::new();
        let g = lua.globals();
        g.set("cjson", cjson::install(&lua).unwrap()).unwrap();
        g.set("cmsgpack", cmsgpack::install(&lua).unwrap()).unwrap();
        g.set("struct", structlib::install(&lua).unwrap()).unwrap();
        lua.load(
            r#"
            function same(a, b)
              if type(a) ~= type(b) then return false end
              if type(a) == 'number' then return a == b or (a ~= a and b ~= b) end
              if type(a) ~= 'table' then return a == b end
              for k, v in pairs(a) do if not same(v, b[k]) then return false end end
              for k in pairs(b) do if a[k] == nil then return false end end
              return true
            end
            "#,
        )
        .exec()
        .unwrap();
        lua
    }

    /// A value to build in Lua: what msgpack carries.
    #[derive(Debug, Clone)]
    enum Val {
        Nil,
        Bool(bool),
        Num(f64),
        Str(Vec<u8>),
        Arr(Vec<Val>),
        Map(Vec<(Key, Val)>),
    }

    #[derive(Debug, Clone)]
    enum Key {
        Str(Vec<u8>),
        Num(f64),
    }

    fn number() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<i64>().prop_map(|n| n as f64),
            any::<i32>().prop_map(|n| n as f64),
            any::<u64>().prop_map(f64::from_bits),
            (-1000i32..1000).prop_map(|n| n as f64 / 8.0),
            Just(f64::INFINITY),
            Just(-0.0),
        ]
    }

    fn value(json: bool) -> impl Strategy<Value = Val> {
        let leaf = if json {
            prop_oneof![
                any::<bool>().prop_map(Val::Bool),
                (-10_000_000_000_000i64..10_000_000_000_000).prop_map(|n| Val::Num(n as f64)),
                (-4000i32..4000).prop_map(|n| Val::Num(n as f64 / 16.0)),
                proptest::collection::vec(any::<u8>(), 0..40).prop_map(Val::Str),
            ]
            .boxed()
        } else {
            prop_oneof![
                Just(Val::Nil),
                any::<bool>().prop_map(Val::Bool),
                number().prop_map(Val::Num),
                proptest::collection::vec(any::<u8>(), 0..300).prop_map(Val::Str),
            ]
            .boxed()
        };
        leaf.prop_recursive(4, 64, 20, move |inner| {
            let key = if json {
                proptest::collection::vec(any::<u8>(), 0..8).prop_map(Key::Str).boxed()
            } else {
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..8).prop_map(Key::Str),
                    number().prop_filter("a key", |n| !n.is_nan()).prop_map(Key::Num),
                ]
                .boxed()
            };
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..20).prop_map(Val::Arr),
                proptest::collection::vec((key, inner), 0..20).prop_map(Val::Map),
            ]
        })
    }

    fn build(lua: &Lua, v: &Val) -> Value {
        match v {
            Val::Nil => Value::Nil,
            Val::Bool(b) => Value::Boolean(*b),
            Val::Num(n) => Value::Number(*n),
            Val::Str(s) => Value::String(lua.create_string(s).unwrap()),
            Val::Arr(items) => {
                let t = lua.create_table().unwrap();
                for (i, x) in items.iter().enumerate() {
                    t.raw_set(i + 1, build(lua, x)).unwrap();
                }
                Value::Table(t)
            }
            Val::Map(pairs) => {
                let t = lua.create_table().unwrap();
                for (k, x) in pairs {
                    let k = match k {
                        Key::Str(s) => Value::String(lua.create_string(s).unwrap()),
                        Key::Num(n) => Value::Number(*n),
                    };
                    t.raw_set(k, build(lua, x)).unwrap();
                }
                Value::Table(t)
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn msgpack_round_trips(a in value(false), b in value(false)) {
            let lua = state();
            let check: mlua::Function = lua
                .load("return function(a, b) local x, y = cmsgpack.unpack(cmsgpack.pack(a, b)) return same(a, x) and same(b, y) end")
                .eval()
                .unwrap();
            let ok: bool = check.call((build(&lua, &a), build(&lua, &b))).unwrap();
            prop_assert!(ok);
        }

        #[test]
        fn json_round_trips(v in value(true)) {
            let lua = state();
            let check: mlua::Function =
                lua.load("return function(v) return same(v, cjson.decode(cjson.encode(v))) end").eval().unwrap();
            let ok: bool = check.call(build(&lua, &v)).unwrap();
            prop_assert!(ok);
        }

        #[test]
        fn decoders_take_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), fmt in "[ <>!0-9bBhHlLTiIfdxcs]{0,12}") {
            let lua = state();
            let run: mlua::Function = lua
                .load(
                    r#"return function(s, fmt)
                        local ok1, e1 = pcall(cjson.decode, s)
                        -- (Counted inside: Lua 5.1's own pcall pushes its status past
                        -- the results unchecked, which its API check refuses in debug
                        -- builds once a call returns more than its 20 spare slots.)
                        local ok2, e2 = pcall(function() return select('#', cmsgpack.unpack(s)) end)
                        local ok3, e3 = pcall(function() return select('#', cmsgpack.unpack_limit(s, 2, 1)) end)
                        local ok4, e4 = pcall(struct.unpack, fmt, s)
                        local ok5, e5 = pcall(struct.pack, fmt, s, 1, 2, 3)
                        for _, r in ipairs({{ok1, e1}, {ok2, e2}, {ok3, e3}, {ok4, e4}, {ok5, e5}}) do
                          if not r[1] and type(r[2]) ~= 'string' then return false end
                        end
                        return true
                      end"#,
                )
                .eval()
                .unwrap();
            let s = lua.create_string(&bytes).unwrap();
            let ok: bool = run.call((s, fmt)).unwrap();
            prop_assert!(ok);
        }

        #[test]
        fn json_like_input_never_breaks(s in r#"[\[\]{}",:0-9eE+\-.a-z\\ ]{0,60}"#) {
            let lua = state();
            let run: mlua::Function =
                lua.load("return function(s) local ok, e = pcall(cjson.decode, s) return ok or type(e) == 'string' end").eval().unwrap();
            let ok: bool = run.call(s).unwrap();
            prop_assert!(ok);
        }
    }

    /// Past the state's memory limit the libraries fail as Lua does, and
    /// the state stays usable.
    #[test]
    fn memory_limit_holds() {
        let lua = state();
        lua.set_memory_limit(4 << 20).unwrap();
        for code in [
            "return cjson.encode(string.rep('\\1', 2000000))",
            "local t = {} for i = 1, 100 do t[i] = string.rep('x', 100000) end return cmsgpack.pack(t)",
            "return cjson.decode('[' .. string.rep('\"abcdefgh\",', 200000) .. '1]')",
            "return struct.pack(string.rep('c100000', 100), string.rep('y', 100000))",
        ] {
            let r: mlua::Result<Value> = lua.load(code).eval();
            assert!(r.is_err(), "{code} should fail under the limit");
        }
        let s: String = lua.load("return cjson.encode({1, 'a'})").eval().unwrap();
        assert_eq!(s, "[1,\"a\"]");
    }

    /// Deep structures stop at Lua's C stack limit, with Redis's errors.
    #[test]
    fn deep_structures_stop() {
        let lua = state();
        let r: Vec<String> = lua
            .load(
                r#"
                cjson.encode_max_depth(1000000) cjson.decode_max_depth(1000000)
                local t = {} local c = t for i = 1, 20000 do c[1] = {} c = c[1] end
                local out = {}
                out[1] = select(2, pcall(cjson.encode, t))
                out[2] = select(2, pcall(cjson.decode, string.rep('[', 20000)))
                out[3] = select(2, pcall(cmsgpack.unpack, string.rep('\145', 20000)))
                out[4] = select(2, pcall(cmsgpack.unpack, string.rep('\1', 20000)))
                return out
                "#,
            )
            .eval()
            .unwrap();
        assert_eq!(
            r,
            [
                "Cannot serialise, excessive nesting (7998)",
                "Found too many nested data structures (7999) at character 7999",
                "stack overflow (in function mp_decode_to_lua_array)",
                "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
            ]
        );
    }
}
