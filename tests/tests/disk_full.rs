//! Disk full, on a small tmpfs mounted for the test (needs root, as CI has;
//! elsewhere the test says it is skipped). Produce gets KAFKA_STORAGE_ERROR,
//! consumers keep reading everything acknowledged, nothing written is damaged,
//! and once space returns the same producer's retry succeeds with no restart.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringlog_tests::{create_topic_raw, idempotent_batch, RawConnection, RunningBroker};

const TOPIC: &str = "full";
const FILESYSTEM_BYTES: u64 = 32 << 20;
/// Left free when the filler is written: a few hundred records' worth.
const FREE_BYTES: u64 = 3 << 20;
const RECORD_PADDING_BYTES: usize = 16 * 1024;
const KAFKA_STORAGE_ERROR: i16 = 56;

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallFilesystem {
    mount_point: tempfile::TempDir,
}

impl SmallFilesystem {
    fn mount(size_bytes: u64) -> Option<Self> {
        let mount_point = tempfile::tempdir().expect("mount point");
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_bytes}"), "tmpfs"])
            .arg(mount_point.path())
            .output()
            .expect("running mount");
        if !output.status.success() {
            let reason = String::from_utf8_lossy(&output.stderr);
            assert!(
                reason.contains("permission denied")
                    || reason.contains("must be superuser")
                    || reason.contains("not permitted"),
                "mounting a tmpfs failed: {reason}"
            );
            return None;
        }
        Some(Self { mount_point })
    }

    fn path(&self) -> &Path {
        self.mount_point.path()
    }

    /// Fills the filesystem up to `free_bytes` of free space with one file.
    fn fill_leaving(&self, free_bytes: u64) -> PathBuf {
        let filler = self.path().join("filler");
        let available = available_bytes(self.path());
        let size = available.saturating_sub(free_bytes);
        std::fs::write(&filler, vec![0xaa; size as usize]).expect("writing the filler");
        filler
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.path()).status();
    }
}

fn available_bytes(path: &Path) -> u64 {
    let output = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .expect("running df");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .and_then(|line| line.trim().parse().ok())
        .expect("df prints the free bytes")
}

fn record_value(number: i32) -> String {
    format!("{number:09}:{}", "x".repeat(RECORD_PADDING_BYTES))
}

fn produce_record(connection: &mut RawConnection, producer_id: i64, number: i32) -> i16 {
    let batch = idempotent_batch(producer_id, 0, number, &[record_value(number)]);
    connection.produce(TOPIC, 0, batch).0
}

/// The log holds records `0..count` in order, each once, none damaged
/// (`read_partition` checks every CRC).
fn assert_log_holds(broker: &RunningBroker, count: i32, when: &str) {
    let records = RawConnection::connect(broker.bootstrap()).read_partition(TOPIC, 0);
    let numbers: Vec<i32> = records
        .iter()
        .map(|(_, value)| {
            let text = String::from_utf8_lossy(value);
            assert_eq!(value.len(), 10 + RECORD_PADDING_BYTES, "{when}: record intact");
            text[..9].parse().expect("numbered record")
        })
        .collect();
    assert_eq!(numbers, (0..count).collect::<Vec<_>>(), "{when}");
}

#[test]
fn a_full_disk_refuses_produce_keeps_reads_and_recovers_when_space_returns() {
    let Some(filesystem) = SmallFilesystem::mount(FILESYSTEM_BYTES) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root)");
        return;
    };
    let mut broker = RunningBroker::start_under(
        filesystem.path(),
        &[
            ("offsets.topic.num.partitions", "1"),
            ("transaction.state.log.num.partitions", "1"),
            ("log.segment.bytes", "1048576"),
            ("offsets.topic.segment.bytes", "1048576"),
        ],
    );
    assert_eq!(create_topic_raw(broker.bootstrap(), TOPIC, 1, &[]), 0);
    let mut connection = RawConnection::connect(broker.bootstrap());
    let producer_id = connection.init_producer_id();
    let filler = filesystem.fill_leaving(FREE_BYTES);

    let max_records = (FREE_BYTES as usize / RECORD_PADDING_BYTES) as i32 * 2;
    let mut acked = 0;
    let refused = loop {
        assert!(acked < max_records, "the disk never filled up");
        match produce_record(&mut connection, producer_id, acked) {
            0 => acked += 1,
            code => break code,
        }
    };
    assert_eq!(refused, KAFKA_STORAGE_ERROR, "a full disk answers KAFKA_STORAGE_ERROR");
    assert!(acked > 10, "records were accepted before the disk filled: {acked}");
    // Still full: refused again, and the broker keeps serving reads.
    assert_eq!(produce_record(&mut connection, producer_id, acked), KAFKA_STORAGE_ERROR);
    assert_log_holds(&broker, acked, "while the disk is full");
    let metrics = broker.http_get("/metrics");
    assert!(
        metrics.contains("ringlog_request_errors_total{api=\"Produce\",error=\"KAFKA_STORAGE_ERROR\"}"),
        "storage errors are counted"
    );

    std::fs::remove_file(&filler).expect("freeing space");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The same record again: the idempotent retry of what was refused.
        match produce_record(&mut connection, producer_id, acked) {
            0 => break,
            KAFKA_STORAGE_ERROR => {
                assert!(Instant::now() < deadline, "writes did not resume after space returned");
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("unexpected error {other} after space returned"),
        }
    }
    acked += 1;
    for _ in 0..20 {
        assert_eq!(produce_record(&mut connection, producer_id, acked), 0);
        acked += 1;
    }
    assert_log_holds(&broker, acked, "after space returned");
    broker.stop();
    broker.restart();
    assert_log_holds(&broker, acked, "after a restart");
    drop(broker); // before the filesystem is unmounted
}
