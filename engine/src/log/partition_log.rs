//! One partition's log: its segments, offsets, pending writes and waiters.
//!
//! Owned by exactly one core (`Rc<RefCell<PartitionLog>>`, never shared across
//! threads). Appends are assigned offsets in memory at once and queued; the
//! partition's writer task coalesces everything queued into one io_uring write
//! (and one fsync when the flush policy asks), which is group commit.
//!
//! Invariants (asserted in [`PartitionLog::check_offsets`]):
//! - `log_start_offset <= high_watermark <= log_end_offset`.
//! - `high_watermark` only moves once the bytes below it are written (and
//!   fsynced when the flush policy says so); reads never pass it, so a reader
//!   never sees a record that a crash under the chosen policy could lose.
//! - Only the last segment is active (has a writer and takes appends).
//! - A rolled segment's seal (truncation, index files) and the producer
//!   snapshots are written on the background thread (`crate::fs_offload`);
//!   retention, DeleteRecords, compaction and recycling touch only settled
//!   segments (seal done), so no pending job truncates or indexes a file that
//!   was deleted, reused or rewritten meanwhile.
//! - A recycled segment file (see [`SPARE_SEGMENT_FILE_NAME`]) holds only
//!   batches of offsets below any segment that reuses it, and is reused only
//!   by a new O_DIRECT segment: recovery's scan stops at a batch below the
//!   segment's base offset, and sealing truncates the file to what was
//!   written, so stale bytes are never served. A file that a read still
//!   holds is deleted instead (its fetch must send the old bytes). A roll
//!   to the page cache removes the spare, so only busy partitions hold one;
//!   a spare is kept only while its filesystem has a tenth of its space
//!   free besides it, and a failed write gives it back.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::batch::{self, BatchHeader, StoredBatch};
use crate::cache::{BatchCache, CachedBatch, PartitionKey};
use crate::error::{LogError, Result};
use crate::fs_offload::{self, DirHandle};
use crate::io::{self, IoMode, SegmentWriter};
use crate::limits::{DATA_WAITERS_MAX, WRITE_JOB_BYTES_MAX};
use crate::log::compaction::{self, CompactionPolicy, OffsetMap};
use crate::log::io_policy::{self, IoModeChooser, IoPolicy};
use crate::log::leader_epoch::LeaderEpochCache;
use crate::log::producer_state::{
    is_aborted_in, AbortedTransaction, AppendCheckError, ProducerStateTable, SequenceCheck, SequenceError,
    SNAPSHOT_SUFFIX,
};
use crate::log::segment::{self, NewSegmentFile, Segment, SegmentWriterSource};
use crate::notify::LocalNotify;

/// A segment file retention deleted, kept to be the next O_DIRECT segment.
/// An O_DIRECT write into blocks a file has written before costs half of
/// one into freshly allocated (unwritten) extents, which ext4 converts at
/// completion: fio, 1 MiB writes at queue depth 1 on the development VM,
/// p50 0.54 against 1.09 ms (docs/PERFORMANCE.md, session 11). Not a
/// segment name, so opening the partition passes it by.
pub const SPARE_SEGMENT_FILE_NAME: &str = "recycled-segment.spare";

/// A deleted segment is kept as the spare only while its filesystem would
/// have this fraction of its space (one tenth) free besides it: a spare
/// holds disk that retention would otherwise have given back.
const SPARE_FREE_SPACE_FLOOR_DIVISOR: u64 = 10;

/// Whether a spare of `spare_bytes` may be kept on a filesystem with `space`.
fn spare_fits(space: Option<io::FilesystemSpace>, spare_bytes: u64) -> bool {
    space.is_some_and(|space| {
        space.available_bytes.saturating_sub(spare_bytes) >= space.total_bytes / SPARE_FREE_SPACE_FLOOR_DIVISOR
    })
}

/// Per-partition settings, resolved from topic and broker configs.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub index_interval_bytes: u64,
    /// fsync after this many messages; 1 = every write; `u64::MAX` = never.
    pub flush_interval_messages: u64,
    pub io_policy: IoPolicy,
    pub leader_epoch: i32,
    /// Keep one segment file that retention deletes and reuse it for the
    /// next O_DIRECT segment (`log.segment.recycle`).
    pub recycle_segments: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            flush_interval_messages: u64::MAX,
            io_policy: IoPolicy::Fixed(IoMode::Buffered),
            leader_epoch: 0,
            recycle_segments: false,
        }
    }
}

/// Offsets assigned to one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub base_offset: i64,
    pub last_offset: i64,
    /// One past `last_offset`: the high watermark that makes this append visible.
    pub next_offset: i64,
    /// A retried idempotent batch: nothing was written; the offsets (and
    /// `duplicate_of_timestamp`) are those of the original.
    pub duplicate: bool,
    pub duplicate_of_timestamp: i64,
}

/// A slice of a segment file, to be sent without a user-space copy.
#[derive(Debug, Clone)]
pub struct FileRegion {
    pub file: Arc<std::fs::File>,
    pub position: u64,
    pub len: u64,
    /// Where the bytes written to the file ended when the region was read
    /// (`position + len` at least). Bytes below it never change, so a reader
    /// may read past the region up to it ahead of the next fetch.
    pub written_end: u64,
}

impl FileRegion {
    /// One past the region's last byte.
    pub fn end(&self) -> u64 {
        self.position + self.len
    }
}

#[derive(Debug, Clone)]
pub enum ReadChunk {
    Memory(Bytes),
    File(FileRegion),
}

impl ReadChunk {
    pub fn len(&self) -> usize {
        match self {
            Self::Memory(bytes) => bytes.len(),
            Self::File(region) => region.len as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug)]
pub struct ReadResult {
    pub chunks: Vec<ReadChunk>,
    pub total_bytes: usize,
    /// The offset after the last batch read (the read offset when none was):
    /// where the reader goes on. Reads hold whole batches only.
    pub next_offset: i64,
    /// ReadCommitted only: aborted transactions overlapping what was read.
    pub aborted: Vec<AbortedTransaction>,
}

impl ReadResult {
    fn nothing_from(offset: i64) -> Self {
        Self {
            chunks: Vec::new(),
            total_bytes: 0,
            next_offset: offset,
            aborted: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start_offset: i64,
    /// Below it no transaction is open: what read_committed readers may see.
    pub last_stable_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
}

/// Which records a reader may see (Kafka's `isolation_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Up to the high watermark, open and aborted transactions included.
    ReadUncommitted,
    /// Up to the last stable offset, with the aborted transactions listed so
    /// the reader can drop their records.
    ReadCommitted,
}

/// Why an acknowledged-later append did not become durable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("write to partition log failed: {0}")]
pub struct WriteFailed(pub Arc<str>);

struct PendingWrite {
    segment_base: i64,
    position: u64,
    bytes: StoredBatch,
    next_offset: i64,
    records: u64,
}

struct WriteJob {
    /// The segment's writer (or how to create it), or why it could not be
    /// opened.
    writer: std::result::Result<SegmentWriterSource, String>,
    segment_base: i64,
    position: u64,
    chunks: Vec<Bytes>,
    end_position: u64,
    next_offset: i64,
    records: u64,
    fsync: bool,
}

enum WriterStep {
    Run(WriteJob),
    Idle,
    Stop,
}

pub struct PartitionLog {
    dir: PathBuf,
    /// `dir` for work on the background thread (`crate::fs_offload`).
    dir_handle: DirHandle,
    key: PartitionKey,
    config: LogConfig,
    /// Picks the write mode of each new segment from the ingest rate.
    io_chooser: IoModeChooser,
    segments: Vec<Segment>,
    offsets: LogOffsets,
    epochs: LeaderEpochCache,
    producers: ProducerStateTable,
    pending: VecDeque<PendingWrite>,
    unflushed_records: u64,
    fsync_requested: bool,
    failure: Option<WriteFailed>,
    closing: bool,
    /// Opened from a clean shutdown's files and not appended to since: a
    /// clean close has nothing to write (thousands of idle partitions then
    /// close without an fsync each).
    unchanged_since_clean_open: bool,
    /// A write job is running (its writer must not be reopened meanwhile).
    write_in_flight: bool,
    /// Last append or read, for closing the files of idle partitions.
    last_used_ms: std::cell::Cell<i64>,
    durable_waiters: VecDeque<(i64, oneshot::Sender<Result<(), WriteFailed>>)>,
    data_waiters: Vec<oneshot::Sender<()>>,
    /// Producer snapshots taken at rolls, `(offset, encoded)`, in offset
    /// order; each is written once every batch below its offset is durable
    /// (see [`Self::write_durable_snapshots`]).
    unwritten_snapshots: VecDeque<(i64, Vec<u8>)>,
    /// Offsets of the snapshot files, ascending, as the background thread
    /// will have left them (listing the directory cost the core a
    /// millisecond while the thread was writing in it).
    snapshot_offsets: Vec<i64>,
    cache: Rc<RefCell<BatchCache>>,
    wake_writer: Rc<LocalNotify>,
    /// [`SPARE_SEGMENT_FILE_NAME`] exists in `dir`.
    has_spare_segment: bool,
    /// A compaction pass runs ([`PartitionLog::compact`]).
    compacting: bool,
}

pub type SharedLog = Rc<RefCell<PartitionLog>>;

/// When moving the log start writes (and fsyncs) its checkpoint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartCheckpoint {
    /// DeleteRecords: the records must stay deleted after any crash.
    Always,
    /// Retention: opening takes the larger of the checkpoint and the first
    /// segment's base, so a start on a segment boundary is derived from the
    /// files. Its fsync had stalled the core for 3-10 ms while the deleted
    /// files' extents were freed (perf trace, session 12).
    UnlessDerivable,
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering it, and starts its writer
    /// task on the current core. `clean_shutdown` lets recovery trust the files.
    pub fn open(
        dir: &Path,
        key: PartitionKey,
        config: LogConfig,
        cache: Rc<RefCell<BatchCache>>,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<SharedLog> {
        std::fs::create_dir_all(dir).map_err(|e| LogError::io("creating partition dir", dir, e))?;
        // A reopen (after a failed write) reads what the last one's seals
        // and snapshots, still on the background thread, would write.
        fs_offload::wait_for(dir);
        let dir_handle = DirHandle::open(dir).map_err(|e| LogError::io("opening partition dir", dir, e))?;
        let mut segments = open_segments(&dir_handle, &config, clean_shutdown, now_ms)?;
        let io_chooser = IoModeChooser::new(config.io_policy, now_ms);
        if segments.is_empty() {
            segments.push(Segment::create(
                dir,
                0,
                io_chooser.initial_mode(),
                config.index_interval_bytes,
                now_ms,
            )?);
        } else if let Some(last) = segments.last_mut() {
            last.reopen_for_append(io_chooser.initial_mode());
        }
        let log_end_offset = segments.last().map_or(0, Segment::next_offset);
        let log_start_offset = read_log_start_checkpoint(dir)
            .unwrap_or(0)
            .max(segments.first().map_or(0, |s| s.base_offset))
            .min(log_end_offset);
        let epochs = LeaderEpochCache::load_or_create(dir, config.leader_epoch, log_start_offset)?;
        remove_snapshots_above(dir, log_end_offset);
        let mut snapshot_offsets = list_snapshots(dir);
        snapshot_offsets.sort_unstable();
        let producers = rebuild_producer_state(dir, &segments, log_start_offset, log_end_offset)?;
        let wake_writer = Rc::new(LocalNotify::default());
        let log = Self {
            dir: dir.to_path_buf(),
            dir_handle,
            key,
            config,
            io_chooser,
            segments,
            offsets: LogOffsets {
                log_start_offset,
                last_stable_offset: producers.first_unstable_offset().unwrap_or(log_end_offset),
                high_watermark: log_end_offset,
                log_end_offset,
            },
            epochs,
            producers,
            pending: VecDeque::new(),
            unflushed_records: 0,
            fsync_requested: false,
            failure: None,
            closing: false,
            unchanged_since_clean_open: clean_shutdown,
            write_in_flight: false,
            last_used_ms: std::cell::Cell::new(now_ms),
            durable_waiters: VecDeque::new(),
            data_waiters: Vec::new(),
            unwritten_snapshots: VecDeque::new(),
            snapshot_offsets,
            cache,
            wake_writer: wake_writer.clone(),
            has_spare_segment: dir.join(SPARE_SEGMENT_FILE_NAME).exists(),
            compacting: false,
        };
        log.check_offsets();
        let shared = Rc::new(RefCell::new(log));
        io::spawn_local(run_writer(shared.clone(), wake_writer));
        Ok(shared)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn offsets(&self) -> LogOffsets {
        self.offsets
    }

    pub fn leader_epoch(&self) -> i32 {
        self.config.leader_epoch
    }

    pub fn key(&self) -> PartitionKey {
        self.key
    }

    /// True after a write failed (disk full, I/O error): appends are refused
    /// until the owner reopens the log from disk.
    pub fn is_failed(&self) -> bool {
        self.failure.is_some()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// How the active segment is written (with `log.io.mode=auto`, it follows
    /// the ingest rate).
    pub fn active_io_mode(&self) -> IoMode {
        self.active_segment().io_mode()
    }

    fn check_offsets(&self) {
        let o = &self.offsets;
        assert!(
            o.log_start_offset <= o.last_stable_offset,
            "log start past last stable offset: {o:?}"
        );
        assert!(
            o.last_stable_offset <= o.high_watermark,
            "last stable offset past high watermark: {o:?}"
        );
        assert!(
            o.high_watermark <= o.log_end_offset,
            "high watermark past log end: {o:?}"
        );
    }

    /// The last stable offset follows the high watermark and open transactions.
    fn refresh_last_stable_offset(&mut self) {
        let high_watermark = self.offsets.high_watermark;
        self.offsets.last_stable_offset = self
            .producers
            .first_unstable_offset()
            .map_or(high_watermark, |first| first.min(high_watermark))
            .max(self.offsets.log_start_offset);
    }

    /// Appends validated batches: stamps offsets and the leader epoch, queues
    /// the bytes for the writer. Visible to readers once durable.
    /// `log_append_time_ms` is `Some` for LogAppendTime topics.
    pub fn append(
        &mut self,
        batches: Vec<impl Into<Bytes>>,
        log_append_time_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<AppendResult> {
        self.last_used_ms.set(now_ms);
        self.unchanged_since_clean_open = false;
        if let Some(failure) = &self.failure {
            tracing::debug!(%failure, "append refused");
            return Err(LogError::Failed { path: self.dir.clone() });
        }
        if self.closing {
            return Err(LogError::Closed);
        }
        let batches: Vec<Bytes> = batches.into_iter().map(Into::into).collect();
        let headers: Vec<BatchHeader> = batches
            .iter()
            .map(|bytes| match BatchHeader::parse(bytes) {
                Ok(header) => header,
                Err(error) => panic!("append given an unvalidated batch: {error}"),
            })
            .collect();
        if let SequenceCheck::Duplicate(original) = self.producers.check_append(&headers)? {
            return Ok(AppendResult {
                base_offset: original.first_offset,
                last_offset: original.last_offset,
                next_offset: original.last_offset + 1,
                duplicate: true,
                duplicate_of_timestamp: original.max_timestamp,
            });
        }
        let base_offset = self.offsets.log_end_offset;
        for bytes in batches {
            let offset = self.offsets.log_end_offset;
            let bytes = batch::stamp(bytes, offset, self.config.leader_epoch, log_append_time_ms);
            let header = match bytes.header() {
                Ok(header) => header,
                Err(error) => panic!("append given an unvalidated batch: {error}"),
            };
            assert_eq!(header.total_bytes(), bytes.len(), "append given a partial batch");
            self.maybe_roll(header.total_bytes() as u64, now_ms)?;
            self.producers.record(&header);
            let active = self.active_segment_mut();
            let position = active.assign(&header);
            let segment_base = active.base_offset;
            self.cache.borrow_mut().insert(
                self.key,
                CachedBatch {
                    base_offset: header.base_offset,
                    next_offset: header.next_offset(),
                    bytes: bytes.clone(),
                },
            );
            self.pending.push_back(PendingWrite {
                segment_base,
                position,
                bytes,
                next_offset: header.next_offset(),
                records: header.records_count.max(1) as u64,
            });
            self.offsets.log_end_offset = header.next_offset();
        }
        self.refresh_last_stable_offset();
        self.check_offsets();
        self.wake_writer.notify();
        Ok(AppendResult {
            base_offset,
            last_offset: self.offsets.log_end_offset - 1,
            next_offset: self.offsets.log_end_offset,
            duplicate: false,
            duplicate_of_timestamp: -1,
        })
    }

    /// Appends a transaction marker for `producer_id`, closing its open
    /// transaction (committing or aborting it). Refused for an epoch older
    /// than the one this partition knows.
    pub fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendResult> {
        if let Some(current) = self.producers.epoch_of(producer_id) {
            if producer_epoch < current {
                return Err(AppendCheckError::Sequence(SequenceError::InvalidEpoch {
                    producer_id,
                    current,
                    received: producer_epoch,
                })
                .into());
            }
        }
        let marker = batch::build_control_batch(producer_id, producer_epoch, commit, coordinator_epoch, now_ms);
        let result = self.append(vec![marker], None, now_ms)?;
        self.producers
            .record_marker(producer_id, producer_epoch, commit, result.base_offset);
        self.refresh_last_stable_offset();
        self.check_offsets();
        Ok(result)
    }

    /// Where the next append lands in the active segment's file, when that
    /// segment is written with O_DIRECT (`None` otherwise): a connection
    /// places a large produce frame's batch in memory by it, so the write
    /// needs no copy (`crate::direct_layout`).
    pub fn direct_append_position(&self) -> Option<u64> {
        let active = self.active_segment();
        (active.io_mode() == IoMode::Direct).then(|| active.assigned_bytes())
    }

    fn active_segment(&self) -> &Segment {
        match self.segments.last() {
            Some(segment) => segment,
            None => unreachable!("a partition log always has an active segment"),
        }
    }

    fn active_segment_mut(&mut self) -> &mut Segment {
        match self.segments.last_mut() {
            Some(segment) => segment,
            None => unreachable!("a partition log always has an active segment"),
        }
    }

    fn maybe_roll(&mut self, batch_bytes: u64, now_ms: i64) -> Result<()> {
        self.io_chooser.record(batch_bytes, now_ms);
        let (active_mode, age_ms) = {
            let active = self.active_segment();
            (active.io_mode(), now_ms - active.created_at_ms)
        };
        let io_mode = self.io_chooser.wanted(active_mode, age_ms);
        let switch = io_mode != active_mode;
        let active = self.active_segment();
        let full = active.assigned_bytes() + batch_bytes > self.config.segment_bytes;
        let old = age_ms >= self.config.segment_ms;
        if active.is_empty() {
            if switch {
                self.active_segment_mut().set_io_mode_before_first_write(io_mode);
            }
            return Ok(());
        }
        if !(full || old || switch) {
            return Ok(());
        }
        if switch {
            tracing::debug!(dir = %self.dir.display(), ?io_mode, "ingest rate changed: rolling to a segment in the other write mode");
        }
        let base_offset = self.offsets.log_end_offset;
        let file = match io_mode {
            IoMode::Direct => self.take_spare_segment(),
            // Quiet now: the spare would hold its disk for nothing.
            IoMode::Buffered => {
                self.remove_spare_segment();
                NewSegmentFile::Deferred
            }
        };
        // The producer state as of the new segment's start, so recovery only
        // replays the active segment; written once it describes durable data.
        let snapshot = self.producers.encode_snapshot(base_offset);
        self.unwritten_snapshots.push_back((base_offset, snapshot));
        let segment = Segment::create_deferred(
            &self.dir,
            base_offset,
            io_mode,
            self.config.index_interval_bytes,
            now_ms,
            file,
        );
        tracing::debug!(dir = %self.dir.display(), base_offset, "rolled segment");
        self.segments.push(segment);
        self.seal_finished_segments();
        self.write_durable_snapshots();
        Ok(())
    }

    /// The file of a new O_DIRECT segment: the spare segment file, if any,
    /// which its first write job renames (its old bytes are batches below
    /// the new segment's base, which recovery never takes for its own).
    fn take_spare_segment(&mut self) -> NewSegmentFile {
        if !std::mem::take(&mut self.has_spare_segment) {
            return NewSegmentFile::Deferred;
        }
        crate::stats::count_recycled_segment();
        NewSegmentFile::FromSpare(self.dir.join(SPARE_SEGMENT_FILE_NAME))
    }

    /// Gives back the disk the spare segment file holds, if there is one
    /// (it is deleted off this thread, `crate::fs_offload`).
    pub fn remove_spare_segment(&mut self) {
        if std::mem::take(&mut self.has_spare_segment) {
            let _ = fs_offload::delete_file_later(&self.dir.join(SPARE_SEGMENT_FILE_NAME));
        }
    }

    /// Seals rolled segments whose writes have all completed.
    fn seal_finished_segments(&mut self) {
        let active_index = self.segments.len() - 1;
        for segment in &mut self.segments[..active_index] {
            if segment.is_unsealed() && segment.durable_bytes() == segment.assigned_bytes() {
                segment.seal_in_background(&self.dir_handle);
            }
        }
    }

    /// Bytes of all segments, written or queued.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::assigned_bytes).sum()
    }

    /// Deletes closed segments whose newest record is older than
    /// `retention_ms`, and the oldest closed segments while the log is larger
    /// than `retention_bytes` without them (-1 disables either). The active
    /// segment is never deleted. Returns how many segments went.
    pub fn enforce_retention(&mut self, retention_ms: i64, retention_bytes: i64, now_ms: i64) -> Result<usize> {
        let mut total_bytes = self.size_bytes();
        let mut deletable = 0;
        for segment in &self.segments[..self.segments.len() - 1] {
            if !segment.is_settled() {
                break; // rolled but not yet sealed (writes in flight), or its seal's files pending
            }
            let expired = retention_ms >= 0 && segment.max_timestamp_ms() < now_ms.saturating_sub(retention_ms);
            let oversized = retention_bytes >= 0 && total_bytes - segment.assigned_bytes() >= retention_bytes as u64;
            let below_start = segment.next_offset() <= self.offsets.log_start_offset;
            if !(expired || oversized || below_start) {
                break;
            }
            total_bytes -= segment.assigned_bytes();
            deletable += 1;
        }
        if deletable == 0 {
            return Ok(0);
        }
        let new_start = self.segments[deletable].base_offset.max(self.offsets.log_start_offset);
        self.move_log_start(new_start, StartCheckpoint::UnlessDerivable)?;
        Ok(deletable)
    }

    /// DeleteRecords: nothing below `offset` is readable any more (whole
    /// segments below it are deleted). Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64> {
        let LogOffsets {
            log_start_offset,
            high_watermark,
            ..
        } = self.offsets;
        if offset > high_watermark {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            });
        }
        if offset > log_start_offset {
            self.move_log_start(offset, StartCheckpoint::Always)?;
        }
        Ok(self.offsets.log_start_offset)
    }

    /// Moves the log start forward, persists it as `checkpoint` says, drops
    /// the sealed segments wholly below it and the aborted transactions that
    /// ended below it.
    fn move_log_start(&mut self, new_start: i64, checkpoint: StartCheckpoint) -> Result<()> {
        self.unchanged_since_clean_open = false;
        assert!(
            new_start >= self.offsets.log_start_offset,
            "log start only moves forward"
        );
        assert!(
            new_start <= self.offsets.high_watermark,
            "log start past the high watermark"
        );
        let active_index = self.segments.len() - 1;
        let gone = self.segments[..active_index]
            .iter()
            .take_while(|s| s.is_settled() && s.next_offset() <= new_start)
            .count();
        let derivable = self.segments[gone].base_offset == new_start;
        if checkpoint == StartCheckpoint::Always || !derivable {
            let path = self.dir.join(LOG_START_CHECKPOINT_FILE_NAME);
            io::write_file_atomically(&path, new_start.to_string().as_bytes())
                .map_err(|e| LogError::io("writing log start checkpoint", &path, e))?;
        }
        self.offsets.log_start_offset = new_start;
        // Not while a roll's rename of the last spare is pending: a new one
        // would replace that file, freeing its blocks on this thread.
        let mut keep_spare = self.config.recycle_segments
            && !self.has_spare_segment
            && !self.compacting
            && !self.segments.iter().any(Segment::takes_spare_file)
            && self.active_segment().io_mode() == IoMode::Direct;
        let spare_path = self.dir.join(SPARE_SEGMENT_FILE_NAME);
        for segment in self.segments.drain(..gone) {
            tracing::debug!(dir = %self.dir.display(), base_offset = segment.base_offset, "deleting segment");
            let fits = || spare_fits(io::filesystem_space(&self.dir), segment.assigned_bytes());
            if keep_spare && fits() && segment.recycle_log_file(&spare_path, &self.dir_handle) {
                keep_spare = false;
                self.has_spare_segment = true;
                continue;
            }
            segment.delete_files(&self.dir_handle);
        }
        self.producers.forget_before(new_start);
        self.cache.borrow_mut().evict_below(self.key, new_start);
        self.refresh_last_stable_offset();
        self.check_offsets();
        Ok(())
    }

    /// One compaction pass: decides whether to compact, builds the key map
    /// over the dirty part of the cleanable segments (the sealed segments,
    /// older than `min.compaction.lag.ms`, below the last stable offset) and
    /// cleans them one by one. Reading, cleaning and writing segment files
    /// run on a thread of their own ([`io::run_off_core`]): a segment of 100
    /// MiB would stop every partition of this core for a read, a rewrite and
    /// an fsync. Only the swap of a cleaned file runs here. Returns the
    /// records removed.
    pub async fn compact(log: &SharedLog, policy: &CompactionPolicy, now_ms: i64) -> Result<u64> {
        let Some(inputs) = log.borrow().compaction_inputs(policy, now_ms) else {
            return Ok(0);
        };
        let _compacting = Compacting::start(log);
        let dir = log.borrow().dir.clone();
        let cleaner_failed = |error| LogError::io("running the cleaner thread", &dir, error);
        let plan = io::run_off_core(CLEANER_THREAD_NAME, move || inputs.plan());
        let plan = Arc::new(plan.await.map_err(cleaner_failed)??);
        let mut removed = 0;
        for &base_offset in &plan.segments {
            let Some(input) = log.borrow().cleaning_input(base_offset, policy, now_ms) else {
                continue;
            };
            let shared_plan = plan.clone();
            let cleaned = io::run_off_core(CLEANER_THREAD_NAME, move || input.clean(&shared_plan));
            let cleaned = cleaned.await.map_err(cleaner_failed)??;
            if let Some(cleaned) = cleaned {
                removed += log.borrow_mut().swap_cleaned(cleaned, now_ms)?;
            }
        }
        log.borrow_mut().unchanged_since_clean_open = false;
        // Durably (its fsyncs would hold the core), after every swap.
        let dir_handle = log.borrow().dir_handle.clone();
        let checkpoint = dir_handle.proc_path().join(CLEANER_CHECKPOINT_FILE_NAME);
        let clean_upto = plan.clean_upto.to_string();
        let written = io::run_off_core(CLEANER_THREAD_NAME, move || {
            let _dir = dir_handle; // keeps `checkpoint`'s directory named
            io::write_file_atomically(&checkpoint, clean_upto.as_bytes())
                .map_err(|e| LogError::io("writing cleaner checkpoint", &checkpoint, e))
        });
        written.await.map_err(cleaner_failed)??;
        Ok(removed)
    }

    /// What a compaction pass needs from this log, if it has anything to
    /// clean (`None` otherwise); reads no segment.
    fn compaction_inputs(&self, policy: &CompactionPolicy, now_ms: i64) -> Option<CompactionInputs> {
        let active_index = self.segments.len() - 1;
        let cleanable: Vec<&Segment> = self.segments[..active_index]
            .iter()
            .take_while(|s| {
                s.is_settled()
                    && s.max_timestamp_ms() < now_ms.saturating_sub(policy.min_compaction_lag_ms)
                    && s.next_offset() <= self.offsets.last_stable_offset
            })
            .collect();
        let cleaned_upto = read_checkpoint(&self.dir, CLEANER_CHECKPOINT_FILE_NAME).unwrap_or(0);
        let dirty: Vec<&&Segment> = cleanable.iter().filter(|s| s.next_offset() > cleaned_upto).collect();
        let oldest_dirty = dirty.first()?;
        let total_bytes: u64 = cleanable.iter().map(|s| s.assigned_bytes()).sum();
        let dirty_bytes: u64 = dirty.iter().map(|s| s.assigned_bytes()).sum();
        let ratio = dirty_bytes as f64 / total_bytes.max(1) as f64;
        let overdue = oldest_dirty.max_timestamp_ms() < now_ms.saturating_sub(policy.max_compaction_lag_ms);
        if ratio < policy.min_cleanable_dirty_ratio && !overdue {
            return None;
        }
        Some(CompactionInputs {
            dirty: dirty.iter().map(|s| self.path_off_core(s)).collect(),
            _dir: self.dir_handle.clone(),
            segments: cleanable.iter().map(|s| s.base_offset).collect(),
            clean_upto: cleanable.last().map_or(cleaned_upto, |s| s.next_offset()),
            aborted: self.producers.aborted_transactions(),
        })
    }

    /// `segment`'s file as work off the core must name it: through the
    /// partition directory's descriptor, so that it never reaches a new
    /// partition of the same name if this one is deleted meanwhile.
    fn path_off_core(&self, segment: &Segment) -> PathBuf {
        self.dir_handle
            .proc_path()
            .join(segment::segment_file_name(segment.base_offset, segment::LOG_SUFFIX))
    }

    /// What cleaning the segment at `base_offset` needs; `None` if it is gone
    /// (retention) or not cleanable. Opens the segment's file for reads now:
    /// until the swap, reads must find the old bytes through it, not the
    /// cleaned copy the cleaner renames into place (idle files are not
    /// released during a pass).
    fn cleaning_input(&self, base_offset: i64, policy: &CompactionPolicy, now_ms: i64) -> Option<CleaningInput> {
        let index = self.segments.iter().position(|s| s.base_offset == base_offset)?;
        if index + 1 == self.segments.len() || !self.segments[index].is_settled() {
            return None;
        }
        if let Err(error) = self.segments[index].read_file() {
            tracing::warn!(%error, "segment to clean cannot be opened");
            return None;
        }
        Some(CleaningInput {
            base_offset,
            log_path: self.path_off_core(&self.segments[index]),
            dir: self.dir_handle.clone(),
            horizon_ms: now_ms.saturating_sub(policy.delete_retention_ms),
        })
    }

    /// Takes a cleaned segment, which the cleaner thread already renamed
    /// into place and scanned, in the old one's stead. If retention deleted
    /// the segment meanwhile, the cleaned file (which the rename may have
    /// put back under a deleted name) is deleted too. Returns the records
    /// removed.
    fn swap_cleaned(&mut self, cleaned: CleanedSegment, now_ms: i64) -> Result<u64> {
        let base_offset = cleaned.base_offset;
        let present = self.segments.iter().position(|s| s.base_offset == base_offset);
        let Some(index) = present.filter(|&i| i + 1 < self.segments.len()) else {
            segment::delete_segment_files(&self.dir_handle, base_offset);
            return Ok(0);
        };
        let interval_bytes = self.config.index_interval_bytes;
        let reopened = Segment::from_scan(&self.dir, base_offset, cleaned.scan, interval_bytes, now_ms);
        // Cached copies of the rewritten range would serve superseded values.
        self.cache.borrow_mut().evict_below(self.key, reopened.next_offset());
        let replaced = std::mem::replace(&mut self.segments[index], reopened);
        // The old file has no name left: its last close frees its blocks,
        // which took a core 2-9 ms (perf trace); the background thread does it.
        if let Some(file) = replaced.take_read_file() {
            fs_offload::submit(&self.dir_handle, move || drop(file));
        }
        Ok(cleaned.records_removed)
    }

    /// New roll limits after a topic config change.
    pub fn set_roll_limits(&mut self, segment_bytes: u64, segment_ms: i64) {
        self.config.segment_bytes = segment_bytes;
        self.config.segment_ms = segment_ms;
    }

    /// Writes the snapshots taken at rolls whose batches are all durable now.
    /// Not sooner: a snapshot names the offset it describes the state at, and
    /// a crash before the batches below it are written would leave a log
    /// ending there (at the next segment's base) with those batches missing.
    /// Loaded, the snapshot would answer a producer's retry of them as a
    /// duplicate: acknowledged, and lost.
    fn write_durable_snapshots(&mut self) {
        while let Some((offset, _)) = self.unwritten_snapshots.front() {
            if *offset > self.offsets.high_watermark {
                return;
            }
            if let Some((offset, snapshot)) = self.unwritten_snapshots.pop_front() {
                self.store_producer_snapshot(offset, snapshot);
            }
        }
    }

    /// Writes the producer table as of the log end, if every batch is durable
    /// (a snapshot is a shortcut: without one, recovery replays more).
    fn write_producer_snapshot(&mut self) {
        let offset = self.offsets.log_end_offset;
        if offset != self.offsets.high_watermark {
            tracing::warn!(dir = %self.dir.display(), "batches not durable at close; no producer snapshot");
            return;
        }
        self.store_producer_snapshot(offset, self.producers.encode_snapshot(offset));
    }

    /// Writes the snapshot at `offset` and keeps only the two latest, on the
    /// background thread. A failure is logged: recovery then replays from an
    /// older snapshot.
    fn store_producer_snapshot(&mut self, offset: i64, snapshot: Vec<u8>) {
        let name = segment::segment_file_name(offset, SNAPSHOT_SUFFIX);
        self.snapshot_offsets.retain(|existing| *existing < offset);
        let stale_count = self.snapshot_offsets.len().saturating_sub(1);
        let stale: Vec<String> = self
            .snapshot_offsets
            .drain(..stale_count)
            .map(|old| segment::segment_file_name(old, SNAPSHOT_SUFFIX))
            .collect();
        self.snapshot_offsets.push(offset);
        let dir = self.dir_handle.clone();
        fs_offload::submit(&self.dir_handle, move || {
            // Lazily: a snapshot is a shortcut, rebuilt from batch headers when
            // it is missing or damaged; a clean shutdown syncs it with the rest.
            if let Err(error) = dir.write_file_lazily(&name, &snapshot) {
                tracing::warn!(dir = %dir.path().display(), %name, %error, "writing producer snapshot failed");
                return;
            }
            for old in &stale {
                let _ = dir.remove_file(old);
            }
        });
    }

    /// Closes the descriptors of a partition unused for `idle_ms` (they reopen
    /// on its next read or write); true when it did. Never while a write is
    /// queued or running.
    pub fn release_idle_files(&mut self, now_ms: i64, idle_ms: i64) -> bool {
        let idle = now_ms.saturating_sub(self.last_used_ms.get()) >= idle_ms;
        if !idle || self.write_in_flight || !self.pending.is_empty() || self.compacting {
            return false;
        }
        for segment in &mut self.segments {
            segment.release_files();
        }
        true
    }

    /// Descriptors the partition's segments hold now.
    pub fn open_files(&self) -> usize {
        self.segments.iter().map(Segment::open_files).sum()
    }

    /// When the partition was last appended to or read (wall clock, ms).
    pub fn last_used_ms(&self) -> i64 {
        self.last_used_ms.get()
    }

    /// A receiver that completes once `next_offset` is durable (or the write failed).
    pub fn wait_durable(&mut self, next_offset: i64) -> oneshot::Receiver<Result<(), WriteFailed>> {
        let (sender, receiver) = oneshot::channel();
        if next_offset <= self.offsets.high_watermark {
            let _ = sender.send(Ok(()));
        } else if let Some(failure) = &self.failure {
            let _ = sender.send(Err(failure.clone()));
        } else {
            self.durable_waiters.push_back((next_offset, sender));
        }
        receiver
    }

    /// A receiver that completes when the high watermark passes `offset`;
    /// `None` when it already has.
    pub fn watch(&mut self, offset: i64) -> Option<oneshot::Receiver<()>> {
        if self.offsets.high_watermark > offset {
            return None;
        }
        if self.data_waiters.len() >= DATA_WAITERS_MAX / 2 {
            self.data_waiters.retain(|waiter| !waiter.is_closed());
        }
        if self.data_waiters.len() >= DATA_WAITERS_MAX {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        self.data_waiters.push(sender);
        Some(receiver)
    }

    /// Asks the writer to fsync what is written (for `log.flush.interval.ms`).
    pub fn request_fsync(&mut self) {
        if self.unflushed_records > 0 {
            self.fsync_requested = true;
            self.wake_writer.notify();
        }
    }

    fn next_writer_step(&mut self) -> WriterStep {
        let step = self.plan_writer_step();
        self.write_in_flight = matches!(step, WriterStep::Run(_));
        step
    }

    fn plan_writer_step(&mut self) -> WriterStep {
        if self.failure.is_some() {
            return WriterStep::Stop;
        }
        let Some(first) = self.pending.front() else {
            if self.fsync_requested {
                self.fsync_requested = false;
                let active = self.active_segment_mut();
                return WriterStep::Run(WriteJob {
                    writer: active.writer_source().map_err(|e| e.to_string()),
                    segment_base: active.base_offset,
                    position: active.durable_bytes(),
                    chunks: Vec::new(),
                    end_position: active.durable_bytes(),
                    next_offset: self.offsets.high_watermark,
                    records: 0,
                    fsync: true,
                });
            }
            return if self.closing {
                WriterStep::Stop
            } else {
                WriterStep::Idle
            };
        };
        let segment_base = first.segment_base;
        let position = first.position;
        let mut job = WriteJob {
            writer: self
                .segment_mut(segment_base)
                .ok_or_else(|| format!("no segment at offset {segment_base}"))
                .and_then(|segment| segment.writer_source().map_err(|e| e.to_string())),
            segment_base,
            position,
            chunks: Vec::new(),
            end_position: position,
            next_offset: self.offsets.high_watermark,
            records: 0,
            fsync: false,
        };
        let mut job_bytes = 0usize;
        while let Some(next) = self.pending.front() {
            let same_segment = next.segment_base == segment_base;
            if !same_segment || (job_bytes > 0 && job_bytes + next.bytes.len() > WRITE_JOB_BYTES_MAX) {
                break;
            }
            let Some(next) = self.pending.pop_front() else {
                break;
            };
            assert_eq!(next.position, job.end_position, "pending writes must be contiguous");
            job_bytes += next.bytes.len();
            job.end_position += next.bytes.len() as u64;
            job.next_offset = next.next_offset;
            job.records += next.records;
            job.chunks.extend(next.bytes.chunks().cloned());
        }
        job.fsync = self.fsync_requested
            || self.unflushed_records.saturating_add(job.records) >= self.config.flush_interval_messages;
        if job.fsync {
            self.fsync_requested = false;
        }
        WriterStep::Run(job)
    }

    fn segment_mut(&mut self, base_offset: i64) -> Option<&mut Segment> {
        let index = self.segments.partition_point(|s| s.base_offset <= base_offset);
        index.checked_sub(1).map(|i| &mut self.segments[i])
    }

    /// Refuses appends until the partition is reopened, failing every append
    /// waiting to be durable.
    fn fail_writes(&mut self, reason: &str) {
        let failure = WriteFailed(format!("{}: {reason}", self.dir.display()).into());
        tracing::error!(%failure, "partition write failed; appends refused until it is reopened");
        for (_, waiter) in self.durable_waiters.drain(..) {
            let _ = waiter.send(Err(failure.clone()));
        }
        self.pending.clear();
        self.failure = Some(failure);
        // The disk may be full: the spare's space is the first to give back.
        self.remove_spare_segment();
    }

    fn finish_write_job(&mut self, job: &WriteJob, outcome: WriteOutcome) {
        self.write_in_flight = false;
        if let (Some(writer), Some(segment)) = (outcome.created_writer, self.segment_mut(job.segment_base)) {
            segment.install_created_writer(writer);
        }
        if let Err(error) = outcome.result {
            self.fail_writes(&error.to_string());
            return;
        }
        if let Some(segment) = self.segment_mut(job.segment_base) {
            segment.mark_durable(job.end_position);
        }
        self.unflushed_records = if job.fsync {
            0
        } else {
            self.unflushed_records.saturating_add(job.records)
        };
        if job.next_offset > self.offsets.high_watermark {
            self.offsets.high_watermark = job.next_offset;
            self.refresh_last_stable_offset();
            self.check_offsets();
            while let Some((target, _)) = self.durable_waiters.front() {
                if *target > self.offsets.high_watermark {
                    break;
                }
                if let Some((_, waiter)) = self.durable_waiters.pop_front() {
                    let _ = waiter.send(Ok(()));
                }
            }
            for waiter in self.data_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
        self.seal_finished_segments();
        self.write_durable_snapshots();
    }

    /// Reads whole batches from `offset`: from the cache when it holds them,
    /// otherwise as a region of one segment file for `sendfile`. Never past the
    /// high watermark. With `min_one_batch` the first batch is returned even
    /// when larger than `max_bytes` (KIP-74).
    pub fn read(&self, offset: i64, max_bytes: usize, min_one_batch: bool) -> Result<ReadResult> {
        self.read_isolated(offset, max_bytes, min_one_batch, Isolation::ReadUncommitted)
    }

    /// As [`Self::read`], up to the last stable offset for ReadCommitted, with
    /// the aborted transactions that overlap the range.
    pub fn read_isolated(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        isolation: Isolation,
    ) -> Result<ReadResult> {
        let LogOffsets {
            log_start_offset,
            high_watermark,
            last_stable_offset,
            ..
        } = self.offsets;
        if offset < log_start_offset || offset > high_watermark {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            });
        }
        self.last_used_ms.set(wall_clock_ms());
        let visible_end = match isolation {
            Isolation::ReadUncommitted => high_watermark,
            Isolation::ReadCommitted => last_stable_offset,
        };
        if offset >= visible_end {
            return Ok(ReadResult::nothing_from(offset));
        }
        let cached = self
            .cache
            .borrow_mut()
            .read(self.key, offset, max_bytes, min_one_batch, visible_end);
        let mut result = match cached {
            Some(cached) => ReadResult {
                total_bytes: cached.chunks.iter().map(Bytes::len).sum(),
                chunks: cached.chunks.into_iter().map(ReadChunk::Memory).collect(),
                next_offset: cached.next_offset,
                aborted: Vec::new(),
            },
            None => self.read_from_segments(offset, max_bytes, min_one_batch, visible_end)?,
        };
        if isolation == Isolation::ReadCommitted && !result.chunks.is_empty() {
            result.aborted = self.producers.aborted_between(offset, visible_end - 1);
        }
        Ok(result)
    }

    fn read_from_segments(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        visible_end: i64,
    ) -> Result<ReadResult> {
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        for segment in &self.segments[first..] {
            let Some(location) = segment.locate(offset)? else {
                continue;
            };
            if location.header.base_offset >= visible_end {
                return Ok(ReadResult::nothing_from(offset));
            }
            // Stop before the batch that holds `visible_end` (a batch boundary:
            // the high watermark, or the first batch of an open transaction).
            let (end_position, end_offset) = if visible_end < segment.next_offset() {
                segment
                    .locate(visible_end)?
                    .map_or((segment.durable_bytes(), visible_end), |end| {
                        (end.position, end.header.base_offset)
                    })
            } else {
                (segment.durable_bytes(), segment.next_offset())
            };
            let available = end_position.saturating_sub(location.position);
            let first_batch = location.header.total_bytes() as u64;
            let wanted = (max_bytes as u64).min(available);
            let len = if wanted >= first_batch || min_one_batch {
                wanted.max(first_batch)
            } else {
                0
            };
            if len == 0 {
                return Ok(ReadResult::nothing_from(offset));
            }
            // A region cut by `max_bytes` ends at the last whole batch it
            // holds (always at least the first): a partial batch would be
            // sent only for the client to drop it and fetch it again.
            let (region_end, next_offset) = if location.position + len == end_position {
                (end_position, end_offset)
            } else {
                segment.last_batch_end(&location, location.position + len)?
            };
            let len = region_end - location.position;
            debug_assert!(len >= first_batch, "a region holds at least its first whole batch");
            return Ok(ReadResult {
                chunks: vec![ReadChunk::File(FileRegion {
                    file: segment.read_file()?,
                    position: location.position,
                    len,
                    written_end: segment.durable_bytes().max(region_end),
                })],
                total_bytes: len as usize,
                next_offset: next_offset.max(offset),
                aborted: Vec::new(),
            });
        }
        Ok(ReadResult::nothing_from(offset))
    }

    /// The first offset whose timestamp is `>= target_ms`, with that timestamp.
    /// Exact for uncompressed batches; for compressed ones, the batch's first offset.
    pub fn offset_for_timestamp(&self, target_ms: i64) -> Result<Option<(i64, i64)>> {
        for segment in &self.segments {
            let Some(location) = segment.locate_by_time(target_ms)? else {
                continue;
            };
            if location.header.next_offset() > self.offsets.high_watermark {
                return Ok(None);
            }
            let batch = segment.read_batch(&location)?;
            let exact = batch::parse_records(&batch)
                .and_then(|records| records.into_iter().find(|r| r.timestamp_ms >= target_ms));
            return Ok(Some(match exact {
                Some(record) => (record.offset, record.timestamp_ms),
                None => (location.header.base_offset, location.header.max_timestamp),
            }));
        }
        Ok(None)
    }

    /// Reads `[offset, high watermark)` into memory as whole batches, in
    /// pieces of about `chunk_bytes` (for loading internal topics at start).
    pub fn read_into_memory(&self, offset: i64, chunk_bytes: usize) -> Result<(Vec<u8>, i64)> {
        let result = self.read(offset, chunk_bytes, true)?;
        let mut bytes = Vec::with_capacity(result.total_bytes);
        for chunk in &result.chunks {
            match chunk {
                ReadChunk::Memory(memory) => bytes.extend_from_slice(memory),
                ReadChunk::File(region) => {
                    use std::os::unix::fs::FileExt;
                    let start = bytes.len();
                    bytes.resize(start + region.len as usize, 0);
                    region
                        .file
                        .read_exact_at(&mut bytes[start..], region.position)
                        .map_err(|e| LogError::io("reading segment", &self.dir, e))?;
                }
            }
        }
        Ok((bytes, result.next_offset))
    }

    /// End offset of `epoch` and the epoch it belongs to (OffsetForLeaderEpoch).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.offsets.log_end_offset)
    }

    /// Waits for pending writes, stops the writer, seals the active segment's
    /// files for a clean restart.
    pub async fn close(log: &SharedLog) -> Result<()> {
        let next_offset = log.borrow().offsets.log_end_offset;
        let durable = log.borrow_mut().wait_durable(next_offset);
        let _ = durable.await;
        let mut log = log.borrow_mut();
        log.closing = true;
        log.wake_writer.notify();
        let key = log.key;
        log.cache.borrow_mut().remove_partition(key);
        if log.failure.is_some() || log.unchanged_since_clean_open {
            return Ok(());
        }
        log.write_producer_snapshot();
        let dir = log.dir_handle.clone();
        log.active_segment_mut().close_clean(&dir)
    }

    /// Stops the writer and removes every file of the partition.
    pub fn delete(log: &SharedLog) -> Result<()> {
        let mut log = log.borrow_mut();
        log.closing = true;
        log.failure = Some(WriteFailed("partition deleted".into()));
        log.wake_writer.notify();
        let key = log.key;
        log.cache.borrow_mut().remove_partition(key);
        fs_offload::delete_dir_later(&log.dir).map_err(|e| LogError::io("deleting partition", &log.dir, e))
    }
}

/// Fails the partition if its writer task unwinds. The runtime would catch
/// the panic and carry on, leaving appends waiting for ever for a writer that
/// is gone; failed, they get KAFKA_STORAGE_ERROR and the owner core's reopen
/// retry starts a new writer.
struct WriterPanicGuard(SharedLog);

impl Drop for WriterPanicGuard {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if let Ok(mut log) = self.0.try_borrow_mut() {
            log.write_in_flight = false;
            log.fail_writes("the writer task panicked");
        }
    }
}

async fn run_writer(log: SharedLog, wake: Rc<LocalNotify>) {
    let _guard = WriterPanicGuard(log.clone());
    loop {
        let step = log.borrow_mut().next_writer_step();
        match step {
            WriterStep::Stop => return,
            WriterStep::Idle => wake.notified().await,
            WriterStep::Run(job) => {
                let outcome = run_write_job(&job).await;
                log.borrow_mut().finish_write_job(&job, outcome);
            }
        }
    }
}

/// What a write job did, and the writer it created for a new segment.
struct WriteOutcome {
    result: std::io::Result<()>,
    created_writer: Option<Rc<SegmentWriter>>,
}

async fn run_write_job(job: &WriteJob) -> WriteOutcome {
    let mut created_writer = None;
    let result = async {
        let source = job
            .writer
            .as_ref()
            .map_err(|reason| std::io::Error::other(reason.clone()))?;
        if job.chunks.is_empty() && !job.fsync {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let writer = match source {
            SegmentWriterSource::Ready(writer) => writer.clone(),
            SegmentWriterSource::Create {
                path,
                io_mode,
                from_spare,
            } => {
                let writer = Rc::new(SegmentWriter::create(path, *io_mode, from_spare.as_deref()).await?);
                created_writer = Some(writer.clone());
                writer
            }
        };
        let result = write_and_sync(&writer, job).await;
        crate::stats::observe_write(started.elapsed());
        result
    }
    .await;
    WriteOutcome { result, created_writer }
}

async fn write_and_sync(writer: &SegmentWriter, job: &WriteJob) -> std::io::Result<()> {
    if !job.chunks.is_empty() {
        let inline_allowed = !io_policy::core_ingest_above(io_policy::INLINE_WRITES_CORE_BYTES_PER_S_MAX);
        writer.write(job.position, job.chunks.clone(), inline_allowed).await?;
    }
    if job.fsync {
        writer.sync().await?;
    }
    Ok(())
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where the log starts when that is inside a segment (DeleteRecords).
const LOG_START_CHECKPOINT_FILE_NAME: &str = "log-start-offset";
/// How far compaction has cleaned.
const CLEANER_CHECKPOINT_FILE_NAME: &str = "cleaner-offset-checkpoint";

fn read_checkpoint(dir: &Path, name: &str) -> Option<i64> {
    std::fs::read_to_string(dir.join(name)).ok()?.trim().parse().ok()
}

fn read_log_start_checkpoint(dir: &Path) -> Option<i64> {
    read_checkpoint(dir, LOG_START_CHECKPOINT_FILE_NAME)
}

fn compaction_failure(path: &Path, error: compaction::CompactionError) -> LogError {
    LogError::io(
        "compacting",
        path,
        std::io::Error::new(std::io::ErrorKind::InvalidData, error),
    )
}

/// The thread that reads, cleans and writes segment files for compaction.
const CLEANER_THREAD_NAME: &str = "ringlog-cleaner";

/// What a compaction pass reads off the core to build its plan.
struct CompactionInputs {
    /// The dirty segments' files, oldest first, under `_dir`'s proc path.
    dirty: Vec<PathBuf>,
    /// Held so that those paths keep naming the partition's directory.
    _dir: DirHandle,
    segments: Vec<i64>,
    clean_upto: i64,
    aborted: Vec<AbortedTransaction>,
}

impl CompactionInputs {
    /// Reads the dirty segments into the key map (off the core).
    fn plan(self) -> Result<CompactionPlan> {
        let mut map = OffsetMap::default();
        for path in &self.dirty {
            let bytes = std::fs::read(path).map_err(|e| LogError::io("reading segment", path, e))?;
            map.add_segment(&bytes, |producer_id, offset| {
                is_aborted_in(&self.aborted, producer_id, offset)
            })
            .map_err(|e| compaction_failure(path, e))?;
        }
        Ok(CompactionPlan {
            map,
            segments: self.segments,
            clean_upto: self.clean_upto,
            aborted: self.aborted,
        })
    }
}

/// What one compaction pass cleans, with the key map it uses.
struct CompactionPlan {
    map: OffsetMap,
    /// Base offsets of the segments to clean, oldest first.
    segments: Vec<i64>,
    clean_upto: i64,
    aborted: Vec<AbortedTransaction>,
}

/// One segment to clean, off the core.
struct CleaningInput {
    base_offset: i64,
    /// Under `dir`'s proc path, which holding `dir` keeps valid.
    log_path: PathBuf,
    dir: DirHandle,
    /// Tombstones older than this go.
    horizon_ms: i64,
}

impl CleaningInput {
    /// Writes (and fsyncs) the cleaned copy beside the segment; `None` when
    /// cleaning removes nothing.
    fn clean(self, plan: &CompactionPlan) -> Result<Option<CleanedSegment>> {
        let path = &self.log_path;
        let bytes = std::fs::read(path).map_err(|e| LogError::io("reading segment", path, e))?;
        let aborted = |producer_id, offset| is_aborted_in(&plan.aborted, producer_id, offset);
        let (cleaned, stats) = compaction::clean_segment(&bytes, &plan.map, aborted, self.horizon_ms)
            .map_err(|e| compaction_failure(path, e))?;
        if stats.records_removed == 0 {
            return Ok(None);
        }
        let cleaned_path = path.with_extension("log.cleaned");
        io::write_file_durably(&cleaned_path, &cleaned)
            .map_err(|e| LogError::io("writing cleaned segment", &cleaned_path, e))?;
        // The old indexes go first, so that a crash never pairs the copy with
        // them (the core's reads use the indexes in memory, and the old file
        // through its open descriptor, until the swap). The rename needs no
        // directory fsync: losing it in a crash brings back the segment
        // before cleaning, which holds every record the copy does (and the
        // cleaner checkpoint's own directory fsync persists it first).
        for suffix in [segment::OFFSET_INDEX_SUFFIX, segment::TIME_INDEX_SUFFIX] {
            let _ = self
                .dir
                .remove_file(&segment::segment_file_name(self.base_offset, suffix));
        }
        std::fs::rename(&cleaned_path, path).map_err(|e| LogError::io("swapping cleaned segment", path, e))?;
        let scan = Segment::scan(&self.dir.proc_path(), self.base_offset, false)?;
        if let Err(error) = scan.index_files(self.base_offset).write(&self.dir) {
            tracing::warn!(segment = %path.display(), %error, "writing a cleaned segment's indexes failed");
        }
        Ok(Some(CleanedSegment {
            base_offset: self.base_offset,
            scan,
            records_removed: stats.records_removed,
        }))
    }
}

/// A segment the cleaner rewrote, renamed into place and scanned.
struct CleanedSegment {
    base_offset: i64,
    scan: segment::SegmentScan,
    records_removed: u64,
}

/// Marks a log as compacting while it lives: retention then keeps no spare
/// segment file, whose reuse would overwrite a file the cleaner reads.
struct Compacting(SharedLog);

impl Compacting {
    fn start(log: &SharedLog) -> Self {
        log.borrow_mut().compacting = true;
        Self(log.clone())
    }
}

impl Drop for Compacting {
    fn drop(&mut self) {
        if let Ok(mut log) = self.0.try_borrow_mut() {
            log.compacting = false;
        }
    }
}

/// Snapshots past the recovered log end describe batches that did not
/// survive; the log may grow past their offsets again with other batches, so
/// they go now (as Kafka's recovery does).
fn remove_snapshots_above(dir: &Path, log_end_offset: i64) {
    for offset in list_snapshots(dir)
        .into_iter()
        .filter(|offset| *offset > log_end_offset)
    {
        let path = segment::segment_path(dir, offset, SNAPSHOT_SUFFIX);
        tracing::info!(path = %path.display(), log_end_offset, "removing a producer snapshot past the log end");
        let _ = std::fs::remove_file(path);
    }
}

fn list_snapshots(dir: &Path) -> Vec<i64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let stem = name.to_str()?.strip_suffix(".snapshot")?.to_string();
            (stem.len() == 20).then(|| stem.parse().ok()).flatten()
        })
        .collect()
}

/// The producer table at the log end: the latest valid snapshot at or below
/// it, plus the headers of every batch after the snapshot.
fn rebuild_producer_state(
    dir: &Path,
    segments: &[Segment],
    log_start_offset: i64,
    log_end_offset: i64,
) -> Result<ProducerStateTable> {
    let mut snapshots = list_snapshots(dir);
    snapshots.sort_unstable_by(|a, b| b.cmp(a));
    let loaded = snapshots
        .into_iter()
        .filter(|offset| *offset <= log_end_offset)
        .find_map(|offset| {
            let bytes = std::fs::read(segment::segment_path(dir, offset, SNAPSHOT_SUFFIX)).ok()?;
            let decoded = ProducerStateTable::decode_snapshot(&bytes);
            if decoded.is_none() {
                tracing::warn!(dir = %dir.display(), offset, "damaged producer snapshot; using an older one");
            }
            decoded.filter(|(at, _)| *at == offset)
        });
    let (from_offset, mut table) = loaded.unwrap_or((log_start_offset, ProducerStateTable::default()));
    for segment in segments.iter().filter(|s| s.next_offset() > from_offset) {
        let mut marker_error = None;
        segment.for_each_header_from(from_offset, |header, position| {
            if header.base_offset < from_offset || marker_error.is_some() {
                return;
            }
            if !header.is_control() {
                table.record(header);
                return;
            }
            // A marker needs its record (commit or abort), replayed in offset order.
            let location = crate::log::segment::BatchLocation {
                position,
                header: *header,
            };
            match segment.read_batch(&location) {
                Ok(batch) => {
                    if let Some(commit) = batch::marker_is_commit(&batch) {
                        table.record_marker(header.producer_id, header.producer_epoch, commit, header.base_offset);
                    }
                }
                Err(error) => marker_error = Some(error),
            }
        })?;
        if let Some(error) = marker_error {
            return Err(error);
        }
    }
    Ok(table)
}

fn open_segments(
    dir_handle: &DirHandle,
    config: &LogConfig,
    clean_shutdown: bool,
    now_ms: i64,
) -> Result<Vec<Segment>> {
    let dir = dir_handle.path();
    fs_offload::remove_leftovers(dir);
    let mut bases = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io("listing partition dir", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("listing partition dir", dir, e))?;
        if entry.file_name().to_str().is_some_and(|n| n.ends_with(".cleaned")) {
            // A cleaning interrupted before its swap: the original is intact.
            tracing::warn!(file = %entry.path().display(), "removing an unfinished cleaned segment");
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        if let Some(base) = entry.file_name().to_str().and_then(segment::parse_segment_file_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
    // Rolls whose writes never completed (a crash, a full disk) leave empty
    // segments; after a disk-full episode there can be hundreds: one line.
    let mut removed_empty_bases = Vec::new();
    for (index, &base) in bases.iter().enumerate() {
        let is_last = index + 1 == bases.len();
        let segment = Segment::open(
            dir,
            base,
            clean_shutdown || !is_last,
            config.index_interval_bytes,
            now_ms,
        )?;
        if let Some(previous) = segments.last() {
            if previous.next_offset() > base {
                tracing::warn!(dir = %dir.display(), base, "segment overlaps its predecessor; ignoring it");
                continue;
            }
        }
        if segment.is_empty() && !is_last {
            segment.delete_files(dir_handle);
            removed_empty_bases.push(base);
            continue;
        }
        segments.push(segment);
    }
    if let (Some(first), Some(last)) = (removed_empty_bases.first(), removed_empty_bases.last()) {
        let count = removed_empty_bases.len();
        tracing::warn!(dir = %dir.display(), count, first, last, "removed empty sealed segments");
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_writer_fails_the_partition_and_its_waiters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spare = dir.path().join(SPARE_SEGMENT_FILE_NAME);
        std::fs::write(&spare, [0u8; 4096]).expect("a spare segment file");
        tokio_uring::start(async {
            let cache = Rc::new(RefCell::new(BatchCache::new(1 << 20)));
            let log = PartitionLog::open(dir.path(), 1, LogConfig::default(), cache, false, 0).expect("open");
            let batch = crate::batch::build_batch(&[(None, Some(b"v"))], 0);
            let appended = log.borrow_mut().append(vec![batch], None, 0).expect("append");
            let durable = log.borrow_mut().wait_durable(appended.next_offset + 1);
            let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _guard = WriterPanicGuard(log.clone());
                panic!("a bug in a write");
            }));
            assert!(unwound.is_err());
            assert!(log.borrow().is_failed(), "appends are refused until a reopen");
            assert!(
                durable.await.expect("answered").is_err(),
                "the waiter hears of the failure"
            );
            assert!(!spare.exists(), "the failed partition gave back its spare's disk");
        });
    }

    /// Compaction cleans a segment on a thread of its own while the core
    /// goes on, and renames the cleaned copy into place there. If retention
    /// deleted that segment meanwhile, the rename put a file back under a
    /// deleted name; the swap deletes it again.
    #[test]
    fn a_cleaned_segment_retention_deleted_meanwhile_stays_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        tokio_uring::start(async {
            let cache = Rc::new(RefCell::new(BatchCache::new(0)));
            let config = LogConfig {
                segment_bytes: 1024,
                ..LogConfig::default()
            };
            let log = PartitionLog::open(dir.path(), 1, config, cache, false, 0).expect("open");
            for index in 0..40 {
                let batch = crate::batch::build_batch(&[(Some(b"key"), Some(format!("v{index}").as_bytes()))], 0);
                let appended = log.borrow_mut().append(vec![batch], None, 0).expect("append");
                let durable = log.borrow_mut().wait_durable(appended.next_offset);
                durable.await.expect("answered").expect("durable");
            }
            fs_offload::wait_for_all(); // the rolled segments' seals
            let first = dir.path().join("00000000000000000000.log");
            let cleaned = std::fs::read(&first).expect("first segment");
            let deleted = log.borrow_mut().enforce_retention(-1, 0, 0).expect("retention");
            assert!(deleted > 0);
            fs_offload::wait_for_all(); // its files are gone
            assert!(!first.exists());
            // The cleaner's rename and scan, after the deletion.
            std::fs::write(&first, &cleaned).expect("renamed into place");
            let scan = Segment::scan(dir.path(), 0, false).expect("scan");
            let segments = log.borrow().segment_count();
            let cleaned = CleanedSegment {
                base_offset: 0,
                scan,
                records_removed: 1,
            };
            assert_eq!(log.borrow_mut().swap_cleaned(cleaned, 0).expect("swap"), 0);
            assert_eq!(log.borrow().segment_count(), segments);
            fs_offload::wait_for_all();
            assert!(!first.exists(), "the segment stays deleted");
        });
    }

    #[test]
    fn a_spare_is_kept_only_while_a_tenth_of_the_filesystem_stays_free_besides_it() {
        let space = |available_bytes| {
            Some(io::FilesystemSpace {
                total_bytes: 1000,
                available_bytes,
            })
        };
        assert!(spare_fits(space(600), 100));
        assert!(spare_fits(space(200), 100));
        assert!(!spare_fits(space(199), 100));
        assert!(!spare_fits(space(50), 100));
        assert!(!spare_fits(None, 100), "unknown space: give the disk back");
    }
}
