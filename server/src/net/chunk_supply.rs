//! Frame chunks mapped and faulted in ahead of need, off the cores.
//!
//! - Frame chunks are huge pages: an O_DIRECT write straight from a frame
//!   pins and sends each page of it, and from 4 KiB pages produce throughput
//!   was 7-10% lower (docs/PERFORMANCE.md, session 14).
//! - A fresh huge page costs its first touch: zeroing 2 MiB, and on a VM the
//!   host backing the guest's memory. Done by a core inside a request's
//!   receive, that put one 1 MB request in flight at a p99 of 11-13 ms
//!   against 4-8 ms, for as long as the batch caches grew; warm (no new
//!   pages), huge pages beat 4 KiB ones at every percentile. So a helper
//!   thread, started by the first demand (an idle broker maps nothing),
//!   keeps [`READY_CHUNKS`] chunks mapped and touched, and chunks a core's
//!   pool has no room for come back here before they are unmapped.
//!
//! Invariants: a chunk in the supply is [`CHUNK_BYTES`] from
//! `map_huge(CHUNK_BYTES)`, every page of it touched, and belongs to no
//! one else; the supply holds at most [`READY_CHUNKS`].

use std::ptr::NonNull;
use std::sync::{Condvar, Mutex, OnceLock};

use ringlog_engine::io::{map_huge, HUGE_PAGE_BYTES};

/// The size of every chunk the supply holds: one huge page.
pub const CHUNK_BYTES: usize = HUGE_PAGE_BYTES;
/// Chunks kept ready: at 1.2 GB/s of 1 MB frames a core takes one every
/// ~1.7 ms while its batch cache grows, and a supply of 16 MiB lasts ~14 ms
/// of that without the helper.
pub const READY_CHUNKS: usize = 8;
const PAGE_BYTES: usize = 4096;

/// A chunk's address, owned by whoever holds it.
struct ChunkAddress(NonNull<u8>);

// SAFETY: a chunk in the supply is referenced by nothing but this value.
unsafe impl Send for ChunkAddress {}

struct Supply {
    ready: Mutex<Vec<ChunkAddress>>,
    /// Signalled when a chunk is taken: the helper tops the supply up.
    taken: Condvar,
}

static SUPPLY: OnceLock<Option<&'static Supply>> = OnceLock::new();

/// The supply, its helper started on first use; `None` if the thread could
/// not be started (cores then map chunks themselves).
fn supply() -> Option<&'static Supply> {
    *SUPPLY.get_or_init(|| {
        let supply: &'static Supply = Box::leak(Box::new(Supply {
            ready: Mutex::new(Vec::with_capacity(READY_CHUNKS)),
            taken: Condvar::new(),
        }));
        let started = std::thread::Builder::new()
            .name("ringlog-chunks".into())
            .spawn(move || keep_supplied(supply));
        match started {
            Ok(_) => Some(supply),
            Err(error) => {
                tracing::warn!(%error, "no helper thread for frame chunks: cores map their own");
                None
            }
        }
    })
}

fn keep_supplied(supply: &'static Supply) -> ! {
    loop {
        let Ok(mut ready) = supply.ready.lock() else {
            unreachable!("the supply's lock is never held across a panic")
        };
        while ready.len() >= READY_CHUNKS {
            ready = supply
                .taken
                .wait(ready)
                .unwrap_or_else(|_| unreachable!("the supply's lock is never held across a panic"));
        }
        drop(ready);
        let chunk = map_touched();
        give_back_to(supply, chunk);
    }
}

/// A chunk every page of which is in memory.
fn map_touched() -> NonNull<u8> {
    let chunk = map_huge(CHUNK_BYTES);
    for offset in (0..CHUNK_BYTES).step_by(PAGE_BYTES) {
        // SAFETY: inside the mapping just made, which no one else holds.
        // Volatile, so the write that faults the page in is not elided.
        unsafe { chunk.as_ptr().add(offset).write_volatile(0) };
    }
    chunk
}

/// A ready chunk of [`CHUNK_BYTES`], if the supply has one.
pub fn take() -> Option<NonNull<u8>> {
    let supply = supply()?;
    let chunk = supply.ready.lock().ok()?.pop()?;
    supply.taken.notify_one();
    Some(chunk.0)
}

/// Keeps `chunk` (a [`CHUNK_BYTES`] chunk from this module or the pools,
/// with no frame left in it) if the supply has room; otherwise unmaps it.
pub fn give_back(chunk: NonNull<u8>) {
    match supply() {
        Some(supply) => give_back_to(supply, chunk),
        None => unmap(chunk),
    }
}

fn give_back_to(supply: &Supply, chunk: NonNull<u8>) {
    let Ok(mut ready) = supply.ready.lock() else {
        return unmap(chunk);
    };
    if ready.len() < READY_CHUNKS {
        ready.push(ChunkAddress(chunk));
    } else {
        drop(ready);
        unmap(chunk);
    }
}

fn unmap(chunk: NonNull<u8>) {
    // SAFETY: the caller's contract: a CHUNK_BYTES mapping nothing refers
    // to. A failure only leaves address space mapped.
    unsafe { libc::munmap(chunk.as_ptr().cast(), CHUNK_BYTES) };
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Waits (for at most 10 s) until the helper has filled the supply.
    pub(crate) fn wait_until_ready() {
        let supply = supply().expect("the helper thread starts");
        for _ in 0..10_000 {
            if supply
                .ready
                .lock()
                .map(|ready| ready.len() == READY_CHUNKS)
                .unwrap_or(false)
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("the supply was not filled within 10 s");
    }

    fn resident_pages(chunk: NonNull<u8>) -> usize {
        let mut residency = vec![0u8; CHUNK_BYTES / PAGE_BYTES];
        // SAFETY: the chunk is a mapping of CHUNK_BYTES; the vector has a
        // byte per page of it.
        let status = unsafe { libc::mincore(chunk.as_ptr().cast(), CHUNK_BYTES, residency.as_mut_ptr()) };
        assert_eq!(status, 0, "mincore: {}", std::io::Error::last_os_error());
        residency.iter().filter(|&&page| page & 1 == 1).count()
    }

    #[test]
    fn a_chunk_from_the_supply_is_in_memory_before_anyone_writes_to_it() {
        wait_until_ready();
        let chunk = take().expect("a ready chunk");
        assert_eq!(chunk.as_ptr() as usize % HUGE_PAGE_BYTES, 0, "on a huge-page boundary");
        assert_eq!(resident_pages(chunk), CHUNK_BYTES / PAGE_BYTES);
        give_back(chunk);
    }

    #[test]
    fn the_supply_is_topped_up_after_a_take_and_never_holds_more_than_its_cap() {
        wait_until_ready();
        let mut taken = Vec::new();
        while taken.len() < READY_CHUNKS {
            match take() {
                Some(chunk) => taken.push(chunk),
                None => wait_until_ready(),
            }
        }
        wait_until_ready();
        for chunk in taken {
            give_back(chunk);
        }
        let held = supply().map(|supply| supply.ready.lock().map(|ready| ready.len()));
        assert!(
            matches!(held, Some(Ok(held)) if held <= READY_CHUNKS),
            "the chunks beyond the cap were unmapped: {held:?}"
        );
    }
}
