//! Torn and damaged files on disk: the broker starts, repairs or rebuilds,
//! says what it did in its log, and serves every whole batch (CRC-checked by
//! `read_partition`), then takes new writes.

use std::io::Write;
use std::path::PathBuf;

use ringlog_tests::{create_topic_raw, idempotent_batch, RawConnection, RunningBroker};

const TOPIC: &str = "damaged";
const BATCHES: i32 = 60;
const RECORDS_PER_BATCH: i32 = 5;
const RECORDS: i32 = BATCHES * RECORDS_PER_BATCH;

fn record_value(number: i32) -> String {
    format!("record-{number:06}-{}", "v".repeat(80))
}

fn produce_batch(connection: &mut RawConnection, producer_id: i64, first: i32) {
    let values: Vec<String> = (first..first + RECORDS_PER_BATCH).map(record_value).collect();
    let batch = idempotent_batch(producer_id, 0, first, &values);
    assert_eq!(
        connection.produce(TOPIC, 0, batch).0,
        0,
        "produce of records from {first}"
    );
}

/// A broker whose one partition holds `RECORDS` records over several small
/// segments.
fn broker_with_segments() -> RunningBroker {
    let broker = RunningBroker::start(&[("log.segment.bytes", "8192")]);
    assert_eq!(create_topic_raw(broker.bootstrap(), TOPIC, 1, &[]), 0);
    let mut connection = RawConnection::connect(broker.bootstrap());
    let producer_id = connection.init_producer_id();
    for batch in 0..BATCHES {
        produce_batch(&mut connection, producer_id, batch * RECORDS_PER_BATCH);
    }
    assert!(segment_files(&broker, "log").len() >= 4, "several segments");
    broker
}

/// The partition's files with `suffix`, oldest first.
fn segment_files(broker: &RunningBroker, suffix: &str) -> Vec<PathBuf> {
    let dir = broker.data_dir().join(format!("{TOPIC}-0"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("partition dir")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == suffix))
        .collect();
    files.sort();
    files
}

/// The served records are `0..n` in order, each whole; returns `n`.
fn served_prefix(broker: &RunningBroker) -> i32 {
    let records = RawConnection::connect(broker.bootstrap()).read_partition(TOPIC, 0);
    for (index, (_, value)) in records.iter().enumerate() {
        assert_eq!(String::from_utf8_lossy(value), record_value(index as i32));
    }
    records.len() as i32
}

/// New writes land after what was served (a fresh producer id: the old one's
/// state may have gone with the damaged tail).
fn takes_new_writes(broker: &RunningBroker, served: i32) {
    let mut connection = RawConnection::connect(broker.bootstrap());
    let producer_id = connection.init_producer_id();
    let values: Vec<String> = (served..served + RECORDS_PER_BATCH).map(record_value).collect();
    let (error, _) = connection.produce(TOPIC, 0, idempotent_batch(producer_id, 0, 0, &values));
    assert_eq!(error, 0);
    assert_eq!(served_prefix(broker), served + RECORDS_PER_BATCH);
}

/// Bytes of the whole batches at the start of a segment file.
fn whole_batches_bytes(path: &std::path::Path) -> u64 {
    use ringlog_engine::batch::{batch_total_bytes, validate_batch};
    let bytes = std::fs::read(path).expect("segment");
    let mut position = 0;
    while let Ok(total_bytes) = batch_total_bytes(&bytes[position..]) {
        let Some(batch) = bytes.get(position..position + total_bytes) else {
            break;
        };
        if validate_batch(batch).is_err() {
            break;
        }
        position += total_bytes;
    }
    position as u64
}

fn assert_logged(broker: &RunningBroker, message: &str) {
    let log = broker.log();
    assert!(log.contains(message), "the broker should log {message:?}; log:\n{log}");
}

#[test]
fn a_truncated_tail_loses_only_the_torn_batch() {
    let mut broker = broker_with_segments();
    broker.kill();
    let last = segment_files(&broker, "log").pop().expect("a segment");
    // Cut into the last batch (O_DIRECT leaves zero padding after it).
    let file = std::fs::OpenOptions::new().write(true).open(&last).expect("segment");
    file.set_len(whole_batches_bytes(&last) - 30).expect("truncating");
    broker.restart();
    assert_logged(&broker, "truncating torn or padded segment tail");
    let served = served_prefix(&broker);
    assert_eq!(served, RECORDS - RECORDS_PER_BATCH, "only the torn last batch is gone");
    takes_new_writes(&broker, served);
}

#[test]
fn garbage_after_the_last_batch_is_cut_off() {
    let mut broker = broker_with_segments();
    broker.kill();
    let last = segment_files(&broker, "log").pop().expect("a segment");
    let mut file = std::fs::OpenOptions::new().append(true).open(&last).expect("segment");
    let garbage: Vec<u8> = (0..1000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    file.write_all(&garbage).expect("appending garbage");
    broker.restart();
    assert_logged(&broker, "truncating torn or padded segment tail");
    assert_eq!(served_prefix(&broker), RECORDS);
    takes_new_writes(&broker, RECORDS);
}

#[test]
fn damaged_indexes_are_rebuilt_even_after_a_clean_shutdown() {
    let mut broker = broker_with_segments();
    broker.stop(); // clean: the broker would trust its indexes
    let indexes = segment_files(&broker, "index");
    // Well-formed but wrong: one entry pointing into the middle of a batch.
    let mut plausible = Vec::new();
    plausible.extend_from_slice(&3u32.to_be_bytes());
    plausible.extend_from_slice(&17u32.to_be_bytes());
    std::fs::write(&indexes[0], plausible).expect("writing index");
    // Not even well-formed.
    std::fs::write(&indexes[1], b"not an index").expect("writing index");
    std::fs::write(segment_files(&broker, "timeindex")[2].clone(), [0xff; 7]).expect("writing time index");
    broker.restart();
    assert_logged(&broker, "index disagrees with the segment; rebuilding it");
    assert_logged(&broker, "damaged index; rebuilding from the segment");
    assert_eq!(served_prefix(&broker), RECORDS);
    takes_new_writes(&broker, RECORDS);
}

#[test]
fn missing_indexes_are_rebuilt() {
    let mut broker = broker_with_segments();
    broker.stop();
    for suffix in ["index", "timeindex"] {
        for file in segment_files(&broker, suffix) {
            std::fs::remove_file(file).expect("removing index");
        }
    }
    broker.restart();
    assert_logged(&broker, "index unreadable; rebuilding from the segment");
    assert_eq!(served_prefix(&broker), RECORDS);
    takes_new_writes(&broker, RECORDS);
}

#[test]
fn empty_segment_files_do_not_stop_the_start() {
    let mut broker = broker_with_segments();
    broker.kill();
    let dir = broker.data_dir().join(format!("{TOPIC}-0"));
    // A roll that crashed before its first write, and a stray empty file
    // between two segments.
    std::fs::write(dir.join(format!("{:020}.log", RECORDS)), b"").expect("empty segment");
    std::fs::write(dir.join(format!("{:020}.log", 1)), b"").expect("empty segment");
    broker.restart();
    assert_eq!(served_prefix(&broker), RECORDS);
    takes_new_writes(&broker, RECORDS);
    broker.stop();
    broker.restart();
    assert_eq!(served_prefix(&broker), RECORDS + RECORDS_PER_BATCH);
}
