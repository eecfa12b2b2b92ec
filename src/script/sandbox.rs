//! The Lua state a space's scripts run in, set up as Redis 7.0 sets up
//! its own: the libraries it loads, no file access, Redis's error handler
//! and `pcall`, a `redis` table, and globals no script can create,
//! replace or misspell.
//!
//! Protection: scripts run with an environment that is an empty view of
//! the globals: `__index` reads them (a missing name is Redis's
//! nonexistent-global error) and `__newindex` refuses every write. Library
//! tables are such views too. (Redis patches Lua for per-table read-only
//! flags; views give the same errors, though `pairs` over one sees nothing.)
//!
//! `redis.call` and the other helpers are native functions, so a failure is
//! raised from a C frame as in Redis; Redis's error handler and `pcall`
//! first unwrap it (`__ferrite_unwrap`) into the error table Redis raises.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value as LuaValue, VmState};

use super::convert::Reply;
use super::{Host, Run, ScriptError, Watch};

/// Instructions between checks for SCRIPT KILL.
const KILL_CHECK_EVERY: u32 = 100_000;

const KILLED: &str = "ERR Script killed by user with SCRIPT KILL...";

/// Where the `redis` table behind its read-only view is kept.
const REDIS_TABLE: &str = "ferrite.redis";

/// Where the function making read-only views is kept.
const VIEW: &str = "ferrite.view";

/// Where the globals view scripts run in is kept.
const SCRIPT_ENV: &str = "ferrite.env";

/// Redis's message handler, laid out as Redis's is (its two assignments on
/// lines 10 and 11 of a chunk named `@err_handler_def`, which a script can
/// observe). Frames of this module's Lua glue count as the C functions
/// they stand for.
const ERR_HANDLER: &str = "local dbg, unwrap = debug, __ferrite_unwrap
__redis__err__handler = function(err) err = unwrap(err)
  local i = dbg.getinfo(2, 'nSl')
  if i and i.what == 'C' then
    local l = 3 i = dbg.getinfo(l, 'nSl') while i and (i.source == '=glue' or i.what == 'C') do l = l + 1 i = dbg.getinfo(l, 'nSl') end
  end
  if type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  if i then err['source'] = i.source
    err['line'] = i.currentline
  end
  return err
end
";

/// Redis's `pcall` (an error table gives back its text), `loadstring` and
/// `load` whose chunks get the protected globals, and the read-only views.
const GLUE: &str = r#"
local raw_pcall, raw_loadstring, raw_load, setfenv, select, type, unpack, rawget, unwrap, raw_setmetatable, error, tostring =
  pcall, loadstring, load, setfenv, select, type, unpack, rawget, __ferrite_unwrap, setmetatable, error, tostring
local raw_rawset, lrand48, srand48, floor = rawset, __ferrite_lrand48, __ferrite_srand48, math.floor
local env
local views = raw_setmetatable({}, {__mode = 'k'})
rawset = function(t, ...)
  if views[t] then error("Attempt to modify a readonly table", 0) end
  return raw_rawset(t, ...)
end
setmetatable = function(t, ...)
  if views[t] then error("Attempt to modify a readonly table", 0) end
  return raw_setmetatable(t, ...)
end
-- Redis's math.random: one lrand48 generator for the process.
math.random = function(...)
  local n = select('#', ...)
  local r = (lrand48() % 2147483647) / 2147483647.0
  if n == 0 then return r end
  local u = ...
  if n == 1 then
    u = floor(u)
    if 1 > u then error("bad argument #1 to 'random' (interval is empty)", 3) end
    return floor(r * u) + 1
  end
  if n == 2 then
    local l, u = floor((...)), floor(select(2, ...))
    if l > u then error("bad argument #2 to 'random' (interval is empty)", 3) end
    return floor(r * (u - l + 1)) + l
  end
  error("wrong number of arguments", 3)
end
math.randomseed = function(s) srand48(s) end
-- LuaBitOp's bit library: 32-bit signed results, arguments converted as
-- LuaBitOp converts them (__ferrite_tobit).
local tobit, tonumber = __ferrite_tobit, tonumber
-- (not `arg`: Lua 5.1 gives vararg functions a local of that name)
local function bitarg(fn, i, n, x)
  local v = tonumber(x)
  if v == nil then
    error("bad argument #" .. i .. " to '" .. fn .. "' (number expected, got " .. (i > n and 'no value' or type(x)) .. ")", 4)
  end
  return tobit(v)
end
local function fold(fn, op)
  return function(...)
    local n = select('#', ...)
    local r = bitarg(fn, 1, n, (...))
    for i = 2, n do r = op(r, bitarg(fn, i, n, (select(i, ...)))) end
    return r
  end
end
local ops = __ferrite_bitops
bit = {
  tobit = function(...) local r = bitarg('tobit', 1, select('#', ...), (...)) return r end,
  bnot = function(...) return ops('not', bitarg('bnot', 1, select('#', ...), (...)), 0) end,
  band = fold('band', function(a, b) return ops('and', a, b) end),
  bor = fold('bor', function(a, b) return ops('or', a, b) end),
  bxor = fold('bxor', function(a, b) return ops('xor', a, b) end),
  bswap = function(...) return ops('bswap', bitarg('bswap', 1, select('#', ...), (...)), 0) end,
}
for _, name in ipairs({'lshift', 'rshift', 'arshift', 'rol', 'ror'}) do
  bit[name] = function(...)
    local n = select('#', ...)
    return ops(name, bitarg(name, 1, n, (...)), bitarg(name, 2, n, (select(2, ...))))
  end
end
bit.tohex = function(...)
  local n = select('#', ...)
  local x = bitarg('tohex', 1, n, (...))
  local digits = 8
  if n >= 2 then digits = bitarg('tohex', 2, n, (select(2, ...))) end
  return ops('tohex', x, digits)
end
-- Redis's are C functions: called through a C frame (`__ferrite_cwrap`),
-- ours keep the script's frame even when tail-called, so their errors
-- name the script's line as Redis's do (levels above count that frame).
local cwrap = __ferrite_cwrap
math.random = cwrap(math.random)
for name, f in next, bit do bit[name] = cwrap(f) end
local function pack(...) return {n = select('#', ...), ...} end
pcall = function(...)
  -- Redis's pcall calls its first argument as given: none is a boolean.
  if select('#', ...) == 0 then return false, 'attempt to call a boolean value' end
  local r = pack(raw_pcall(...))
  if not r[1] then
    local e = unwrap(r[2])
    if type(e) == 'table' and type(rawget(e, 'err')) == 'string' then return false, rawget(e, 'err') end
    r[2] = e
  end
  return unpack(r, 1, r.n)
end
-- Lua 5.1 loads precompiled chunks unverified (a script could corrupt
-- memory with one). Redis's parser always reads text; a leading space makes
-- Lua's do the same, with the same error and the same default chunk name.
local sbyte = string.byte
loadstring = function(s, ...)
  local f, e
  if type(s) == 'string' and sbyte(s, 1) == 27 then
    local name = ...
    if name == nil then name = s end
    f, e = raw_loadstring(' ' .. s, name)
  else
    f, e = raw_loadstring(s, ...)
  end
  if f then setfenv(f, env) end
  return f, e
end
load = function(reader, ...)
  local read = reader
  if type(reader) == 'function' then
    local first = true
    read = function()
      local piece = reader()
      if first then
        first = false
        if type(piece) == 'string' and sbyte(piece, 1) == 27 then return ' ' .. piece end
      end
      return piece
    end
  end
  local f, e = raw_load(read, ...)
  if f then setfenv(f, env) end
  return f, e
end
-- A view reads its backing table through `__index` as a table (Lua's fast
-- path: no function call per global or library name a script reads);
-- for `strict` views a name the backing lacks is an error, raised by the
-- backing's own metatable.
local function missing(_, n)
  error("Script attempted to access nonexistent global variable '" .. tostring(n) .. "'", 2)
end
-- What getmetatable gives for a view: Redis's read-only globals table has
-- a (read-only) metatable, its library tables none.
local view_metas = raw_setmetatable({}, {__mode = 'k'})
local function view(backing, strict)
  if strict then raw_setmetatable(backing, {__index = missing}) end
  local v = raw_setmetatable({}, {
    __index = backing,
    __newindex = function() error("Attempt to modify a readonly table", 2) end,
    __metatable = false,
  })
  views[v] = backing
  return v
end
-- Iterating a view iterates what it shows (Redis's read-only tables are
-- the tables themselves); anything else is Lua's own, with its errors.
local raw_next, raw_ipairs = next, ipairs
local function checked(fn, t)
  if type(t) ~= 'table' then
    error("bad argument #1 to '" .. fn .. "' (table expected, got " .. (t == nil and 'nil' or type(t)) .. ")", 4)
  end
  return views[t] or t
end
next = cwrap(function(t, k) return raw_next(checked('next', t), k) end)
pairs = cwrap(function(t)
  if views[t] then return next, t, nil end
  checked('pairs', t)
  return raw_next, t, nil
end)
ipairs = cwrap(function(t) return raw_ipairs(checked('ipairs', t)) end)
_G.rawget = cwrap(function(t, k) return rawget(checked('rawget', t), k) end)
local g = _G
env = view(g, true)
view_metas[env] = view({}, false)
for _, name in ipairs({'string', 'table', 'math', 'coroutine', 'redis', 'bit', 'cjson', 'struct', 'cmsgpack'}) do
  g[name] = view(g[name], false)
end
-- Strings' metatable is read-only too (Redis's build), and its `__index`
-- is the string library's view: through it a script could otherwise
-- change the library for every later script.
local raw_getmetatable = getmetatable
local string_meta = raw_getmetatable('')
string_meta.__index = g.string
local string_meta_view = view(string_meta, false)
getmetatable = function(v)
  if views[v] then return view_metas[v] end
  local m = raw_getmetatable(v)
  if m == string_meta then return string_meta_view end
  return m
end
return env, view
"#;

/// `__ferrite_cwrap(f)`: a C closure that calls the Lua function `f` with
/// its arguments and returns its results. A C frame is never replaced by a
/// tail call, so an error `f` raises at level 3 names the script's line,
/// as a C library function's does in Redis.
unsafe extern "C-unwind" fn cwrap(l: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    // SAFETY: called by Lua with the function to wrap as argument 1.
    unsafe {
        mlua::ffi::lua_settop(l, 1);
        mlua::ffi::lua_pushcclosure(l, call_wrapped, 1);
    }
    1
}

unsafe extern "C-unwind" fn call_wrapped(l: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    // SAFETY: a closure made by `cwrap`, whose upvalue is the function;
    // its errors propagate through this frame as through any C function's.
    unsafe {
        let n = mlua::ffi::lua_gettop(l);
        mlua::ffi::lua_pushvalue(l, mlua::ffi::lua_upvalueindex(1));
        mlua::ffi::lua_insert(l, 1);
        mlua::ffi::lua_call(l, n, mlua::ffi::LUA_MULTRET);
        mlua::ffi::lua_gettop(l)
    }
}

/// A new state for one space's scripts.
pub fn new_state(memory_limit: usize, watch: Arc<Watch>) -> mlua::Result<Lua> {
    let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG;
    // SAFETY: mlua calls the debug library unsafe because Lua code could use
    // it to break Lua's invariants. Only Redis's error handler keeps it (in
    // a local): it is removed from the globals before any script runs.
    let lua = unsafe { Lua::unsafe_new_with(libs, LuaOptions::default()) };
    let _ = lua.set_memory_limit(memory_limit.max(1 << 20));
    let g = lua.globals();
    let redis = redis_table(&lua)?;
    super::bound::install(&lua, &redis)?;
    lua.set_named_registry_value(REDIS_TABLE, redis.clone())?;
    g.raw_set("redis", redis)?;
    // Redis's extra libraries (loaded after `debug`, before `bit`).
    g.raw_set("cjson", super::libs::cjson::install(&lua)?)?;
    g.raw_set("struct", super::libs::structlib::install(&lua)?)?;
    g.raw_set("cmsgpack", super::libs::cmsgpack::install(&lua)?)?;
    g.raw_set("__ferrite_unwrap", lua.create_function(unwrap_error)?)?;
    // SAFETY: `cwrap` and the closures it makes use only the Lua API, on
    // values of their own stack frame, and own nothing Rust must drop.
    g.raw_set("__ferrite_cwrap", unsafe { lua.create_c_function(cwrap) }?)?;
    g.raw_set("__ferrite_lrand48", lua.create_function(|_, ()| Ok(lrand48()))?)?;
    g.raw_set("__ferrite_tobit", lua.create_function(|_, n: f64| Ok(tobit(n)))?)?;
    g.raw_set("__ferrite_bitops", lua.create_function(|_, (op, a, b): (String, i32, i32)| bit_op(&op, a, b))?)?;
    g.raw_set(
        "__ferrite_srand48",
        lua.create_function(|_, seed: f64| {
            srand48(seed);
            Ok(())
        })?,
    )?;
    lua.load(ERR_HANDLER).set_name("@err_handler_def").exec()?;
    let (env, view): (Table, Function) = lua.load(GLUE).set_name("=glue").eval()?;
    lua.set_named_registry_value(SCRIPT_ENV, env.clone())?;
    lua.set_named_registry_value(VIEW, view)?;
    for name in [
        "loadfile",
        "dofile",
        "print",
        "getfenv",
        "setfenv",
        "newproxy",
        "debug",
        "module",
        "require",
        "__ferrite_unwrap",
        "__ferrite_cwrap",
        "__ferrite_lrand48",
        "__ferrite_srand48",
        "__ferrite_tobit",
        "__ferrite_bitops",
    ] {
        g.raw_set(name, LuaValue::Nil)?;
    }
    g.raw_set("_G", env)?;
    lua.set_hook(HookTriggers::new().every_nth_instruction(KILL_CHECK_EVERY), move |_, _| {
        if watch.killed() {
            return Err(mlua::Error::external(Raised::helper(KILLED.into())));
        }
        if watch.load_timed_out() {
            return Err(helper_error("FUNCTION LOAD timeout"));
        }
        watch.check();
        Ok(VmState::Continue)
    })?;
    Ok(lua)
}

/// Redis's `math.random` generator: POSIX `lrand48`, one for the process
/// (shared by every space, as Redis's is by every script), starting where
/// lrand48 starts.
static LRAND48: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0x1234_ABCD_330E);

fn lrand48() -> i64 {
    let mut x = LRAND48.load(Relaxed);
    loop {
        let next = (0x5_DEEC_E66D_u64.wrapping_mul(x).wrapping_add(0xB)) & ((1 << 48) - 1);
        match LRAND48.compare_exchange_weak(x, next, Relaxed, Relaxed) {
            Ok(_) => return (next >> 17) as i64,
            Err(seen) => x = seen,
        }
    }
}

/// LuaBitOp's number to 32 bits: add 2^52 + 2^51 and keep the low word
/// of the double (rounding half to even; out-of-range numbers wrap as
/// LuaBitOp's do).
fn tobit(n: f64) -> i32 {
    (n + 6_755_399_441_055_744.0).to_bits() as u32 as i32
}

/// One LuaBitOp operation on 32-bit values (`tohex` returns a string).
fn bit_op(op: &str, a: i32, b: i32) -> mlua::Result<LuaBit> {
    let (ua, sh) = (a as u32, (b as u32) & 31);
    Ok(LuaBit::Int(match op {
        "not" => !a,
        "and" => a & b,
        "or" => a | b,
        "xor" => a ^ b,
        "bswap" => a.swap_bytes(),
        "lshift" => (ua << sh) as i32,
        "rshift" => (ua >> sh) as i32,
        "arshift" => a >> sh,
        "rol" => ua.rotate_left(sh) as i32,
        "ror" => ua.rotate_right(sh) as i32,
        "tohex" => {
            let upper = b < 0;
            let n = (b.unsigned_abs().min(8)) as usize;
            let hex = if upper { format!("{ua:08X}") } else { format!("{ua:08x}") };
            return Ok(LuaBit::Text(hex[8 - n..].to_string()));
        }
        _ => return Err(mlua::Error::RuntimeError(format!("unknown bit operation {op}"))),
    }))
}

/// A bit operation's result.
enum LuaBit {
    Int(i32),
    Text(String),
}

impl mlua::IntoLua for LuaBit {
    fn into_lua(self, lua: &Lua) -> mlua::Result<LuaValue> {
        match self {
            LuaBit::Int(n) => Ok(LuaValue::Integer(n as i64)),
            LuaBit::Text(s) => s.into_lua(lua),
        }
    }
}

/// `math.randomseed(s)`: Lua's integer conversion, then srand48.
fn srand48(seed: f64) {
    let s = seed as i64 as i32 as u32 as u64;
    LRAND48.store((s << 16) | 0x330E, Relaxed);
}

/// A native function's failure, as Redis would raise it: an error table
/// (`redis.call`, helpers, SCRIPT KILL).
#[derive(Debug)]
pub(super) struct Raised {
    pub(super) err: String,
    /// Set for errors a command gave (Redis marks them so the error is
    /// counted once).
    pub(super) from_command: bool,
}

impl Raised {
    pub(super) fn helper(err: String) -> Raised {
        Raised { err, from_command: false }
    }
}

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.err)
    }
}

impl std::error::Error for Raised {}

fn find_raised(e: &mlua::Error) -> Option<&Raised> {
    match e {
        mlua::Error::ExternalError(inner) => inner.downcast_ref::<Raised>(),
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => find_raised(cause),
        _ => None,
    }
}

/// `__ferrite_unwrap`: a native function's failure becomes the value Redis
/// raises (an error table, or a message string); anything else is itself.
fn unwrap_error(lua: &Lua, v: LuaValue) -> mlua::Result<LuaValue> {
    let LuaValue::Error(e) = v else { return Ok(v) };
    let t = lua.create_table()?;
    match find_raised(&e) {
        Some(r) => {
            t.raw_set("err", r.err.as_str())?;
            if r.from_command {
                t.raw_set("ignore_error_stats_update", true)?;
            }
        }
        None => {
            let msg = match &*e {
                mlua::Error::CallbackError { cause, .. } => cause.to_string(),
                other => other.to_string(),
            };
            t.raw_set("err", format!("ERR {}", msg.lines().next().unwrap_or("")))?;
        }
    }
    Ok(LuaValue::Table(t))
}

/// A helper's failure, raised as `{err = "ERR <msg>"}`.
pub(super) fn helper_error(msg: &str) -> mlua::Error {
    mlua::Error::external(Raised::helper(format!("ERR {msg}")))
}

/// The `redis` table's functions that need no server (those that do are
/// in `bound`).
fn redis_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("error_reply", lua.create_function(|lua, args: MultiValue| error_reply(lua, args))?)?;
    t.raw_set(
        "status_reply",
        lua.create_function(|lua, args: MultiValue| match (args.len(), args.front()) {
            (1, Some(LuaValue::String(s))) => {
                let r = lua.create_table()?;
                r.raw_set("ok", s.clone())?;
                Ok(r)
            }
            _ => bad_arguments(lua),
        })?,
    )?;
    t.raw_set(
        "sha1hex",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(helper_error("wrong number of arguments"));
            }
            let bytes = match args.front() {
                Some(LuaValue::String(s)) => s.as_bytes().to_vec(),
                Some(LuaValue::Integer(n)) => n.to_string().into_bytes(),
                Some(LuaValue::Number(n)) => super::convert::lua_number_text(*n).into_bytes(),
                _ => Vec::new(),
            };
            Ok(super::sha1_hex(&bytes))
        })?,
    )?;
    for (name, level) in [("LOG_DEBUG", 0), ("LOG_VERBOSE", 1), ("LOG_NOTICE", 2), ("LOG_WARNING", 3)] {
        t.raw_set(name, level)?;
    }
    for (name, flags) in [("REPL_NONE", 0), ("REPL_AOF", 1), ("REPL_SLAVE", 2), ("REPL_REPLICA", 2), ("REPL_ALL", 3)] {
        t.raw_set(name, flags)?;
    }
    t.raw_set("REDIS_VERSION", "7.0.15")?;
    t.raw_set("REDIS_VERSION_NUM", 0x07000f)?;
    // Effects replication is the only kind (Redis 7.0): these are accepted.
    t.raw_set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    t.raw_set(
        "set_repl",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(helper_error("redis.set_repl() requires two arguments."));
            }
            let flags = match args.front() {
                Some(LuaValue::Integer(n)) => *n,
                Some(LuaValue::Number(n)) => *n as i64,
                _ => 0,
            };
            if flags & !3 != 0 {
                return Err(helper_error("Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."));
            }
            Ok(())
        })?,
    )?;
    t.raw_set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
    t.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    Ok(t)
}

fn bad_arguments(lua: &Lua) -> mlua::Result<Table> {
    let r = lua.create_table()?;
    r.raw_set("err", "ERR wrong number or type of arguments")?;
    Ok(r)
}

/// `redis.error_reply`: Redis's error table (a missing code is `ERR`).
fn error_reply(lua: &Lua, args: MultiValue) -> mlua::Result<Table> {
    let (1, Some(LuaValue::String(s))) = (args.len(), args.front()) else { return bad_arguments(lua) };
    let text = s.to_string_lossy().to_string();
    let line = if text.starts_with('-') { text } else { format!("-{text}") };
    let r = lua.create_table()?;
    r.raw_set("err", error_table_text(&line))?;
    Ok(r)
}

/// How Redis turns an error line into an error table's text: a leading
/// `-` is dropped, a text without a code gets `ERR`, CR/LF at the ends of
/// the message are trimmed.
pub fn error_table_text(line: &str) -> String {
    let (code, msg) = match line.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some((code, msg)) => (code.to_string(), msg.to_string()),
            None => ("ERR".to_string(), rest.to_string()),
        },
        None => ("ERR".to_string(), line.to_string()),
    };
    format!("{code} {}", msg.trim_matches(|c| c == '\r' || c == '\n'))
}

/// Compiles a script body into the function EVAL calls, with the
/// protected globals as its environment.
pub fn compile(lua: &Lua, body: &[u8]) -> Result<Function, ScriptError> {
    let compiled = lua.load(body).set_mode(mlua::chunk::ChunkMode::Text).set_name("@user_script").into_function().map_err(|e| {
        let msg = match e {
            mlua::Error::SyntaxError { message, .. } => message,
            other => other.to_string(),
        };
        ScriptError(format!("ERR Error compiling script (new function): {msg}"))
    })?;
    let env: Table = lua.named_registry_value(SCRIPT_ENV).map_err(|e| ScriptError(format!("ERR {e}")))?;
    compiled.set_environment(env).map_err(|e| ScriptError(format!("ERR {e}")))?;
    Ok(compiled)
}

/// The `redis` table behind the view scripts see.
pub(super) fn redis_backing(lua: &Lua) -> mlua::Result<Table> {
    lua.named_registry_value(REDIS_TABLE)
}

/// A read-only view of `t`, as the library tables are; `strict`: reading
/// a name it lacks is the nonexistent-global error, as for the globals.
pub(super) fn read_only(lua: &Lua, t: Table, strict: bool) -> mlua::Result<Table> {
    lua.named_registry_value::<Function>(VIEW)?.call((t, strict))
}

/// A failure's text as Redis reports a library's loading error: an error
/// table's `err`, else `ERR ` and the message.
pub(super) fn error_text(e: &mlua::Error) -> String {
    if let Some(r) = find_raised(e) {
        return r.err.clone();
    }
    let msg = match e {
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => cause.to_string(),
        mlua::Error::MemoryError(_) => "not enough memory".into(),
        other => other.to_string(),
    };
    format!("ERR {}", msg.lines().next().unwrap_or(""))
}

/// How a state runs scripts: `bound::run_script` and Redis's error
/// handler, looked up once.
pub struct Entry {
    runner: Function,
    handler: Function,
}

impl Entry {
    pub fn new(lua: &Lua) -> mlua::Result<Entry> {
        Ok(Entry { runner: super::bound::runner(lua)?, handler: lua.globals().raw_get("__redis__err__handler")? })
    }
}

/// Runs a compiled script or function (`sha`: its name in errors): KEYS
/// and ARGV set, the host's command call and `setresp`/`log` bound for
/// this run only, under Redis's error handler.
pub(super) fn invoke(entry: &Entry, f: &Function, sha: &str, given: super::bound::Given) -> Result<Reply, ScriptError> {
    let mut binding = super::bound::bind(given);
    let result = entry.runner.call::<MultiValue>((f, &entry.handler));
    let reply = binding.take_reply();
    drop(binding);
    match result {
        Ok(values) => {
            let mut values = values.into_iter();
            let ok = matches!(values.next(), Some(LuaValue::Boolean(true)));
            let value = values.next().unwrap_or(LuaValue::Nil);
            if ok { Ok(Reply(reply)) } else { Err(ScriptError(uncaught(&value, sha))) }
        }
        Err(mlua::Error::MemoryError(_)) => Err(ScriptError(format!("ERR Error running script {sha}, out of memory"))),
        Err(e) => Err(ScriptError(format!("ERR Error running script {sha}, {}", first_line(&e.to_string(), 100)))),
    }
}

fn first_line(s: &str, max: usize) -> String {
    s.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).take(max).collect()
}

/// The reply for an error nobody caught: the handler's table, as Redis
/// words it (`<err> script: <sha>, on <source>:<line>.`).
fn uncaught(v: &LuaValue, sha: &str) -> String {
    let LuaValue::Table(t) = v else {
        return format!("ERR Error running script {sha}, {}", first_line(&format!("{v:?}"), 100));
    };
    let text = |k: &str| -> Option<String> {
        match t.get::<LuaValue>(k).ok()? {
            LuaValue::String(s) => Some(s.to_string_lossy().to_string()),
            LuaValue::Integer(n) => Some(n.to_string()),
            LuaValue::Number(n) => Some(super::convert::lua_number_text(n)),
            _ => None,
        }
    };
    let msg = text("err").unwrap_or_else(|| "ERR unknown error".into());
    let msg = msg.trim_matches(|c| c == '\r' || c == '\n').replace(['\r', '\n'], " ");
    match (text("source"), text("line")) {
        (Some(source), Some(line)) => format!("{msg} script: {sha}, on {source}:{line}."),
        _ => msg,
    }
}

/// One `redis.call`: the reply, or the error table's text Redis raises.
pub(super) fn call_command(
    argv: Vec<Vec<u8>>,
    resp3: bool,
    run: Run,
    host: &mut dyn Host,
    watch: &Watch,
) -> Result<crate::protocol::Frame, Raised> {
    use crate::commands::flags::{MAY_REPLICATE, NOSCRIPT, WRITE};
    let refuse = |err: &str| Err(Raised { err: err.into(), from_command: true });
    // Redis's checks, in its order, before the command runs.
    let Some((idx, spec)) = crate::commands::lookup(&argv[0]) else {
        return refuse("ERR Unknown Redis command called from script");
    };
    // A container's unknown subcommand is an unknown command (Redis looks
    // commands up with their subcommand), and a known one has its arity.
    let sub = argv.get(1).filter(|_| crate::commands::table::subcommands_of(spec.name).next().is_some());
    let arity_of = match sub.map(|s| crate::commands::table::lookup_subcommand(spec.name, s)) {
        Some(None) => return refuse("ERR Unknown Redis command called from script"),
        Some(Some(s)) => s,
        None => spec,
    };
    if !spec.arity_ok(argv.len()) || !arity_of.arity_ok(argv.len()) {
        return refuse("ERR Wrong number of args calling Redis command from script");
    }
    if spec.has(NOSCRIPT) {
        return refuse("ERR This Redis command is not allowed from script");
    }
    // A read-only run (EVAL_RO, `no-writes`) refuses what may write.
    if run.read_only && (spec.has(WRITE) || spec.has(MAY_REPLICATE)) {
        return refuse("ERR Write commands are not allowed from read-only scripts.");
    }
    let frame = host.call(idx, spec, &argv, resp3);
    // A script of few instructions can still hold its thread long, one
    // slow command after another.
    watch.check();
    let frame = frame.map_err(|e| Raised { err: error_table_text(&format!("-{e}")), from_command: true })?;
    if spec.has(WRITE) {
        watch.wrote.store(true, Relaxed);
    }
    Ok(frame)
}
