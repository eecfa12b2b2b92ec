//! One running instance of a tenant's module: its own `Store`, made at
//! upload and reused by every call. Each call gets a fresh fuel budget and
//! epoch deadline; a trap, a refused answer or running out of either is a
//! [`CallError`], and the caller falls back to native behaviour.

use std::sync::Arc;

use ferrite_policy_abi as abi;
use wasmtime::{Memory, Store, StoreLimitsBuilder, Trap, TypedFunc};

use super::engine::{EPOCH_TICK, HostState, LogBudget};
use super::module::{Hook, PolicyModule};
use super::{PolicyConfig, PolicyError};

/// Largest answer a hook may return.
pub const MAX_OUTPUT: u32 = 1 << 20;

/// Why one call did not produce a usable answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("ran out of fuel ({0} per call)")]
    OutOfFuel(u64),
    #[error("ran past its {0} ms deadline")]
    Timeout(u64),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned an unusable answer: {0}")]
    BadReturn(String),
}

impl CallError {
    /// After these the instance's memory may be half-updated: it is replaced.
    pub fn poisons_instance(&self) -> bool {
        !matches!(self, CallError::BadReturn(_))
    }
}

pub struct PolicyInstance {
    store: Store<HostState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    hooks: [Option<TypedFunc<(i32, i32), i64>>; 3],
    /// The guest's input buffer and its size, reused while inputs fit.
    input: Option<(i32, usize)>,
    /// Where questions are encoded before they are copied in, reused.
    scratch: Vec<u8>,
}

/// The smallest input buffer asked for, so typical inputs need one `alloc`.
const MIN_INPUT: usize = 4096;

/// Entries a module's tables may hold: a table lives outside the linear
/// memory cap (8 bytes an entry), and a compiled policy needs a few hundred.
const MAX_TABLE_ELEMENTS: usize = 65_536;

fn deadline_ticks(cfg: &PolicyConfig) -> u64 {
    (cfg.timeout_ms * 1000 / EPOCH_TICK.as_micros() as u64).max(1)
}

impl PolicyInstance {
    /// Instantiates the module, checks its ABI version and hands it its
    /// CONFIG. Runs under the same limits as a call.
    pub fn new(module: &PolicyModule, tenant: Arc<str>, cfg: &PolicyConfig) -> Result<PolicyInstance, PolicyError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(cfg.memory_limit_bytes as usize)
            .table_elements(MAX_TABLE_ELEMENTS)
            .instances(1)
            .memories(1)
            .tables(4)
            .build();
        let log = LogBudget::new(cfg.log_lines_per_call, cfg.log_lines_per_second, cfg.log_line_bytes as usize);
        let mut store = Store::new(module.pre.module().engine(), HostState { tenant, limits, log });
        store.limiter(|s| &mut s.limits);
        store.set_fuel(cfg.fuel_per_call).map_err(|e| PolicyError::Start(e.to_string()))?;
        store.set_epoch_deadline(deadline_ticks(cfg));
        let start = |e: wasmtime::Error| PolicyError::Start(format!("{e:#}"));
        let instance = module.pre.instantiate(&mut store).map_err(start)?;
        let memory = instance.get_memory(&mut store, abi::EXPORT_MEMORY).ok_or(PolicyError::MissingExport(abi::EXPORT_MEMORY))?;
        let version = instance.get_typed_func::<(), i32>(&mut store, abi::EXPORT_VERSION).map_err(start)?;
        let alloc = instance.get_typed_func::<i32, i32>(&mut store, abi::EXPORT_ALLOC).map_err(start)?;
        let mut hooks = [None, None, None];
        for h in Hook::ALL {
            if module.has(h) {
                hooks[h as usize] = Some(instance.get_typed_func(&mut store, h.export()).map_err(start)?);
            }
        }
        let found = version.call(&mut store, ()).map_err(start)?;
        if found != abi::ABI_VERSION as i32 {
            return Err(PolicyError::AbiVersion { found, expected: abi::ABI_VERSION });
        }
        let mut me = PolicyInstance { store, memory, alloc, hooks, input: None, scratch: Vec::new() };
        if module.has_init {
            me.init(&instance, &module.config, cfg)?;
        }
        Ok(me)
    }

    fn init(&mut self, instance: &wasmtime::Instance, config: &[u8], cfg: &PolicyConfig) -> Result<(), PolicyError> {
        let init =
            instance.get_typed_func::<(i32, i32), i32>(&mut self.store, abi::EXPORT_INIT).map_err(|e| PolicyError::Start(e.to_string()))?;
        let ptr = self.write_input(config).map_err(|e| PolicyError::Start(e.to_string()))?;
        let rc =
            init.call(&mut self.store, (ptr, config.len() as i32)).map_err(|e| PolicyError::Start(self.explain(e, cfg).to_string()))?;
        if rc != 0 {
            let why = self.store.data().log.last_error.clone().map_or(String::new(), |m| format!(": {m}"));
            return Err(PolicyError::InitRefused(why));
        }
        Ok(())
    }

    fn write_input(&mut self, input: &[u8]) -> Result<i32, CallError> {
        let ptr = match self.input {
            Some((ptr, size)) if input.len() <= size => ptr,
            _ => {
                let size = input.len().max(MIN_INPUT);
                let len = i32::try_from(size).map_err(|_| CallError::BadReturn("input too large".into()))?;
                let ptr = self.alloc.call(&mut self.store, len).map_err(|e| CallError::Trap(format!("{e:#}")))?;
                if ptr == 0 {
                    return Err(CallError::BadReturn("ferrite_alloc returned 0".into()));
                }
                self.input = Some((ptr, size));
                ptr
            }
        };
        self.memory
            .write(&mut self.store, ptr as u32 as usize, input)
            .map_err(|_| CallError::BadReturn("ferrite_alloc returned a buffer outside its memory".into()))?;
        Ok(ptr)
    }

    /// Turns a wasmtime error into what the operator should read, with the
    /// guest's last error line (a panic message) when there is one.
    fn explain(&self, e: wasmtime::Error, cfg: &PolicyConfig) -> CallError {
        match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => CallError::OutOfFuel(cfg.fuel_per_call),
            Some(Trap::Interrupt) => CallError::Timeout(cfg.timeout_ms),
            _ => {
                let said = self.store.data().log.last_error.as_ref().map_or(String::new(), |m| format!(" (module said: {m})"));
                CallError::Trap(format!("{}{said}", e.root_cause()))
            }
        }
    }

    /// Runs one hook on the input `encode` writes (into a buffer this
    /// instance reuses) and decodes its answer where it lies in the module's
    /// memory. Returns the decoded answer and the fuel it burned.
    pub fn call<T>(
        &mut self,
        hook: Hook,
        encode: impl FnOnce(&mut abi::Writer),
        cfg: &PolicyConfig,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<(T, u64), CallError> {
        // Set before the input is written: a growing input calls `ferrite_alloc`.
        self.store.data_mut().log.start_call();
        self.store.set_fuel(cfg.fuel_per_call).map_err(|e| CallError::Trap(e.to_string()))?;
        self.store.set_epoch_deadline(deadline_ticks(cfg));
        let mut w = abi::Writer { buf: std::mem::take(&mut self.scratch) };
        w.buf.clear();
        encode(&mut w);
        let written = self.write_input(&w.buf);
        let len = w.buf.len() as i32;
        self.scratch = w.buf;
        let ptr = written?;
        // Borrowed, not cloned: cloning a TypedFunc clones its registered
        // type, several atomic operations per call.
        let Some(func) = &self.hooks[hook as usize] else {
            return Err(CallError::BadReturn(format!("no {} export", hook.export())));
        };
        let result = func.call(&mut self.store, (ptr, len)).map_err(|e| self.explain(e, cfg));
        let fuel = cfg.fuel_per_call - self.store.get_fuel().unwrap_or(0);
        let packed = result?;
        let (ptr, len) =
            abi::unpack(packed).ok_or_else(|| CallError::BadReturn(format!("{} reported failure ({packed})", hook.export())))?;
        if len > MAX_OUTPUT {
            return Err(CallError::BadReturn(format!("answer of {len} bytes is over {MAX_OUTPUT}")));
        }
        let data = self.memory.data(&self.store);
        let out = data
            .get(ptr as usize..ptr as usize + len as usize)
            .ok_or_else(|| CallError::BadReturn("answer lies outside its memory".into()))?;
        Ok((decode(out).map_err(CallError::BadReturn)?, fuel))
    }

    /// Log lines the budget refused so far.
    pub fn logs_dropped(&self) -> u64 {
        self.store.data().log.dropped
    }
}
