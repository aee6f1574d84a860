//! The memory frame chunks are mapped in, and chunks mapped and touched
//! ahead of need, off the cores.
//!
//! - Huge pages pay where a fresh one is cheap: an O_DIRECT write straight
//!   from a frame pins and sends each page of it, and from huge-page chunks
//!   produce ran 7-10% faster than from 4 KiB pages (docs/PERFORMANCE.md,
//!   sessions 14-15).
//! - A fresh huge page costs its first touch: zeroing 2 MiB, and on a VM
//!   whose host takes freed guest memory back (virtio-balloon free page
//!   reporting, of whole 2 MiB blocks) the host backing it again: 6.6-8.1
//!   ms against 1.3-1.4 ms for 2 MiB of 4 KiB pages on the development VM,
//!   where the first fill of the batch caches then took half the broker's
//!   CPU. So with `socket.request.huge.pages=auto` the helper times fresh
//!   chunks of 4 KiB pages once and every huge one it touches, and turns to
//!   4 KiB pages for good once huge ones cost more ([`PageCosts`]).
//! - Faulted in by a core inside a request's receive, a fresh huge page put
//!   one 1 MB request in flight at a p99 of 11-13 ms against 4-8 ms while
//!   the batch caches grew. So a helper thread, started by the first demand
//!   (an idle broker maps nothing), keeps [`READY_CHUNKS`] chunks mapped and
//!   touched, and chunks a core's pool has no room for come back here before
//!   they are unmapped.
//!
//! Invariants: a chunk in the supply is [`CHUNK_BYTES`], every page of it
//! touched, and belongs to no one else; the supply holds at most
//! [`READY_CHUNKS`]; with `auto`, pages change at most once (huge to 4 KiB).

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ringlog_engine::io::{map_huge, map_small_pages, HUGE_PAGE_BYTES};

use crate::config::Switch;

/// The size of every chunk the supply holds: one huge page.
pub const CHUNK_BYTES: usize = HUGE_PAGE_BYTES;
/// Chunks kept ready: at 1.2 GB/s of 1 MB frames a core takes one every
/// ~1.7 ms while its batch cache grows, and a supply of 16 MiB lasts ~14 ms
/// of that without the helper.
pub const READY_CHUNKS: usize = 8;
const PAGE_BYTES: usize = 4096;
/// Fresh 4 KiB-page chunks timed for `auto` (the median counts).
const PROBE_CHUNKS: usize = 5;

/// The pages new chunks are mapped in: [`UNDECIDED`] until configured or
/// probed (chunks are mapped in 4 KiB pages meanwhile).
static PAGES: AtomicU8 = AtomicU8::new(UNDECIDED);
const UNDECIDED: u8 = 0;
const SMALL_PAGES: u8 = 1;
const HUGE_PAGES: u8 = 2;

/// Applies `socket.request.huge.pages`; with `auto`, huge pages until the
/// helper finds them costlier than 4 KiB pages ([`PageCosts`]).
pub fn choose_pages(huge_pages: Switch) {
    let pages = match huge_pages {
        Switch::On => HUGE_PAGES,
        Switch::Off => SMALL_PAGES,
        Switch::Auto => UNDECIDED,
    };
    PAGES.store(pages, Ordering::Relaxed);
}

/// Whether new chunks are huge pages; `None` while `auto` has not started.
pub fn huge_pages_in_use() -> Option<bool> {
    match PAGES.load(Ordering::Relaxed) {
        UNDECIDED => None,
        pages => Some(pages == HUGE_PAGES),
    }
}

fn huge_pages_chosen() -> bool {
    PAGES.load(Ordering::Relaxed) == HUGE_PAGES
}

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
    // With `auto`, huge pages until they are seen to cost more.
    let mut auto_costs = (PAGES.load(Ordering::Relaxed) == UNDECIDED).then(|| {
        let costs = PageCosts::new(small_pages_cost());
        PAGES.store(HUGE_PAGES, Ordering::Relaxed);
        costs
    });
    loop {
        let Ok(mut ready) = supply.ready.lock() else {
            unreachable!("the supply's lock is never held across a panic")
        };
        // With 4 KiB pages chosen the helper only waits: cores map those
        // cheaply themselves.
        while ready.len() >= READY_CHUNKS || !huge_pages_chosen() {
            ready = supply
                .taken
                .wait(ready)
                .unwrap_or_else(|_| unreachable!("the supply's lock is never held across a panic"));
        }
        drop(ready);
        let chunk = map_huge(CHUNK_BYTES);
        let touch_time = timed(|| touch(chunk));
        give_back_to(supply, chunk);
        if let Some(costs) = auto_costs.as_mut() {
            if !costs.huge_pages_pay(touch_time) {
                tracing::info!(
                    huge_page_us = costs.recent_huge_mean().as_micros() as u64,
                    small_pages_us = costs.small.as_micros() as u64,
                    "fresh huge pages cost more than 4 KiB pages here: large request frames in 4 KiB \
                     pages from now on (socket.request.huge.pages=auto)"
                );
                PAGES.store(SMALL_PAGES, Ordering::Relaxed);
                auto_costs = None;
            }
        }
    }
}

fn timed(work: impl FnOnce()) -> Duration {
    let started = Instant::now();
    work();
    started.elapsed()
}

/// Faults every page of a fresh [`CHUNK_BYTES`] chunk in.
fn touch(chunk: NonNull<u8>) {
    for offset in (0..CHUNK_BYTES).step_by(PAGE_BYTES) {
        // SAFETY: inside the chunk, which no one else holds yet. Volatile,
        // so the write that faults the page in is not elided.
        unsafe { chunk.as_ptr().add(offset).write_volatile(0) };
    }
}

/// The median time to fault a fresh chunk in, in 4 KiB pages.
fn small_pages_cost() -> Duration {
    let mut times: Vec<Duration> = (0..PROBE_CHUNKS)
        .map(|_| {
            let chunk = map_small_pages(CHUNK_BYTES);
            let time = timed(|| touch(chunk));
            unmap(chunk);
            time
        })
        .collect();
    times.sort_unstable();
    times[PROBE_CHUNKS / 2]
}

/// What fresh chunks have cost to fault in, for `auto`. The first few huge
/// pages can be cheap where later ones are not (the development VM's host
/// leaves a handful of free 2 MiB blocks backed: 0.2-0.4 ms each for the
/// first 6-10, then 6-10 ms), so huge pages are judged on a window of the
/// latest rather than on a first sample.
struct PageCosts {
    small: Duration,
    recent_huge: VecDeque<Duration>,
}

/// Huge-page chunks judged together: 32 MiB.
const HUGE_COST_WINDOW: usize = 16;

impl PageCosts {
    fn new(small: Duration) -> Self {
        Self {
            small,
            recent_huge: VecDeque::with_capacity(HUGE_COST_WINDOW),
        }
    }

    /// Records one fresh huge page's cost; false once a full window of them
    /// cost more on average than fresh 4 KiB pages.
    fn huge_pages_pay(&mut self, huge: Duration) -> bool {
        if self.recent_huge.len() == HUGE_COST_WINDOW {
            self.recent_huge.pop_front();
        }
        self.recent_huge.push_back(huge);
        self.recent_huge.len() < HUGE_COST_WINDOW || self.recent_huge_mean() <= self.small
    }

    fn recent_huge_mean(&self) -> Duration {
        let total: Duration = self.recent_huge.iter().sum();
        total / self.recent_huge.len().max(1) as u32
    }
}

/// A ready chunk of [`CHUNK_BYTES`], if the supply has one.
pub fn take() -> Option<NonNull<u8>> {
    let supply = supply()?;
    let chunk = supply.ready.lock().ok()?.pop()?;
    // With 4 KiB pages the helper would only wake to wait again: a wake-up
    // of the other CPU for nothing.
    if huge_pages_chosen() {
        supply.taken.notify_one();
    }
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

/// A fresh chunk of `len` bytes (whole chunks) in the pages chosen, mapped
/// on the caller's thread: for a frame larger than a chunk, or when the
/// supply ran dry. Unmapped with `munmap(chunk, len)`.
pub fn map_now(len: usize) -> NonNull<u8> {
    assert!(len.is_multiple_of(CHUNK_BYTES), "{len} bytes are not whole chunks");
    if huge_pages_chosen() {
        map_huge(len)
    } else {
        map_small_pages(len)
    }
}

fn unmap(chunk: NonNull<u8>) {
    // SAFETY: the caller's contract: a CHUNK_BYTES mapping nothing refers
    // to. A failure only leaves address space mapped.
    unsafe { libc::munmap(chunk.as_ptr().cast(), CHUNK_BYTES) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chooses huge pages and waits (at most 10 s) until the helper has
    /// filled the supply.
    fn wait_until_ready() {
        let supply = supply().expect("the helper thread starts");
        for _ in 0..10_000 {
            // Again each time: a helper started with `auto` by another test
            // may turn to 4 KiB pages once.
            choose_pages(Switch::On);
            if supply
                .ready
                .lock()
                .map(|ready| ready.len() == READY_CHUNKS)
                .unwrap_or(false)
            {
                return;
            }
            // The helper may be waiting from before huge pages were chosen.
            supply.taken.notify_one();
            std::thread::sleep(Duration::from_millis(1));
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

    #[test]
    fn fresh_small_pages_are_timed() {
        assert!(!small_pages_cost().is_zero());
    }

    #[test]
    fn huge_pages_stop_once_a_window_of_them_cost_more_than_small_pages() {
        let ms = |millis: f64| Duration::from_secs_f64(millis / 1000.0);
        // The development VM: a few cheap, then backed again by the host.
        let mut costs = PageCosts::new(ms(1.4));
        let vm = std::iter::repeat_n(ms(0.3), 8).chain(std::iter::repeat(ms(7.0)));
        let paid = vm.take(100).take_while(|&huge| costs.huge_pages_pay(huge)).count();
        assert_eq!(paid, HUGE_COST_WINDOW - 1, "judged at the first full window");
        // Bare metal: zeroing 2 MiB beats 512 faults, whatever one outlier costs.
        let mut costs = PageCosts::new(ms(1.4));
        let metal = std::iter::repeat_n(0.25, 15).chain([9.0]).cycle().map(ms);
        assert!(metal.take(1000).all(|huge| costs.huge_pages_pay(huge)));
    }
}
