//! The I/O seam: the only module that names the async runtime (tokio-uring).
//! Replacing the runtime (compio, say) means rewriting this file, not the log.
//!
//! Invariants:
//! - In [`IoMode::Direct`] every write starts and ends on a
//!   [`DIRECT_IO_ALIGNMENT_BYTES`] boundary from an aligned buffer; the partly
//!   filled last block is kept in memory and rewritten by the next write.
//!   Bytes past the logical end of a segment are padding, never data.
//! - At most one write is in flight per [`SegmentWriter`] (the partition's
//!   writer task serialises them), so the in-memory tail block cannot race.
//! - In [`IoMode::Direct`] a write never extends the file: the file is grown
//!   ahead with `fallocate` first. On ext4 (and XFS) an O_DIRECT write past
//!   the end of file cannot run asynchronously, so io_uring hands it to a
//!   kernel worker thread that writes synchronously; measured here that
//!   turned a ~0.1 ms device write into a 1-3 ms produce. The zeros past the
//!   logical end are padding like the rest of the tail block: recovery stops
//!   at them and sealing cuts them off.
//! - In [`IoMode::Buffered`] a write of at most [`INLINE_WRITE_BYTES_MAX`]
//!   runs inline, on the calling thread, when the caller allows it and no
//!   recent inline write on this thread blocked; others go through io_uring.
//! - A [`DirectReader`] read covers whole blocks and hands back exactly the
//!   range asked for, or fails: never fewer bytes.

use std::alloc::{alloc, dealloc, Layout};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_uring::buf::BoundedBuf;

use crate::direct_layout::{self, WritePiece};
use crate::limits::DIRECT_IO_ALIGNMENT_BYTES;

const ALIGN: usize = DIRECT_IO_ALIGNMENT_BYTES;
/// The first preallocation of a segment file; later ones grow it by its
/// current size, up to [`PREALLOCATE_BYTES_MAX`]. Growing with the file keeps
/// what thousands of barely written partitions reserve small.
const PREALLOCATE_BYTES_MIN: u64 = 64 * 1024;
const PREALLOCATE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// How segment files are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// O_DIRECT through io_uring: bypasses the page cache, so sustained ingest is
    /// bounded by the device, not by the kernel's dirty-page writeback.
    Direct,
    /// Ordinary buffered writes through io_uring into the page cache.
    Buffered,
}

impl std::str::FromStr for IoMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "direct" => Ok(Self::Direct),
            "buffered" => Ok(Self::Buffered),
            other => Err(format!("unknown io mode {other:?} (expected direct or buffered)")),
        }
    }
}

/// Runs a task on the current core's event loop.
pub fn spawn_local<F: Future + 'static>(task: F) {
    tokio_uring::spawn(task);
}

/// How long a panicked service task waits before it starts again.
const SUPERVISED_RESTART_DELAY: Duration = Duration::from_secs(1);

/// Runs a long-lived service task (a timer, the cleaner) on the current
/// core, starting it again whenever it panics. The runtime would catch the
/// panic and carry on without the task: retention or compaction that stopped
/// in silence is worse than one that logs the panic and tries again.
pub fn spawn_supervised<F, Fut>(name: &'static str, start: F)
where
    F: FnMut() -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    spawn_supervised_with_delay(name, start, SUPERVISED_RESTART_DELAY);
}

fn spawn_supervised_with_delay<F, Fut>(name: &'static str, mut start: F, restart_delay: Duration)
where
    F: FnMut() -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    tokio_uring::spawn(async move {
        loop {
            match tokio_uring::spawn(start()).await {
                Err(error) if error.is_panic() => {
                    tracing::error!(
                        task = name,
                        ?restart_delay,
                        "a service task panicked; starting it again"
                    );
                    tokio::time::sleep(restart_delay).await;
                }
                // Finished, or cancelled as the runtime shuts down.
                _ => return,
            }
        }
    });
}

/// Tries an aligned O_DIRECT write in `dir`; returns the mode to use there.
/// tmpfs and some network filesystems refuse O_DIRECT.
pub fn probe_direct_io(dir: &Path) -> IoMode {
    let probe_path = dir.join(".direct-io-probe");
    let result = (|| -> io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&probe_path)?;
        let buf = AlignedBuf::zeroed(ALIGN);
        file.write_all_at(buf.as_slice(), 0)
    })();
    let _ = std::fs::remove_file(&probe_path);
    match result {
        Ok(()) => IoMode::Direct,
        Err(error) => {
            tracing::warn!(
                dir = %dir.display(),
                %error,
                "filesystem refuses O_DIRECT; segments use the page cache (log.io.mode=buffered)"
            );
            IoMode::Buffered
        }
    }
}

/// A heap buffer aligned for O_DIRECT. Owned, so io_uring may hold it.
/// Its memory comes from, and returns to, the thread's [`BufferPool`].
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    capacity: usize,
}

impl AlignedBuf {
    /// A zero-filled buffer of `len` bytes, capacity rounded up to the alignment.
    pub fn zeroed(len: usize) -> Self {
        let mut buf = Self::uninit(len);
        // SAFETY: the allocation holds `capacity` bytes.
        unsafe { std::ptr::write_bytes(buf.ptr.as_ptr(), 0, buf.capacity) };
        buf.len = len;
        buf
    }

    /// `parts` concatenated, then zeros up to the next alignment boundary.
    /// Only the padding is zeroed: every other byte is written once, so large
    /// O_DIRECT writes do not pay for clearing memory they overwrite.
    pub fn concat(parts: &[&[u8]]) -> Self {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut buf = Self::uninit(len);
        let padded_len = align_up(len.max(1) as u64) as usize;
        let mut at = 0;
        for part in parts {
            // SAFETY: at + part.len() <= len <= capacity; source and our own
            // allocation cannot overlap.
            unsafe { std::ptr::copy_nonoverlapping(part.as_ptr(), buf.ptr.as_ptr().add(at), part.len()) };
            at += part.len();
        }
        // SAFETY: [len, padded_len) lies within the allocation.
        unsafe { std::ptr::write_bytes(buf.ptr.as_ptr().add(len), 0, padded_len - len) };
        // Every byte of [0, padded_len) is now initialised; expose the padded length.
        buf.len = padded_len;
        buf
    }

    /// A buffer of at least `len` bytes (rounded up to the alignment) whose
    /// contents are unspecified; `len` is 0 until the caller fills it.
    fn uninit(len: usize) -> Self {
        let wanted = align_up(len.max(1) as u64) as usize;
        let (ptr, capacity) = BufferPool::take(wanted).unwrap_or_else(|| {
            let capacity = pooled_capacity(wanted);
            (allocate_aligned(capacity), capacity)
        });
        debug_assert!(capacity >= wanted && capacity.is_multiple_of(ALIGN));
        Self { ptr, len: 0, capacity }
    }

    fn layout(capacity: usize) -> Layout {
        match Layout::from_size_align(capacity, ALIGN) {
            Ok(layout) => layout,
            Err(_) => panic!("aligned buffer of {capacity} bytes is not representable"),
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for capacity >= len initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and we hold &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if !BufferPool::give(self.ptr, self.capacity) {
            // SAFETY: allocated in `uninit` with this capacity, and not pooled.
            unsafe { free_aligned(self.ptr, self.capacity) }
        }
    }
}

/// Write buffers of at least this many bytes get their own mapping, in
/// transparent huge pages. A job of one 1 MB batch (librdkafka's default
/// `batch.size`) needs a 1 MiB buffer, so that size is included.
const HUGE_MAPPING_BYTES_MIN: usize = 1024 * 1024;
pub const HUGE_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// Whether a buffer of `capacity` bytes is a mapping of its own ([`map_huge`])
/// rather than the allocator's memory.
const fn is_huge_mapping(capacity: usize) -> bool {
    capacity >= HUGE_MAPPING_BYTES_MIN
}

/// The memory a buffer of `capacity` bytes takes: huge mappings are whole
/// huge pages.
const fn footprint_bytes(capacity: usize) -> usize {
    if is_huge_mapping(capacity) {
        capacity.next_multiple_of(HUGE_PAGE_BYTES)
    } else {
        capacity
    }
}

/// `capacity` bytes aligned for O_DIRECT. Large buffers are mapped directly
/// and advised into huge pages whatever the allocator does: an O_DIRECT write
/// from 4 KiB pages pins and sends each page on its own. With the
/// allocator's memory in 4 KiB pages, produce fell from 1142-1173 to
/// 821-850 MB/s (A/B, docs/PERFORMANCE.md session 5).
fn allocate_aligned(capacity: usize) -> NonNull<u8> {
    debug_assert!(capacity > 0 && capacity.is_multiple_of(ALIGN));
    if is_huge_mapping(capacity) {
        return map_huge(footprint_bytes(capacity));
    }
    let layout = AlignedBuf::layout(capacity);
    // SAFETY: layout has non-zero size and a power-of-two alignment.
    let raw = unsafe { alloc(layout) };
    NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
}

/// Frees what [`allocate_aligned`] returned for the same `capacity`.
///
/// # Safety
/// `ptr` came from `allocate_aligned(capacity)` and is not used again.
unsafe fn free_aligned(ptr: NonNull<u8>, capacity: usize) {
    if is_huge_mapping(capacity) {
        // SAFETY: map_huge mapped exactly [ptr, ptr + footprint).
        unsafe { libc::munmap(ptr.as_ptr().cast(), footprint_bytes(capacity)) };
    } else {
        // SAFETY: allocated with this layout (caller's contract).
        unsafe { dealloc(ptr.as_ptr(), AlignedBuf::layout(capacity)) }
    }
}

/// A fresh private anonymous mapping of `bytes` (page-aligned); `None` when
/// the kernel refuses it (no memory or address space left).
pub fn map_anonymous(bytes: usize) -> Option<NonNull<u8>> {
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    NonNull::new(raw.cast())
}

/// A fresh anonymous mapping of `bytes`; where the kernel refuses it, the
/// allocation-error handler reports it, as for any failed allocation.
fn map_or_report(bytes: usize) -> NonNull<u8> {
    map_anonymous(bytes).unwrap_or_else(|| std::alloc::handle_alloc_error(AlignedBuf::layout(bytes)))
}

/// An anonymous mapping of `bytes` in 4 KiB pages, even where transparent
/// huge pages are "always". Unmap it with `munmap(ptr, bytes)`.
pub fn map_small_pages(bytes: usize) -> NonNull<u8> {
    let mapped = map_or_report(bytes);
    // SAFETY: advice on the mapping just made. A failure only leaves the
    // system's default.
    unsafe { libc::madvise(mapped.as_ptr().cast(), bytes, libc::MADV_NOHUGEPAGE) };
    mapped
}

/// An anonymous mapping of `huge_bytes` (whole huge pages) starting on a
/// huge-page boundary, advised MADV_HUGEPAGE. Unmap it with
/// `munmap(ptr, huge_bytes)`.
pub fn map_huge(huge_bytes: usize) -> NonNull<u8> {
    assert!(
        huge_bytes.is_multiple_of(HUGE_PAGE_BYTES),
        "{huge_bytes} bytes are not whole huge pages"
    );
    // One huge page more than needed, so that an aligned start fits.
    let mapped_bytes = huge_bytes + HUGE_PAGE_BYTES;
    let mapped = map_or_report(mapped_bytes);
    let raw: *mut libc::c_void = mapped.as_ptr().cast();
    let start = raw as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE_BYTES);
    let head_bytes = aligned - start;
    let tail_bytes = mapped_bytes - head_bytes - huge_bytes;
    // SAFETY: both trimmed ranges lie inside the mapping just made and are
    // page multiples (mmap returns page-aligned memory); the kept range
    // [aligned, aligned + huge_bytes) is not affected. Failures only leave
    // address space mapped, so they are ignored.
    unsafe {
        if head_bytes > 0 {
            libc::munmap(raw, head_bytes);
        }
        if tail_bytes > 0 {
            libc::munmap((aligned + huge_bytes) as *mut libc::c_void, tail_bytes);
        }
        libc::madvise(aligned as *mut libc::c_void, huge_bytes, libc::MADV_HUGEPAGE);
    }
    NonNull::new(aligned as *mut u8).unwrap_or_else(|| unreachable!("inside a mapping the kernel made"))
}

/// Aligned write buffers a core has used and will use again. Without it every
/// O_DIRECT write allocated fresh aligned memory, and the allocator kept
/// handing back pages it had returned to the kernel: the page faults that
/// zeroed them (2 MiB at a time under transparent huge pages) took 13% of
/// the broker's CPU in an e2e run at 50 MB/s.
///
/// Invariants: one pool per thread, so a buffer is returned to the thread
/// that took it (`AlignedBuf` is neither `Send` nor `Sync`); at most
/// [`BUFFER_POOL_BYTES_MAX`] bytes of memory (counted by [`footprint_bytes`])
/// in at most [`BUFFER_POOL_ENTRIES_MAX`] buffers are kept (a take scans them
/// all).
struct BufferPool {
    free: Vec<(NonNull<u8>, usize)>,
    pooled_bytes: usize,
}

/// Kept per core: four full write jobs; smaller jobs leave room for more.
const BUFFER_POOL_BYTES_MAX: usize = 4 * footprint_bytes(BUFFER_BYTES_MAX);
const BUFFER_POOL_ENTRIES_MAX: usize = 64;
/// The largest buffer a write can need: a full job plus the rewritten tail block.
const BUFFER_BYTES_MAX: usize = crate::limits::WRITE_JOB_BYTES_MAX + ALIGN;

/// Capacities are powers of two (capped at [`BUFFER_BYTES_MAX`]) so that
/// buffers of similar jobs are interchangeable.
fn pooled_capacity(wanted: usize) -> usize {
    wanted.next_power_of_two().min(BUFFER_BYTES_MAX).max(wanted)
}

thread_local! {
    static BUFFER_POOL: RefCell<BufferPool> = const {
        RefCell::new(BufferPool { free: Vec::new(), pooled_bytes: 0 })
    };
}

/// Where among a pool's buffer `sizes` the smallest within `fits` is: a
/// pool's best fit (here, and the server's frame pool).
pub fn smallest_fit(sizes: impl Iterator<Item = usize>, fits: std::ops::RangeInclusive<usize>) -> Option<usize> {
    sizes
        .enumerate()
        .filter(|(_, size)| fits.contains(size))
        .min_by_key(|(_, size)| *size)
        .map(|(index, _)| index)
}

impl BufferPool {
    /// The smallest pooled buffer of at least `wanted` bytes, if it is not
    /// more than twice the size a new one would have: a small write does not
    /// take the buffer a full job will want next.
    fn take(wanted: usize) -> Option<(NonNull<u8>, usize)> {
        let largest_fit = 2 * pooled_capacity(wanted);
        BUFFER_POOL
            .try_with(|pool| {
                let mut pool = pool.borrow_mut();
                let best = smallest_fit(pool.free.iter().map(|(_, capacity)| *capacity), wanted..=largest_fit)?;
                let (ptr, capacity) = pool.free.swap_remove(best);
                pool.pooled_bytes -= footprint_bytes(capacity);
                Some((ptr, capacity))
            })
            .ok()
            .flatten()
    }

    /// Keeps the buffer if the pool has room; false hands it back to the caller.
    fn give(ptr: NonNull<u8>, capacity: usize) -> bool {
        BUFFER_POOL
            .try_with(|pool| {
                let mut pool = pool.borrow_mut();
                let footprint = footprint_bytes(capacity);
                if pool.pooled_bytes + footprint > BUFFER_POOL_BYTES_MAX || pool.free.len() >= BUFFER_POOL_ENTRIES_MAX {
                    return false;
                }
                pool.pooled_bytes += footprint;
                pool.free.push((ptr, capacity));
                true
            })
            .unwrap_or(false)
    }
}

impl Drop for BufferPool {
    fn drop(&mut self) {
        for (ptr, capacity) in self.free.drain(..) {
            // SAFETY: every pooled buffer was allocated in `AlignedBuf::uninit`
            // with this capacity, and the pool owns it.
            unsafe { free_aligned(ptr, capacity) }
        }
    }
}

// SAFETY: the allocation never moves while the value lives; len <= capacity.
unsafe impl tokio_uring::buf::IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.capacity
    }
}

// SAFETY: the kernel writes at most `bytes_total` bytes at `stable_mut_ptr`
// and reports how many through `set_init`.
unsafe impl tokio_uring::buf::IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    unsafe fn set_init(&mut self, init_len: usize) {
        self.len = self.len.max(init_len);
    }
}

/// A second descriptor of the file `file` has open, for O_DIRECT reads,
/// through `/proc/self/fd` (so also when the file has since been deleted).
fn reopen_direct(file: &std::fs::File) -> io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Whether files in `dir` can be reopened for O_DIRECT reads
/// ([`DirectReader::reopen`]): not without `/proc`, nor where the
/// filesystem refuses O_DIRECT.
pub fn probe_direct_reopen(dir: &Path) -> io::Result<()> {
    let probe_path = dir.join(".direct-read-probe");
    let result = std::fs::File::create(&probe_path).and_then(|file| reopen_direct(&file).map(drop));
    let _ = std::fs::remove_file(&probe_path);
    result
}

/// Reads one segment file with O_DIRECT through io_uring, into pooled
/// aligned buffers: the bytes come from the device without entering the
/// page cache, into memory the broker reuses.
pub struct DirectReader {
    file: tokio_uring::fs::File,
}

impl DirectReader {
    /// Opens a second, O_DIRECT descriptor of the file `file` has open (also
    /// when that file has since been deleted).
    pub fn reopen(file: &std::fs::File) -> io::Result<Self> {
        Ok(Self {
            file: tokio_uring::fs::File::from_std(reopen_direct(file)?),
        })
    }

    /// Reads `[position, position + len)` (any alignment): returns the
    /// buffer and where in it those bytes lie. Fails on a short read: the
    /// range must lie within the file.
    pub async fn read(&self, position: u64, len: usize) -> io::Result<(AlignedBuf, std::ops::Range<usize>)> {
        let start = align_down(position);
        let end = align_up(position + len as u64);
        let wanted = (end - start) as usize;
        // The slice keeps the read to `wanted`: a pooled buffer may be larger.
        let (result, slice) = self
            .file
            .read_at(AlignedBuf::uninit(wanted).slice(..wanted), start)
            .await;
        let buf = slice.into_inner();
        let skip = (position - start) as usize;
        let read = result?;
        if read < skip + len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "segment file ends {} bytes into a {len}-byte read",
                    read.saturating_sub(skip)
                ),
            ));
        }
        Ok((buf, skip..skip + len))
    }
}

pub fn align_down(position: u64) -> u64 {
    position & !(ALIGN as u64 - 1)
}

pub fn align_up(position: u64) -> u64 {
    align_down(position + ALIGN as u64 - 1)
}

/// The write side of one segment file.
pub struct SegmentWriter {
    file: tokio_uring::fs::File,
    path: PathBuf,
    mode: IoMode,
    /// Direct mode: the bytes of the partly filled last block, from
    /// `align_down(logical_end)` to `logical_end`.
    tail: RefCell<Vec<u8>>,
    /// Direct mode: the file's length; writes stay below it.
    allocated_bytes: Cell<u64>,
}

impl SegmentWriter {
    /// Opens (creating if absent) the segment at `path` whose logical size is
    /// `logical_bytes`; anything after that is overwritten by later appends.
    pub fn open(path: &Path, mode: IoMode, logical_bytes: u64) -> io::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).read(true).write(true);
        if mode == IoMode::Direct {
            options.custom_flags(libc::O_DIRECT);
        }
        let std_file = options.open(path)?;
        let allocated_bytes = std_file.metadata()?.len();
        let tail = if mode == IoMode::Direct {
            read_tail_block(path, logical_bytes)?
        } else {
            Vec::new()
        };
        Ok(Self {
            file: tokio_uring::fs::File::from_std(std_file),
            path: path.to_path_buf(),
            mode,
            tail: RefCell::new(tail),
            allocated_bytes: Cell::new(allocated_bytes),
        })
    }

    /// Creates the file of a new segment at `path` through io_uring, which
    /// runs the create on a kernel worker instead of the calling core; with
    /// `from_spare`, renames that file to `path` instead (a recycled
    /// segment file, its blocks already allocated and written), or creates
    /// a new one if the rename fails.
    pub async fn create(path: &Path, mode: IoMode, from_spare: Option<&Path>) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(spare) = from_spare {
            if let Err(error) = tokio_uring::fs::rename(spare, path).await {
                tracing::warn!(spare = %spare.display(), %error, "cannot reuse the spare segment file; creating a new one");
            }
        }
        let mut options = tokio_uring::fs::OpenOptions::new();
        options.create(true).read(true).write(true);
        if mode == IoMode::Direct {
            options.custom_flags(libc::O_DIRECT);
        }
        let file = options.open(path).await?;
        let allocated_bytes = match from_spare {
            Some(_) => file.statx().await?.stx_size,
            None => 0,
        };
        Ok(Self {
            file,
            path: path.to_path_buf(),
            mode,
            tail: RefCell::new(Vec::new()),
            allocated_bytes: Cell::new(allocated_bytes),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `chunks` contiguously at logical `position` (the current end).
    /// `inline_allowed`: the caller's thread may make a small buffered write
    /// itself (see [`SegmentWriter::write_inline`]); say no where the thread is
    /// busy enough that handing the copy to a kernel worker is worth its cost.
    pub async fn write(&self, position: u64, chunks: Vec<Bytes>, inline_allowed: bool) -> io::Result<()> {
        match self.mode {
            IoMode::Buffered => {
                if inline_allowed && inline_write_allowed(&chunks) {
                    return self.write_inline(position, chunks);
                }
                self.writev_all_at(position, chunks).await
            }
            IoMode::Direct => self.write_direct(position, &chunks).await,
        }
    }

    /// io_uring writevs until every byte of `chunks` is written. (Bytes are
    /// IoBufs: the kernel reads them straight from the request buffers; a
    /// direct write's pieces are aligned.) Not tokio-uring's `writev_at_all`:
    /// it panics on a short write, which a nearly full disk gives, and passes
    /// any number of iovecs at once, where the kernel takes at most
    /// [`IOV_MAX`]. After a short direct write the rest is whole blocks, or
    /// the kernel refuses it.
    async fn writev_all_at<T: WriteChunk>(&self, mut position: u64, chunks: Vec<T>) -> io::Result<()> {
        let mut pending = pending_chunks(chunks);
        while !pending.is_empty() {
            let submitted: Vec<T> = pending.drain(..pending.len().min(IOV_MAX)).collect();
            let (result, submitted) = self.file.writev_at(submitted, position).await;
            for chunk in submitted.into_iter().rev() {
                pending.push_front(chunk);
            }
            let written = result?;
            if written == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "writev wrote nothing"));
            }
            position += written as u64;
            drop_written(&mut pending, written);
        }
        Ok(())
    }

    /// A buffered write made on this thread with `pwritev`: copying a few
    /// pages into the page cache takes microseconds, while io_uring hands
    /// every buffered write to a kernel worker thread (ext4 has no
    /// non-blocking buffered writes), which costs two thread wake-ups.
    fn write_inline(&self, mut position: u64, chunks: Vec<Bytes>) -> io::Result<()> {
        let timer = BlockTimer::start();
        let mut pending = pending_chunks(chunks);
        while !pending.is_empty() {
            let iovecs: Vec<libc::iovec> = pending
                .iter()
                .take(IOV_MAX)
                .map(|c| libc::iovec {
                    iov_base: c.as_ptr() as *mut libc::c_void,
                    iov_len: c.len(),
                })
                .collect();
            // SAFETY: every iovec points into a live `Bytes` of `pending`.
            let written = unsafe {
                libc::pwritev(
                    self.file.as_raw_fd(),
                    iovecs.as_ptr(),
                    iovecs.len() as libc::c_int,
                    position as libc::off_t,
                )
            };
            if written < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            if written == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "pwritev wrote nothing"));
            }
            position += written as u64;
            drop_written(&mut pending, written as usize);
        }
        note_inline_write(timer.blocked_longer_than(INLINE_WRITE_SLOW));
        Ok(())
    }

    async fn write_direct(&self, position: u64, chunks: &[Bytes]) -> io::Result<()> {
        let tail = std::mem::take(&mut *self.tail.borrow_mut());
        let aligned_start = align_down(position);
        assert_eq!(aligned_start + tail.len() as u64, position, "tail block out of step");
        let layout = direct_layout::lay_out(&tail, position, chunks);
        crate::stats::count_direct_write_bytes(layout.chunk_bytes, layout.in_place_bytes);
        let result = self.write_blocks(aligned_start, layout.pieces, !tail.is_empty()).await;
        match result {
            Ok(()) => {
                *self.tail.borrow_mut() = layout.new_tail;
                Ok(())
            }
            Err(error) => {
                // Keep the old tail: the same range will be rewritten on retry.
                *self.tail.borrow_mut() = tail;
                Err(error)
            }
        }
    }

    /// Writes `pieces` contiguously from `start`, growing the file first so
    /// that no write extends it. `first_block_alone`: the first piece is the
    /// rewritten tail block, which lies in a written extent while the rest
    /// lies in a preallocated (unwritten) one; ext4 cannot write across both
    /// without blocking, so each gets a write of its own, both in flight.
    async fn write_blocks(&self, start: u64, mut pieces: Vec<WritePiece>, first_block_alone: bool) -> io::Result<()> {
        let end = start + pieces.iter().map(|p| p.len() as u64).sum::<u64>();
        self.preallocate(end).await?;
        if !first_block_alone || pieces.len() == 1 {
            return self.writev_all_at(start, pieces).await;
        }
        let rest = pieces.split_off(1);
        let rest_start = start + pieces[0].len() as u64;
        // io_uring plugs the block queue only for submissions of more than
        // two entries; a no-op as the third lets the two adjacent writes
        // reach the device as one request (one doorbell, a VM exit on a
        // virtual disk, instead of two).
        let (first_written, rest_written, _) = tokio::join!(
            self.writev_all_at(start, pieces),
            self.writev_all_at(rest_start, rest),
            tokio_uring::no_op()
        );
        first_written.and(rest_written)
    }

    /// Grows the file so that `end` lies within it (see the module invariants).
    async fn preallocate(&self, end: u64) -> io::Result<()> {
        let allocated = self.allocated_bytes.get();
        if end <= allocated {
            return Ok(());
        }
        let grow_bytes = allocated.clamp(PREALLOCATE_BYTES_MIN, PREALLOCATE_BYTES_MAX);
        let new_length = align_up(end.max(allocated + grow_bytes));
        // Mode 0 moves the end of file too, which is the point.
        self.file.fallocate(allocated, new_length - allocated, 0).await?;
        self.allocated_bytes.set(new_length);
        Ok(())
    }

    pub async fn sync(&self) -> io::Result<()> {
        self.file.sync_data().await
    }
}

/// Buffered writes up to this size go inline ([`SegmentWriter::write_inline`]):
/// what a partition writes at a time below the auto policy's direct threshold.
const INLINE_WRITE_BYTES_MAX: usize = 64 * 1024;
/// Linux's limit on iovecs per call (UIO_MAXIOV).
const IOV_MAX: usize = 1024;
/// An inline write that blocked (the thread slept in the kernel: dirty-page
/// throttling, a journal commit) for longer than this sends this thread's
/// buffered writes through io_uring for a while, so one stall does not
/// become many. Each such write doubles the pause, up to the maximum; a
/// minute without one resets it. A write that was only slow (the VM's vCPU
/// preempted, as happens here several times a second) does not count.
const INLINE_WRITE_SLOW: Duration = Duration::from_millis(1);
const INLINE_PAUSE_MIN: Duration = Duration::from_secs(1);
const INLINE_PAUSE_MAX: Duration = Duration::from_secs(64);

/// Whether the calling thread blocked in the kernel during a call.
struct BlockTimer {
    started: Instant,
    voluntary_switches: i64,
}

impl BlockTimer {
    fn start() -> Self {
        Self {
            started: Instant::now(),
            voluntary_switches: voluntary_context_switches(),
        }
    }

    /// The thread slept (gave up the CPU itself) and the call took longer than `limit`.
    fn blocked_longer_than(&self, limit: Duration) -> bool {
        self.started.elapsed() > limit && voluntary_context_switches() > self.voluntary_switches
    }
}

/// This thread's voluntary context switches so far, or 0 where unknown.
fn voluntary_context_switches() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: initialised by the successful call (and zeroed before it).
    unsafe { usage.assume_init() }.ru_nvcsw
}

/// This thread's inline-write back-off (see [`INLINE_WRITE_SLOW`]).
#[derive(Clone, Copy)]
struct InlineBackoff {
    paused_until: Option<Instant>,
    last_blocked_at: Option<Instant>,
    next_pause: Duration,
}

impl InlineBackoff {
    const fn new() -> Self {
        Self {
            paused_until: None,
            last_blocked_at: None,
            next_pause: INLINE_PAUSE_MIN,
        }
    }

    fn allows_inline(&self, now: Instant) -> bool {
        self.paused_until.is_none_or(|until| now >= until)
    }

    fn note(&mut self, now: Instant, blocked: bool) {
        if blocked {
            self.paused_until = Some(now + self.next_pause);
            self.last_blocked_at = Some(now);
            self.next_pause = (self.next_pause * 2).min(INLINE_PAUSE_MAX);
        } else if self
            .last_blocked_at
            .is_some_and(|at| now.duration_since(at) > 60 * INLINE_PAUSE_MIN)
        {
            *self = Self::new();
        }
    }
}

thread_local! {
    static INLINE_BACKOFF: Cell<InlineBackoff> = const { Cell::new(InlineBackoff::new()) };
}

fn inline_write_allowed(chunks: &[Bytes]) -> bool {
    let bytes: usize = chunks.iter().map(|c| c.len()).sum();
    bytes <= INLINE_WRITE_BYTES_MAX && INLINE_BACKOFF.with(|backoff| backoff.get().allows_inline(Instant::now()))
}

fn note_inline_write(blocked: bool) {
    if blocked {
        tracing::debug!("an inline buffered write blocked; using io_uring for a while");
    }
    INLINE_BACKOFF.with(|cell| {
        let mut backoff = cell.get();
        backoff.note(Instant::now(), blocked);
        cell.set(backoff);
    });
}

/// A piece of a write that a short write cuts from the front.
trait WriteChunk: tokio_uring::buf::IoBuf {
    fn len(&self) -> usize;
    fn advance(&mut self, bytes: usize);
}

impl WriteChunk for Bytes {
    fn len(&self) -> usize {
        Bytes::len(self)
    }
    fn advance(&mut self, bytes: usize) {
        bytes::Buf::advance(self, bytes);
    }
}

impl WriteChunk for WritePiece {
    fn len(&self) -> usize {
        WritePiece::len(self)
    }
    fn advance(&mut self, bytes: usize) {
        WritePiece::advance(self, bytes);
    }
}

/// Removes the first `written` bytes from the front of `chunks`.
fn drop_written<T: WriteChunk>(chunks: &mut VecDeque<T>, mut written: usize) {
    while let Some(front) = chunks.front_mut() {
        if written < front.len() {
            front.advance(written);
            return;
        }
        written -= front.len();
        chunks.pop_front();
    }
    debug_assert_eq!(written, 0, "more written than was asked");
}

/// The non-empty chunks, as the queue the write loops consume from the front.
fn pending_chunks<T: WriteChunk>(chunks: Vec<T>) -> VecDeque<T> {
    chunks.into_iter().filter(|c| c.len() > 0).collect()
}

fn read_tail_block(path: &Path, logical_bytes: u64) -> io::Result<Vec<u8>> {
    let start = align_down(logical_bytes);
    let mut tail = vec![0u8; (logical_bytes - start) as usize];
    if !tail.is_empty() {
        std::fs::File::open(path)?.read_exact_at(&mut tail, start)?;
    }
    Ok(tail)
}

/// Sets a segment file's length, dropping O_DIRECT padding or a torn tail.
pub fn truncate_file(path: &Path, length_bytes: u64) -> io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(length_bytes)?;
    file.sync_all()
}

/// Runs `work` on a thread of its own (named `name`) and awaits its result:
/// file work too long for a core thread, such as compaction's reads and
/// rewrites of whole segments.
pub async fn run_off_core<T: Send + 'static>(name: &str, work: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name(name.to_string()).spawn(move || {
        let _ = sender.send(work());
    })?;
    receiver
        .await
        .map_err(|_| io::Error::other(format!("the {name} thread stopped before it finished")))
}

/// The size and free space of a filesystem, for users (not root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilesystemSpace {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

/// The space of the filesystem holding `path` (statvfs reads counters the
/// kernel keeps in memory; no disk I/O). `None` if it cannot tell.
pub fn filesystem_space(path: &Path) -> Option<FilesystemSpace> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: all-zero is a valid statvfs.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statvfs we own.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    let block_bytes = stats.f_frsize as u64;
    Some(FilesystemSpace {
        total_bytes: stats.f_blocks as u64 * block_bytes,
        available_bytes: stats.f_bavail as u64 * block_bytes,
    })
}

/// Flushes every file of the filesystem holding `path` (one call instead of
/// an fsync per file), as a clean shutdown does before its marker.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let directory = std::fs::File::open(path)?;
    // SAFETY: syncfs on a descriptor we own for the duration of the call.
    if unsafe { libc::syncfs(directory.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Writes `contents` to a new file at `path` and fsyncs it.
pub fn write_file_durably(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Writes `contents` to `path` atomically: temp file, fsync, rename, fsync dir.
pub fn write_file_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    replace_file(path, contents, true)
}

/// As [`write_file_atomically`] without the fsyncs: readers see the old or
/// the new contents, but a machine crash may leave neither. Only for files
/// that are derived again when missing.
pub fn write_file_lazily(path: &Path, contents: &[u8]) -> io::Result<()> {
    replace_file(path, contents, false)
}

fn replace_file(path: &Path, contents: &[u8], durable: bool) -> io::Result<()> {
    use std::io::Write;
    let temp_path = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temp_path)?;
        file.write_all(contents)?;
        if durable {
            file.sync_all()?;
        }
    }
    std::fs::rename(&temp_path, path)?;
    if let (true, Some(parent)) = (durable, path.parent()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_helpers() {
        assert_eq!(align_down(0), 0);
        assert_eq!(align_down(4095), 0);
        assert_eq!(align_down(4096), 4096);
        assert_eq!(align_up(1), 4096);
        assert_eq!(align_up(4096), 4096);
    }

    #[test]
    fn concat_copies_parts_and_zero_pads() {
        let buf = AlignedBuf::concat(&[b"abc", b"", &[7u8; 5000]]);
        let bytes = buf.as_slice();
        assert_eq!(bytes.len(), 8192, "padded to the alignment");
        assert_eq!(bytes.as_ptr() as usize % ALIGN, 0);
        assert_eq!(&bytes[..3], b"abc");
        assert!(bytes[3..5003].iter().all(|&b| b == 7));
        assert!(bytes[5003..].iter().all(|&b| b == 0));
    }

    #[test]
    fn dropped_buffers_are_reused_with_fresh_padding() {
        let first = AlignedBuf::concat(&[&[0xAAu8; 6000]]);
        let address = first.as_slice().as_ptr();
        drop(first);
        let second = AlignedBuf::concat(&[b"abc"]);
        assert_eq!(second.as_slice().as_ptr(), address, "the pooled buffer came back");
        assert_eq!(second.as_slice().len(), ALIGN);
        assert_eq!(&second.as_slice()[..3], b"abc");
        assert!(
            second.as_slice()[3..].iter().all(|&b| b == 0),
            "padding is zeroed again"
        );
        // A small write leaves a large buffer for a large one.
        drop(second);
        let large = AlignedBuf::concat(&[&[1u8; 100_000]]);
        let large_address = large.as_slice().as_ptr();
        drop(large);
        assert_ne!(AlignedBuf::concat(&[b"x"]).as_slice().as_ptr(), large_address);
        assert_eq!(AlignedBuf::concat(&[&[2u8; 90_000]]).as_slice().as_ptr(), large_address);
        // A buffer too large for the pool is freed, not kept.
        drop(AlignedBuf::concat(&[&vec![1u8; BUFFER_POOL_BYTES_MAX + 1]]));
        let (pooled_bytes, entries) = BUFFER_POOL.with(|pool| (pool.borrow().pooled_bytes, pool.borrow().free.len()));
        assert!(pooled_bytes <= BUFFER_POOL_BYTES_MAX && entries <= BUFFER_POOL_ENTRIES_MAX);
    }

    #[test]
    fn large_buffers_start_on_a_huge_page_and_hold_every_byte() {
        // A one-batch job of librdkafka's 1 MB, and one over several huge pages.
        for len in [1_000_000, 3 * HUGE_PAGE_BYTES + 100] {
            let part = vec![5u8; len];
            let buf = AlignedBuf::concat(&[&part]);
            let bytes = buf.as_slice();
            assert_eq!(bytes.as_ptr() as usize % HUGE_PAGE_BYTES, 0, "{len}");
            assert_eq!(bytes.len(), align_up(len as u64) as usize);
            assert!(bytes[..len].iter().all(|&b| b == 5));
            assert!(bytes[len..].iter().all(|&b| b == 0));
            drop(buf);
            // Freed by munmap of its whole footprint, directly or via the pool.
            let capacity = pooled_capacity(align_up(len as u64) as usize);
            assert!(footprint_bytes(capacity).is_multiple_of(HUGE_PAGE_BYTES));
            let mapped = allocate_aligned(capacity);
            // SAFETY: just allocated with this capacity, not used again.
            unsafe { free_aligned(mapped, capacity) };
        }
        assert_eq!(footprint_bytes(4096), 4096, "small buffers stay with the allocator");
    }

    #[test]
    fn aligned_buf_is_aligned_and_zeroed() {
        let buf = AlignedBuf::zeroed(100);
        assert_eq!(buf.as_slice().as_ptr() as usize % ALIGN, 0);
        assert!(buf.as_slice().iter().all(|&b| b == 0));
    }

    #[test]
    fn direct_reads_return_any_range_within_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seg.log");
        // Not a multiple of the block size: sealed segments end anywhere.
        let contents: Vec<u8> = (0..3_000_123u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &contents).expect("write");
        if probe_direct_io(dir.path()) != IoMode::Direct {
            eprintln!("no O_DIRECT here; skipping");
            return;
        }
        let file = std::fs::File::open(&path).expect("open");
        std::fs::remove_file(&path).expect("delete: a reader may outlive the segment's name");
        tokio_uring::start(async {
            let reader = DirectReader::reopen(&file).expect("reopen O_DIRECT");
            for (position, len) in [(0, 1), (4095, 2), (12_345, 1 << 20), (2_999_000, 1_123), (0, 3_000_123)] {
                let (buf, range) = reader.read(position, len).await.expect("read");
                assert_eq!(
                    &buf.as_slice()[range],
                    &contents[position as usize..position as usize + len]
                );
            }
            let past_end = reader.read(2_999_000, 1_124).await.map(|_| ());
            assert_eq!(past_end.map_err(|e| e.kind()), Err(io::ErrorKind::UnexpectedEof));
        });
    }

    fn write_and_read_back(mode: IoMode, inline_allowed: bool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seg.log");
        tokio_uring::start(async {
            let writer = SegmentWriter::open(&path, mode, 0).expect("open");
            writer
                .write(0, vec![Bytes::from_static(b"hello ")], inline_allowed)
                .await
                .expect("write 1");
            writer
                .write(6, vec![Bytes::from(vec![7u8; 5000])], inline_allowed)
                .await
                .expect("write 2");
            writer
                .write(5006, vec![Bytes::from_static(b"end")], inline_allowed)
                .await
                .expect("write 3");
            writer.sync().await.expect("sync");
        });
        let contents = std::fs::read(&path).expect("read");
        assert_eq!(&contents[..6], b"hello ");
        assert!(contents[6..5006].iter().all(|&b| b == 7));
        assert_eq!(&contents[5006..5009], b"end");
        // A reopened writer continues after the logical end.
        tokio_uring::start(async {
            let writer = SegmentWriter::open(&path, mode, 5009).expect("reopen");
            writer
                .write(5009, vec![Bytes::from_static(b"!")], inline_allowed)
                .await
                .expect("write 4");
        });
        let contents = std::fs::read(&path).expect("read");
        assert_eq!(&contents[5006..5010], b"end!");
    }

    #[test]
    fn buffered_writes_land_at_their_positions() {
        write_and_read_back(IoMode::Buffered, false);
    }

    #[test]
    fn inline_buffered_writes_land_at_their_positions() {
        write_and_read_back(IoMode::Buffered, true);
    }

    #[test]
    fn writes_of_more_chunks_than_one_call_takes_write_them_all() {
        for inline_allowed in [true, false] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("seg.log");
            let chunks: Vec<Bytes> = (0..IOV_MAX * 2 + 7).map(|i| Bytes::from(vec![i as u8; 3])).collect();
            let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            tokio_uring::start(async {
                let writer = SegmentWriter::open(&path, IoMode::Buffered, 0).expect("open");
                writer.write(0, chunks, inline_allowed).await.expect("write");
            });
            assert_eq!(
                std::fs::read(&path).expect("read"),
                expected,
                "inline allowed: {inline_allowed}"
            );
        }
    }

    #[test]
    fn dropping_written_bytes_removes_whole_chunks_and_trims_the_next() {
        let mut chunks: VecDeque<Bytes> = [&b"abc"[..], b"defg", b"h"]
            .into_iter()
            .map(Bytes::from_static)
            .collect();
        drop_written(&mut chunks, 5);
        assert_eq!(chunks, [Bytes::from_static(b"fg"), Bytes::from_static(b"h")]);
        drop_written(&mut chunks, 3);
        assert!(chunks.is_empty());
    }

    #[test]
    fn a_supervised_task_that_panics_starts_again() {
        let runs = std::rc::Rc::new(Cell::new(0));
        let counted = runs.clone();
        let runs_seen = runs.clone();
        tokio_uring::start(async move {
            let start = move || {
                let counted = counted.clone();
                async move {
                    counted.set(counted.get() + 1);
                    assert!(counted.get() > 1, "the first run fails");
                }
            };
            spawn_supervised_with_delay("test", start, Duration::from_millis(1));
            // No timing assumed: a panic's backtrace can take long to print
            // on a loaded machine. Wait for the second run, or give up late.
            let give_up = Instant::now() + Duration::from_secs(60);
            while runs_seen.get() < 2 && Instant::now() < give_up {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        assert_eq!(runs.get(), 2, "started again once, then finished");
    }

    #[test]
    fn blocked_inline_writes_pause_them_for_longer_each_time() {
        let start = Instant::now();
        let (fast, slow) = (false, true);
        let mut backoff = InlineBackoff::new();
        backoff.note(start, fast);
        assert!(backoff.allows_inline(start));
        backoff.note(start, slow);
        assert!(!backoff.allows_inline(start + INLINE_PAUSE_MIN / 2));
        let resumed = start + INLINE_PAUSE_MIN;
        assert!(backoff.allows_inline(resumed));
        backoff.note(resumed, slow);
        assert!(
            !backoff.allows_inline(resumed + INLINE_PAUSE_MIN),
            "the second pause is twice as long"
        );
        assert!(backoff.allows_inline(resumed + 2 * INLINE_PAUSE_MIN));
        for _ in 0..20 {
            backoff.note(resumed, slow);
        }
        assert!(
            backoff.allows_inline(resumed + INLINE_PAUSE_MAX),
            "the pause is bounded"
        );
        let much_later = resumed + INLINE_PAUSE_MAX + Duration::from_secs(61);
        backoff.note(much_later, fast);
        backoff.note(much_later, slow);
        assert!(
            backoff.allows_inline(much_later + INLINE_PAUSE_MIN),
            "a quiet minute resets the pause"
        );
    }

    #[test]
    fn a_sleep_counts_as_blocking_and_a_busy_wait_does_not() {
        let timer = BlockTimer::start();
        std::thread::sleep(Duration::from_millis(3));
        assert!(timer.blocked_longer_than(Duration::from_millis(1)));
        assert!(!timer.blocked_longer_than(Duration::from_secs(5)));
        let timer = BlockTimer::start();
        let spin_until = Instant::now() + Duration::from_millis(3);
        while Instant::now() < spin_until {
            std::hint::spin_loop();
        }
        // Preemption can make the thread switch, but never voluntarily.
        assert!(!timer.blocked_longer_than(Duration::from_millis(1)));
    }

    #[test]
    fn direct_writes_from_chunks_lying_congruent_land_whole() {
        use crate::direct_layout::congruent_chunk;
        let dir = tempfile::tempdir().expect("tempdir");
        if probe_direct_io(dir.path()) != IoMode::Direct {
            return;
        }
        let path = dir.path().join("seg.log");
        let before = crate::stats::direct_write_bytes();
        let mut expected = Vec::new();
        tokio_uring::start(async {
            let writer = SegmentWriter::open(&path, IoMode::Direct, 0).expect("open");
            // A small write leaves a tail; then a stamped head and a large
            // congruent batch; then one lying otherwise; then congruent again.
            let writes: Vec<Vec<Bytes>> = vec![
                vec![Bytes::from_static(b"first")],
                vec![congruent_chunk(5, 16, 1), congruent_chunk(21, 300_000, 2)],
                vec![congruent_chunk(300_021 + 7, 100_000, 3)],
                vec![congruent_chunk(400_021, 16, 4), congruent_chunk(400_037, 1_000_000, 5)],
            ];
            for chunks in writes {
                let position = expected.len() as u64;
                chunks.iter().for_each(|c| expected.extend_from_slice(c));
                writer.write(position, chunks, false).await.expect("write");
            }
        });
        let contents = std::fs::read(&path).expect("read");
        assert_eq!(&contents[..expected.len()], &expected[..]);
        let after = crate::stats::direct_write_bytes();
        assert_eq!(after.written - before.written, expected.len() as u64);
        assert!(
            after.in_place - before.in_place > 1_200_000,
            "the congruent batches went in place"
        );
    }

    #[test]
    fn direct_writes_land_at_their_positions() {
        let dir = tempfile::tempdir().expect("tempdir");
        if probe_direct_io(dir.path()) == IoMode::Direct {
            write_and_read_back(IoMode::Direct, true);
        }
    }
}
