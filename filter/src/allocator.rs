//! The filter's heap allocator: free lists of power-of-two size classes, carved from
//! chunks the system allocator hands out.
//!
//! wasi-libc's `malloc` costs the filter ≈ 1,400 wasm instructions and `free` ≈ 460
//! (host-sim, a 96-byte block), and a request makes several allocations (the header
//! map, its index, the stream context); a configure makes hundreds of thousands for a
//! large policy. Blocks of up to [`MAX_CLASS`] bytes are kept on a free list per size
//! class when freed and handed out again at a few instructions; a class with an empty
//! list takes its next block from the current [`CHUNK`] of [`System`] memory by bumping a
//! pointer. Larger blocks, and alignments above [`ALIGN`], go to the system allocator.
//! Chunks are not returned to it: a VM's heap never shrinks anyway, and the lists are
//! bounded by the peak use of each class.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr::null_mut;

/// Smallest class (bytes); also the alignment every class block has.
pub const ALIGN: usize = 16;
/// Largest class (bytes).
pub const MAX_CLASS: usize = 4096;
/// Bytes taken from the system at a time for class blocks (one wasm page).
pub const CHUNK: usize = 64 * 1024;
/// Classes: 16, 32, …, 4096.
const CLASSES: usize = (MAX_CLASS / ALIGN).trailing_zeros() as usize + 1;

/// A freed block, linked through its first word.
struct Free {
    next: *mut Free,
}

/// Size-class free lists over [`System`]. Not `Sync` on its own: the proxy-wasm VM is
/// single-threaded, which is what makes it a sound global allocator there.
pub struct SizeClasses {
    heads: UnsafeCell<[*mut Free; CLASSES]>,
    /// What is left of the current chunk: its next free byte and how many bytes remain.
    chunk: UnsafeCell<(*mut u8, usize)>,
}

impl SizeClasses {
    /// Empty lists, no chunk yet.
    pub const fn new() -> Self {
        Self {
            heads: UnsafeCell::new([null_mut(); CLASSES]),
            chunk: UnsafeCell::new((null_mut(), 0)),
        }
    }

    /// A fresh block of `size` bytes (a class size) from the current chunk, or from a new
    /// one when it has less left (the rest of the old chunk is not used again).
    ///
    /// # Safety
    /// As [`GlobalAlloc::alloc`]; `size` is a class size.
    unsafe fn carve(&self, size: usize) -> *mut u8 {
        let (next, left) = &mut *self.chunk.get();
        if *left < size {
            let fresh = System.alloc(Layout::from_size_align_unchecked(CHUNK, ALIGN));
            if fresh.is_null() {
                return fresh;
            }
            (*next, *left) = (fresh, CHUNK);
        }
        let block = *next;
        *next = block.add(size);
        *left -= size;
        block
    }
}

// SAFETY: without the `atomics` feature a wasm32 module runs on one thread: the lists
// are never touched concurrently.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for SizeClasses {}

impl Default for SizeClasses {
    fn default() -> Self {
        Self::new()
    }
}

/// The class of `layout`, if it has one: index and block size.
fn class(layout: Layout) -> Option<(usize, usize)> {
    if layout.size() > MAX_CLASS || layout.align() > ALIGN {
        return None;
    }
    let size = layout.size().max(ALIGN).next_power_of_two();
    Some(((size / ALIGN).trailing_zeros() as usize, size))
}

// SAFETY: blocks of a class are `size` bytes aligned to `ALIGN` (carved at multiples of
// 16 from chunks aligned to `ALIGN`, never past a chunk's end); a block is on at most one
// list, and only while it is free; chunks are never freed.
unsafe impl GlobalAlloc for SizeClasses {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((i, size)) = class(layout) else {
            return System.alloc(layout);
        };
        let heads = &mut *self.heads.get();
        let head = heads[i];
        if head.is_null() {
            return self.carve(size);
        }
        heads[i] = (*head).next;
        head.cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some((i, _)) = class(layout) else {
            return System.dealloc(ptr, layout);
        };
        let heads = &mut *self.heads.get();
        let block: *mut Free = ptr.cast();
        (*block).next = heads[i];
        heads[i] = block;
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = Layout::from_size_align_unchecked(new_size, layout.align());
        match (class(layout), class(new)) {
            // The block is big enough already.
            (Some((a, _)), Some((b, _))) if a == b => ptr,
            (None, None) => System.realloc(ptr, layout, new_size),
            _ => {
                let out = self.alloc(new);
                if !out.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, out, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn sizes_map_to_power_of_two_classes() {
        assert_eq!(CLASSES, 9);
        assert_eq!(class(layout(0, 1)), Some((0, 16)));
        assert_eq!(class(layout(16, 8)), Some((0, 16)));
        assert_eq!(class(layout(17, 1)), Some((1, 32)));
        assert_eq!(class(layout(4096, 16)), Some((8, 4096)));
        assert_eq!(class(layout(4097, 1)), None);
        assert_eq!(class(layout(64, 32)), None);
    }

    #[test]
    fn freed_blocks_are_reused_by_their_class_only() {
        let a = SizeClasses::new();
        unsafe {
            let l = layout(40, 8);
            let p = a.alloc(l);
            assert_eq!(p as usize % ALIGN, 0);
            p.write_bytes(0xab, 40);
            a.dealloc(p, l);
            // Same class (33..=64 bytes): the same block, last in first out.
            let q = a.alloc(layout(64, 4));
            assert_eq!(q, p);
            let r = a.alloc(layout(40, 8));
            assert_ne!(r, q);
            // Another class does not take it.
            a.dealloc(r, layout(40, 8));
            let s = a.alloc(layout(100, 8));
            assert_ne!(s, r);
            a.dealloc(q, layout(64, 4));
            a.dealloc(s, layout(100, 8));
        }
    }

    #[test]
    fn realloc_keeps_the_contents_across_classes_and_to_the_system() {
        let a = SizeClasses::new();
        unsafe {
            let l = layout(20, 4);
            let p = a.alloc(l);
            for i in 0..20 {
                p.add(i).write(i as u8);
            }
            // Within the class: the same block.
            assert_eq!(a.realloc(p, l, 30), p);
            let big = a.realloc(p, layout(30, 4), 10_000);
            let grown: Vec<u8> = (0..20).map(|i| big.add(i).read()).collect();
            assert_eq!(grown, (0..20).collect::<Vec<u8>>());
            let small = a.realloc(big, layout(10_000, 4), 8);
            let kept: Vec<u8> = (0..8).map(|i| small.add(i).read()).collect();
            assert_eq!(kept, (0..8).collect::<Vec<u8>>());
            a.dealloc(small, layout(8, 4));
        }
    }

    #[test]
    fn fresh_blocks_are_carved_from_one_chunk_until_it_runs_out() {
        let a = SizeClasses::new();
        unsafe {
            let first = a.alloc(layout(100, 8));
            let second = a.alloc(layout(24, 8));
            // 128 bytes for the first (its class), then the next 32-byte block.
            assert_eq!(second as usize - first as usize, 128);
            assert_eq!(first as usize % ALIGN, 0);
            // Fill the chunk with 4 KiB blocks: the last one that fits, then a new chunk.
            let fit = (CHUNK - 128 - 32) / 4096;
            let big: Vec<*mut u8> = (0..fit).map(|_| a.alloc(layout(4096, 16))).collect();
            assert_eq!(big[0] as usize - first as usize, 160);
            let next = a.alloc(layout(4096, 16));
            let ends = first as usize + CHUNK;
            assert!(next as usize >= ends || (next as usize) + 4096 <= first as usize);
            next.write_bytes(7, 4096);
            assert!(big.iter().all(|&b| b as usize + 4096 <= ends));
        }
    }

    #[test]
    fn many_live_blocks_do_not_overlap() {
        let a = SizeClasses::new();
        unsafe {
            let blocks: Vec<(usize, *mut u8)> = (0..200)
                .map(|i| {
                    let size = 1 + (i * 37) % 3000;
                    let p = a.alloc(layout(size, 8));
                    p.write_bytes(i as u8, size);
                    (size, p)
                })
                .collect();
            for (i, &(size, p)) in blocks.iter().enumerate() {
                assert!((0..size).all(|k| p.add(k).read() == i as u8), "block {i}");
            }
            for (size, p) in blocks {
                a.dealloc(p, layout(size, 8));
            }
        }
    }
}
