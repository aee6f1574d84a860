//! Memory for large request frames: chunks carved into frames in the order
//! a connection reads them, and reused instead of freed.
//!
//! - A produce frame's batches live on in the batch cache. When the cache
//!   dropped them, the frame's memory went back to mimalloc, which returns
//!   freed memory to the kernel in bursts on whichever thread allocates next:
//!   a trace caught ~200 `madvise` calls (10.6 ms) on a core inside one 1 MB
//!   request's receive, and the next frame was read into fresh pages (0.5-0.8
//!   ms of page faults for 1 MB on the development VM). Chunks are mapped
//!   once and come back to a pool instead.
//! - A produce frame's batch is written to its O_DIRECT segment straight
//!   from the frame (`ringlog_engine::direct_layout`), so two 1 MB frames
//!   share a 2 MiB chunk and cached frames cost about their size.
//! - Chunks are huge pages where a fresh one is cheap, mapped and faulted
//!   in ahead of need by [`chunk_supply`]'s helper thread; a core maps one
//!   itself only when the supply ran dry or for a frame larger than a chunk.
//!
//! Invariants: a chunk is written only in its part not yet handed out (the
//! reader's [`FrameArena`] moves past every range it reserves); a chunk
//! returns to the pool of the thread that drops its last frame once the
//! arena has moved on (when the chunk is full, or the connection idle); a
//! thread's pool keeps at most [`POOL_BYTES_MAX`], and hands the chunks
//! beyond that to the supply.

use std::cell::RefCell;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::Arc;

use bytes::Bytes;

use super::chunk_supply::{self, CHUNK_BYTES};

/// Frames this large or larger are read into chunks; smaller ones share the
/// connection's read buffer.
pub const POOLED_FRAME_BYTES_MIN: usize = 256 * 1024;
// The usual chunk (`CHUNK_BYTES`, a huge page): two 1 MB requests
// (librdkafka's and the bench's) fit, with room to place each. Larger
// frames get a chunk of their own size.
const _: () = assert!(2 * (1 << 20) <= CHUNK_BYTES);
/// What one thread's pool keeps at most.
const POOL_BYTES_MAX: usize = 64 * 1024 * 1024;

thread_local! {
    static POOL: RefCell<Vec<NonNull<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Anonymous memory that frames are carved from.
struct Chunk {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the chunk is plain memory. Its bytes are written only through a
// `FrameSpace`, whose range no one else holds, and read only through the
// `Bytes` it became.
unsafe impl Send for Chunk {}
unsafe impl Sync for Chunk {}

impl Chunk {
    fn take(len: usize) -> Self {
        let len = len.next_multiple_of(CHUNK_BYTES);
        let pooled = (len == CHUNK_BYTES)
            .then(|| POOL.try_with(|pool| pool.borrow_mut().pop()).ok().flatten())
            .flatten();
        let supplied = || (len == CHUNK_BYTES).then(chunk_supply::take).flatten();
        Self {
            ptr: pooled.or_else(supplied).unwrap_or_else(|| chunk_supply::map_now(len)),
            len,
        }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let ptr = self.ptr;
        if self.len != CHUNK_BYTES {
            // SAFETY: mapped by map_now(self.len) in `take`; no frame of it
            // is left (this is the last reference).
            unsafe { libc::munmap(ptr.as_ptr().cast(), self.len) };
            return;
        }
        // Past the pool's cap, or while the thread exits: to the supply.
        let pooled = POOL
            .try_with(|pool| {
                let mut pool = pool.borrow_mut();
                let keep = (pool.len() + 1) * CHUNK_BYTES <= POOL_BYTES_MAX;
                if keep {
                    pool.push(ptr);
                }
                keep
            })
            .unwrap_or(false);
        if !pooled {
            chunk_supply::give_back(ptr);
        }
    }
}

/// A connection's current chunk and how much of it is handed out.
#[derive(Default)]
pub struct FrameArena {
    current: Option<(Arc<Chunk>, usize)>,
}

impl FrameArena {
    /// Room for a frame of `len` bytes that starts `shift(address)` bytes
    /// past the first free address of a chunk: the caller's placement of
    /// the frame (`shift` must return less than `max_shift`).
    pub fn reserve(&mut self, len: usize, max_shift: usize, shift: impl Fn(usize) -> usize) -> FrameSpace {
        let fits = |(chunk, used): &(Arc<Chunk>, usize)| used + max_shift + len <= chunk.len;
        if !self.current.as_ref().is_some_and(fits) {
            self.current = Some((Arc::new(Chunk::take(len + max_shift)), 0));
        }
        let Some((chunk, used)) = self.current.as_mut() else {
            unreachable!("a chunk was just put in place")
        };
        let free_address = chunk.ptr.as_ptr() as usize + *used;
        let offset = shift(free_address);
        assert!(offset < max_shift.max(1), "placement beyond the room reserved for it");
        let start = *used + offset;
        *used = start + len;
        let space = FrameSpace {
            chunk: chunk.clone(),
            range: start..start + len,
        };
        // A chunk without room for another large frame is the frames' alone.
        if chunk.len - *used < POOLED_FRAME_BYTES_MIN + max_shift {
            self.current = None;
        }
        space
    }

    pub fn holds_chunk(&self) -> bool {
        self.current.is_some()
    }

    /// Lets go of the current chunk (an idle connection should not keep
    /// one); its frames keep it until they are dropped.
    pub fn release(&mut self) {
        self.current = None;
    }
}

/// A frame's bytes, reserved in a chunk, being filled.
pub struct FrameSpace {
    chunk: Arc<Chunk>,
    range: Range<usize>,
}

impl FrameSpace {
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the range lies in the chunk's mapping, and the arena never
        // hands it out again, so this is the only reference to those bytes.
        unsafe { std::slice::from_raw_parts_mut(self.chunk.ptr.as_ptr().add(self.range.start), self.range.len()) }
    }

    /// The filled frame; its chunk is reused once its last frame is dropped.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for FrameSpace {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: as in `as_mut_slice`; frozen, the bytes are only read.
        unsafe { std::slice::from_raw_parts(self.chunk.ptr.as_ptr().add(self.range.start), self.range.len()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled_chunks() -> usize {
        POOL.with(|pool| pool.borrow().len())
    }

    #[test]
    fn two_large_frames_share_a_chunk_which_is_reused_once_both_are_dropped() {
        let mut arena = FrameArena::default();
        let mut first = arena.reserve(1_000_000, 4096, |_| 0);
        first.as_mut_slice().fill(1);
        let first = first.freeze();
        let mut second = arena.reserve(1_000_000, 4096, |address| (4096 - address % 4096) % 4096);
        second.as_mut_slice().fill(2);
        let second = second.freeze();
        assert_eq!(second.as_ptr() as usize % 4096, 0, "placed as asked");
        assert!(
            first.iter().all(|&b| b == 1) && second.iter().all(|&b| b == 2),
            "disjoint"
        );
        let chunk_address = first.as_ptr() as usize;
        assert_eq!(chunk_address % 4096, 0, "chunks start on a page");
        let third = arena.reserve(1_000_000, 4096, |_| 0).freeze();
        assert_ne!(
            third.as_ptr() as usize / CHUNK_BYTES,
            chunk_address / CHUNK_BYTES,
            "a new chunk"
        );
        let pooled_before = pooled_chunks();
        let slice = first.slice(10..20);
        drop((first, second));
        assert_eq!(
            pooled_chunks(),
            pooled_before,
            "a slice of the first frame still holds the chunk"
        );
        drop(slice);
        assert_eq!(pooled_chunks(), pooled_before + 1, "back in the pool");
        let mut again = FrameArena::default();
        let reused = again.reserve(500_000, 0, |_| 0).freeze();
        assert_eq!(reused.as_ptr() as usize, chunk_address, "the pooled chunk");
    }

    #[test]
    fn a_frame_larger_than_a_chunk_gets_one_of_its_own() {
        let mut arena = FrameArena::default();
        let mut big = arena.reserve(5_000_000, 4096, |_| 17);
        big.as_mut_slice()[4_999_999] = 9;
        let big = big.freeze();
        assert_eq!((big.len(), big[4_999_999]), (5_000_000, 9));
    }

    #[test]
    fn the_pool_keeps_at_most_its_cap() {
        let frames: Vec<Bytes> = (0..80)
            .map(|_| FrameArena::default().reserve(POOLED_FRAME_BYTES_MIN, 0, |_| 0).freeze())
            .collect();
        drop(frames);
        assert_eq!(pooled_chunks() * CHUNK_BYTES, POOL_BYTES_MAX);
    }
}
