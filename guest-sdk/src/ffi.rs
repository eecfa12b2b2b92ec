//! The raw boundary, and the only `unsafe` of the SDK: host imports, the
//! exports' plumbing that [`export_policy!`](crate::export_policy) expands
//! to, and (on wasm32) the allocator and the panic handler.

use alloc::alloc::{Layout, alloc as raw_alloc, dealloc};
use alloc::vec::Vec;
use core::cell::UnsafeCell;

pub use ferrite_policy_abi::EvictOutput;
use ferrite_policy_abi::{Wire, pack};

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "ferrite")]
unsafe extern "C" {
    #[link_name = "log"]
    fn ferrite_log(level: i32, ptr: i32, len: i32);
    #[link_name = "now_ms"]
    fn ferrite_now_ms() -> i64;
}

#[cfg(target_arch = "wasm32")]
pub fn host_log(level: i32, message: &str) {
    // SAFETY: the host reads `len` bytes at `ptr` of our memory, in the call.
    unsafe { ferrite_log(level, message.as_ptr() as i32, message.len() as i32) }
}

#[cfg(target_arch = "wasm32")]
pub fn host_now() -> u64 {
    // SAFETY: a plain host call without arguments.
    unsafe { ferrite_now_ms() as u64 }
}

#[cfg(not(target_arch = "wasm32"))]
std::thread_local! {
    /// Per thread, so tests running in parallel each have their own clock.
    pub static MOCK_NOW: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

#[cfg(not(target_arch = "wasm32"))]
pub fn host_log(_level: i32, _message: &str) {}

#[cfg(not(target_arch = "wasm32"))]
pub fn host_now() -> u64 {
    MOCK_NOW.with(|n| n.get())
}

/// The policy instance and the last output buffer. A wasm module runs on one
/// thread and the host never re-enters it, so plain cells are enough.
pub struct State<T> {
    policy: UnsafeCell<Option<T>>,
    output: UnsafeCell<Vec<u8>>,
}

// SAFETY: wasm32-unknown-unknown modules are single-threaded, and the host
// calls one export at a time.
unsafe impl<T> Sync for State<T> {}

impl<T> State<T> {
    pub const fn new() -> Self {
        State { policy: UnsafeCell::new(None), output: UnsafeCell::new(Vec::new()) }
    }
}

impl<T> Default for State<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn layout(len: i32) -> Option<Layout> {
    Layout::array::<u8>((len.max(1)) as usize).ok()
}

/// Room for an input buffer the host is about to write; 0 on failure.
pub fn alloc(len: i32) -> i32 {
    match layout(len) {
        // SAFETY: a non-zero-sized layout.
        Some(l) if len >= 0 => unsafe { raw_alloc(l) as i32 },
        _ => 0,
    }
}

/// Takes back the input buffer the host filled: copies it out and frees it.
fn take_input(ptr: i32, len: i32) -> Option<Vec<u8>> {
    let l = layout(len)?;
    if ptr == 0 || len < 0 {
        return None;
    }
    // SAFETY: `ptr` came from `alloc(len)` and the host wrote `len` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(ptr as *const u8, len as usize) }.to_vec();
    // SAFETY: same pointer and layout as the allocation.
    unsafe { dealloc(ptr as *mut u8, l) };
    Some(bytes)
}

/// `ferrite_init`: builds the policy from the CONFIG blob.
pub fn init<T: crate::Policy>(state: &State<T>, ptr: i32, len: i32) -> i32 {
    let Some(config) = take_input(ptr, len) else { return 2 };
    match T::init(&config) {
        Ok(p) => {
            // SAFETY: single-threaded, and no reference into the cell is live.
            unsafe { *state.policy.get() = Some(p) };
            0
        }
        Err(msg) => {
            host_log(ferrite_policy_abi::LOG_ERROR, &alloc::format!("init refused the CONFIG: {msg}"));
            1
        }
    }
}

/// A hook export: decode the input, run the policy, keep the encoded answer
/// until the next call and return where it is. -1 when the input does not
/// decode or init never ran.
pub fn hook<T, I: Wire, O: Wire>(state: &State<T>, ptr: i32, len: i32, f: impl FnOnce(&mut T, I) -> O) -> i64 {
    let Some(bytes) = take_input(ptr, len) else { return -1 };
    let Ok(input) = I::from_bytes(&bytes) else { return -1 };
    // SAFETY: single-threaded; the host does not re-enter the module during a call.
    let Some(policy) = (unsafe { &mut *state.policy.get() }) else { return -1 };
    let out = f(policy, input).to_bytes();
    // SAFETY: as above; the previous output is no longer read by the host.
    let slot = unsafe { &mut *state.output.get() };
    *slot = out;
    pack(slot.as_ptr() as u32, slot.len() as u32)
}

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// Sends the panic message to the host's log before trapping, so the
/// operator sees why instead of a bare `unreachable`.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let msg = match info.location() {
        Some(l) => alloc::format!("panic at {}:{}: {}", l.file(), l.line(), info.message()),
        None => alloc::format!("panic: {}", info.message()),
    };
    host_log(ferrite_policy_abi::LOG_ERROR, &msg);
    core::arch::wasm32::unreachable()
}
