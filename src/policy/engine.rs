//! The process's one wasmtime `Engine` and `Linker`, created on first use
//! (a server whose tenants never upload a policy never starts them), and the
//! host functions every module may import.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ferrite_policy_abi as abi;
use wasmtime::{Caller, Config, Engine, Linker, StoreLimits};

/// How often the epoch advances: the resolution of every call's deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// What a module's `Store` carries: who it belongs to, its memory cap and
/// its log budget.
pub struct HostState {
    pub tenant: Arc<str>,
    pub limits: StoreLimits,
    pub log: LogBudget,
}

/// Caps a module's logging per call and per second, so a chatty (or
/// hostile) policy cannot flood the server's log.
pub struct LogBudget {
    pub per_call: u32,
    pub per_second: u32,
    pub line_bytes: usize,
    left_this_call: u32,
    window_start: Instant,
    in_window: u32,
    /// Lines refused by the budget, for the policy's info.
    pub dropped: u64,
    /// The last error-level line, which a guest panic handler writes just
    /// before it traps: it explains the trap.
    pub last_error: Option<String>,
}

impl LogBudget {
    pub fn new(per_call: u32, per_second: u32, line_bytes: usize) -> LogBudget {
        LogBudget {
            per_call,
            per_second,
            line_bytes,
            left_this_call: per_call,
            window_start: Instant::now(),
            in_window: 0,
            dropped: 0,
            last_error: None,
        }
    }

    pub fn start_call(&mut self) {
        self.left_this_call = self.per_call;
        self.last_error = None;
    }

    fn admit(&mut self) -> bool {
        if self.window_start.elapsed() >= Duration::from_secs(1) {
            self.window_start = Instant::now();
            self.in_window = 0;
        }
        if self.left_this_call == 0 || self.in_window >= self.per_second {
            self.dropped += 1;
            return false;
        }
        self.left_this_call -= 1;
        self.in_window += 1;
        true
    }
}

pub struct Runtime {
    pub engine: Engine,
    pub linker: Linker<HostState>,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The shared engine and linker; the first call starts the epoch ticker.
pub fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        let engine = Engine::new(&engine_config()).expect("a static, valid wasmtime configuration");
        let linker = linker(&engine);
        start_ticker(engine.clone());
        Runtime { engine, linker }
    })
}

fn engine_config() -> Config {
    let mut c = Config::new();
    // Fuel bounds work deterministically; the epoch bounds wall-clock time.
    c.consume_fuel(true);
    c.epoch_interruption(true);
    // Deep recursion traps early instead of using the default 512 KiB.
    c.max_wasm_stack(256 << 10);
    c
}

fn start_ticker(engine: Engine) {
    std::thread::Builder::new()
        .name("ferrite-policy-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawn the epoch thread");
}

fn linker(engine: &Engine) -> Linker<HostState> {
    let mut l = Linker::new(engine);
    l.func_wrap(abi::IMPORT_MODULE, abi::IMPORT_LOG, host_log).expect("define ferrite.log");
    l.func_wrap(abi::IMPORT_MODULE, abi::IMPORT_NOW, host_now).expect("define ferrite.now_ms");
    l
}

/// `ferrite.log(level, ptr, len)`: a bad pointer or an exhausted budget
/// drops the line rather than trapping; logging must never break a decision.
fn host_log(mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32) {
    if !caller.data_mut().log.admit() {
        return;
    }
    let Some(memory) = caller.get_export(abi::EXPORT_MEMORY).and_then(|e| e.into_memory()) else { return };
    let max = caller.data().log.line_bytes;
    let (start, len) = (ptr as u32 as usize, (len as u32 as usize).min(max));
    let Some(bytes) = memory.data(&caller).get(start..start.saturating_add(len)) else { return };
    let line = String::from_utf8_lossy(bytes).into_owned();
    let tenant = caller.data().tenant.clone();
    match level {
        abi::LOG_ERROR => {
            tracing::error!(tenant = %tenant, "policy: {line}");
            caller.data_mut().log.last_error = Some(line);
        }
        abi::LOG_WARN => tracing::warn!(tenant = %tenant, "policy: {line}"),
        abi::LOG_INFO => tracing::info!(tenant = %tenant, "policy: {line}"),
        _ => tracing::debug!(tenant = %tenant, "policy: {line}"),
    }
}

/// `ferrite.now_ms()`: the only clock a module sees.
fn host_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
