//! Segment file regions to a socket with O_DIRECT reads
//! (`log.read.mode=direct`): reads through io_uring into pooled buffers, each
//! written to the socket while the next is read. The kernel copies the bytes
//! into the socket (sendfile passes page references instead), but the page
//! cache is never filled.
//!
//! Invariants:
//! - A region's bytes are sent in order and exactly: a read that holds more
//!   (a read ahead) is trimmed to the region.
//! - Reads ahead of a fetch cover only bytes already written when the region
//!   before them was read (`FileRegion::written_end`); such bytes never
//!   change, so a read ahead is never stale.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use ringlog_engine::io::{AlignedBuf, DirectReader};
use ringlog_engine::FileRegion;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

/// Bytes of one O_DIRECT read, as aligned blocks (a pooled huge-page buffer).
const DIRECT_READ_BYTES: u64 = 2 << 20;

/// What one O_DIRECT read returns: a buffer and where the bytes lie in it.
type DirectRead = (AlignedBuf, Range<usize>);

/// Bytes of the read starting at `at` in a region ending at `end`: each read
/// ends at a block boundary within [`DIRECT_READ_BYTES`] of the block its
/// start lies in, so every read fills one buffer of that size.
fn direct_read_len(at: u64, end: u64) -> usize {
    ((ringlog_engine::io::align_down(at) + DIRECT_READ_BYTES).min(end) - at) as usize
}

/// A region whose reader is open and whose first read is under way. The
/// first read may hold more than the region (a read ahead of this fetch) or
/// less (the rest is read as it is sent).
pub struct StartedRegion {
    start: u64,
    end: u64,
    first: JoinHandle<io::Result<(DirectReader, DirectRead)>>,
}

/// Opens `file` for O_DIRECT and starts reading `[start, end)` (at most one
/// read's worth) in a task of its own, so that reads overlap.
fn start_direct_read(file: &Arc<std::fs::File>, start: u64, end: u64) -> StartedRegion {
    let file = file.clone();
    let first = tokio::task::spawn_local(async move {
        let reader = DirectReader::reopen(&file)?;
        let first = reader.read(start, direct_read_len(start, end)).await?;
        Ok((reader, first))
    });
    StartedRegion { start, end, first }
}

/// Starts reading `region` from its start.
fn start_region_read(region: &FileRegion) -> StartedRegion {
    start_direct_read(&region.file, region.position, region.end())
}

/// Regions whose first reads run ahead of the one being sent: enough to
/// overlap the device's latency, few enough that the buffers (2 MiB each)
/// stay within the per-core pool.
const DIRECT_REGIONS_AHEAD: usize = 4;

enum PendingRegion {
    Started(StartedRegion),
    Waiting(FileRegion),
}

/// The O_DIRECT reads of one response's file regions, started in order and
/// at most [`DIRECT_REGIONS_AHEAD`] ahead of the region being sent; a region
/// whose start was read ahead of this fetch begins with that read.
pub struct DirectReads {
    pending: VecDeque<PendingRegion>,
}

impl DirectReads {
    pub fn start(regions: impl Iterator<Item = FileRegion>, read_aheads: &mut ReadAheads) -> Self {
        let pending = regions
            .map(|region| match read_aheads.take(&region) {
                Some(started) => PendingRegion::Started(started),
                None => PendingRegion::Waiting(region),
            })
            .collect();
        let mut reads = Self { pending };
        reads.start_ahead();
        reads
    }

    /// The next region in order, its first read under way.
    pub fn next_region(&mut self) -> Option<StartedRegion> {
        let next = match self.pending.pop_front()? {
            PendingRegion::Started(started) => started,
            PendingRegion::Waiting(region) => start_region_read(&region),
        };
        self.start_ahead();
        Some(next)
    }

    fn start_ahead(&mut self) {
        for pending in self.pending.iter_mut().take(DIRECT_REGIONS_AHEAD) {
            if let PendingRegion::Waiting(region) = pending {
                *pending = PendingRegion::Started(start_region_read(region));
            }
        }
    }
}

/// Partitions per connection whose next bytes are read ahead of the fetch
/// that will ask for them: a consumer's partitions on this broker, within
/// the per-core buffer pool.
const READ_AHEADS_MAX: usize = 8;

/// One connection's reads ahead. A consumer's next fetch of a partition
/// starts where the last region sent ended, so once a region is sent the
/// bytes after it (only those already written, which never change) are read
/// while the client works through what it got.
#[derive(Default)]
pub struct ReadAheads {
    reads: VecDeque<(Arc<std::fs::File>, StartedRegion)>,
}

impl ReadAheads {
    /// Starts reading what follows `region` in its file, if anything does.
    pub fn start_after(&mut self, region: &FileRegion) {
        let start = region.end();
        if start >= region.written_end {
            return;
        }
        if self.reads.len() == READ_AHEADS_MAX {
            self.reads.pop_front();
        }
        let started = start_direct_read(&region.file, start, region.written_end);
        self.reads.push_back((region.file.clone(), started));
    }

    /// The read ahead that begins where `region` does, now sending `region`.
    fn take(&mut self, region: &FileRegion) -> Option<StartedRegion> {
        let index = self
            .reads
            .iter()
            .position(|(file, started)| Arc::ptr_eq(file, &region.file) && started.start == region.position)?;
        let (_, mut started) = self.reads.remove(index)?;
        started.end = region.end();
        Some(started)
    }
}

/// Sends a started region, the next read in flight while the last is written.
pub async fn send_region_read_direct(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    started: StartedRegion,
) -> io::Result<()> {
    let StartedRegion { start, end, first } = started;
    let (reader, mut current) = first.await.map_err(io::Error::other)??;
    let mut at = start;
    loop {
        // A read ahead may hold more than this region.
        let take = current.1.len().min((end - at) as usize);
        current.1.end = current.1.start + take;
        at += take as u64;
        let next_read = async {
            match at < end {
                true => Some(reader.read(at, direct_read_len(at, end)).await),
                false => None,
            }
        };
        let (written, next) = tokio::join!(writer.write_all(&current.0.as_slice()[current.1.clone()]), next_read);
        written?;
        match next {
            Some(read) => current = read?,
            None => {
                debug_assert_eq!(at, end, "a region is sent exactly");
                return Ok(());
            }
        }
    }
}
