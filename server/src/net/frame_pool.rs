//! Buffers for large request frames, reused instead of freed.
//!
//! A produce frame's batches live on in the batch cache. When the cache
//! dropped them, the frame's memory went back to mimalloc, which returns
//! freed memory to the kernel in bursts on whichever thread allocates next: a
//! trace caught ~200 `madvise` calls (10.6 ms) on a core inside one 1 MB
//! request's receive, and the next frame was read into fresh pages (0.5-0.8
//! ms of page faults for 1 MB on the development VM). So a frame of at least
//! [`POOLED_FRAME_BYTES_MIN`] is read into a buffer from this pool, and the
//! buffer comes back to the pool of the thread that drops its last `Bytes`
//! (the owner core's, for a cached batch).
//!
//! Invariants: a thread's pool keeps at most [`POOL_BYTES_MAX`] (beyond that
//! buffers are freed); a buffer is owned by one `Bytes` owner at a time and
//! returns to a pool at most once.

use std::cell::RefCell;

use bytes::Bytes;
use ringlog_engine::io::smallest_fit;

/// Frames this large or larger are read into pooled buffers; smaller ones
/// share the connection's read buffer.
pub const POOLED_FRAME_BYTES_MIN: usize = 256 * 1024;
/// Buffers come in multiples of this, so that frames of nearly one size
/// (librdkafka's and the bench's 1 MB requests) share buffers.
const BUFFER_GRANULE_BYTES: usize = 64 * 1024;
/// What one thread's pool keeps at most.
const POOL_BYTES_MAX: usize = 64 * 1024 * 1024;

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { free: Vec::new(), pooled_bytes: 0 }) };
}

struct Pool {
    free: Vec<Vec<u8>>,
    pooled_bytes: usize,
}

/// A buffer of at least `len` bytes: a pooled one (its pages already
/// touched) if one fits, else a new one.
pub fn take(len: usize) -> FrameBuffer {
    let wanted = len.div_ceil(BUFFER_GRANULE_BYTES) * BUFFER_GRANULE_BYTES;
    let pooled = POOL
        .try_with(|pool| {
            let mut pool = pool.borrow_mut();
            // The smallest that fits, at most a quarter larger.
            let best = smallest_fit(pool.free.iter().map(Vec::len), wanted..=wanted + wanted / 4)?;
            let buffer = pool.free.swap_remove(best);
            pool.pooled_bytes -= buffer.len();
            Some(buffer)
        })
        .ok()
        .flatten();
    FrameBuffer(pooled.unwrap_or_else(|| vec![0; wanted]))
}

/// A buffer being filled with one frame.
pub struct FrameBuffer(Vec<u8>);

impl FrameBuffer {
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// The first `len` bytes as `Bytes`; the buffer returns to a pool when
    /// the last of them is dropped.
    pub fn freeze(self, len: usize) -> Bytes {
        assert!(len <= self.0.len(), "frame longer than its buffer");
        Bytes::from_owner(self).slice(..len)
    }
}

impl AsRef<[u8]> for FrameBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for FrameBuffer {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.0);
        // Past the cap, or while the thread is exiting, the buffer is freed.
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.pooled_bytes + buffer.len() <= POOL_BYTES_MAX {
                pool.pooled_bytes += buffer.len();
                pool.free.push(buffer);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled_bytes() -> usize {
        POOL.with(|pool| pool.borrow().pooled_bytes)
    }

    #[test]
    fn a_dropped_frame_buffer_is_reused_for_a_frame_of_about_its_size() {
        let mut first = take(1_000_000);
        first.as_mut_slice()[..3].copy_from_slice(b"abc");
        let address = first.as_ref().as_ptr() as usize;
        let frame = first.freeze(1_000_000);
        let tail = frame.slice(10..20);
        drop(frame);
        assert_eq!(pooled_bytes(), 0, "a slice still holds it");
        drop(tail);
        assert_eq!(pooled_bytes(), 1_048_576);
        let again = take(1_000_123);
        assert_eq!(again.as_ref().as_ptr() as usize, address, "the same buffer");
        assert_eq!(pooled_bytes(), 0);
        let much_smaller = take(300_000);
        assert_ne!(much_smaller.as_ref().as_ptr() as usize, address);
        drop(again);
        drop(much_smaller);
        assert!(pooled_bytes() <= POOL_BYTES_MAX);
    }

    #[test]
    fn the_pool_keeps_at_most_its_cap() {
        let buffers: Vec<FrameBuffer> = (0..80).map(|_| take(1 << 20)).collect();
        drop(buffers);
        assert_eq!(pooled_bytes(), POOL_BYTES_MAX);
    }
}
