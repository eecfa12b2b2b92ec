//! Lua scripting (EVAL, EVALSHA): one Lua 5.1 state per space, so a
//! tenant's scripts, globals and cache are its own, sandboxed as Redis
//! sandboxes them, with a memory cap. The state knows nothing of commands:
//! a script's `redis.call` reaches the server through the [`Host`] the
//! caller gives for the length of one run.

mod bound;
pub mod convert;
pub mod functions;
mod libs;
mod sandbox;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use mlua::{Function, Lua, MultiValue, Value as LuaValue};
use parking_lot::Mutex;
use sha1::{Digest, Sha1};

pub use convert::Reply;
pub use functions::Restore;
use watch::Watch;

/// What a script can ask of the server during one run.
pub trait Host {
    /// Runs one command for `redis.call`/`redis.pcall` (`spec`, found and
    /// checked against the script's rules): Ok with its reply, or Err with
    /// an error reply's text (the script decides what to do).
    fn call(
        &mut self,
        idx: usize,
        spec: &'static crate::commands::CommandSpec,
        argv: &[Vec<u8>],
        resp3: bool,
    ) -> Result<crate::protocol::Frame, String>;
    fn log(&mut self, level: i64, message: &str);
    /// `redis.acl_check_cmd`: whether the caller may run this command
    /// (None: no such command).
    fn may_run(&mut self, argv: &[Vec<u8>]) -> Option<bool>;
    /// A run that declared its flags begins: with `allow_oom` its writes
    /// skip the server's `maxmemory` check (never a tenant's own limit);
    /// without it (and without `no-writes`) it is refused, with this error,
    /// when the caller is already out of memory.
    fn begin(&mut self, allow_oom: bool, may_write: bool) -> Result<(), String>;
}

/// Redis's refusal of a script with flags that may write, or of a write
/// inside one, while out of memory.
pub fn refuse_if_out_of_memory(host: &mut dyn Host, flags: Flags) -> Result<(), Option<ScriptError>> {
    if !flags.shebang {
        return Ok(());
    }
    host.begin(flags.allow_oom, !flags.no_writes && !flags.allow_oom).map_err(|e| Some(ScriptError(e)))
}

/// A script's SHA-1, in lower-case hex (its EVALSHA name).
pub fn sha1_hex(body: &[u8]) -> String {
    let digest = Sha1::digest(body);
    let mut s = String::with_capacity(40);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The BUSY reply while a script (EVAL) runs.
pub const BUSY_SCRIPT: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

/// The BUSY reply while a function (FCALL) runs.
pub const BUSY_FUNCTION: &str = "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// Why a script run failed, as the reply's text (Redis's wording).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptError(pub String);

/// A space's scripts: the Lua state (created on first use) and the cache
/// of bodies by SHA-1.
#[derive(Default)]
pub struct Scripts {
    engine: Mutex<Option<Engine>>,
    /// SCRIPT KILL, writes and time of the running script.
    watch: Arc<Watch>,
    running: AtomicBool,
    /// When the running script started (ms), for BUSY replies.
    started_ms: AtomicU64,
    /// Bytes of cached bodies and the Lua heap: memory the space holds.
    bytes: AtomicU64,
    /// The space's function libraries and their Lua state (FUNCTION LOAD).
    functions: Mutex<Option<functions::FunctionsEngine>>,
    /// Libraries' code and their state's heap.
    function_bytes: AtomicU64,
    /// Libraries and functions loaded (FUNCTION STATS reads them while a
    /// function runs, holding `functions`).
    library_count: std::sync::atomic::AtomicUsize,
    function_count: std::sync::atomic::AtomicUsize,
    /// The function running, and the command that called it.
    current_function: Mutex<Option<(String, Vec<Vec<u8>>)>>,
}

struct Engine {
    lua: Lua,
    entry: sandbox::Entry,
    runs: u64,
    functions: HashMap<String, (Function, Flags)>,
    bodies: HashMap<String, Arc<[u8]>>,
    /// What `bodies` holds, kept as they are added (a run reads it).
    body_bytes: usize,
}

/// What a script's shebang line (`#!lua flags=...`) declares.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Flags {
    pub shebang: bool,
    pub no_writes: bool,
    pub allow_oom: bool,
}

pub const KNOWN_FLAGS: &[&str] = &["no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"];

/// Splits off and checks a shebang; returns its flags and the code to
/// compile (from the shebang's newline on, so line numbers stay).
pub fn parse_shebang(body: &[u8]) -> Result<(Flags, &[u8]), ScriptError> {
    if !body.starts_with(b"#!") {
        return Ok((Flags::default(), body));
    }
    let err = |m: String| ScriptError(format!("ERR {m}"));
    let nl = body.iter().position(|&b| b == b'\n').ok_or_else(|| err("Invalid script shebang".into()))?;
    // Split as Redis splits it (quotes allowed; unbalanced ones refused).
    let parts: Vec<String> = crate::protocol::parse::split_words(&body[..nl])
        .filter(|w| !w.is_empty())
        .ok_or_else(|| err("Invalid engine in script shebang".into()))?
        .iter()
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    if parts[0] != "#!lua" {
        return Err(err(format!("Unexpected engine in script shebang: {}", parts[0])));
    }
    let mut flags = Flags { shebang: true, ..Flags::default() };
    for part in &parts[1..] {
        let Some(list) = part.strip_prefix("flags=") else { return Err(err(format!("Unknown lua shebang option: {part}"))) };
        for flag in list.split(',').filter(|_| !list.is_empty()) {
            if !KNOWN_FLAGS.contains(&flag) {
                return Err(err(format!("Unexpected flag in script shebang: {flag}")));
            }
            flags.no_writes |= flag == "no-writes";
            flags.allow_oom |= flag == "allow-oom";
        }
    }
    Ok((flags, &body[nl..]))
}

impl Scripts {
    /// What the scripts hold: bodies, libraries and their Lua heaps.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed) + self.function_bytes.load(Relaxed)
    }

    /// (scripts, function libraries) as MEMORY STATS splits them.
    pub fn bytes_by_kind(&self) -> (u64, u64) {
        (self.bytes.load(Relaxed), self.function_bytes.load(Relaxed))
    }

    pub fn count(&self) -> usize {
        crate::worker::lock(&self.engine).as_ref().map_or(0, |e| e.bodies.len())
    }

    pub fn exists(&self, sha: &str) -> bool {
        crate::worker::lock(&self.engine).as_ref().is_some_and(|e| e.bodies.contains_key(&sha.to_ascii_lowercase()))
    }

    /// Compiles and caches a body (SCRIPT LOAD, EVAL); returns its SHA-1.
    pub fn load(&self, body: &[u8], memory_limit: usize) -> Result<String, ScriptError> {
        let mut guard = crate::worker::lock(&self.engine);
        let engine = self.engine_mut(&mut guard, memory_limit)?;
        let sha = sha1_hex(body);
        if !engine.functions.contains_key(&sha) {
            let (flags, code) = parse_shebang(body)?;
            let f = sandbox::compile(&engine.lua, code)?;
            engine.functions.insert(sha.clone(), (f, flags));
            engine.body_bytes += sha.len() + body.len() + 64;
            engine.bodies.insert(sha.clone(), body.into());
        }
        self.account(engine);
        Ok(sha)
    }

    fn engine_mut<'g>(&self, guard: &'g mut Option<Engine>, memory_limit: usize) -> Result<&'g mut Engine, ScriptError> {
        if guard.is_none() {
            let cannot = |e: mlua::Error| ScriptError(format!("ERR cannot start Lua: {e}"));
            let lua = sandbox::new_state(memory_limit, self.watch.clone()).map_err(cannot)?;
            let entry = sandbox::Entry::new(&lua).map_err(cannot)?;
            *guard = Some(Engine { lua, entry, runs: 0, functions: HashMap::new(), bodies: HashMap::new(), body_bytes: 0 });
        }
        let engine = guard.as_mut().expect("just made");
        let _ = engine.lua.set_memory_limit(memory_limit.max(1 << 20));
        Ok(engine)
    }

    fn account(&self, engine: &Engine) {
        self.bytes.store((engine.body_bytes + engine.lua.used_memory()) as u64, Relaxed);
    }

    /// SCRIPT FLUSH: forgets every script and starts a fresh Lua state.
    pub fn flush(&self) {
        *crate::worker::lock(&self.engine) = None;
        self.bytes.store(0, Relaxed);
    }

    /// Runs the cached script `sha` (lower-case hex) with KEYS and ARGV;
    /// `host` serves its `redis.call`s. Err(None) when it is not cached.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        sha: &str,
        keys: &[&[u8]],
        args: &[&[u8]],
        run: Run,
        host: &mut dyn Host,
        memory_limit: usize,
        now_ms: u64,
    ) -> Result<Reply, Option<ScriptError>> {
        let mut guard = crate::worker::lock(&self.engine);
        let engine = self.engine_mut(&mut guard, memory_limit).map_err(Some)?;
        let (f, flags) = engine.functions.get(sha).ok_or(None)?;
        if run.read_only && flags.shebang && !flags.no_writes {
            return Err(Some(ScriptError("ERR Can not execute a script with write flag using *_ro command.".into())));
        }
        let run = Run { read_only: run.read_only || flags.no_writes, ..run };
        refuse_if_out_of_memory(host, *flags)?;
        self.begin_run(run, now_ms);
        let given = bound::Given { keys, args, run, host, watch: &self.watch, as_function: false };
        let result = sandbox::invoke(&engine.entry, f, sha, given);
        self.running.store(false, Relaxed);
        // Lua's incremental collector keeps up on its own; a full collection
        // per run cost more than the run (Redis steps it every 50 runs).
        engine.runs += 1;
        if engine.runs.is_multiple_of(50) {
            let _ = engine.lua.gc_step();
        }
        self.account(engine);
        result.map_err(Some)
    }

    fn begin_run(&self, run: Run, now_ms: u64) {
        self.watch.start(run.on_worker);
        self.running.store(true, Relaxed);
        self.started_ms.store(now_ms, Relaxed);
    }

    /// SCRIPT KILL (`eval`) or FUNCTION KILL: Err with Redis's reply when
    /// nothing can be killed (a function is FUNCTION KILL's, a script
    /// SCRIPT KILL's).
    pub fn kill(&self, eval: bool) -> Result<(), ScriptError> {
        if !self.running.load(Relaxed) {
            return Err(ScriptError("NOTBUSY No scripts in execution right now.".into()));
        }
        if self.watch.wrote.load(Relaxed) {
            return Err(ScriptError(
                "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.".into(),
            ));
        }
        let function = self.current_function.lock().is_some();
        if eval && function {
            return Err(ScriptError(BUSY_FUNCTION.into()));
        }
        if !eval && !function {
            return Err(ScriptError(BUSY_SCRIPT.into()));
        }
        self.watch.kill.store(true, Relaxed);
        Ok(())
    }

    /// Stops the running script whatever it did (the server is shutting
    /// down, as SHUTDOWN NOSAVE stops one in Redis).
    pub fn abort(&self) {
        self.watch.kill.store(true, Relaxed);
    }

    /// Whether the running script has run long on a worker and handed it
    /// over: its space counts as busy until [`Scripts::end_long`].
    pub fn long_running(&self) -> bool {
        self.watch.long.load(Relaxed)
    }

    /// After a run: whether it had run long (its space's waiters are due a
    /// wake-up).
    pub fn end_long(&self) -> bool {
        self.watch.long.swap(false, Relaxed)
    }

    /// How long the running script has run, if one runs.
    pub fn running_for(&self, now_ms: u64) -> Option<u64> {
        self.running.load(Relaxed).then(|| now_ms.saturating_sub(self.started_ms.load(Relaxed)))
    }
}

/// How a script may act: whether it may write (EVAL_RO and `no-writes`
/// scripts may not), and the caller's protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    pub read_only: bool,
    pub resp3: bool,
    /// It runs on a runtime worker, to hand over if it runs long.
    pub on_worker: bool,
}

/// Collects a multi-value into owned command arguments.
fn command_args(args: MultiValue) -> Result<Vec<Vec<u8>>, &'static str> {
    let mut argv = Vec::with_capacity(args.len());
    for a in args {
        argv.push(match a {
            LuaValue::String(s) => s.as_bytes().to_vec(),
            LuaValue::Integer(n) => n.to_string().into_bytes(),
            LuaValue::Number(n) => convert::c_number_text(n).into_bytes(),
            _ => return Err("Lua redis lib command arguments must be strings or integers"),
        });
    }
    if argv.is_empty() {
        return Err("Please specify at least one argument for this redis lib call");
    }
    Ok(argv)
}
