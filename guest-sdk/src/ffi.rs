//! The raw boundary, and with `heap` the only `unsafe` of the SDK: host
//! imports, the exports' plumbing that [`export_policy!`](crate::export_policy)
//! expands to, and (on wasm32) the global allocator and the panic handler.

use alloc::vec::Vec;
use core::cell::UnsafeCell;

pub use ferrite_policy_abi::EvictOutput;
use ferrite_policy_abi::{Wire, Writer, pack};

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

/// The policy instance. A wasm module runs on one thread and the host never
/// re-enters it, so plain cells are enough.
pub struct State<T> {
    policy: UnsafeCell<Option<T>>,
}

// SAFETY: wasm32-unknown-unknown modules are single-threaded, and the host
// calls one export at a time.
unsafe impl<T> Sync for State<T> {}

impl<T> State<T> {
    pub const fn new() -> Self {
        State { policy: UnsafeCell::new(None) }
    }
}

impl<T> Default for State<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A buffer reused from call to call, so a decision allocates neither its
/// input nor its output.
struct Buffer(UnsafeCell<Vec<u8>>);

// SAFETY: as for `State`.
unsafe impl Sync for Buffer {}

impl Buffer {
    /// SAFETY: the caller holds no other reference into this buffer.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self) -> &mut Vec<u8> {
        // SAFETY: see the function's contract.
        unsafe { &mut *self.0.get() }
    }
}

/// Where the host writes a call's input.
static INPUT: Buffer = Buffer(UnsafeCell::new(Vec::new()));
/// Where a hook leaves its answer until the next call.
static OUTPUT: Buffer = Buffer(UnsafeCell::new(Vec::new()));

/// `ferrite_alloc`: room for the input the host is about to write (the same
/// buffer each time, grown as needed); 0 for a negative length.
pub fn alloc(len: i32) -> i32 {
    let Ok(len) = usize::try_from(len) else { return 0 };
    // SAFETY: no borrow of INPUT outlives a call, and the host is between calls.
    let buf = unsafe { INPUT.get() };
    buf.clear();
    buf.reserve(len.max(1));
    buf.as_mut_ptr() as i32
}

/// Lends `f` the input the host wrote into [`INPUT`]. Decoded values borrow
/// from it, so nothing is copied. `None` if `ptr`/`len` are not that buffer.
fn with_input<R>(ptr: i32, len: i32, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    // SAFETY: single-threaded, and the slice does not outlive this call.
    let buf = unsafe { INPUT.get() };
    let len = usize::try_from(len).ok()?;
    if ptr != buf.as_ptr() as i32 || len > buf.capacity() {
        return None;
    }
    // SAFETY: the host wrote `len` bytes into the buffer's spare capacity.
    let input = unsafe { core::slice::from_raw_parts(buf.as_ptr(), len) };
    Some(f(input))
}

/// `ferrite_init`: builds the policy from the CONFIG blob.
pub fn init<T: crate::Policy>(state: &State<T>, ptr: i32, len: i32) -> i32 {
    let made = with_input(ptr, len, |config| T::init(config));
    match made {
        Some(Ok(p)) => {
            // SAFETY: single-threaded, and no reference into the cell is live.
            unsafe { *state.policy.get() = Some(p) };
            0
        }
        Some(Err(msg)) => {
            host_log(ferrite_policy_abi::LOG_ERROR, &alloc::format!("init refused the CONFIG: {msg}"));
            1
        }
        None => 2,
    }
}

/// A hook export: decode the input, run the policy, leave the encoded
/// answer in [`OUTPUT`] and return where it is. -1 when the input does not
/// decode or init never ran.
pub fn hook<T>(state: &State<T>, ptr: i32, len: i32, f: impl FnOnce(&mut T, &[u8], &mut Writer) -> Option<()>) -> i64 {
    // SAFETY: single-threaded; the host does not re-enter the module during a call.
    let Some(policy) = (unsafe { &mut *state.policy.get() }) else { return -1 };
    // SAFETY: as above; the host no longer reads the previous answer.
    let out = unsafe { OUTPUT.get() };
    let mut w = Writer { buf: core::mem::take(out) };
    w.buf.clear();
    let ok = with_input(ptr, len, |bytes| f(policy, bytes, &mut w)).flatten().is_some();
    *out = w.buf;
    if ok { pack(out.as_ptr() as u32, out.len() as u32) } else { -1 }
}

/// Decodes a hook's input, runs the policy, encodes its answer into `out`;
/// `None` when the input does not decode.
pub fn decide<'a, T, I: Wire<'a>, O: Wire<'a>>(
    policy: &mut T,
    bytes: &'a [u8],
    out: &mut Writer,
    f: impl FnOnce(&mut T, I) -> O,
) -> Option<()> {
    let input = I::from_bytes(bytes).ok()?;
    f(policy, input).encode(out);
    Some(())
}

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: crate::heap::Classes<dlmalloc::GlobalDlmalloc> = crate::heap::Classes::new(dlmalloc::GlobalDlmalloc);

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
