//! `redis.call`, `redis.pcall`, `redis.acl_check_cmd`, `redis.setresp` and
//! `redis.log`: created once per state and bound to the run in progress
//! through a thread-local pointer, so a run creates no functions of its
//! own (five closures per run cost more than a short script's work).
//!
//! `redis.call` and `redis.pcall` are raw C functions, as in Redis: mlua's
//! safe API guards each string and table it makes with a protected call
//! of its own, which cost three times the command. Here the C API is
//! called directly, inside the script's own protected call: a Lua error
//! (out of memory) unwinds to it by `longjmp`, so while a C API call may
//! raise, no value with a destructor lives on these frames. The command's
//! outcome waits in the bound run until it has been pushed.

use std::cell::Cell;
use std::ffi::{CStr, c_int};
use std::ptr::NonNull;

use mlua::{Lua, MultiValue, Table, Value as LuaValue, ffi};

use super::convert::c_number_text;
use super::sandbox::{Raised, call_command, helper_error};
use super::{Host, Run, Watch, command_args};
use crate::protocol::{Frame, Out};

/// The run in progress, as the bound functions reach it.
struct Bound {
    host: NonNull<dyn Host>,
    watch: NonNull<Watch>,
    run: Run,
    /// `redis.setresp`: the protocol the script's commands reply in.
    resp3: bool,
    /// A command's outcome until it is on the Lua stack.
    parked: Option<Result<Frame, Raised>>,
    /// The run's KEYS and ARGV, until `run_script` has made them tables.
    keys: NonNull<[&'static [u8]]>,
    args: NonNull<[&'static [u8]]>,
    /// A function (FCALL) gets KEYS and ARGV as arguments, not globals.
    as_function: bool,
    /// The script's return value, encoded in the client's protocol.
    reply: Out,
}

thread_local! {
    /// The run bound on this thread (a state runs on one thread at a time,
    /// under its engine's lock).
    static CURRENT: Cell<*mut Bound> = const { Cell::new(std::ptr::null_mut()) };
}

/// Unbinds the run when dropped (also when the run fails).
pub(super) struct Binding {
    bound: NonNull<Bound>,
    previous: *mut Bound,
}

impl Binding {
    /// The script's reply, encoded when it returned.
    pub(super) fn take_reply(&mut self) -> bytes::BytesMut {
        // SAFETY: the binding owns the allocation; no bound function runs
        // while the caller holds it (the script has returned).
        std::mem::take(&mut unsafe { self.bound.as_mut() }.reply.buf)
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
        // SAFETY: made by `Box::into_raw` in `bind`; no longer reachable.
        drop(unsafe { Box::from_raw(self.bound.as_ptr()) });
    }
}

/// What a run is given: KEYS, ARGV, how it may act, the server to call
/// and what watches it.
pub(super) struct Given<'a> {
    pub keys: &'a [&'a [u8]],
    pub args: &'a [&'a [u8]],
    pub run: Run,
    pub host: &'a mut dyn Host,
    pub watch: &'a Watch,
    pub as_function: bool,
}

/// Binds a run's arguments, host and watch to the state's functions.
pub(super) fn bind(given: Given<'_>) -> Binding {
    let host: NonNull<dyn Host + '_> = NonNull::from(given.host);
    // SAFETY (these three): lifetimes are erased for the thread-local;
    // `Binding` unbinds before the borrows end (it lives within `invoke`).
    let host = unsafe { std::mem::transmute::<NonNull<dyn Host + '_>, NonNull<dyn Host + 'static>>(host) };
    let erase = |items: &[&[u8]]| unsafe { std::mem::transmute::<NonNull<[&[u8]]>, NonNull<[&'static [u8]]>>(NonNull::from(items)) };
    let (keys, args) = (erase(given.keys), erase(given.args));
    let bound = Box::new(Bound {
        host,
        watch: NonNull::from(given.watch),
        run: given.run,
        resp3: false,
        parked: None,
        keys,
        args,
        as_function: given.as_function,
        reply: Out { resp3: given.run.resp3, ..Out::default() },
    });
    let bound = NonNull::from(Box::leak(bound));
    let previous = CURRENT.with(|c| c.replace(bound.as_ptr()));
    Binding { bound, previous }
}

fn with_bound<R>(f: impl FnOnce(&mut Bound) -> R) -> mlua::Result<R> {
    let b = CURRENT.with(|c| c.get());
    if b.is_null() {
        return Err(helper_error("no script is running"));
    }
    // SAFETY: set by `bind` for the run in progress on this thread; bound
    // functions do not nest, so this is the only reference.
    Ok(f(unsafe { &mut *b }))
}

/// Runs a script (its function at 1, the error handler at 2) as Redis
/// does: KEYS and ARGV set as globals (a function gets them as its
/// arguments), then a protected call under the handler. Returns what `xpcall` would: whether it succeeded, and its
/// value or error. Called through one protected call of mlua's, so the
/// tables made here cost no guard each.
unsafe extern "C-unwind" fn run_script(l: *mut ffi::lua_State) -> c_int {
    let b = CURRENT.with(|c| c.get());
    if b.is_null() {
        return 0;
    }
    // SAFETY: see `with_bound`; the slices outlive the run.
    let (keys, args, as_function) = unsafe { ((*b).keys.as_ref(), (*b).args.as_ref(), (*b).as_function) };
    unsafe {
        ffi::lua_pushvalue(l, 1);
        push_strings(l, keys);
        push_strings(l, args);
        let nargs = if as_function {
            2
        } else {
            ffi::lua_setfield(l, ffi::LUA_GLOBALSINDEX, c"ARGV".as_ptr());
            ffi::lua_setfield(l, ffi::LUA_GLOBALSINDEX, c"KEYS".as_ptr());
            0
        };
        let status = ffi::lua_pcall(l, nargs, 1, 2);
        if status == 0 {
            // The reply is made here, from the stack, into the binding (a
            // Lua error while it is made leaves nothing to free here).
            let b = &mut *b;
            encode_reply(l, &mut b.reply, b.resp3, 0);
            ffi::lua_pushboolean(l, 1);
            return 1;
        }
        ffi::lua_pushboolean(l, 0);
        ffi::lua_insert(l, -2);
    }
    2
}

/// Where nesting stops: deeper tables are replied as null (Redis stops at
/// Lua's stack limit with an error; a tenant's script cannot recurse this
/// native code without bound either way).
const MAX_REPLY_DEPTH: usize = 1000;

/// Field `name` of the table at the top (raw), pushed.
unsafe fn field(l: *mut ffi::lua_State, name: &CStr) -> c_int {
    unsafe {
        ffi::lua_pushstring(l, name.as_ptr());
        ffi::lua_rawget(l, -2);
        ffi::lua_type(l, -1)
    }
}

/// The string at `idx` (which must be one).
unsafe fn string_at<'a>(l: *mut ffi::lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0;
    let p = unsafe { ffi::lua_tolstring(l, idx, &mut len) };
    unsafe { std::slice::from_raw_parts(p as *const u8, len) }
}

/// Encodes the value at the top of the stack (and pops it) as a script's
/// reply, by Redis's rules: numbers cast as C casts them, booleans by the
/// script's protocol (`script_resp3`), a table by its first tagged field,
/// else an array up to its first nil. Nothing here owns memory, so a Lua
/// error (out of memory) may unwind through it.
unsafe fn encode_reply(l: *mut ffi::lua_State, out: &mut Out, script_resp3: bool, depth: usize) {
    unsafe {
        if depth > MAX_REPLY_DEPTH || ffi::lua_checkstack(l, 4) == 0 {
            ffi::lua_pop(l, 1);
            out.null();
            return;
        }
        match ffi::lua_type(l, -1) {
            ffi::LUA_TBOOLEAN => {
                let b = ffi::lua_toboolean(l, -1) != 0;
                match (script_resp3, b) {
                    (true, _) if out.resp3 => out.buf.extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" }),
                    (true, _) => out.int(b as i64),
                    (false, true) => out.int(1),
                    (false, false) => out.null(),
                }
            }
            ffi::LUA_TNUMBER => out.int(super::convert::c_cast(ffi::lua_tonumber(l, -1))),
            ffi::LUA_TSTRING => out.bulk(string_at(l, -1)),
            ffi::LUA_TTABLE => encode_table(l, out, script_resp3, depth),
            _ => out.null(),
        }
        ffi::lua_pop(l, 1);
    }
}

/// A table reply (the table stays at the top).
unsafe fn encode_table(l: *mut ffi::lua_State, out: &mut Out, script_resp3: bool, depth: usize) {
    use super::convert::{c_number_text, one_line};
    unsafe {
        if field(l, c"err") == ffi::LUA_TSTRING {
            let e = String::from_utf8_lossy(string_at(l, -1));
            out.error_bytes(one_line(e.trim_end_matches(['\r', '\n'])).as_bytes());
            return ffi::lua_pop(l, 1);
        }
        ffi::lua_pop(l, 1);
        if field(l, c"ok") == ffi::LUA_TSTRING {
            out.simple(&one_line(&String::from_utf8_lossy(string_at(l, -1))));
            return ffi::lua_pop(l, 1);
        }
        ffi::lua_pop(l, 1);
        if field(l, c"double") == ffi::LUA_TNUMBER {
            let d = ffi::lua_tonumber(l, -1);
            if out.resp3 {
                out.buf.extend_from_slice(format!(",{}\r\n", c_number_text(d)).as_bytes());
            } else {
                out.bulk(c_number_text(d).as_bytes());
            }
            return ffi::lua_pop(l, 1);
        }
        ffi::lua_pop(l, 1);
        if field(l, c"big_number") == ffi::LUA_TSTRING {
            let n = one_line(&String::from_utf8_lossy(string_at(l, -1)));
            if out.resp3 {
                out.buf.extend_from_slice(format!("({n}\r\n").as_bytes());
            } else {
                out.bulk(n.as_bytes());
            }
            return ffi::lua_pop(l, 1);
        }
        ffi::lua_pop(l, 1);
        if field(l, c"verbatim_string") == ffi::LUA_TTABLE {
            let (f, t) = (field(l, c"format"), {
                ffi::lua_insert(l, -2);
                field(l, c"string")
            });
            // Stack: ..., table, format, verbatim, string.
            if f == ffi::LUA_TSTRING && t == ffi::LUA_TSTRING {
                let text = string_at(l, -1);
                if out.resp3 {
                    let mut format: String = String::from_utf8_lossy(string_at(l, -3)).chars().take(3).collect();
                    while format.len() < 3 {
                        format.push(' ');
                    }
                    out.buf.extend_from_slice(format!("={}\r\n{format}:", text.len() + 4).as_bytes());
                    out.buf.extend_from_slice(text);
                    out.buf.extend_from_slice(b"\r\n");
                } else {
                    out.bulk(text);
                }
                return ffi::lua_pop(l, 3);
            }
            ffi::lua_pop(l, 3);
        } else {
            ffi::lua_pop(l, 1);
        }
        if field(l, c"map") == ffi::LUA_TTABLE {
            let n = pair_count(l);
            if out.resp3 {
                out.map(n)
            } else {
                out.array(n * 2)
            }
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, -2) != 0 {
                ffi::lua_pushvalue(l, -2);
                encode_reply(l, out, script_resp3, depth + 1);
                encode_reply(l, out, script_resp3, depth + 1);
            }
            return ffi::lua_pop(l, 1);
        }
        ffi::lua_pop(l, 1);
        if field(l, c"set") == ffi::LUA_TTABLE {
            let n = pair_count(l);
            if out.resp3 {
                out.set(n)
            } else {
                out.array(n)
            }
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, -2) != 0 {
                ffi::lua_pop(l, 1);
                ffi::lua_pushvalue(l, -1);
                encode_reply(l, out, script_resp3, depth + 1);
            }
            return ffi::lua_pop(l, 1);
        }
        ffi::lua_pop(l, 1);
        let mut n = 0;
        loop {
            ffi::lua_rawgeti(l, -1, n + 1);
            let end = ffi::lua_type(l, -1) == ffi::LUA_TNIL;
            ffi::lua_pop(l, 1);
            if end {
                break;
            }
            n += 1;
        }
        out.array(n as usize);
        for i in 1..=n {
            ffi::lua_rawgeti(l, -1, i);
            encode_reply(l, out, script_resp3, depth + 1);
        }
    }
}

/// The number of pairs in the table at the top.
unsafe fn pair_count(l: *mut ffi::lua_State) -> usize {
    let mut n = 0;
    unsafe {
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            ffi::lua_pop(l, 1);
            n += 1;
        }
    }
    n
}

/// Pushes an array of strings (KEYS, ARGV).
unsafe fn push_strings(l: *mut ffi::lua_State, items: &[&[u8]]) {
    unsafe {
        ffi::lua_createtable(l, items.len().min(c_int::MAX as usize) as c_int, 0);
        for (i, x) in items.iter().enumerate() {
            push_bytes(l, x);
            ffi::lua_rawseti_(l, -2, c_int::try_from(i + 1).unwrap_or(c_int::MAX));
        }
    }
}

/// The function that runs scripts (see `run_script`).
pub(super) fn runner(lua: &Lua) -> mlua::Result<mlua::Function> {
    // SAFETY: `run_script` follows the C API's rules (see the module's
    // comment on errors).
    unsafe { lua.create_c_function(run_script) }
}

unsafe extern "C-unwind" fn redis_call(l: *mut ffi::lua_State) -> c_int {
    unsafe { call_raw(l, true) }
}

unsafe extern "C-unwind" fn redis_pcall(l: *mut ffi::lua_State) -> c_int {
    unsafe { call_raw(l, false) }
}

/// One `redis.call` (`raise`) or `redis.pcall`, called by Lua.
unsafe fn call_raw(l: *mut ffi::lua_State, raise: bool) -> c_int {
    let b = CURRENT.with(|c| c.get());
    if b.is_null() {
        unsafe { push_error_table(l, b"ERR no script is running", false) };
        return if raise { unsafe { ffi::lua_error(l) } } else { 1 };
    }
    // SAFETY: see `with_bound`.
    let b = unsafe { &mut *b };
    unsafe { run_command(l, b) };
    let resp3 = b.resp3;
    match &b.parked {
        Some(Ok(frame)) => {
            unsafe { push_frame(l, frame, resp3) };
            b.parked = None;
            1
        }
        Some(Err(raised)) => {
            unsafe { push_error_table(l, raised.err.as_bytes(), raised.from_command) };
            b.parked = None;
            if raise { unsafe { ffi::lua_error(l) } } else { 1 }
        }
        None => 0,
    }
}

/// Reads the call's arguments (which raises nothing) and parks the
/// command's outcome; everything it made is dropped when it returns.
unsafe fn run_command(l: *mut ffi::lua_State, b: &mut Bound) {
    let outcome = match unsafe { arguments(l) } {
        Ok(argv) => {
            // SAFETY: see `Bound`; nothing else uses them during the call.
            let (host, watch) = unsafe { (b.host.as_mut(), b.watch.as_ref()) };
            call_command(argv, b.resp3, b.run, host, watch)
        }
        Err(m) => Err(Raised::helper(format!("ERR {m}"))),
    };
    b.parked = Some(outcome);
}

/// The call's arguments as command arguments: strings as they are,
/// numbers as Redis sends them (`%.17g`).
unsafe fn arguments(l: *mut ffi::lua_State) -> Result<Vec<Vec<u8>>, &'static str> {
    let n = unsafe { ffi::lua_gettop(l) };
    let mut argv = Vec::with_capacity(n.max(0) as usize);
    for i in 1..=n {
        match unsafe { ffi::lua_type(l, i) } {
            ffi::LUA_TSTRING => {
                let mut len = 0;
                // A string's bytes, without conversion: nothing allocated.
                let p = unsafe { ffi::lua_tolstring(l, i, &mut len) };
                argv.push(unsafe { std::slice::from_raw_parts(p as *const u8, len) }.to_vec());
            }
            ffi::LUA_TNUMBER => argv.push(c_number_text(unsafe { ffi::lua_tonumber(l, i) }).into_bytes()),
            _ => return Err("Lua redis lib command arguments must be strings or integers"),
        }
    }
    if argv.is_empty() {
        return Err("Please specify at least one argument for this redis lib call");
    }
    Ok(argv)
}

unsafe fn push_bytes(l: *mut ffi::lua_State, b: &[u8]) {
    unsafe { ffi::lua_pushlstring_(l, b.as_ptr() as *const _, b.len()) }
}

/// Pushes `{err = ...}` (the table `redis.pcall` returns and `redis.call`
/// raises).
unsafe fn push_error_table(l: *mut ffi::lua_State, err: &[u8], from_command: bool) {
    unsafe {
        ffi::lua_createtable(l, 0, 2);
        push_bytes(l, err);
        ffi::lua_setfield(l, -2, c"err".as_ptr());
        if from_command {
            ffi::lua_pushboolean(l, 1);
            ffi::lua_setfield(l, -2, c"ignore_error_stats_update".as_ptr());
        }
    }
}

/// Pushes `{<key> = <the value on top>}` in place of the value.
unsafe fn wrap_top(l: *mut ffi::lua_State, key: &CStr) {
    unsafe {
        ffi::lua_createtable(l, 0, 1);
        ffi::lua_insert(l, -2);
        ffi::lua_setfield(l, -2, key.as_ptr());
    }
}

/// A command's reply as the Lua value `redis.call` returns (Redis's RESP2
/// and RESP3 rules; `resp3`: the script called `redis.setresp(3)`, where
/// null is nil rather than false).
unsafe fn push_frame(l: *mut ffi::lua_State, f: &Frame, resp3: bool) {
    unsafe {
        if ffi::lua_checkstack(l, 4) == 0 {
            push_bytes(l, b"reply nested too deeply for the Lua stack");
            ffi::lua_error(l);
        }
        match f {
            Frame::Integer(n) => ffi::lua_pushnumber(l, *n as f64),
            Frame::Bulk(b) => push_bytes(l, b),
            Frame::Null if resp3 => ffi::lua_pushnil(l),
            Frame::Null => ffi::lua_pushboolean(l, 0),
            Frame::Boolean(b) => ffi::lua_pushboolean(l, *b as c_int),
            Frame::Simple(s) => {
                push_bytes(l, s.as_bytes());
                wrap_top(l, c"ok");
            }
            Frame::Error(e) => {
                push_bytes(l, e.as_bytes());
                wrap_top(l, c"err");
            }
            Frame::Array(items) | Frame::Push(items) => {
                ffi::lua_createtable(l, items.len().min(c_int::MAX as usize) as c_int, 0);
                for (i, x) in items.iter().enumerate() {
                    push_frame(l, x, resp3);
                    ffi::lua_rawseti_(l, -2, c_int::try_from(i + 1).unwrap_or(c_int::MAX));
                }
            }
            Frame::Map(pairs) => {
                ffi::lua_createtable(l, 0, pairs.len().min(c_int::MAX as usize) as c_int);
                for (k, v) in pairs {
                    push_frame(l, k, resp3);
                    push_frame(l, v, resp3);
                    ffi::lua_rawset(l, -3);
                }
                wrap_top(l, c"map");
            }
            Frame::Set(items) => {
                ffi::lua_createtable(l, 0, items.len().min(c_int::MAX as usize) as c_int);
                for x in items {
                    push_frame(l, x, resp3);
                    ffi::lua_pushboolean(l, 1);
                    ffi::lua_rawset(l, -3);
                }
                wrap_top(l, c"set");
            }
            Frame::Double(d) => {
                ffi::lua_pushnumber(l, d.parse().unwrap_or(f64::NAN));
                wrap_top(l, c"double");
            }
            Frame::BigNumber(n) => {
                push_bytes(l, n.as_bytes());
                wrap_top(l, c"big_number");
            }
            Frame::Verbatim(v) => {
                let (format, text) = if v.len() >= 4 && v[3] == b':' { (&v[..3], &v[4..]) } else { (&b"txt"[..], &v[..]) };
                ffi::lua_createtable(l, 0, 2);
                push_bytes(l, text);
                ffi::lua_setfield(l, -2, c"string".as_ptr());
                push_bytes(l, format);
                ffi::lua_setfield(l, -2, c"format".as_ptr());
                wrap_top(l, c"verbatim_string");
            }
        }
    }
}

fn setresp(_: &Lua, args: MultiValue) -> mlua::Result<()> {
    if args.len() != 1 {
        return Err(helper_error("redis.setresp() requires one argument."));
    }
    let v = match args.front() {
        Some(LuaValue::Integer(n)) => *n,
        Some(LuaValue::Number(n)) => *n as i64,
        Some(LuaValue::String(s)) => s.to_str().ok().and_then(|s| s.parse().ok()).unwrap_or(0),
        _ => 0,
    };
    if v != 2 && v != 3 {
        return Err(helper_error("RESP version must be 2 or 3."));
    }
    with_bound(|b| b.resp3 = v == 3)
}

fn log(_: &Lua, args: MultiValue) -> mlua::Result<()> {
    if args.len() < 2 {
        return Err(helper_error("redis.log() requires two arguments or more."));
    }
    let mut it = args.into_iter();
    let level = match it.next() {
        Some(LuaValue::Integer(n)) => n,
        Some(LuaValue::Number(n)) => n as i64,
        _ => return Err(helper_error("First argument must be a number (log level).")),
    };
    if !(0..=3).contains(&level) {
        return Err(helper_error("Invalid debug level."));
    }
    let parts: Vec<String> = it
        .filter_map(|v| match v {
            LuaValue::String(s) => Some(s.to_string_lossy().to_string()),
            LuaValue::Integer(n) => Some(n.to_string()),
            LuaValue::Number(n) => Some(super::convert::lua_number_text(n)),
            _ => None,
        })
        .collect();
    // SAFETY: see `Bound`.
    with_bound(|b| unsafe { b.host.as_mut() }.log(level, &parts.join(" ")))
}

fn acl_check_cmd(_: &Lua, args: MultiValue) -> mlua::Result<bool> {
    let argv = command_args(args).map_err(|m| mlua::Error::external(Raised::helper(format!("ERR {m}"))))?;
    // SAFETY: see `Bound`.
    with_bound(|b| unsafe { b.host.as_mut() }.may_run(&argv))?
        .ok_or_else(|| mlua::Error::external(Raised::helper("ERR Invalid command passed to redis.acl_check_cmd()".into())))
}

/// Puts the bound functions into the `redis` table (behind its view).
pub(super) fn install(lua: &Lua, redis: &Table) -> mlua::Result<()> {
    // SAFETY: both follow the C API's rules for functions Lua calls (see
    // the module's comment on errors).
    redis.raw_set("call", unsafe { lua.create_c_function(redis_call) }?)?;
    redis.raw_set("pcall", unsafe { lua.create_c_function(redis_pcall) }?)?;
    redis.raw_set("setresp", lua.create_function(setresp)?)?;
    redis.raw_set("log", lua.create_function(log)?)?;
    redis.raw_set("acl_check_cmd", lua.create_function(acl_check_cmd)?)?;
    Ok(())
}
