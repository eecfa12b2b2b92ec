//! Redis 7.0 functions: libraries of named Lua functions (FUNCTION LOAD,
//! FCALL), per space, in a Lua state of their own as Redis keeps them.
//!
//! A library's code runs once when it is loaded, in an environment that
//! offers only `redis.register_function`, `redis.log` and the version
//! constants; the functions it registers keep that environment, which is
//! switched to the ordinary globals once loading ends (Redis switches its
//! globals' `__index` the same way), so at call time they see the full
//! sandbox. A call gets KEYS and ARGV as its two arguments.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use mlua::{Function, Lua, MultiValue, Table, Value as LuaValue};

use super::bound::Given;
use super::sandbox::{self, Entry, helper_error};
use super::{Host, KNOWN_FLAGS, Run, ScriptError, Watch};

/// A loaded library: its code as given and what it registered.
pub struct Library {
    pub name: String,
    pub code: Arc<[u8]>,
    pub functions: Vec<FunctionInfo>,
}

/// How FUNCTION RESTORE treats the libraries already loaded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Restore {
    /// Keep them; a library of the same name fails the restore.
    Append,
    /// Keep them, but the payload's replace those of the same name.
    Replace,
    /// Drop them.
    Flush,
}

/// A registered function as FUNCTION LIST shows it.
#[derive(Clone)]
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<Vec<u8>>,
    /// Bit `i` set: `KNOWN_FLAGS[i]` was given.
    pub flags: u8,
}

impl FunctionInfo {
    pub fn flag_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        KNOWN_FLAGS.iter().enumerate().filter(move |(i, _)| self.flags & (1 << i) != 0).map(|(_, f)| *f)
    }

    fn no_writes(&self) -> bool {
        self.flags & 1 != 0
    }

    /// Its flags as a script's shebang would give them.
    fn as_flags(&self) -> super::Flags {
        super::Flags { shebang: true, no_writes: self.no_writes(), allow_oom: self.flags & 2 != 0 }
    }
}

/// A space's functions: the state they live in and the libraries.
pub(super) struct FunctionsEngine {
    lua: Lua,
    entry: Entry,
    /// The environment libraries load and functions run in.
    env: Table,
    /// `switch(true)` while a library loads, `switch(false)` after.
    switch: Function,
    libraries: BTreeMap<String, Library>,
    /// What the libraries' code and names hold (kept as they change: a
    /// call reads it).
    code_bytes: usize,
    /// Each function: its callback, what LIST shows, its library.
    callbacks: HashMap<String, (Function, FunctionInfo, String)>,
}

/// The environment whose `__index` moves between the library-loading API
/// and the globals.
const ENV_GLUE: &str = r#"
local g, api, error, tostring, setmetatable = ...
setmetatable(api, {__index = function(_, n)
  error("Script attempted to access nonexistent global variable '" .. tostring(n) .. "'", 2)
end})
local meta = {
  __index = g,
  __newindex = function() error("Attempt to modify a readonly table", 2) end,
  __metatable = false,
}
local env = setmetatable({}, meta)
return env, function(loading) if loading then meta.__index = api else meta.__index = g end end
"#;

thread_local! {
    /// What `redis.register_function` registered while a library loads
    /// on this thread (None: no library is loading).
    static LOADING: RefCell<Option<Vec<(FunctionInfo, Function)>>> = const { RefCell::new(None) };
}

impl FunctionsEngine {
    pub(super) fn new(memory_limit: usize, watch: Arc<Watch>) -> mlua::Result<FunctionsEngine> {
        let lua = sandbox::new_state(memory_limit, watch)?;
        let entry = Entry::new(&lua)?;
        let g = lua.globals();
        let api = lua.create_table()?;
        let redis = lua.create_table()?;
        redis.raw_set("register_function", lua.create_function(register_function)?)?;
        let full = sandbox::redis_backing(&lua)?;
        for name in ["log", "LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING", "REDIS_VERSION", "REDIS_VERSION_NUM"] {
            redis.raw_set(name, full.raw_get::<LuaValue>(name)?)?;
        }
        // Like the globals, a name it lacks is an error, not nil.
        api.raw_set("redis", sandbox::read_only(&lua, redis, true)?)?;
        let (env, switch): (Table, Function) = lua.load(ENV_GLUE).set_name("=glue").call((
            g.clone(),
            api,
            g.raw_get::<Function>("error")?,
            g.raw_get::<Function>("tostring")?,
            g.raw_get::<Function>("setmetatable")?,
        ))?;
        Ok(FunctionsEngine { lua, entry, env, switch, libraries: BTreeMap::new(), code_bytes: 0, callbacks: HashMap::new() })
    }

    pub(super) fn lua(&self) -> &Lua {
        &self.lua
    }

    pub(super) fn libraries(&self) -> impl Iterator<Item = &Library> {
        self.libraries.values()
    }

    pub(super) fn function_count(&self) -> usize {
        self.callbacks.len()
    }

    pub(super) fn library_count(&self) -> usize {
        self.libraries.len()
    }

    pub(super) fn code_bytes(&self) -> usize {
        self.code_bytes
    }

    /// Loads a library (FUNCTION LOAD): returns its name. Nothing changes
    /// unless it loads whole. `timeout`: how long its code may run.
    pub(super) fn load(
        &mut self,
        code: &[u8],
        replace: bool,
        host: &mut dyn Host,
        watch: &Watch,
        timeout: Option<Duration>,
    ) -> Result<String, ScriptError> {
        let err = |m: String| ScriptError(format!("ERR {m}"));
        let (engine, name, body) = metadata(code).map_err(err)?;
        if !valid_name(&name) {
            return Err(err(INVALID_NAME.into()));
        }
        if !engine.eq_ignore_ascii_case("lua") {
            return Err(err(format!("Engine '{engine}' not found")));
        }
        if self.libraries.contains_key(&name) && !replace {
            return Err(err(format!("Library '{name}' already exists")));
        }
        let chunk = self.lua.load(body).set_mode(mlua::chunk::ChunkMode::Text).set_name("@user_function").into_function().map_err(|e| {
            let msg = match e {
                mlua::Error::SyntaxError { message, .. } => message,
                other => other.to_string(),
            };
            err(format!("Error compiling function: {msg}"))
        })?;
        chunk.set_environment(self.env.clone()).map_err(|e| err(e.to_string()))?;
        let registered = self.run_loader(&chunk, host, watch, timeout).map_err(|m| err(format!("Error registering functions: {m}")))?;
        if registered.is_empty() {
            return Err(err("No functions registered".into()));
        }
        for (info, _) in &registered {
            if self.callbacks.get(&info.name).is_some_and(|(_, _, lib)| *lib != name) {
                return Err(err(format!("Function {} already exists", info.name)));
            }
        }
        self.delete(&name);
        let functions = registered.iter().map(|(info, _)| info.clone()).collect();
        for (info, callback) in registered {
            self.callbacks.insert(info.name.clone(), (callback, info, name.clone()));
        }
        let library = Library { name: name.clone(), code: code.into(), functions };
        self.code_bytes += library_bytes(&library);
        self.libraries.insert(name.clone(), library);
        Ok(name)
    }

    /// Runs a library's code with the loading API; what it registered, or
    /// the error's text (Redis's: `ERR <message>` for a Lua error).
    fn run_loader(
        &self,
        chunk: &Function,
        host: &mut dyn Host,
        watch: &Watch,
        timeout: Option<Duration>,
    ) -> Result<Vec<(FunctionInfo, Function)>, String> {
        LOADING.with(|l| *l.borrow_mut() = Some(Vec::new()));
        let _ = self.switch.call::<()>(true);
        watch.start_loading(timeout);
        let binding = super::bound::bind(Given { keys: &[], args: &[], run: Run::default(), host, watch, as_function: false });
        let result = chunk.call::<()>(());
        drop(binding);
        watch.end_loading();
        let _ = self.switch.call::<()>(false);
        let registered = LOADING.with(|l| l.borrow_mut().take()).unwrap_or_default();
        result.map(|()| registered).map_err(|e| sandbox::error_text(&e))
    }

    /// FUNCTION DELETE: false if there is no such library.
    pub(super) fn delete(&mut self, name: &str) -> bool {
        let Some(lib) = self.libraries.remove(name) else { return false };
        self.code_bytes -= library_bytes(&lib);
        for f in &lib.functions {
            self.callbacks.remove(&f.name);
        }
        true
    }

    /// Runs function `name` (FCALL): Err(None) when there is none.
    pub(super) fn call(
        &self,
        name: &str,
        keys: &[&[u8]],
        args: &[&[u8]],
        run: Run,
        host: &mut dyn Host,
        watch: &Watch,
    ) -> Result<super::Reply, Option<ScriptError>> {
        let (callback, info, _) = self.callbacks.get(name).ok_or(None)?;
        if run.read_only && !info.no_writes() {
            return Err(Some(ScriptError("ERR Can not execute a script with write flag using *_ro command.".into())));
        }
        let run = Run { read_only: run.read_only || info.no_writes(), ..run };
        super::refuse_if_out_of_memory(host, info.as_flags())?;
        sandbox::invoke(&self.entry, callback, name, Given { keys, args, run, host, watch, as_function: true }).map_err(Some)
    }
}

/// What a library holds besides its functions' Lua values.
fn library_bytes(l: &Library) -> usize {
    l.name.len() + l.code.len() + 64 * (1 + l.functions.len())
}

const INVALID_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// Names Redis accepts for libraries and functions: `[A-Za-z0-9_]+`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A library's shebang (`#!<engine> name=<name>`): the engine, the name,
/// and the code from the shebang's newline on (so line numbers stay).
fn metadata(code: &[u8]) -> Result<(String, String, &[u8]), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let nl = code.iter().position(|&b| b == b'\n').ok_or("Invalid library metadata")?;
    let parts = crate::protocol::parse::split_words(&code[..nl]).filter(|p| !p.is_empty()).ok_or("Invalid library metadata")?;
    let engine = String::from_utf8_lossy(&parts[0][2..]).into_owned();
    let mut name = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err("Invalid metadata value, name argument was given multiple times".into());
            }
            name = Some(String::from_utf8_lossy(&part[5..]).into_owned());
            continue;
        }
        return Err(format!("Invalid metadata value given: {}", String::from_utf8_lossy(part)));
    }
    let name = name.ok_or("Library name was not given")?;
    Ok((engine, name, &code[nl..]))
}

fn raise(msg: &str) -> mlua::Error {
    helper_error(msg)
}

/// `redis.register_function(name, callback)` or
/// `redis.register_function{function_name=..., callback=..., flags={...}, description=...}`.
fn register_function(_: &Lua, args: MultiValue) -> mlua::Result<()> {
    if LOADING.with(|l| l.borrow().is_none()) {
        return Err(raise("redis.register_function can only be called on FUNCTION LOAD command"));
    }
    let (info, callback) = match args.len() {
        1 => named_arguments(args.front().cloned().unwrap_or(LuaValue::Nil))?,
        2 => {
            let mut it = args.into_iter();
            let name = lua_string(&it.next().unwrap_or(LuaValue::Nil))
                .ok_or_else(|| raise("first argument to redis.register_function must be a string"))?;
            let LuaValue::Function(callback) = it.next().unwrap_or(LuaValue::Nil) else {
                return Err(raise("second argument to redis.register_function must be a function"));
            };
            (FunctionInfo { name: String::from_utf8_lossy(&name).into_owned(), description: None, flags: 0 }, callback)
        }
        _ => return Err(raise("wrong number of arguments to redis.register_function")),
    };
    LOADING.with(|l| {
        let mut l = l.borrow_mut();
        let list = l.as_mut().ok_or_else(|| raise("redis.register_function can only be called on FUNCTION LOAD command"))?;
        if !valid_name(&info.name) {
            return Err(raise(INVALID_NAME));
        }
        if list.iter().any(|(f, _)| f.name == info.name) {
            return Err(raise("Function already exists in the library"));
        }
        list.push((info, callback));
        Ok(())
    })
}

/// A Lua string or number as bytes (`lua_isstring`).
fn lua_string(v: &LuaValue) -> Option<Vec<u8>> {
    match v {
        LuaValue::String(s) => Some(s.as_bytes().to_vec()),
        LuaValue::Integer(n) => Some(n.to_string().into_bytes()),
        LuaValue::Number(n) => Some(super::convert::lua_number_text(*n).into_bytes()),
        _ => None,
    }
}

fn named_arguments(v: LuaValue) -> mlua::Result<(FunctionInfo, Function)> {
    let LuaValue::Table(t) = v else {
        return Err(raise(
            "calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).",
        ));
    };
    let (mut name, mut description, mut callback, mut flags) = (None, None, None, 0u8);
    for pair in t.pairs::<LuaValue, LuaValue>() {
        let (k, v) = pair?;
        let key = lua_string(&k).ok_or_else(|| raise("named argument key given to redis.register_function is not a string"))?;
        let key = String::from_utf8_lossy(&key).to_ascii_lowercase();
        match key.as_str() {
            "function_name" => {
                name =
                    Some(lua_string(&v).ok_or_else(|| raise("function_name argument given to redis.register_function must be a string"))?)
            }
            "description" => {
                description =
                    Some(lua_string(&v).ok_or_else(|| raise("description argument given to redis.register_function must be a string"))?)
            }
            "callback" => match v {
                LuaValue::Function(f) => callback = Some(f),
                _ => return Err(raise("callback argument given to redis.register_function must be a function")),
            },
            "flags" => {
                let LuaValue::Table(list) = v else {
                    return Err(raise("flags argument to redis.register_function must be a table representing function flags"));
                };
                flags = read_flags(&list).ok_or_else(|| raise("unknown flag given"))?;
            }
            _ => return Err(raise("unknown argument given to redis.register_function")),
        }
    }
    let name = name.ok_or_else(|| raise("redis.register_function must get a function name argument"))?;
    let callback = callback.ok_or_else(|| raise("redis.register_function must get a callback argument"))?;
    Ok((FunctionInfo { name: String::from_utf8_lossy(&name).into_owned(), description, flags }, callback))
}

/// A function's flags: the array's strings, each a known flag (any case).
fn read_flags(list: &Table) -> Option<u8> {
    let mut flags = 0u8;
    for i in 1.. {
        let v: LuaValue = list.get(i).ok()?;
        if v.is_nil() {
            break;
        }
        let s = lua_string(&v)?;
        let at = KNOWN_FLAGS.iter().position(|f| f.as_bytes().eq_ignore_ascii_case(&s))?;
        flags |= 1 << at;
    }
    Some(flags)
}

impl super::Scripts {
    fn functions_engine<'g>(
        &self,
        guard: &'g mut Option<FunctionsEngine>,
        memory_limit: usize,
    ) -> Result<&'g mut FunctionsEngine, ScriptError> {
        if guard.is_none() {
            let engine =
                FunctionsEngine::new(memory_limit, self.watch.clone()).map_err(|e| ScriptError(format!("ERR cannot start Lua: {e}")))?;
            *guard = Some(engine);
        }
        let engine = guard.as_mut().expect("just made");
        let _ = engine.lua().set_memory_limit(memory_limit.max(1 << 20));
        Ok(engine)
    }

    fn account_functions(&self, engine: Option<&FunctionsEngine>) {
        let (bytes, libraries, functions) =
            engine.map_or((0, 0, 0), |e| (e.code_bytes() + e.lua().used_memory(), e.library_count(), e.function_count()));
        self.function_bytes.store(bytes as u64, Relaxed);
        self.library_count.store(libraries, Relaxed);
        self.function_count.store(functions, Relaxed);
    }

    /// FUNCTION LOAD: the library's name, or Redis's error. `on_worker`:
    /// the load runs on a runtime worker, to hand over if it lasts.
    pub fn load_library(
        &self,
        code: &[u8],
        replace: bool,
        memory_limit: usize,
        host: &mut dyn Host,
        timeout: Option<Duration>,
        on_worker: bool,
    ) -> Result<String, ScriptError> {
        let mut guard = crate::worker::lock(&self.functions);
        let engine = self.functions_engine(&mut guard, memory_limit)?;
        self.watch.start(on_worker);
        let loaded = engine.load(code, replace, host, &self.watch, timeout);
        self.account_functions(guard.as_ref());
        loaded
    }

    /// FUNCTION RESTORE: the payload's libraries join the loaded ones as
    /// `policy` says, all or nothing (they load into a new state, which
    /// replaces the old one only if every library loads).
    pub fn restore_libraries(
        &self,
        codes: Vec<Vec<u8>>,
        policy: Restore,
        memory_limit: usize,
        host: &mut dyn Host,
        timeout: Option<Duration>,
        on_worker: bool,
    ) -> Result<(), ScriptError> {
        let mut guard = crate::worker::lock(&self.functions);
        let mut fresh =
            FunctionsEngine::new(memory_limit, self.watch.clone()).map_err(|e| ScriptError(format!("ERR cannot start Lua: {e}")))?;
        self.watch.start(on_worker);
        // The payload's libraries first, as Redis reads them into a context
        // of their own (a name twice in it fails there).
        let mut restored = Vec::new();
        for code in &codes {
            restored.push(fresh.load(code, false, host, &self.watch, timeout)?);
        }
        if policy != Restore::Flush {
            let kept: Vec<Arc<[u8]>> = guard.as_ref().map_or_else(Vec::new, |e| {
                e.libraries().filter(|l| policy == Restore::Append || !restored.contains(&l.name)).map(|l| l.code.clone()).collect()
            });
            if policy == Restore::Append
                && let Some(name) = guard.as_ref().and_then(|e| e.libraries().find(|l| restored.contains(&l.name)).map(|l| l.name.clone()))
            {
                return Err(ScriptError(format!("ERR Library {name} already exists")));
            }
            for code in kept {
                fresh.load(&code, false, host, &self.watch, timeout)?;
            }
        }
        *guard = Some(fresh);
        self.account_functions(guard.as_ref());
        Ok(())
    }

    /// FUNCTION DUMP's payload of the libraries, if there are any.
    pub fn dump_libraries(&self) -> Option<Vec<u8>> {
        let guard = crate::worker::lock(&self.functions);
        let engine = guard.as_ref().filter(|e| e.libraries().next().is_some())?;
        Some(crate::store::dump::encode_functions(engine.libraries().map(|l| &l.code[..])))
    }

    /// Whether a function of that name is loaded.
    pub fn function_exists(&self, name: &str) -> bool {
        crate::worker::lock(&self.functions).as_ref().is_some_and(|e| e.callbacks.contains_key(name))
    }

    /// FUNCTION DELETE: false if there is no such library.
    pub fn delete_library(&self, name: &str) -> bool {
        let mut guard = crate::worker::lock(&self.functions);
        let deleted = guard.as_mut().is_some_and(|e| e.delete(name));
        self.account_functions(guard.as_ref());
        deleted
    }

    /// FUNCTION FLUSH: no libraries, and a fresh state when one is next
    /// loaded.
    pub fn flush_functions(&self) {
        *crate::worker::lock(&self.functions) = None;
        self.account_functions(None);
    }

    /// Calls `f` with the libraries, by name.
    pub fn with_libraries<R>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &Library>) -> R) -> R {
        let guard = crate::worker::lock(&self.functions);
        match guard.as_ref() {
            Some(e) => f(&mut e.libraries()),
            None => f(&mut std::iter::empty()),
        }
    }

    /// Libraries and functions loaded.
    pub fn library_counts(&self) -> (usize, usize) {
        (self.library_count.load(Relaxed), self.function_count.load(Relaxed))
    }

    /// The running function: its name, the command that called it, and
    /// when it started (ms).
    pub fn running_function(&self) -> Option<(String, Vec<Vec<u8>>, u64)> {
        let current = self.current_function.lock();
        current.as_ref().map(|(name, command)| (name.clone(), command.clone(), self.started_ms.load(Relaxed)))
    }

    /// FCALL: runs function `name`; Err(None) when there is none.
    #[allow(clippy::too_many_arguments)]
    pub fn call_function(
        &self,
        command: &[&[u8]],
        keys: &[&[u8]],
        args: &[&[u8]],
        run: Run,
        host: &mut dyn Host,
        memory_limit: usize,
        now_ms: u64,
    ) -> Result<super::Reply, Option<ScriptError>> {
        let name = String::from_utf8_lossy(command[1]).into_owned();
        let mut guard = crate::worker::lock(&self.functions);
        let Some(engine) = guard.as_mut() else { return Err(None) };
        let _ = engine.lua().set_memory_limit(memory_limit.max(1 << 20));
        *self.current_function.lock() = Some((name.clone(), command.iter().map(|a| a.to_vec()).collect()));
        self.begin_run(run, now_ms);
        let result = engine.call(&name, keys, args, run, host, &self.watch);
        self.running.store(false, Relaxed);
        *self.current_function.lock() = None;
        self.account_functions(guard.as_ref());
        result
    }
}
