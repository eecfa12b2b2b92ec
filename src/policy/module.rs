//! From uploaded bytes to a compiled, checked module ready to instantiate.
//!
//! Everything that can be checked without running the module is checked
//! here, with an error that names the problem: size, format, imports (only
//! ours), the required exports and every signature.

use std::sync::Arc;

use ferrite_policy_abi as abi;
use sha2::{Digest, Sha256};
use wasmtime::{ExternType, FuncType, InstancePre, Module, ValType};

use super::engine::{HostState, runtime};
use super::{PolicyConfig, PolicyError};

/// The decision points a module may implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Evict = 0,
    Quota = 1,
    Bill = 2,
}

impl Hook {
    pub const ALL: [Hook; 3] = [Hook::Evict, Hook::Quota, Hook::Bill];

    pub fn export(self) -> &'static str {
        match self {
            Hook::Evict => abi::EXPORT_EVICT,
            Hook::Quota => abi::EXPORT_QUOTA,
            Hook::Bill => abi::EXPORT_BILL,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hook::Evict => "eviction",
            Hook::Quota => "quota",
            Hook::Bill => "billing",
        }
    }

    pub fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A validated, compiled upload. Cheap to instantiate again (after a trap,
/// or on rollback).
pub struct PolicyModule {
    /// SHA-256 of the bytes, hex.
    pub hash: String,
    pub bytes: Arc<[u8]>,
    /// The CONFIG blob handed to `ferrite_init`.
    pub config: Arc<[u8]>,
    /// Bit set of [`Hook::bit`].
    pub hooks: u8,
    pub has_init: bool,
    pub pre: InstancePre<HostState>,
}

/// Signatures as short strings: `i` is i32, `I` is i64, `>` separates
/// parameters from results.
fn signature(t: &FuncType) -> String {
    let code = |v: ValType| match v {
        ValType::I32 => 'i',
        ValType::I64 => 'I',
        ValType::F32 => 'f',
        ValType::F64 => 'F',
        _ => '?',
    };
    let mut s: String = t.params().map(code).collect();
    s.push('>');
    s.extend(t.results().map(code));
    s
}

const SIG_LOG: &str = "iii>";
const SIG_NOW: &str = ">I";
const SIG_VERSION: &str = ">i";
const SIG_ALLOC: &str = "i>i";
const SIG_INIT: &str = "ii>i";
const SIG_HOOK: &str = "ii>I";

fn describe(sig: &'static str) -> &'static str {
    match sig {
        SIG_LOG => "(i32, i32, i32) -> ()",
        SIG_NOW => "() -> i64",
        SIG_VERSION => "() -> i32",
        SIG_ALLOC => "(i32) -> i32",
        SIG_INIT => "(i32, i32) -> i32",
        _ => "(i32, i32) -> i64",
    }
}

fn check_func(what: &'static str, name: &str, ty: &ExternType, want: &'static str) -> Result<(), PolicyError> {
    match ty {
        ExternType::Func(f) if signature(f) == want => Ok(()),
        _ => Err(PolicyError::WrongType { what, name: name.into(), expected: describe(want) }),
    }
}

fn check_imports(module: &Module) -> Result<(), PolicyError> {
    for i in module.imports() {
        let want = match (i.module(), i.name()) {
            (abi::IMPORT_MODULE, abi::IMPORT_LOG) => SIG_LOG,
            (abi::IMPORT_MODULE, abi::IMPORT_NOW) => SIG_NOW,
            (m, n) => return Err(PolicyError::ForbiddenImport(format!("{m}.{n}"))),
        };
        check_func("import", &format!("{}.{}", i.module(), i.name()), &i.ty(), want)?;
    }
    Ok(())
}

/// Checks the exports; returns the hooks present and whether init is.
fn check_exports(module: &Module) -> Result<(u8, bool), PolicyError> {
    let find = |name: &str| module.exports().find(|e| e.name() == name).map(|e| e.ty());
    match find(abi::EXPORT_MEMORY) {
        Some(ExternType::Memory(_)) => {}
        Some(_) => return Err(PolicyError::WrongType { what: "export", name: abi::EXPORT_MEMORY.into(), expected: "a memory" }),
        None => return Err(PolicyError::MissingExport(abi::EXPORT_MEMORY)),
    }
    for (name, sig) in [(abi::EXPORT_VERSION, SIG_VERSION), (abi::EXPORT_ALLOC, SIG_ALLOC)] {
        let ty = find(name).ok_or(PolicyError::MissingExport(name))?;
        check_func("export", name, &ty, sig)?;
    }
    let has_init = match find(abi::EXPORT_INIT) {
        Some(ty) => check_func("export", abi::EXPORT_INIT, &ty, SIG_INIT).map(|_| true)?,
        None => false,
    };
    let mut hooks = 0;
    for h in Hook::ALL {
        if let Some(ty) = find(h.export()) {
            check_func("export", h.export(), &ty, SIG_HOOK)?;
            hooks |= h.bit();
        }
    }
    if hooks == 0 {
        return Err(PolicyError::NoHooks);
    }
    Ok((hooks, has_init))
}

impl PolicyModule {
    /// Validates and compiles an upload. Slow (milliseconds to a hundred):
    /// never call it on the event loop.
    pub fn compile(bytes: &[u8], config: &[u8], cfg: &PolicyConfig) -> Result<PolicyModule, PolicyError> {
        if bytes.len() as u64 > cfg.max_module_bytes {
            return Err(PolicyError::TooLarge { size: bytes.len(), max: cfg.max_module_bytes });
        }
        if bytes.len() < 8 || bytes[..8] != *b"\0asm\x01\0\0\0" {
            return Err(PolicyError::NotWasm);
        }
        let rt = runtime();
        let module = Module::new(&rt.engine, bytes).map_err(|e| PolicyError::Invalid(format!("{e:#}")))?;
        check_imports(&module)?;
        let (hooks, has_init) = check_exports(&module)?;
        let pre = rt.linker.instantiate_pre(&module).map_err(|e| PolicyError::Invalid(format!("{e:#}")))?;
        Ok(PolicyModule {
            hash: Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect(),
            bytes: bytes.into(),
            config: config.into(),
            hooks,
            has_init,
            pre,
        })
    }

    /// The same compiled module with another CONFIG blob.
    pub fn with_config(&self, config: &[u8]) -> PolicyModule {
        PolicyModule {
            hash: self.hash.clone(),
            bytes: self.bytes.clone(),
            config: config.into(),
            hooks: self.hooks,
            has_init: self.has_init,
            pre: self.pre.clone(),
        }
    }

    pub fn has(&self, hook: Hook) -> bool {
        self.hooks & hook.bit() != 0
    }

    /// Names of the hooks present, e.g. `eviction,quota`.
    pub fn hook_names(&self) -> String {
        Hook::ALL.iter().filter(|h| self.has(**h)).map(|h| h.name()).collect::<Vec<_>>().join(",")
    }
}
