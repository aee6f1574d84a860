//! Partition log behaviour through its public API, on a real filesystem.

use std::cell::RefCell;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use ringlog_engine::batch::{build_batch, validate_batch};
use ringlog_engine::fs_offload;
use ringlog_engine::io::probe_direct_io;
use ringlog_engine::log::io_policy;
use ringlog_engine::{BatchCache, IoMode, IoPolicy, LogConfig, LogError, PartitionLog, ReadChunk, SharedLog};

const NOW_MS: i64 = 1_700_000_000_000;

fn config(io_mode: IoMode, segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        io_policy: IoPolicy::Fixed(io_mode),
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig, clean: bool, cache_bytes: usize) -> SharedLog {
    let cache = Rc::new(RefCell::new(BatchCache::new(cache_bytes)));
    PartitionLog::open(dir, 1, config, cache, clean, NOW_MS).expect("open log")
}

fn value_batch(index: usize, timestamp_ms: i64) -> BytesMut {
    let value = format!("value-{index:06}");
    build_batch(
        &[(Some(b"key"), Some(value.as_bytes())), (None, Some(b"second"))],
        timestamp_ms,
    )
}

async fn append_durably(log: &SharedLog, batch: BytesMut) -> i64 {
    append_durably_at(log, batch, NOW_MS).await
}

async fn append_durably_at(log: &SharedLog, batch: BytesMut, now_ms: i64) -> i64 {
    let result = log.borrow_mut().append(vec![batch], None, now_ms).expect("append");
    let durable = log.borrow_mut().wait_durable(result.next_offset);
    durable.await.expect("waiter").expect("durable");
    result.base_offset
}

/// Materialises a read into bytes (what the socket would receive).
fn read_bytes(log: &SharedLog, offset: i64, max_bytes: usize) -> Vec<u8> {
    let result = log.borrow().read(offset, max_bytes, true).expect("read");
    let mut out = Vec::new();
    for chunk in result.chunks {
        match chunk {
            ReadChunk::Memory(bytes) => out.extend_from_slice(&bytes),
            ReadChunk::File(region) => {
                let mut buf = vec![0u8; region.len as usize];
                region.file.read_exact_at(&mut buf, region.position).expect("pread");
                out.extend_from_slice(&buf);
            }
        }
    }
    out
}

/// Splits a read into its batches, checking every CRC; returns base offsets.
/// Reads hold whole batches only (unlike Kafka's, which may end inside one).
fn batch_offsets(mut bytes: &[u8]) -> Vec<i64> {
    let mut offsets = Vec::new();
    while !bytes.is_empty() {
        let total = ringlog_engine::batch::batch_total_bytes(bytes).expect("a batch header");
        assert!(total <= bytes.len(), "a read ended inside a batch");
        let header = validate_batch(&bytes[..total]).expect("served batch is whole");
        offsets.push(header.base_offset);
        bytes = &bytes[total..];
    }
    offsets
}

fn exercise_append_read_roll(io_mode: IoMode) {
    let dir = tempfile::tempdir().expect("tempdir");
    tokio_uring::start(async {
        // Small segments force rolls; no cache forces file reads.
        let log = open(dir.path(), config(io_mode, 2048), false, 0);
        for i in 0..100 {
            let base = append_durably(&log, value_batch(i, NOW_MS + i as i64)).await;
            assert_eq!(base, 2 * i as i64);
        }
        assert!(log.borrow().segment_count() > 3, "segments rolled");
        let offsets = log.borrow().offsets();
        assert_eq!(offsets.high_watermark, 200);
        let mut next = 0i64;
        while next < 200 {
            let bytes = read_bytes(&log, next, 1000);
            let bases = batch_offsets(&bytes);
            assert!(!bases.is_empty(), "read at {next} returned no whole batch");
            assert!(bases[0] <= next && next < bases[0] + 2);
            let after_whole_batches = bases.last().expect("non-empty") + 2;
            let reported = log.borrow().read(next, 1000, true).expect("read").next_offset;
            assert_eq!(reported, after_whole_batches, "next offset of a read at {next}");
            next = after_whole_batches;
        }
        // Mid-batch fetch returns the batch holding the offset.
        assert_eq!(batch_offsets(&read_bytes(&log, 51, 100))[0], 50);
        assert!(matches!(
            log.borrow().read(201, 100, true),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert!(log.borrow().read(200, 100, true).expect("at hw").chunks.is_empty());
        // Offsets by time: the first record at or after the target.
        assert_eq!(
            log.borrow().offset_for_timestamp(NOW_MS + 10).expect("lookup"),
            Some((20, NOW_MS + 10))
        );
        assert_eq!(log.borrow().offset_for_timestamp(NOW_MS + 1_000).expect("lookup"), None);
        PartitionLog::close(&log).await.expect("close");
    });
    // Reopen cleanly and dirtily: both see the same data.
    for clean in [true, false] {
        tokio_uring::start(async {
            let log = open(dir.path(), config(io_mode, 2048), clean, 0);
            // The clean pass appended one more batch, which the dirty pass sees.
            let end = 200 + if clean { 0 } else { 2 };
            assert_eq!(log.borrow().offsets().log_end_offset, end);
            assert_eq!(batch_offsets(&read_bytes(&log, 198, 1000))[0], 198);
            let base = append_durably(&log, value_batch(100, NOW_MS)).await;
            assert_eq!(base, end);
            PartitionLog::close(&log).await.expect("close");
        });
    }
}

#[test]
fn buffered_log_appends_reads_and_rolls() {
    exercise_append_read_roll(IoMode::Buffered);
}

#[test]
fn direct_log_appends_reads_and_rolls() {
    let probe = tempfile::tempdir().expect("tempdir");
    if probe_direct_io(probe.path()) == IoMode::Direct {
        exercise_append_read_roll(IoMode::Direct);
    }
}

/// `log.io.mode=auto`: a quiet partition writes through the page cache, a
/// busy one with O_DIRECT, each change in a segment of its own; the log reads
/// back whole across the changes, and again after a crash.
#[test]
fn auto_io_follows_the_ingest_rate_segment_by_segment() {
    let probe = tempfile::tempdir().expect("tempdir");
    if probe_direct_io(probe.path()) != IoMode::Direct {
        return;
    }
    const LIMIT_BYTES_PER_S: u64 = 4096;
    let config = LogConfig {
        io_policy: IoPolicy::Auto {
            direct_above_bytes_per_s: LIMIT_BYTES_PER_S,
            core_direct_above_bytes_per_s: 64 * LIMIT_BYTES_PER_S,
        },
        ..LogConfig::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut next = 0;
    tokio_uring::start(async {
        let log = open(dir.path(), config.clone(), false, 0);
        let mut append = |now_ms| {
            next += 1;
            append_durably_at(&log, value_batch(next, now_ms), now_ms)
        };
        for _ in 0..3 {
            append(NOW_MS).await;
        }
        assert_eq!(log.borrow().active_io_mode(), IoMode::Buffered, "quiet: page cache");
        assert_eq!(log.borrow().segment_count(), 1);
        while log.borrow().active_io_mode() == IoMode::Buffered {
            append(NOW_MS + 10).await;
        }
        assert_eq!(log.borrow().segment_count(), 2, "busy: rolled to a direct segment");
        for _ in 0..5 {
            append(NOW_MS + 20).await;
        }
        let quiet_ms = NOW_MS + 20 + io_policy::DIRECT_SEGMENT_MIN_MS;
        append(quiet_ms).await;
        assert_eq!(log.borrow().active_io_mode(), IoMode::Buffered, "quiet again");
        assert_eq!(log.borrow().segment_count(), 3);
        append(quiet_ms).await;
        let end = log.borrow().offsets().log_end_offset;
        assert_eq!(read_all_offsets(&log), (0..end).step_by(2).collect::<Vec<_>>());
        // Dropped without close: recovery reads the segments as a crash left them.
    });
    tokio_uring::start(async {
        let log = open(dir.path(), config, false, 0);
        assert_eq!(read_all_offsets(&log).len(), next);
        assert_eq!(
            log.borrow().active_io_mode(),
            IoMode::Buffered,
            "reopens in the page-cache mode"
        );
        PartitionLog::close(&log).await.expect("close");
    });
}

/// Base offsets of every batch, read from the start (CRCs checked).
/// Waits for the background file work of `log`'s partition (a rolled
/// segment is deleted, recycled or compacted only once its seal's files are
/// written).
fn settle_files(log: &SharedLog) {
    fs_offload::wait_for(log.borrow().dir());
}

fn read_all_offsets(log: &SharedLog) -> Vec<i64> {
    read_offsets_from(log, 0, 2)
}

/// The base offsets of every batch from `from` to the high watermark, each
/// batch checked whole; `records_per_batch` steps past the last batch read.
fn read_offsets_from(log: &SharedLog, from: i64, records_per_batch: i64) -> Vec<i64> {
    let mut offsets = Vec::new();
    let mut next = from;
    while next < log.borrow().offsets().high_watermark {
        let bases = batch_offsets(&read_bytes(log, next, 1 << 20));
        assert!(!bases.is_empty(), "no whole batch at {next}");
        next = bases.last().expect("non-empty") + records_per_batch;
        offsets.extend(bases);
    }
    offsets
}

#[test]
fn tailing_reads_come_from_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 1 << 20), false, 1 << 20);
        append_durably(&log, value_batch(0, NOW_MS)).await;
        let result = log.borrow().read(0, 1 << 20, true).expect("read");
        assert!(matches!(result.chunks[0], ReadChunk::Memory(_)));
        assert_eq!(result.next_offset, 2);
    });
}

#[test]
fn unwritten_appends_are_invisible_until_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 1 << 20), false, 1 << 20);
        let result = log
            .borrow_mut()
            .append(vec![value_batch(0, NOW_MS)], None, NOW_MS)
            .expect("append");
        assert_eq!(log.borrow().offsets().high_watermark, 0, "not yet written");
        assert!(log.borrow().read(0, 1000, true).expect("read").chunks.is_empty());
        let watcher = log.borrow_mut().watch(0).expect("must wait");
        let durable = log.borrow_mut().wait_durable(result.next_offset);
        durable.await.expect("waiter").expect("ok");
        watcher.await.expect("woken by the append");
        assert_eq!(log.borrow().offsets().high_watermark, 2);
    });
}

/// Restart after a crash that tore the last batch: everything whole survives.
#[test]
fn recovery_truncates_torn_tail_and_garbage() {
    for damage in ["truncate", "garble", "append_garbage"] {
        let dir = tempfile::tempdir().expect("tempdir");
        tokio_uring::start(async {
            let log = open(dir.path(), config(IoMode::Buffered, 1 << 20), false, 0);
            for i in 0..10 {
                append_durably(&log, value_batch(i, NOW_MS)).await;
            }
            // Simulated crash: no close, so no clean marker and no sealed index.
        });
        let segment = dir.path().join("00000000000000000000.log");
        let length = std::fs::metadata(&segment).expect("stat").len();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&segment)
            .expect("open");
        match damage {
            "truncate" => file.set_len(length - 7).expect("truncate"),
            "garble" => file.write_all_at(b"XXXX", length - 5).expect("garble"),
            _ => file.write_all_at(&[0xAB; 100], length).expect("append garbage"),
        }
        tokio_uring::start(async {
            let log = open(dir.path(), config(IoMode::Buffered, 1 << 20), false, 0);
            let expected_end = if damage == "append_garbage" { 20 } else { 18 };
            assert_eq!(log.borrow().offsets().log_end_offset, expected_end, "damage {damage}");
            let bytes = read_bytes(&log, 0, 1 << 20);
            assert_eq!(batch_offsets(&bytes).len(), expected_end as usize / 2);
            let base = append_durably(&log, value_batch(99, NOW_MS)).await;
            assert_eq!(base, expected_end);
        });
        let mut contents = Vec::new();
        std::fs::File::open(&segment)
            .expect("open")
            .read_to_end(&mut contents)
            .expect("read");
        assert_eq!(
            batch_offsets(&contents).len(),
            10 - usize::from(damage != "append_garbage") + 1
        );
    }
}

#[test]
fn damaged_or_missing_index_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 4096), false, 0);
        for i in 0..60 {
            append_durably(&log, value_batch(i, NOW_MS)).await;
        }
        PartitionLog::close(&log).await.expect("close");
    });
    std::fs::write(dir.path().join("00000000000000000000.index"), b"garbage").expect("damage index");
    let _ = std::fs::remove_file(dir.path().join("00000000000000000000.timeindex"));
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 4096), true, 0);
        assert_eq!(log.borrow().offsets().log_end_offset, 120);
        for offset in [0, 1, 33, 77, 119] {
            let bases = batch_offsets(&read_bytes(&log, offset, 100));
            assert_eq!(bases[0], offset - offset % 2);
        }
    });
}

#[test]
fn flush_every_message_still_acknowledges() {
    let dir = tempfile::tempdir().expect("tempdir");
    tokio_uring::start(async {
        let mut config = config(IoMode::Buffered, 1 << 20);
        config.flush_interval_messages = 1;
        let log = open(dir.path(), config, false, 0);
        let mut receivers = Vec::new();
        for i in 0..50 {
            let result = log
                .borrow_mut()
                .append(vec![value_batch(i, NOW_MS)], None, NOW_MS)
                .expect("append");
            receivers.push(log.borrow_mut().wait_durable(result.next_offset));
        }
        for receiver in receivers {
            receiver.await.expect("waiter").expect("durable");
        }
        assert_eq!(log.borrow().offsets().high_watermark, 100);
    });
}

#[test]
fn verbatim_bytes_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 1 << 20), false, 0);
        let batch = value_batch(7, NOW_MS);
        let mut expected = batch.clone();
        ringlog_engine::batch::stamp_batch(&mut expected, 0, 0, None);
        append_durably(&log, batch).await;
        assert_eq!(Bytes::from(read_bytes(&log, 0, 1 << 20)), expected.freeze());
    });
}

/// A transactional batch of `producer_id` at `epoch`, sequence `sequence`.
fn transactional_batch(producer_id: i64, epoch: i16, sequence: i32) -> BytesMut {
    producer_batch(producer_id, epoch, sequence, true)
}

fn producer_batch(producer_id: i64, epoch: i16, sequence: i32, transactional: bool) -> BytesMut {
    use ringlog_engine::batch::*;
    let mut batch = build_batch(&[(None, Some(b"txn-record"))], NOW_MS);
    if transactional {
        batch[ATTRIBUTES_POS..ATTRIBUTES_POS + 2].copy_from_slice(&ATTR_TRANSACTIONAL.to_be_bytes());
    }
    batch[PRODUCER_ID_POS..PRODUCER_ID_POS + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH_POS..PRODUCER_EPOCH_POS + 2].copy_from_slice(&epoch.to_be_bytes());
    batch[BASE_SEQUENCE_POS..BASE_SEQUENCE_POS + 4].copy_from_slice(&sequence.to_be_bytes());
    let crc = compute_crc(&batch);
    batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

async fn settle(log: &SharedLog) {
    let end = log.borrow().offsets().log_end_offset;
    let durable = log.borrow_mut().wait_durable(end);
    durable.await.expect("waiter").expect("durable");
}

#[test]
fn open_transactions_hold_back_the_last_stable_offset_and_aborts_are_listed() {
    use ringlog_engine::Isolation;
    let dir = tempfile::tempdir().expect("tempdir");
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 1 << 20), false, 1 << 20);
        append_durably(&log, value_batch(0, NOW_MS)).await; // offsets 0-1, plain
        log.borrow_mut()
            .append(vec![transactional_batch(5, 0, 0)], None, NOW_MS)
            .expect("txn data"); // 2
        settle(&log).await;
        let offsets = log.borrow().offsets();
        assert_eq!(
            (offsets.last_stable_offset, offsets.high_watermark),
            (2, 3),
            "open txn holds the LSO"
        );
        let committed_view = log
            .borrow()
            .read_isolated(0, 1 << 20, true, Isolation::ReadCommitted)
            .expect("read");
        assert_eq!(
            committed_view.total_bytes,
            value_batch(0, NOW_MS).len(),
            "only the plain batch"
        );
        // Abort it: listed for read_committed readers.
        log.borrow_mut()
            .append_marker(5, 0, false, 0, NOW_MS)
            .expect("abort marker"); // 3
        settle(&log).await;
        assert_eq!(log.borrow().offsets().last_stable_offset, 4);
        let after_abort = log
            .borrow()
            .read_isolated(0, 1 << 20, true, Isolation::ReadCommitted)
            .expect("read");
        assert_eq!(after_abort.aborted.len(), 1);
        assert_eq!(
            (after_abort.aborted[0].first_offset, after_abort.aborted[0].last_offset),
            (2, 3)
        );
        // The same producer opens another transaction (after an abort).
        log.borrow_mut()
            .append(vec![transactional_batch(5, 0, 1)], None, NOW_MS)
            .expect("txn 2"); // 4
        settle(&log).await;
        assert_eq!(log.borrow().offsets().last_stable_offset, 4);
        // Old epochs cannot write markers once a newer one is known.
        log.borrow_mut()
            .append(vec![transactional_batch(6, 3, 0)], None, NOW_MS)
            .expect("txn 3"); // 5
        assert!(
            log.borrow_mut().append_marker(6, 2, true, 0, NOW_MS).is_err(),
            "stale marker refused"
        );
        settle(&log).await;
        // Crash here: no clean close.
    });
    for clean in [false, true] {
        tokio_uring::start(async {
            let log = open(dir.path(), config(IoMode::Buffered, 1 << 20), clean, 1 << 20);
            let offsets = log.borrow().offsets();
            assert_eq!(
                (offsets.last_stable_offset, offsets.log_end_offset),
                (4, 6),
                "clean {clean}"
            );
            let view = log
                .borrow()
                .read_isolated(0, 1 << 20, true, Isolation::ReadCommitted)
                .expect("read");
            assert_eq!(
                view.aborted.len(),
                1,
                "the aborted transaction survives recovery (clean {clean})"
            );
            if clean {
                log.borrow_mut()
                    .append_marker(5, 0, true, 0, NOW_MS)
                    .expect("commit txn 2");
                log.borrow_mut()
                    .append_marker(6, 3, true, 0, NOW_MS)
                    .expect("commit txn 3");
                settle(&log).await;
                let offsets = log.borrow().offsets();
                assert_eq!(offsets.last_stable_offset, offsets.high_watermark);
            }
            PartitionLog::close(&log).await.expect("close");
        });
    }
}

#[test]
fn retention_deletes_old_closed_segments_and_delete_records_moves_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start_before_restart = tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 2048), false, 0);
        for i in 0..100 {
            // Timestamps one second apart, from NOW_MS - 100 s.
            append_durably(&log, value_batch(i, NOW_MS - 100_000 + i as i64 * 1000)).await;
        }
        let segments_before = log.borrow().segment_count();
        assert!(segments_before > 3);
        // By size: keep at most ~4 KiB.
        settle_files(&log);
        let deleted = log.borrow_mut().enforce_retention(-1, 4096, NOW_MS).expect("retention");
        assert!(deleted > 0);
        assert!(
            log.borrow().size_bytes() - 2048 < 4096 + 2048,
            "within the limit, but for one segment"
        );
        let start = log.borrow().offsets().log_start_offset;
        assert!(start > 0);
        assert!(matches!(
            log.borrow().read(start - 1, 100, true),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert!(!log.borrow().read(start, 100, true).expect("readable").chunks.is_empty());
        // By time: everything older than 10 s goes, but the active segment stays.
        settle_files(&log);
        log.borrow_mut()
            .enforce_retention(10_000, -1, NOW_MS)
            .expect("retention");
        assert_eq!(log.borrow().segment_count(), 1, "only the active segment is left");
        let start = log.borrow().offsets().log_start_offset;
        // DeleteRecords inside the active segment.
        let moved = log
            .borrow_mut()
            .delete_records_before(start + 3)
            .expect("delete records");
        assert_eq!(moved, start + 3);
        assert!(
            log.borrow_mut().delete_records_before(10_000).is_err(),
            "past the high watermark"
        );
        PartitionLog::close(&log).await.expect("close");
        moved
    });
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 2048), true, 0);
        let offsets = log.borrow().offsets();
        assert_eq!(offsets.log_end_offset, 200);
        assert_eq!(
            offsets.log_start_offset, start_before_restart,
            "the start survives a restart"
        );
        assert_eq!(offsets.log_start_offset % 2, 1, "inside a batch, from DeleteRecords");
    });
}

/// A roll's seal writes its files on the background thread; until then the
/// segment is neither deleted nor indexed on disk, afterwards both.
#[test]
fn retention_waits_for_a_segment_whose_seal_files_are_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 2048), false, 0);
        // Hold the background thread, so every seal queues behind this job.
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let handle = fs_offload::DirHandle::open(dir.path()).expect("dir handle");
        fs_offload::submit(&handle, move || {
            let _ = gate.recv();
        });
        for i in 0..100 {
            append_durably(&log, value_batch(i, NOW_MS)).await;
        }
        assert!(log.borrow().segment_count() > 3);
        let first_index = dir.path().join("00000000000000000000.index");
        assert!(!first_index.exists(), "indexed before its seal ran");
        let deleted = log.borrow_mut().enforce_retention(-1, 0, NOW_MS).expect("retention");
        assert_eq!(deleted, 0, "deleted a segment whose seal is pending");
        release.send(()).expect("release");
        settle_files(&log);
        assert!(first_index.exists(), "the seal wrote the index");
        let snapshots = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".snapshot"))
            .count();
        assert_eq!(snapshots, 2, "a snapshot per roll, the two latest kept");
        let deleted = log.borrow_mut().enforce_retention(-1, 0, NOW_MS).expect("retention");
        assert!(deleted > 0);
        assert_eq!(log.borrow().segment_count(), 1, "only the active segment is left");
        PartitionLog::close(&log).await.expect("close");
    });
}

#[test]
fn a_start_that_retention_moved_survives_a_crash_without_a_checkpoint_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start_before_crash = tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 2048), false, 0);
        for i in 0..100 {
            append_durably(&log, value_batch(i, NOW_MS)).await;
        }
        settle_files(&log);
        let deleted = log.borrow_mut().enforce_retention(-1, 4096, NOW_MS).expect("retention");
        assert!(deleted > 0);
        let start = log.borrow().offsets().log_start_offset;
        assert!(start > 0);
        start // the log is dropped without closing: a crash
    });
    assert!(
        !dir.path().join("log-start-offset").exists(),
        "a start on a segment boundary is derived, not checkpointed"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(dir.path())
        .expect("list")
        .flatten()
        .any(|entry| fs_offload::is_deleted_name(&entry.file_name().to_string_lossy()))
    {
        assert!(std::time::Instant::now() < deadline, "deleted segment files never went");
        std::thread::yield_now();
    }
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 2048), false, 0);
        let offsets = log.borrow().offsets();
        assert_eq!(offsets.log_start_offset, start_before_crash);
        assert_eq!(offsets.log_end_offset, 200);
        assert!(matches!(
            log.borrow().read(start_before_crash - 1, 100, true),
            Err(LogError::OffsetOutOfRange { .. })
        ));
    });
}

fn keyed_batch(key: &str, value: &str, timestamp_ms: i64) -> BytesMut {
    build_batch(&[(Some(key.as_bytes()), Some(value.as_bytes()))], timestamp_ms)
}

/// Every record of the log as (offset, key, value).
fn all_records(log: &SharedLog) -> Vec<(i64, String, String)> {
    let end = log.borrow().offsets().high_watermark;
    let mut offset = log.borrow().offsets().log_start_offset;
    let mut out = Vec::new();
    while offset < end {
        let (bytes, next) = log.borrow().read_into_memory(offset, 1 << 20).expect("read");
        let mut rest = &bytes[..];
        while let Ok(total) = ringlog_engine::batch::batch_total_bytes(rest) {
            for record in ringlog_engine::batch::parse_records(&rest[..total]).expect("records") {
                let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).to_string();
                out.push((record.offset, text(record.key), text(record.value)));
            }
            rest = &rest[total..];
        }
        offset = next;
    }
    out
}

#[test]
fn compaction_keeps_the_latest_value_per_key_and_survives_interruption() {
    use ringlog_engine::log::compaction::CompactionPolicy;
    let policy = CompactionPolicy {
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
        delete_retention_ms: 86_400_000,
        min_cleanable_dirty_ratio: 0.0,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 1024), false, 0);
        for round in 0..40 {
            for key in ["a", "b", "c"] {
                append_durably(&log, keyed_batch(key, &format!("{key}-{round}"), NOW_MS - 1000)).await;
            }
        }
        let before = all_records(&log);
        assert_eq!(before.len(), 120);
        settle_files(&log);
        let removed = PartitionLog::compact(&log, &policy, NOW_MS).await.expect("compact");
        assert!(removed > 90, "old values removed: {removed}");
        let after = all_records(&log);
        // The latest value of every key is there, at its original offset.
        for key in ["a", "b", "c"] {
            let latest_before = before.iter().rev().find(|r| r.1 == key).expect("key");
            assert!(after.contains(latest_before), "latest {key} kept");
        }
        let offsets: Vec<i64> = after.iter().map(|r| r.0).collect();
        let mut sorted = offsets.clone();
        sorted.sort_unstable();
        assert_eq!(offsets, sorted, "offsets stay in order");
        PartitionLog::close(&log).await.expect("close");
    });
    // An interrupted cleaning: a leftover copy and lost indexes. The broker
    // starts, removes the copy, rebuilds the indexes, and serves the latest values.
    std::fs::write(dir.path().join("00000000000000000000.log.cleaned"), b"half written").expect("leftover");
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "index") {
            std::fs::remove_file(path).expect("remove index");
        }
    }
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 1024), false, 0);
        let records = all_records(&log);
        for key in ["a", "b", "c"] {
            assert_eq!(
                records.iter().rev().find(|r| r.1 == key).map(|r| r.2.clone()),
                Some(format!("{key}-39"))
            );
        }
        assert!(!dir.path().join("00000000000000000000.log.cleaned").exists());
    });
}

/// Closing an idle partition's files and writing again: O_DIRECT re-reads
/// its partial tail block from disk, so bytes before the new batch survive.
fn exercise_idle_release(io_mode: IoMode) {
    let dir = tempfile::tempdir().expect("tempdir");
    tokio_uring::start(async {
        // No cache: every read goes to the file.
        let log = open(dir.path(), config(io_mode, 1 << 20), false, 0);
        for index in 0..3 {
            append_durably(&log, value_batch(index, NOW_MS)).await;
        }
        let before = read_bytes(&log, 0, 1 << 20);
        let wall_clock_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        assert!(
            !log.borrow_mut().release_idle_files(wall_clock_ms, 60_000),
            "just read: kept"
        );
        assert!(log.borrow_mut().release_idle_files(i64::MAX, 60_000));
        assert_eq!(read_bytes(&log, 0, 1 << 20), before, "reads reopen the file");
        assert!(log.borrow_mut().release_idle_files(i64::MAX, 60_000));
        append_durably(&log, value_batch(3, NOW_MS)).await;
        let after = read_bytes(&log, 0, 1 << 20);
        assert_eq!(&after[..before.len()], &before[..], "earlier batches intact");
        assert_eq!(batch_offsets(&after), vec![0, 2, 4, 6]);
    });
    // And recovery agrees with what was read.
    tokio_uring::start(async {
        let log = open(dir.path(), config(io_mode, 1 << 20), false, 0);
        assert_eq!(batch_offsets(&read_bytes(&log, 0, 1 << 20)), vec![0, 2, 4, 6]);
    });
}

#[test]
fn idle_files_close_and_reopen_buffered() {
    exercise_idle_release(IoMode::Buffered);
}

#[test]
fn idle_files_close_and_reopen_direct() {
    let probe = tempfile::tempdir().expect("tempdir");
    if probe_direct_io(probe.path()) == IoMode::Direct {
        exercise_idle_release(IoMode::Direct);
    }
}

/// O_DIRECT segments are preallocated ahead of the writes; a crash leaves the
/// zeros after the last batch, which recovery must cut off, not serve.
#[test]
fn a_crash_leaves_preallocated_zeros_that_recovery_cuts() {
    let dir = tempfile::tempdir().expect("tempdir");
    if probe_direct_io(dir.path()) != IoMode::Direct {
        return;
    }
    let log_file = dir.path().join("00000000000000000000.log");
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Direct, 1 << 20), false, 0);
        for i in 0..10 {
            append_durably(&log, value_batch(i, NOW_MS)).await;
        }
        // Dropped without close or seal: as after kill -9.
    });
    let preallocated_bytes = std::fs::metadata(&log_file).expect("segment").len();
    assert!(preallocated_bytes >= 64 * 1024, "grown ahead: {preallocated_bytes}");
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Direct, 1 << 20), false, 0);
        assert_eq!(log.borrow().offsets().log_end_offset, 20);
        let logical_bytes = std::fs::metadata(&log_file).expect("segment").len();
        assert!(logical_bytes < 4096, "zeros cut: {logical_bytes} bytes left");
        assert_eq!(batch_offsets(&read_bytes(&log, 0, 1 << 20)).len(), 10);
        assert_eq!(append_durably(&log, value_batch(10, NOW_MS)).await, 20);
        PartitionLog::close(&log).await.expect("close");
    });
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Direct, 1 << 20), true, 0);
        assert_eq!(batch_offsets(&read_bytes(&log, 0, 1 << 20)).len(), 11);
    });
}

/// A roll leaves the new segment's file to its first write job (created
/// through io_uring, off the core): appended but not yet written, no file;
/// written, the file holds the batch.
#[test]
fn a_rolled_segment_file_is_created_by_its_first_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    tokio_uring::start(async {
        for io_mode in [IoMode::Buffered, IoMode::Direct] {
            if io_mode == IoMode::Direct && probe_direct_io(dir.path()) != IoMode::Direct {
                continue;
            }
            let partition_dir = dir.path().join(format!("{io_mode:?}"));
            let log = open(&partition_dir, config(io_mode, 2048), false, 0);
            // No await in between: the writer task runs only after the roll.
            let mut base = 0;
            for index in 0.. {
                if log.borrow().segment_count() == 2 {
                    break;
                }
                base = log
                    .borrow_mut()
                    .append(vec![value_batch(index, NOW_MS)], None, NOW_MS)
                    .expect("append")
                    .base_offset;
            }
            let rolled = partition_dir.join(format!("{base:020}.log"));
            assert!(!rolled.exists(), "the roll created the file on the core");
            settle(&log).await;
            assert!(rolled.exists());
            assert_eq!(batch_offsets(&read_bytes(&log, base, 1 << 20)), vec![base]);
            PartitionLog::close(&log).await.expect("close");
        }
    });
}

/// A crash after a roll but before the batches below it reached the disk:
/// the log reopens ending at the new segment's base with those batches
/// missing, and a producer's retry of them must be appended again. A
/// snapshot written at the roll named them, and answered the retry as a
/// duplicate: acknowledged, and lost (found by the kill -9 loop).
#[test]
fn a_retry_of_batches_that_a_crash_lost_before_a_roll_is_appended_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let idempotent = |sequence| producer_batch(9, 0, sequence, false);
    // Two batches fill a segment; the third rolls.
    let segment_bytes = 2 * idempotent(0).len() as u64;
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, segment_bytes), false, 0);
        append_durably(&log, idempotent(0)).await;
        for sequence in [1, 2] {
            log.borrow_mut()
                .append(vec![idempotent(sequence)], None, NOW_MS)
                .expect("append");
        }
        // The runtime ends before the writer runs again: neither is written.
    });
    // The rolled segment's file is created by its first write job; as if
    // that job had created it and the crash came before its write.
    std::fs::write(dir.path().join("00000000000000000002.log"), b"").expect("empty rolled segment");
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, segment_bytes), false, 0);
        assert_eq!(log.borrow().offsets().log_end_offset, 2, "the rolled segment's base");
        let retry = log
            .borrow_mut()
            .append(vec![idempotent(1)], None, NOW_MS)
            .expect("retry");
        assert!(!retry.duplicate, "sequence 1 never reached the disk");
        settle(&log).await;
        assert_eq!(batch_offsets(&read_bytes(&log, 0, 1 << 20)), vec![0]);
        assert_eq!(
            batch_offsets(&read_bytes(&log, 1, 1 << 20)),
            vec![2],
            "offset 1 is skipped"
        );
    });
}

#[test]
fn snapshots_past_the_recovered_log_end_are_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 1 << 20), false, 0);
        append_durably(&log, value_batch(0, NOW_MS)).await;
    });
    let stale = dir.path().join("00000000000000000100.snapshot");
    std::fs::write(&stale, b"from a history that did not survive").expect("stale snapshot");
    tokio_uring::start(async {
        let log = open(dir.path(), config(IoMode::Buffered, 1 << 20), false, 0);
        assert_eq!(log.borrow().offsets().log_end_offset, 2);
    });
    assert!(!stale.exists());
}

/// One record of 8000 bytes: offsets go up by one per batch.
fn big_batch(i: usize) -> BytesMut {
    build_batch(&[(None, Some(&[b'a' + (i % 26) as u8; 8000][..]))], NOW_MS)
}

/// Segment size of the recycling tests: a few 8 KB batches each.
const RECYCLING_SEGMENT_BYTES: u64 = 64 * 1024;

/// For the recycling tests: a temp dir that takes O_DIRECT (`None` where the
/// filesystem refuses it), a direct config with recycling on, and the path
/// of the partition's spare file.
fn recycling_setup() -> Option<(tempfile::TempDir, LogConfig, std::path::PathBuf)> {
    let dir = tempfile::tempdir().expect("tempdir");
    if probe_direct_io(dir.path()) != IoMode::Direct {
        return None;
    }
    let recycling = LogConfig {
        recycle_segments: true,
        ..config(IoMode::Direct, RECYCLING_SEGMENT_BYTES)
    };
    let spare = dir
        .path()
        .join(ringlog_engine::log::partition_log::SPARE_SEGMENT_FILE_NAME);
    Some((dir, recycling, spare))
}

/// With segment recycling, the file retention deletes becomes the next
/// O_DIRECT segment's. Its old batches (offsets below the new segment's)
/// stay in the file past what was written, and are never served: not while
/// running, not after a crash, not after a clean restart.
#[test]
fn a_recycled_segment_file_never_serves_its_old_batches() {
    let Some((dir, config, spare)) = recycling_setup() else {
        return;
    };
    let segment_bytes = RECYCLING_SEGMENT_BYTES;
    let recycling = || config.clone();
    let newest_segment_file = |dir: &Path| {
        let mut logs: Vec<_> = std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        logs.pop().expect("a segment")
    };
    let expected_end = tokio_uring::start(async {
        let log = open(dir.path(), recycling(), false, 0);
        for i in 0..20 {
            append_durably(&log, big_batch(i)).await;
        }
        assert!(log.borrow().segment_count() >= 3, "segments rolled");
        settle_files(&log);
        let deleted = log
            .borrow_mut()
            .enforce_retention(-1, segment_bytes as i64, NOW_MS)
            .expect("retention");
        assert!(deleted >= 1, "retention deleted a segment");
        let spare_bytes = std::fs::metadata(&spare).expect("one deleted segment kept").len();
        assert!(spare_bytes > 32 * 1024, "the spare holds old batches: {spare_bytes}");
        // Appends until the next roll takes the spare, then one more batch:
        // the recycled file now holds new batches, then old ones.
        let mut i = 20;
        while spare.exists() {
            append_durably(&log, big_batch(i)).await;
            i += 1;
            assert!(i < 100, "no roll took the spare");
        }
        append_durably(&log, big_batch(i)).await;
        assert_eq!(ringlog_engine::stats::segments_recycled(), 1, "counted");
        let recycled = newest_segment_file(dir.path());
        assert!(std::fs::metadata(&recycled).expect("segment").len() >= spare_bytes);
        let start = log.borrow().offsets().log_start_offset;
        let end = log.borrow().offsets().high_watermark;
        assert_eq!(read_offsets_from(&log, start, 1), (start..end).collect::<Vec<_>>());
        end
        // Dropped without close or seal: as after kill -9.
    });
    tokio_uring::start(async {
        let log = open(dir.path(), recycling(), false, 0);
        let offsets = log.borrow().offsets();
        assert_eq!(offsets.log_end_offset, expected_end, "no old batch taken for a new one");
        let expected: Vec<i64> = (offsets.log_start_offset..expected_end).collect();
        assert_eq!(read_offsets_from(&log, offsets.log_start_offset, 1), expected);
        assert_eq!(append_durably(&log, big_batch(0)).await, expected_end);
        PartitionLog::close(&log).await.expect("close");
    });
    tokio_uring::start(async {
        let log = open(dir.path(), recycling(), true, 0);
        let offsets = log.borrow().offsets();
        assert_eq!(offsets.log_end_offset, expected_end + 1);
        let expected: Vec<i64> = (offsets.log_start_offset..expected_end + 1).collect();
        assert_eq!(read_offsets_from(&log, offsets.log_start_offset, 1), expected);
    });
}

/// The roll that takes the spare leaves its rename to the new segment's
/// first write job (io_uring runs it on a kernel worker, not the core):
/// appended but not yet written, the spare is still there and the segment
/// file is not; written, the segment file is the spare, blocks and all.
#[test]
fn a_roll_leaves_the_spare_segment_file_rename_to_the_first_write() {
    let Some((dir, config, spare)) = recycling_setup() else {
        return;
    };
    tokio_uring::start(async {
        let log = open(dir.path(), config, false, 0);
        for i in 0..20 {
            append_durably(&log, big_batch(i)).await;
        }
        settle_files(&log);
        log.borrow_mut()
            .enforce_retention(-1, RECYCLING_SEGMENT_BYTES as i64, NOW_MS)
            .expect("retention");
        let spare_bytes = std::fs::metadata(&spare).expect("a spare kept").len();
        let recycled_before = ringlog_engine::stats::segments_recycled();
        // No await in between: the writer task runs only after the roll.
        let segments = log.borrow().segment_count();
        let mut base = 0;
        for i in 20.. {
            if log.borrow().segment_count() > segments {
                break;
            }
            base = log
                .borrow_mut()
                .append(vec![big_batch(i)], None, NOW_MS)
                .expect("append")
                .base_offset;
        }
        let rolled = dir.path().join(format!("{base:020}.log"));
        assert!(
            spare.exists() && !rolled.exists(),
            "the roll renamed the spare on the core"
        );
        assert_eq!(ringlog_engine::stats::segments_recycled(), recycled_before + 1);
        settle(&log).await;
        assert!(!spare.exists(), "the first write took the spare");
        assert!(std::fs::metadata(&rolled).expect("the new segment").len() >= spare_bytes);
        assert_eq!(batch_offsets(&read_bytes(&log, base, 1 << 20)), vec![base]);
        PartitionLog::close(&log).await.expect("close");
    });
}

/// A partition that turns quiet rolls to the page cache and gives back the
/// disk its spare segment file held.
#[test]
fn a_partition_that_turns_quiet_removes_its_spare_segment_file() {
    let Some((dir, recycling, spare)) = recycling_setup() else {
        return;
    };
    let segment_bytes = RECYCLING_SEGMENT_BYTES;
    let auto = LogConfig {
        io_policy: IoPolicy::Auto {
            direct_above_bytes_per_s: segment_bytes,
            core_direct_above_bytes_per_s: u64::MAX / 2,
        },
        ..recycling
    };
    tokio_uring::start(async {
        let log = open(dir.path(), auto, false, 0);
        // 160 KB in 20 ms: well above the partition's threshold, so direct.
        for i in 0..20 {
            append_durably_at(&log, big_batch(i), NOW_MS + i as i64).await;
        }
        settle_files(&log);
        log.borrow_mut()
            .enforce_retention(-1, segment_bytes as i64, NOW_MS + 20)
            .expect("retention");
        assert!(spare.exists(), "a busy partition keeps a spare");
        // Then one small batch a second: past the direct segment's minimum
        // age the partition rolls back to the page cache.
        for second in 1..=15 {
            append_durably_at(&log, value_batch(second, NOW_MS), NOW_MS + 1000 * second as i64).await;
        }
        assert!(!spare.exists(), "the quiet partition removed its spare");
        PartitionLog::close(&log).await.expect("close");
    });
}

/// A fetch that holds a region of a segment file when retention deletes it
/// still sends that segment's bytes: a file a read holds is deleted, not
/// recycled, so later segments never overwrite it.
#[test]
fn a_segment_file_a_read_still_holds_is_not_recycled() {
    let Some((dir, recycling, spare)) = recycling_setup() else {
        return;
    };
    let segment_bytes = RECYCLING_SEGMENT_BYTES;
    tokio_uring::start(async {
        let log = open(dir.path(), recycling, false, 0);
        for i in 0..20 {
            append_durably(&log, big_batch(i)).await;
        }
        // A fetch at offset 0, not yet sent: it holds the first segment's file.
        let held = log.borrow().read(0, 1 << 20, true).expect("read");
        assert!(held.chunks.iter().all(|c| matches!(c, ReadChunk::File(_))));
        // Retention deletes only the first segment.
        assert!(log.borrow().segment_count() >= 3);
        settle_files(&log);
        let deleted = log
            .borrow_mut()
            .enforce_retention(-1, segment_bytes as i64, NOW_MS)
            .expect("retention");
        assert_eq!(deleted, 1);
        assert!(!spare.exists(), "the held file was not kept for reuse");
        for i in 20..60 {
            append_durably(&log, big_batch(i)).await;
        }
        // What the fetch sends now: still the first segment's batches.
        let mut sent = Vec::new();
        for chunk in held.chunks {
            if let ReadChunk::File(region) = chunk {
                let mut buf = vec![0u8; region.len as usize];
                region.file.read_exact_at(&mut buf, region.position).expect("pread");
                sent.extend_from_slice(&buf);
            }
        }
        let bases = batch_offsets(&sent);
        assert_eq!(bases[0], 0);
        assert_eq!(bases, (0..bases.len() as i64).collect::<Vec<_>>());
    });
}
