//! The broker's storage settings, end to end: O_DIRECT or its fallback on tmpfs,
//! buffered mode with an fsync before every acknowledgement, LogAppendTime.

use std::path::Path;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use ringlog_engine::batch::build_batch;
use ringlog_tests::{assign_from_beginning, create_topic_raw, manual_consumer_config, RawConnection, RunningBroker};

async fn produce_and_consume(broker: &RunningBroker, topic: &str, count: usize) -> Vec<rdkafka::Timestamp> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..count {
        let value = format!("v{i}");
        let record = FutureRecord::<(), _>::to(topic).payload(&value);
        producer
            .send(record, std::time::Duration::from_secs(30))
            .await
            .expect("delivered");
    }
    let mut seen = Vec::new();
    consume_from_beginning(broker, "storage-modes", topic, 1, count, |message| {
        assert_eq!(message.payload(), Some(format!("v{}", seen.len()).as_bytes()));
        assert_eq!(message.offset(), seen.len() as i64);
        seen.push(message.timestamp());
    });
    assert_eq!(seen.len(), count);
    seen
}

/// librdkafka reads `count` messages of `topic` (partitions `0..partitions`)
/// from the beginning, or for a minute at most, handing each to `visit`.
fn consume_from_beginning(
    broker: &RunningBroker,
    group: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    mut visit: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) {
    let consumer: BaseConsumer = manual_consumer_config(broker.bootstrap(), group)
        .create()
        .expect("consumer");
    assign_from_beginning(&consumer, topic, partitions);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut consumed = 0;
    while consumed < count && std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(std::time::Duration::from_millis(500)) {
            visit(&message.expect("consume"));
            consumed += 1;
        }
    }
}

/// Whether `dir`'s filesystem accepts an aligned O_DIRECT write.
fn accepts_o_direct(dir: &Path) -> bool {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let path = dir.join(".probe");
    let layout = std::alloc::Layout::from_size_align(4096, 4096).expect("layout");
    // SAFETY: non-zero size, power-of-two alignment; freed below.
    let buf = unsafe { std::alloc::alloc_zeroed(layout) };
    let accepted = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        // SAFETY: buf points to 4096 initialised bytes.
        .and_then(|file| file.write_all_at(unsafe { std::slice::from_raw_parts(buf, 4096) }, 0))
        .is_ok();
    // SAFETY: allocated above with this layout.
    unsafe { std::alloc::dealloc(buf, layout) };
    let _ = std::fs::remove_file(path);
    accepted
}

/// tmpfs refused O_DIRECT before Linux 6.6; there the broker must fall back to
/// buffered I/O with one clear log line. Where it is accepted, direct I/O runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmpfs_serves_with_direct_io_or_one_clear_fallback_line() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("no /dev/shm here; skipping");
        return;
    }
    let broker = RunningBroker::start_under(shm, &[]);
    produce_and_consume(&broker, "on-tmpfs", 50).await;
    let log = broker.log();
    if accepts_o_direct(shm) {
        assert!(log.contains("io_mode=Direct"), "{log}");
    } else {
        assert_eq!(log.matches("refuses O_DIRECT").count(), 1, "one clear line:\n{log}");
        assert!(log.contains("io_mode=Buffered"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_mode_with_fsync_per_message_survives_kill_9() {
    let mut broker = RunningBroker::start(&[("log.io.mode", "buffered"), ("log.flush.interval.messages", "1")]);
    produce_and_consume(&broker, "fsynced", 200).await;
    broker.kill();
    broker.restart();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "storage-modes")
        .create()
        .expect("consumer");
    let (low, high) = consumer
        .fetch_watermarks("fsynced", 0, std::time::Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!((low, high), (0, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_replaces_producer_timestamps() {
    let broker = RunningBroker::start(&[("log.message.timestamp.type", "LogAppendTime")]);
    for timestamp in produce_and_consume(&broker, "append-time", 20).await {
        assert!(
            matches!(timestamp, rdkafka::Timestamp::LogAppendTime(t) if t > 0),
            "broker-stamped LogAppendTime expected, got {timestamp:?}"
        );
    }
}

/// Bytes of `path` below `end` resident in the page cache (mincore over a
/// read-only map).
fn resident_bytes_below(path: &Path, end: usize) -> usize {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).expect("open segment");
    let len = (file.metadata().expect("segment metadata").len() as usize).min(end);
    let page_bytes = 4096;
    // SAFETY: a fresh read-only shared map of an open file, unmapped below.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED, "mmap {}", path.display());
    let mut pages = vec![0u8; len.div_ceil(page_bytes)];
    // SAFETY: `map` spans `len` bytes; `pages` has one byte per page of it.
    let result = unsafe { libc::mincore(map, len, pages.as_mut_ptr()) };
    // SAFETY: mapped above with this length.
    unsafe { libc::munmap(map, len) };
    assert_eq!(result, 0, "mincore {}", path.display());
    pages.iter().filter(|&&page| page & 1 == 1).count() * page_bytes
}

/// Reads from the segment file go through the page cache (sendfile). By
/// default the pages sent leave it once the client has read them, so a
/// catch-up reader does not fill memory; `log.read.drop.page.cache=false`
/// keeps them, which also shows that the measurement sees them.
#[test]
fn catch_up_reads_leave_the_page_cache_unless_told_to_keep_it() {
    const BATCHES: usize = 24;
    const RECORDS_PER_BATCH: usize = 1000;
    // The kernel drops whole folios (up to 2 MiB): the one holding the end of
    // what was sent stays, as does what readahead brought in past it.
    const FOLIO_BYTES_MAX: usize = 2 << 20;
    let value = vec![b'r'; 1000];
    let records: Vec<ringlog_engine::batch::KeyValue<'_>> = vec![(None, Some(&value[..])); RECORDS_PER_BATCH];
    let batch = ringlog_engine::batch::build_batch(&records, 1_000).freeze();
    let written_bytes = BATCHES * batch.len();
    let whole_folios_bytes = written_bytes / FOLIO_BYTES_MAX * FOLIO_BYTES_MAX;
    for keep in [false, true] {
        let Some(broker) = broker_reading_files(&[("log.read.drop.page.cache", if keep { "false" } else { "true" })])
        else {
            return;
        };
        assert_eq!(
            ringlog_tests::create_topic_raw(broker.bootstrap(), "catch-up", 1, &[]),
            0
        );
        let mut connection = ringlog_tests::RawConnection::connect(broker.bootstrap());
        for _ in 0..BATCHES {
            assert_eq!(connection.produce("catch-up", 0, batch.clone()).0, 0);
        }
        let segment = broker.data_dir().join("catch-up-0").join("00000000000000000000.log");
        assert_eq!(
            resident_bytes_below(&segment, written_bytes),
            0,
            "O_DIRECT writes bypass the page cache"
        );
        assert_eq!(
            connection.read_partition("catch-up", 0).len(),
            BATCHES * RECORDS_PER_BATCH
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
        let resident = resident_bytes_below(&segment, whole_folios_bytes);
        if keep {
            // Nearly all: under memory pressure the kernel may reclaim a few
            // pages by itself (a CI run once found 8 KiB of 22 MiB gone).
            assert!(
                resident >= whole_folios_bytes * 9 / 10,
                "pages kept: {resident} of {whole_folios_bytes} bytes resident"
            );
        } else {
            assert_eq!(resident, 0, "pages sent were dropped");
        }
    }
}

/// Produces `batches` batches (`values(index)` each) round-robin over
/// `partitions` partitions of `topic`, reads every partition back from its
/// start, and checks it holds what was produced; returns that per partition.
fn produce_and_read_back(
    connection: &mut RawConnection,
    topic: &str,
    partitions: usize,
    batches: usize,
    values: impl Fn(usize) -> Vec<Vec<u8>>,
) -> Vec<Vec<Vec<u8>>> {
    let mut expected = vec![Vec::new(); partitions];
    for batch_index in 0..batches {
        let values = values(batch_index);
        let records: Vec<ringlog_engine::batch::KeyValue<'_>> = values.iter().map(|v| (None, Some(&v[..]))).collect();
        let partition = batch_index % partitions;
        let batch = build_batch(&records, 1_000).freeze();
        assert_eq!(
            connection.produce(topic, partition as i32, batch).0,
            0,
            "batch {batch_index}"
        );
        expected[partition].extend(values);
    }
    for (partition, expected) in expected.iter().enumerate() {
        let read: Vec<Vec<u8>> = connection
            .read_partition(topic, partition as i32)
            .into_iter()
            .map(|(_, value)| value)
            .collect();
        assert!(&read == expected, "{topic}/{partition} read back as written");
    }
    expected
}

/// A broker that writes with O_DIRECT and keeps no batch cache, so every
/// fetch reads segment files; `None` where the data dir refuses O_DIRECT
/// (then written bytes sit in the page cache anyway).
fn broker_reading_files(settings: &[(&str, &str)]) -> Option<RunningBroker> {
    let mut settings = settings.to_vec();
    settings.push(("log.cache.bytes.per.core", "0"));
    settings.push(("log.io.mode", "direct"));
    let broker = RunningBroker::start(&settings);
    if !broker.log().contains("io_mode=Direct") {
        eprintln!("no O_DIRECT under the data dir; skipping");
        return None;
    }
    Some(broker)
}

/// `log.read.mode=direct`: fetches read segment files with O_DIRECT, so
/// batches of every size, across the block and read-buffer boundaries and up
/// to the unaligned ends of sealed segments, arrive whole (the reader checks
/// every CRC), and the page cache is never filled.
#[test]
fn direct_reads_serve_every_batch_and_fill_no_page_cache() {
    const PARTITIONS: usize = 6;
    let Some(broker) = broker_reading_files(&[
        ("log.read.mode", "direct"),
        ("log.read.drop.page.cache", "false"),
        ("log.segment.bytes", "1048576"),
    ]) else {
        return;
    };
    let topic = "direct-reads";
    assert_eq!(
        ringlog_tests::create_topic_raw(broker.bootstrap(), topic, PARTITIONS as i32, &[]),
        0
    );
    let mut connection = ringlog_tests::RawConnection::connect(broker.bootstrap());
    // One partition per fetch: one region per response, read in several
    // reads where it crosses a read-buffer boundary.
    let expected = produce_and_read_back(&mut connection, topic, PARTITIONS, 240, |batch_index| {
        (0..(batch_index % 9) * 11 + 1)
            .map(|record| vec![(batch_index + record) as u8; 97 + batch_index * 13 % 4001])
            .collect()
    });
    // librdkafka fetches all partitions at once: responses of several
    // regions, whose reads run ahead of the one being sent.
    let mut consumed = vec![Vec::new(); PARTITIONS];
    let total: usize = expected.iter().map(Vec::len).sum();
    consume_from_beginning(&broker, "direct-reads", topic, PARTITIONS as i32, total, |message| {
        consumed[message.partition() as usize].push(message.payload().unwrap_or_default().to_vec());
    });
    assert!(consumed == expected, "librdkafka read every record back as written");
    for partition in 0..PARTITIONS {
        let dir = broker.data_dir().join(format!("{topic}-{partition}"));
        let segments: Vec<_> = std::fs::read_dir(dir)
            .expect("partition dir")
            .map(|entry| entry.expect("dir entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "log"))
            .collect();
        assert!(segments.len() >= 2, "sealed segments read too: {segments:?}");
        for segment in segments {
            // The broker's own reads of batch headers (to find offsets) go
            // through the page cache; the bytes sent do not.
            let resident = resident_bytes_below(&segment, usize::MAX);
            assert!(
                resident <= 128 << 10,
                "{resident} bytes of {} cached",
                segment.display()
            );
        }
    }
}

/// O_DIRECT reads see only what reached the disk, so with buffered writes
/// `log.read.mode=direct` falls back to sendfile, with one line at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_reads_fall_back_to_sendfile_with_buffered_writes() {
    let broker = RunningBroker::start(&[
        ("log.io.mode", "buffered"),
        ("log.read.mode", "direct"),
        ("log.cache.bytes.per.core", "0"),
    ]);
    produce_and_consume(&broker, "read-fallback", 50).await;
    let log = broker.log();
    assert_eq!(log.matches("fetches use sendfile").count(), 1, "one clear line:\n{log}");
}

/// `log.io.mode=auto`: a partition taking more than the threshold rolls to a
/// segment written with O_DIRECT; a quiet one stays in the page cache, also
/// one that starts on the busy partition's core right after its burst (the
/// busy partition's bytes are direct, so they do not make its core busy).
/// The per-core gauge counts the direct ones.
#[test]
fn auto_mode_writes_busy_partitions_direct_and_quiet_ones_through_the_page_cache() {
    let broker = RunningBroker::start(&[
        ("log.io.mode", "auto"),
        ("log.io.auto.direct.bytes.per.second", "65536"),
        ("log.io.auto.core.direct.bytes.per.second", "131072"),
    ]);
    if !broker.log().contains("io_auto=true") {
        eprintln!("no O_DIRECT under the data dir (auto is then buffered); skipping");
        return;
    }
    for topic in ["busy", "quiet"] {
        assert_eq!(create_topic_raw(broker.bootstrap(), topic, 1, &[]), 0);
    }
    let mut producer = RawConnection::connect(broker.bootstrap());
    let batch = |value_bytes: usize| build_batch(&[(None, Some(&vec![7u8; value_bytes][..]))], 0).freeze();
    for _ in 0..3 {
        assert_eq!(producer.produce("quiet", 0, batch(100)).0, 0);
    }
    // 200 KB at once: over 64 KiB within the first second, and over the
    // core's 128 KiB.
    for _ in 0..20 {
        assert_eq!(producer.produce("busy", 0, batch(10_000)).0, 0);
    }
    // Two partitions: one of them on the busy partition's core.
    assert_eq!(create_topic_raw(broker.bootstrap(), "late", 2, &[]), 0);
    for partition in 0..2 {
        assert_eq!(producer.produce("late", partition, batch(100)).0, 0);
    }
    let direct_partitions = broker.metric_sum("ringlog_core_partitions_direct");
    assert_eq!(direct_partitions, 1.0, "only the busy partition writes direct");
    let segments = |partition_dir: &str| {
        std::fs::read_dir(broker.data_dir().join(partition_dir))
            .expect("partition dir")
            .filter(|entry| {
                entry
                    .as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
            })
            .count()
    };
    assert_eq!(segments("busy-0"), 2, "the switch rolled the segment");
    for quiet in ["quiet-0", "late-0", "late-1"] {
        assert_eq!(segments(quiet), 1, "{quiet} never rolled");
    }
}

/// O_DIRECT segments with batches of a few hundred KB to 1 MB (each spans
/// many blocks, and segments roll between them) and small batches between:
/// every record reads back as produced, before and after kill -9, from our
/// reader and from librdkafka's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_direct_batches_read_back_whole_after_kill_9() {
    let Some(mut broker) = broker_reading_files(&[("log.segment.bytes", "8388608")]) else {
        return;
    };
    let topic = "large-batches";
    assert_eq!(create_topic_raw(broker.bootstrap(), topic, 1, &[]), 0);
    let mut connection = RawConnection::connect(broker.bootstrap());
    // Timestamps of now: retention by time must not take the batches.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut expected = Vec::new();
    for batch_index in 0..40usize {
        // Up to 650 records of 1500 bytes (under max.message.bytes), and
        // every fifth batch small; values differ block to block so a block
        // written at the wrong place shows.
        let record_bytes = if batch_index % 5 == 4 {
            700
        } else {
            1000 + batch_index * 37 % 500
        };
        let records = if batch_index % 5 == 4 {
            3
        } else {
            200 + batch_index * 53 % 450
        };
        let values: Vec<Vec<u8>> = (0..records)
            .map(|r| {
                (0..record_bytes)
                    .map(|i| ((i / 13 + r * 7 + batch_index) % 251) as u8)
                    .collect()
            })
            .collect();
        let keyed: Vec<ringlog_engine::batch::KeyValue<'_>> = values.iter().map(|v| (None, Some(&v[..]))).collect();
        assert_eq!(connection.produce(topic, 0, build_batch(&keyed, now_ms).freeze()).0, 0);
        expected.extend(values);
    }
    let read_back = |connection: &mut RawConnection| -> Vec<Vec<u8>> {
        connection
            .read_partition(topic, 0)
            .into_iter()
            .map(|(_, value)| value)
            .collect()
    };
    assert!(read_back(&mut connection) == expected, "read back as produced");
    broker.kill();
    broker.restart();
    let mut connection = RawConnection::connect(broker.bootstrap());
    assert!(
        read_back(&mut connection) == expected,
        "read back as produced after kill -9"
    );
    let mut consumed = Vec::new();
    consume_from_beginning(&broker, "large-batches", topic, 1, expected.len(), |message| {
        consumed.push(message.payload().unwrap_or_default().to_vec());
    });
    assert!(consumed == expected, "librdkafka read every record back as produced");
}

/// Produce frames of 256 KiB or more are read into chunks of huge pages or
/// of 4 KiB pages (`socket.request.huge.pages`) and written to O_DIRECT
/// segments straight from there: with either, every batch reads back as
/// written, and the metrics say which pages the frames went to.
#[test]
fn large_produce_frames_read_back_whole_from_either_kind_of_page() {
    const PARTITIONS: usize = 2;
    for (huge_pages, gauge) in [("true", 1.0), ("false", 0.0)] {
        let broker = RunningBroker::start(&[("socket.request.huge.pages", huge_pages), ("log.io.mode", "direct")]);
        let topic = format!("large-frames-huge-pages-{huge_pages}");
        assert_eq!(create_topic_raw(broker.bootstrap(), &topic, PARTITIONS as i32, &[]), 0);
        let mut connection = RawConnection::connect(broker.bootstrap());
        // 300-330 KiB a batch, of an odd size so each write has edges.
        produce_and_read_back(&mut connection, &topic, PARTITIONS, 12, |batch_index| {
            (0..300)
                .map(|record| vec![(batch_index * 31 + record) as u8; 1000 + batch_index * 7])
                .collect()
        });
        assert_eq!(
            broker.unlabelled_metric("ringlog_request_frame_huge_pages"),
            Some(gauge),
            "huge pages {huge_pages}"
        );
        if broker.log().contains("io_mode=Direct") {
            assert!(
                broker.metric_sum("ringlog_core_direct_written_in_place_bytes_total") > 0.0,
                "huge pages {huge_pages}: batches written from the frames"
            );
        }
    }
}
