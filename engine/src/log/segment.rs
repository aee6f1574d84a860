//! One segment: a `.log` file of whole record batches named by its base offset,
//! with its sparse offset and time indexes.
//!
//! Invariants:
//! - `durable_bytes <= assigned_bytes`; bytes below `durable_bytes` have been
//!   written and are never rewritten with other contents.
//! - Batches in the file are contiguous, with strictly increasing offsets,
//!   starting at or after `base_offset`.
//! - Only the active segment has a writer; a sealed segment's file length is its
//!   logical length (no O_DIRECT padding) and its indexes are on disk.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::batch::{self, BatchHeader, BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES};
use crate::error::{LogError, Result};
use crate::fs_offload::{self, DirHandle};
use crate::io::{self, IoMode, SegmentWriter};
use crate::log::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};

pub const LOG_SUFFIX: &str = "log";
pub const OFFSET_INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";

pub fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(segment_file_name(base_offset, suffix))
}

pub fn segment_file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// Parses `00000000000000000042.log` into 42.
pub fn parse_segment_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Where a batch sits in a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLocation {
    pub position: u64,
    pub header: BatchHeader,
}

pub struct Segment {
    pub base_offset: i64,
    log_path: PathBuf,
    /// Opened at the first read, dropped when the partition idles
    /// ([`Self::release_files`]): thousands of partitions need not hold
    /// thousands of descriptors.
    read_file: RefCell<Option<Arc<File>>>,
    /// Set while the segment takes appends (active, or rolled with writes
    /// pending); sealed segments are read-only.
    unsealed: bool,
    /// Set once a background seal's file work has run; `None` when sealed
    /// in place or never unsealed in this process.
    seal_done: Option<Arc<AtomicBool>>,
    /// The log file exists (see [`Self::create_deferred`]).
    file_created: bool,
    /// Until `file_created`: the spare segment file the first write job
    /// renames to this segment's name instead of creating one.
    spare_file: Option<PathBuf>,
    io_mode: IoMode,
    /// Opened at the first write after start or idling, like `read_file`.
    writer: Option<Rc<SegmentWriter>>,
    /// Bytes handed out to appends, written or not.
    assigned_bytes: u64,
    /// Bytes written to the file; reads never go past this.
    durable_bytes: u64,
    /// One past the last offset assigned in this segment.
    next_offset: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    max_timestamp_ms: i64,
    bytes_since_index_entry: u64,
    index_interval_bytes: u64,
    pub created_at_ms: i64,
}

/// Deletes the files of the segment at `base_offset` on the background
/// thread.
pub fn delete_segment_files(dir: &DirHandle, base_offset: i64) {
    remove_segment_files(dir, base_offset, &[LOG_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX]);
}

/// Unlinks the files on the background thread (`crate::fs_offload`),
/// after the jobs already queued (the segment's seal among them): a rename
/// or unlink blocked a core for up to 16 ms while the disk was busy (perf
/// trace, session 13). Removing by name is safe: no later segment of the
/// partition takes this base offset, and the handle names this directory,
/// not a new one of the same name.
fn remove_segment_files(dir: &DirHandle, base_offset: i64, suffixes: &[&str]) {
    let names: Vec<String> = suffixes
        .iter()
        .map(|suffix| segment_file_name(base_offset, suffix))
        .collect();
    let job_dir = dir.clone();
    fs_offload::submit(dir, move || {
        for name in &names {
            if let Err(error) = job_dir.remove_file(name) {
                tracing::warn!(dir = %job_dir.path().display(), name, %error, "deleting segment file failed");
            }
        }
    });
}

/// What scanning a sealed segment's file found ([`Segment::scan`]).
pub struct SegmentScan(ScanResult);

impl SegmentScan {
    /// The index files of the segment at `base_offset` as the scan built them.
    pub fn index_files(&self, base_offset: i64) -> IndexFiles {
        IndexFiles {
            base_offset,
            offset_index: self.0.offset_index.encode(),
            time_index: self.0.time_index.encode(),
        }
    }
}

/// What a scan of a segment file found.
struct ScanResult {
    valid_bytes: u64,
    next_offset: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    max_timestamp_ms: i64,
    bytes_since_index_entry: u64,
}

/// How a new segment's writer is had: opened now, or (the segment's file not
/// created yet) created by the partition's writer task through io_uring,
/// from a spare segment file if it names one.
pub enum SegmentWriterSource {
    Ready(Rc<SegmentWriter>),
    Create {
        path: PathBuf,
        io_mode: IoMode,
        from_spare: Option<PathBuf>,
    },
}

/// Where a new segment's file comes from.
pub enum NewSegmentFile {
    /// Already created.
    Exists,
    /// Created by the first write job.
    Deferred,
    /// This spare segment file, renamed by the first write job.
    FromSpare(PathBuf),
}

impl Segment {
    /// Creates a new, empty active segment.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        io_mode: IoMode,
        index_interval_bytes: u64,
        now_ms: i64,
    ) -> Result<Self> {
        let segment = Self::create_deferred(
            dir,
            base_offset,
            io_mode,
            index_interval_bytes,
            now_ms,
            NewSegmentFile::Exists,
        );
        // The file exists from now on; its descriptors open on first use (a
        // topic of thousands of partitions must not open thousands of files).
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&segment.log_path)
            .map_err(|e| LogError::io("creating segment", &segment.log_path, e))?;
        Ok(segment)
    }

    /// A new, empty active segment whose file (unless it exists) the first
    /// write job creates, or renames from a spare, off this thread: either
    /// cost a core 1.2-1.8 ms at a roll on the development VM. No read
    /// touches the file before a write to it completes (reads stop at the
    /// durable bytes).
    pub fn create_deferred(
        dir: &Path,
        base_offset: i64,
        io_mode: IoMode,
        index_interval_bytes: u64,
        now_ms: i64,
        file: NewSegmentFile,
    ) -> Self {
        let (file_created, spare_file) = match file {
            NewSegmentFile::Exists => (true, None),
            NewSegmentFile::Deferred => (false, None),
            NewSegmentFile::FromSpare(spare) => (false, Some(spare)),
        };
        Self {
            base_offset,
            log_path: segment_path(dir, base_offset, LOG_SUFFIX),
            read_file: RefCell::new(None),
            unsealed: true,
            file_created,
            spare_file,
            seal_done: None,
            io_mode,
            writer: None,
            assigned_bytes: 0,
            durable_bytes: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            max_timestamp_ms: -1,
            bytes_since_index_entry: 0,
            index_interval_bytes,
            created_at_ms: now_ms,
        }
    }

    /// Opens an existing segment. With `trust_files` (clean shutdown, or a sealed
    /// segment) valid index files are used as they are and only the bytes after
    /// the last index entry are scanned; otherwise the whole file is scanned,
    /// CRCs checked, indexes rebuilt and a torn tail truncated.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        trust_files: bool,
        index_interval_bytes: u64,
        now_ms: i64,
    ) -> Result<Self> {
        let scan = Self::scan(dir, base_offset, trust_files)?;
        Ok(Self::from_scan(dir, base_offset, scan, index_interval_bytes, now_ms))
    }

    /// The file work of [`Self::open`] (reading, cutting a torn tail), which
    /// any thread may do.
    pub fn scan(dir: &Path, base_offset: i64, trust_files: bool) -> Result<SegmentScan> {
        let log_path = segment_path(dir, base_offset, LOG_SUFFIX);
        let read_file = File::open(&log_path).map_err(|e| LogError::io("opening segment", &log_path, e))?;
        let file_bytes = read_file
            .metadata()
            .map_err(|e| LogError::io("reading segment size", &log_path, e))?
            .len();
        let loaded = if trust_files {
            load_indexes(dir, base_offset, file_bytes)
        } else {
            None
        };
        let scan = match loaded {
            Some((offset_index, time_index)) => {
                let resume = offset_index.last().unwrap_or(OffsetEntry {
                    relative_offset: 0,
                    position: 0,
                });
                let scan = scan_file(
                    &read_file,
                    &log_path,
                    base_offset,
                    u64::from(resume.position),
                    file_bytes,
                )?;
                if tail_scan_agrees(&scan, resume, file_bytes) {
                    merge_tail_scan(scan, offset_index, time_index, resume)
                } else {
                    // Never truncate on the word of an index: a well-formed but
                    // wrong one would cut good batches. Rebuild from the start.
                    tracing::warn!(segment = %log_path.display(), "index disagrees with the segment; rebuilding it");
                    scan_file(&read_file, &log_path, base_offset, 0, file_bytes)?
                }
            }
            None => scan_file(&read_file, &log_path, base_offset, 0, file_bytes)?,
        };
        if scan.valid_bytes < file_bytes {
            tracing::warn!(
                segment = %log_path.display(),
                valid_bytes = scan.valid_bytes,
                file_bytes,
                "truncating torn or padded segment tail"
            );
            io::truncate_file(&log_path, scan.valid_bytes)
                .map_err(|e| LogError::io("truncating segment", &log_path, e))?;
        }
        Ok(SegmentScan(scan))
    }

    /// A sealed segment as [`Self::scan`] found it.
    pub fn from_scan(dir: &Path, base_offset: i64, scan: SegmentScan, index_interval_bytes: u64, now_ms: i64) -> Self {
        let SegmentScan(scan) = scan;
        Self {
            base_offset,
            log_path: segment_path(dir, base_offset, LOG_SUFFIX),
            read_file: RefCell::new(None),
            unsealed: false,
            file_created: true,
            spare_file: None,
            seal_done: None,
            io_mode: IoMode::Buffered,
            writer: None,
            assigned_bytes: scan.valid_bytes,
            durable_bytes: scan.valid_bytes,
            next_offset: scan.next_offset,
            offset_index: scan.offset_index,
            time_index: scan.time_index,
            max_timestamp_ms: scan.max_timestamp_ms,
            bytes_since_index_entry: scan.bytes_since_index_entry,
            index_interval_bytes,
            created_at_ms: now_ms,
        }
    }

    /// Makes this (last) segment writable again after a restart; its writer
    /// opens at the first write.
    pub fn reopen_for_append(&mut self, io_mode: IoMode) {
        self.unsealed = true;
        self.io_mode = io_mode;
    }

    pub fn io_mode(&self) -> IoMode {
        self.io_mode
    }

    /// Changes the write mode of a segment nothing was ever written to (its
    /// writer not yet open); does nothing otherwise.
    pub fn set_io_mode_before_first_write(&mut self, io_mode: IoMode) {
        if self.assigned_bytes == 0 && self.writer.is_none() {
            self.io_mode = io_mode;
        }
    }

    /// True while the segment takes appends or has writes pending.
    pub fn is_unsealed(&self) -> bool {
        self.unsealed
    }

    /// Sealed, and its files final: only then may it be deleted, recycled or
    /// compacted (a background seal still truncates and indexes it by name).
    pub fn is_settled(&self) -> bool {
        !self.unsealed && self.seal_done.as_ref().is_none_or(|done| done.load(Ordering::Acquire))
    }

    /// The writer, opened if it was released. Only for unsealed segments, and
    /// only when no write is in flight (an O_DIRECT writer re-reads the tail
    /// block from disk when it opens).
    pub fn writer(&mut self) -> Result<Rc<SegmentWriter>> {
        assert!(self.unsealed, "writing to a sealed segment");
        if let Some(writer) = &self.writer {
            return Ok(writer.clone());
        }
        let writer = SegmentWriter::open(&self.log_path, self.io_mode, self.durable_bytes)
            .map_err(|e| LogError::io("opening segment for writing", &self.log_path, e))?;
        let writer = Rc::new(writer);
        self.writer = Some(writer.clone());
        Ok(writer)
    }

    /// The writer, or how its writer task creates it (the file not created
    /// yet). The same conditions as [`Self::writer`].
    pub fn writer_source(&mut self) -> Result<SegmentWriterSource> {
        if self.file_created {
            return self.writer().map(SegmentWriterSource::Ready);
        }
        assert!(self.unsealed, "writing to a sealed segment");
        Ok(SegmentWriterSource::Create {
            path: self.log_path.clone(),
            io_mode: self.io_mode,
            from_spare: self.spare_file.clone(),
        })
    }

    /// Whether a spare segment file is still to be renamed to this one's.
    pub fn takes_spare_file(&self) -> bool {
        !self.file_created && self.spare_file.is_some()
    }

    /// Takes the writer a write job created (see [`Self::writer_source`]).
    pub fn install_created_writer(&mut self, writer: Rc<SegmentWriter>) {
        self.file_created = true;
        self.spare_file = None;
        if self.unsealed && self.writer.is_none() {
            self.writer = Some(writer);
        }
    }

    /// The file for reads and `sendfile`, opened if it was released.
    pub fn read_file(&self) -> Result<Arc<File>> {
        let mut cached = self.read_file.borrow_mut();
        if let Some(file) = &*cached {
            return Ok(file.clone());
        }
        let file =
            Arc::new(File::open(&self.log_path).map_err(|e| LogError::io("opening segment", &self.log_path, e))?);
        *cached = Some(file.clone());
        Ok(file)
    }

    /// The read descriptor, if open, taken out of this segment.
    pub fn take_read_file(&self) -> Option<Arc<File>> {
        self.read_file.borrow_mut().take()
    }

    /// Closes this segment's descriptors (reads and writes in flight keep
    /// their own handles). The caller guarantees no write is in flight.
    pub fn release_files(&mut self) {
        self.read_file.borrow_mut().take();
        self.writer = None;
    }

    /// Descriptors this segment holds now.
    pub fn open_files(&self) -> usize {
        usize::from(self.read_file.borrow().is_some()) + usize::from(self.writer.is_some())
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn assigned_bytes(&self) -> u64 {
        self.assigned_bytes
    }

    pub fn durable_bytes(&self) -> u64 {
        self.durable_bytes
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn max_timestamp_ms(&self) -> i64 {
        self.max_timestamp_ms
    }

    pub fn is_empty(&self) -> bool {
        self.assigned_bytes == 0
    }

    /// Assigns the next position to a batch of `total_bytes` whose header is
    /// `header` (already stamped with its offset) and indexes it.
    pub fn assign(&mut self, header: &BatchHeader) -> u64 {
        let position = self.assigned_bytes;
        assert!(header.base_offset >= self.next_offset, "offsets must increase");
        let relative_offset = (header.base_offset - self.base_offset) as u32;
        if self.assigned_bytes == 0 || self.bytes_since_index_entry >= self.index_interval_bytes {
            self.offset_index.append(OffsetEntry {
                relative_offset,
                position: position as u32,
            });
            self.bytes_since_index_entry = 0;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(header.max_timestamp);
        self.time_index.maybe_append(TimeEntry {
            timestamp_ms: self.max_timestamp_ms,
            relative_offset,
        });
        let total_bytes = header.total_bytes() as u64;
        self.bytes_since_index_entry += total_bytes;
        self.assigned_bytes += total_bytes;
        self.next_offset = header.next_offset();
        position
    }

    /// Marks bytes up to `durable_bytes` as written.
    pub fn mark_durable(&mut self, durable_bytes: u64) {
        assert!(durable_bytes >= self.durable_bytes, "durable bytes went backwards");
        assert!(durable_bytes <= self.assigned_bytes, "durable past assigned");
        self.durable_bytes = durable_bytes;
    }

    /// Seals the segment here: drops O_DIRECT padding, writes its indexes.
    /// Called once every assigned byte is durable.
    pub fn seal(&mut self, dir: &DirHandle) -> Result<()> {
        match self.begin_seal() {
            Some(files) => files
                .run(dir)
                .map_err(|e| LogError::io("sealing segment", &self.log_path, e)),
            None => Ok(()),
        }
    }

    /// As [`Self::seal`], with the file work on the background thread (a
    /// roll's truncation and index files cost a core several milliseconds
    /// of metadata updates). Read-only at once; settled once the work ran.
    pub fn seal_in_background(&mut self, dir: &DirHandle) {
        let Some(files) = self.begin_seal() else {
            return;
        };
        let done = Arc::new(AtomicBool::new(false));
        self.seal_done = Some(done.clone());
        let job_dir = dir.clone();
        fs_offload::submit(dir, move || {
            if let Err(error) = files.run(&job_dir) {
                tracing::error!(dir = %job_dir.path().display(), base_offset = files.indexes.base_offset, %error, "sealing segment failed");
            }
            done.store(true, Ordering::Release);
        });
    }

    /// Makes the segment read-only; the file work its seal owes, if a file
    /// was ever created.
    fn begin_seal(&mut self) -> Option<SealFiles> {
        assert_eq!(self.durable_bytes, self.assigned_bytes, "sealing with writes pending");
        self.writer = None;
        self.unsealed = false;
        self.file_created.then(|| SealFiles {
            length_bytes: self.durable_bytes,
            indexes: IndexFiles {
                base_offset: self.base_offset,
                offset_index: self.offset_index.encode(),
                time_index: self.time_index.encode(),
            },
        })
    }

    /// Reads the header of the batch at `position`.
    pub fn read_header(&self, position: u64) -> Result<BatchHeader> {
        let mut buf = [0u8; BATCH_HEADER_BYTES];
        self.read_file()?
            .read_exact_at(&mut buf, position)
            .map_err(|e| LogError::io("reading batch header", &self.log_path, e))?;
        BatchHeader::parse(&buf).map_err(|e| {
            LogError::io(
                "parsing batch header",
                &self.log_path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// Finds the durable batch that contains `offset` (or the first after it).
    pub fn locate(&self, offset: i64) -> Result<Option<BatchLocation>> {
        let relative_offset = offset.saturating_sub(self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let mut position = self
            .offset_index
            .lookup(relative_offset)
            .map_or(0, |entry| u64::from(entry.position));
        while position + LOG_OVERHEAD_BYTES as u64 <= self.durable_bytes {
            let header = self.read_header(position)?;
            if header.next_offset() > offset {
                return Ok(Some(BatchLocation { position, header }));
            }
            position += header.total_bytes() as u64;
        }
        Ok(None)
    }

    /// Where the last whole batch that ends at or before `end_position` ends,
    /// and the offset after it, scanning headers from `from` (a batch start)
    /// or from the nearest index entry below `end_position`, whichever is
    /// later. `from` itself when no batch fits.
    pub fn last_batch_end(&self, from: &BatchLocation, end_position: u64) -> Result<(u64, i64)> {
        let entries = self.offset_index.entries();
        let below_end = entries.partition_point(|e| u64::from(e.position) <= end_position);
        let indexed = below_end
            .checked_sub(1)
            .map(|i| entries[i])
            .filter(|e| u64::from(e.position) > from.position);
        let (mut position, mut next_offset) = match indexed {
            Some(entry) => (
                u64::from(entry.position),
                self.base_offset + i64::from(entry.relative_offset),
            ),
            None => (from.position, from.header.base_offset),
        };
        let end_position = end_position.min(self.durable_bytes);
        while position + BATCH_HEADER_BYTES as u64 <= end_position {
            let header = self.read_header(position)?;
            let batch_end = position + header.total_bytes() as u64;
            if batch_end > end_position {
                break;
            }
            next_offset = header.next_offset();
            position = batch_end;
        }
        Ok((position, next_offset))
    }

    /// Calls `visit` with the header of every durable batch from the one
    /// holding `offset` to the end of the segment.
    pub fn for_each_header_from(&self, offset: i64, mut visit: impl FnMut(&BatchHeader, u64)) -> Result<()> {
        let Some(first) = self.locate(offset)? else {
            return Ok(());
        };
        let mut position = first.position;
        while position + BATCH_HEADER_BYTES as u64 <= self.durable_bytes {
            let header = self.read_header(position)?;
            visit(&header, position);
            position += header.total_bytes() as u64;
        }
        Ok(())
    }

    /// Finds the first durable batch whose max timestamp is `>= target_ms`.
    pub fn locate_by_time(&self, target_ms: i64) -> Result<Option<BatchLocation>> {
        if self.max_timestamp_ms < target_ms {
            return Ok(None);
        }
        let start_offset = self
            .time_index
            .last_below(target_ms)
            .map_or(self.base_offset, |e| self.base_offset + i64::from(e.relative_offset));
        let Some(mut location) = self.locate(start_offset)? else {
            return Ok(None);
        };
        loop {
            if location.header.max_timestamp >= target_ms {
                return Ok(Some(location));
            }
            let position = location.position + location.header.total_bytes() as u64;
            if position + BATCH_HEADER_BYTES as u64 > self.durable_bytes {
                return Ok(None);
            }
            location = BatchLocation {
                position,
                header: self.read_header(position)?,
            };
        }
    }

    /// Reads a whole batch's bytes (for timestamp searches inside a batch).
    pub fn read_batch(&self, location: &BatchLocation) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; location.header.total_bytes()];
        self.read_file()?
            .read_exact_at(&mut buf, location.position)
            .map_err(|e| LogError::io("reading batch", &self.log_path, e))?;
        Ok(buf)
    }

    /// Writes indexes at clean shutdown; drops O_DIRECT padding.
    pub fn close_clean(&mut self, dir: &DirHandle) -> Result<()> {
        if self.unsealed {
            self.seal(dir)?;
        }
        Ok(())
    }

    /// Moves the log file to `spare` (for a later segment to reuse) and
    /// deletes the indexes; false, and nothing moved, while a read holds the
    /// file (a fetch's `sendfile` must find the old bytes there, as it does
    /// in an unlinked file) or if the rename fails.
    pub fn recycle_log_file(&self, spare: &Path, dir: &DirHandle) -> bool {
        if self
            .read_file
            .borrow()
            .as_ref()
            .is_some_and(|file| Arc::strong_count(file) > 1)
        {
            return false;
        }
        if let Err(error) = std::fs::rename(&self.log_path, spare) {
            tracing::warn!(path = %self.log_path.display(), %error, "cannot keep the segment file for reuse");
            return false;
        }
        remove_segment_files(dir, self.base_offset, &[OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX]);
        true
    }

    pub fn delete_files(&self, dir: &DirHandle) {
        delete_segment_files(dir, self.base_offset);
    }
}

/// The file work of a seal, done where the segment's directory is known by
/// its descriptor. No fsyncs: if a machine crash undoes the truncation,
/// recovery finds the padding after the last batch and cuts it again; the
/// indexes are checked (and rebuilt) before they are trusted.
struct SealFiles {
    length_bytes: u64,
    indexes: IndexFiles,
}

impl SealFiles {
    fn run(&self, dir: &DirHandle) -> std::io::Result<()> {
        let log_name = segment_file_name(self.indexes.base_offset, LOG_SUFFIX);
        dir.truncate(&log_name, self.length_bytes)?;
        self.indexes.write(dir)
    }
}

/// A segment's index files, encoded. Written without fsyncs: they are
/// derived data, checked against the segment (and rebuilt) before trusted.
pub struct IndexFiles {
    base_offset: i64,
    offset_index: Vec<u8>,
    time_index: Vec<u8>,
}

impl IndexFiles {
    /// Writes both files in `dir`, each through a temporary file and a rename.
    pub fn write(&self, dir: &DirHandle) -> std::io::Result<()> {
        let name = |suffix| segment_file_name(self.base_offset, suffix);
        dir.write_file_lazily(&name(OFFSET_INDEX_SUFFIX), &self.offset_index)?;
        dir.write_file_lazily(&name(TIME_INDEX_SUFFIX), &self.time_index)
    }
}

fn load_indexes(dir: &Path, base_offset: i64, file_bytes: u64) -> Option<(OffsetIndex, TimeIndex)> {
    if file_bytes == 0 {
        return Some((OffsetIndex::default(), TimeIndex::default())); // nothing to index
    }
    let read = |suffix: &str| {
        let path = segment_path(dir, base_offset, suffix);
        std::fs::read(&path)
            .map_err(|error| tracing::warn!(index = %path.display(), %error, "index unreadable; rebuilding from the segment"))
            .ok()
    };
    let offset_bytes = read(OFFSET_INDEX_SUFFIX)?;
    let time_bytes = read(TIME_INDEX_SUFFIX)?;
    let offset_index = OffsetIndex::decode(&offset_bytes, file_bytes.max(1));
    let time_index = TimeIndex::decode(&time_bytes);
    match (offset_index, time_index) {
        (Some(o), Some(t)) => Some((o, t)),
        _ => {
            tracing::warn!(dir = %dir.display(), base_offset, "damaged index; rebuilding from the segment");
            None
        }
    }
}

/// A trusted (cleanly closed) segment's tail scan must find the batch the
/// index's last entry names, and read on to the end of the file.
fn tail_scan_agrees(scan: &ScanResult, resume: OffsetEntry, file_bytes: u64) -> bool {
    // An empty index resumes at 0, where any first batch will do (compaction
    // may have removed the segment's first offsets).
    let names_a_batch = resume.position == 0 || scan.offset_index.entries().first() == Some(&resume);
    names_a_batch && scan.valid_bytes == file_bytes
}

/// The tail scan rebuilt the entries from `resume` on; keep the loaded ones
/// before it and the scanned ones after.
fn merge_tail_scan(
    mut scan: ScanResult,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    resume: OffsetEntry,
) -> ScanResult {
    scan.offset_index = merge_offset_index(offset_index, scan.offset_index, resume);
    scan.time_index = merge_time_index(time_index, scan.time_index, resume);
    let indexed_max_ms = scan.time_index.entries().last().map_or(-1, |e| e.timestamp_ms);
    scan.max_timestamp_ms = scan.max_timestamp_ms.max(indexed_max_ms);
    scan
}

fn merge_offset_index(mut loaded: OffsetIndex, scanned: OffsetIndex, resume: OffsetEntry) -> OffsetIndex {
    loaded.truncate_from_position(resume.position);
    for entry in scanned.entries() {
        loaded.append(*entry);
    }
    loaded
}

fn merge_time_index(mut loaded: TimeIndex, scanned: TimeIndex, resume: OffsetEntry) -> TimeIndex {
    loaded.truncate_from_offset(resume.relative_offset);
    for entry in scanned.entries() {
        loaded.maybe_append(*entry);
    }
    loaded
}

/// Scans batches from `start` to the end of the file, checking each one's length,
/// magic, CRC and offset order; stops at the first that fails. Indexes are
/// rebuilt for the scanned range with the default interval.
fn scan_file(file: &File, path: &Path, base_offset: i64, start: u64, file_bytes: u64) -> Result<ScanResult> {
    const SCAN_INDEX_INTERVAL_BYTES: u64 = 4096;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(start))
        .map_err(|e| LogError::io("seeking segment", path, e))?;
    let mut result = ScanResult {
        valid_bytes: start,
        next_offset: base_offset,
        offset_index: OffsetIndex::default(),
        time_index: TimeIndex::default(),
        max_timestamp_ms: -1,
        bytes_since_index_entry: 0,
    };
    let mut batch_buf = Vec::new();
    loop {
        let position = result.valid_bytes;
        let mut overhead = [0u8; LOG_OVERHEAD_BYTES];
        if position + LOG_OVERHEAD_BYTES as u64 > file_bytes || reader.read_exact(&mut overhead).is_err() {
            break;
        }
        let Ok(total_bytes) = batch::batch_total_bytes(&overhead) else {
            break;
        };
        if position + total_bytes as u64 > file_bytes {
            break;
        }
        batch_buf.clear();
        batch_buf.extend_from_slice(&overhead);
        batch_buf.resize(total_bytes, 0);
        if reader.read_exact(&mut batch_buf[LOG_OVERHEAD_BYTES..]).is_err() {
            break;
        }
        let Ok(header) = batch::validate_batch(&batch_buf) else {
            break;
        };
        if header.base_offset < result.next_offset && position > start {
            break;
        }
        if header.base_offset < base_offset {
            break;
        }
        let relative_offset = (header.base_offset - base_offset) as u32;
        if position == start || result.bytes_since_index_entry >= SCAN_INDEX_INTERVAL_BYTES {
            result.offset_index.append(OffsetEntry {
                relative_offset,
                position: position as u32,
            });
            result.bytes_since_index_entry = 0;
        }
        result.max_timestamp_ms = result.max_timestamp_ms.max(header.max_timestamp);
        result.time_index.maybe_append(TimeEntry {
            timestamp_ms: result.max_timestamp_ms,
            relative_offset,
        });
        result.bytes_since_index_entry += total_bytes as u64;
        result.valid_bytes += total_bytes as u64;
        result.next_offset = header.next_offset();
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_file_names() {
        assert_eq!(parse_segment_file_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_segment_file_name("00000000000000000042.index"), None);
        assert_eq!(parse_segment_file_name("42.log"), None);
        let dir = Path::new("/d");
        assert_eq!(
            segment_path(dir, 7, LOG_SUFFIX),
            PathBuf::from("/d/00000000000000000007.log")
        );
    }
}
