//! The guest's allocator: free lists of power-of-two blocks in front of a
//! general allocator (dlmalloc on wasm32).
//!
//! Why: a decision decodes its candidates into a `Vec`, a policy builds a
//! few small `Vec`s, and all of it is freed before the call returns. Under
//! fuel every wasm instruction counts, and dlmalloc's malloc/free pair costs
//! hundreds of them; popping and pushing a free list costs about ten. Blocks
//! up to [`MAX_SMALL`] bytes are kept for reuse (never handed back), so a
//! module's footprint is its peak use per size, which the host's memory cap
//! bounds anyway; larger blocks go straight to the backing allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

/// Largest block served from the free lists.
pub const MAX_SMALL: usize = 4096;
/// Smallest block: room for the free list's link on any target.
const MIN_SMALL: usize = 16;
const CLASSES: usize = (MAX_SMALL / MIN_SMALL).trailing_zeros() as usize + 1;

/// Free lists in front of `B`. Single-threaded only: wasm32 modules are, and
/// the native unit tests use one per test.
pub struct Classes<B> {
    backing: B,
    /// The head of each class's list of free blocks; a free block's first
    /// word points to the next.
    free: UnsafeCell<[*mut u8; CLASSES]>,
}

// SAFETY: used only where there is one thread (see the type's doc).
unsafe impl<B: Sync> Sync for Classes<B> {}

impl<B> Classes<B> {
    pub const fn new(backing: B) -> Self {
        Classes { backing, free: UnsafeCell::new([ptr::null_mut(); CLASSES]) }
    }
}

/// The class of a layout and its block size, or `None` for a large one.
/// A block is aligned to its size, so it satisfies any alignment up to it.
fn class_of(layout: Layout) -> Option<(usize, usize)> {
    let size = layout.size().max(layout.align()).max(MIN_SMALL).next_power_of_two();
    (size <= MAX_SMALL).then(|| ((size / MIN_SMALL).trailing_zeros() as usize, size))
}

unsafe impl<B: GlobalAlloc> GlobalAlloc for Classes<B> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((class, size)) = class_of(layout) else {
            // SAFETY: forwarded with the caller's layout.
            return unsafe { self.backing.alloc(layout) };
        };
        // SAFETY: single-threaded, and no other reference to the lists is live.
        let free = unsafe { &mut *self.free.get() };
        let head = free[class];
        if head.is_null() {
            // SAFETY: size and alignment are a non-zero power of two.
            return unsafe { self.backing.alloc(Layout::from_size_align_unchecked(size, size)) };
        }
        // SAFETY: `head` is a free block of this class; its first word is the link.
        free[class] = unsafe { head.cast::<*mut u8>().read() };
        head
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some((class, _)) = class_of(layout) else {
            // SAFETY: it came from the backing allocator with this layout.
            return unsafe { self.backing.dealloc(block, layout) };
        };
        // SAFETY: as in `alloc`; the block is ours again and big enough for a link.
        unsafe {
            let free = &mut *self.free.get();
            block.cast::<*mut u8>().write(free[class]);
            free[class] = block;
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid layout for `new_size`.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new)) {
            // Still fits the block it has: nothing to move.
            (Some((a, _)), Some((b, _))) if a == b => block,
            // SAFETY: both large: the backing allocator owns it with this layout.
            (None, None) => unsafe { self.backing.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: as for GlobalAlloc's default realloc.
                unsafe {
                    let moved = self.alloc(new);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;
    use std::vec::Vec;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn blocks_are_aligned_distinct_and_reused() {
        let heap = Classes::new(System);
        let sizes = [1, 7, 16, 17, 56, 100, 896, 4096, 4097, 70_000];
        let blocks: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let l = layout(n, 1 << (i % 4));
                // SAFETY: a valid non-zero layout.
                let p = unsafe { heap.alloc(l) };
                assert!(!p.is_null() && (p as usize).is_multiple_of(l.align()));
                // SAFETY: the block holds `n` bytes.
                unsafe { ptr::write_bytes(p, i as u8, n) };
                (p, l, i as u8)
            })
            .collect();
        for &(p, l, fill) in &blocks {
            // SAFETY: each block is still ours: no other write may have reached it.
            let bytes = unsafe { core::slice::from_raw_parts(p, l.size()) };
            assert!(bytes.iter().all(|&b| b == fill), "block of {} bytes was overwritten", l.size());
        }
        let (p, l, _) = blocks[4];
        // SAFETY: freed once, then the same class is asked for again.
        unsafe {
            heap.dealloc(p, l);
            assert_eq!(heap.alloc(layout(60, 8)), p, "a freed block of the class is reused first");
        }
    }

    #[test]
    fn realloc_keeps_the_contents_across_classes_and_sizes() {
        let heap = Classes::new(System);
        let mut l = layout(10, 4);
        // SAFETY: valid layouts throughout; each pointer is the latest.
        unsafe {
            let mut p = heap.alloc(l);
            ptr::copy_nonoverlapping(b"0123456789".as_ptr(), p, 10);
            for n in [12, 100, 5000, 90_000, 3000, 10] {
                let same = heap.realloc(p, l, n);
                if n == 12 {
                    assert_eq!(same, p, "growing inside the block does not move it");
                }
                p = same;
                l = layout(n, 4);
                assert_eq!(core::slice::from_raw_parts(p, 10), b"0123456789");
            }
            heap.dealloc(p, l);
        }
    }
}
