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

/// A small filesystem mounted for one test, unmounted when dropped.
struct SmallFilesystem {
    mount_point: tempfile::TempDir,
    /// The image file behind a loop-mounted ext4.
    _image_dir: Option<tempfile::TempDir>,
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
        Some(Self {
            mount_point,
            _image_dir: None,
        })
    }

    /// A loop-mounted ext4, where segments are written with O_DIRECT and
    /// grown with fallocate as on a real disk; `None` where loop devices or
    /// mkfs are missing.
    fn mount_ext4(size_bytes: u64) -> Option<Self> {
        let image_dir = tempfile::tempdir().expect("image dir");
        let image = image_dir.path().join("fs.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(size_bytes))
            .expect("image file");
        // No blocks reserved for root (the tests may run as root).
        let made = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&image)
            .output();
        if !made.is_ok_and(|output| output.status.success()) {
            return None;
        }
        let mount_point = tempfile::tempdir().expect("mount point");
        let mounted = std::process::Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(mount_point.path())
            .output();
        if !mounted.is_ok_and(|output| output.status.success()) {
            return None;
        }
        Some(Self {
            mount_point,
            _image_dir: Some(image_dir),
        })
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

/// A broker on `filesystem` with one topic, and the records it acknowledged
/// before filling the disk left it refusing produce.
fn broker_on_a_full_disk(
    filesystem: &SmallFilesystem,
    io_mode: &str,
) -> (RunningBroker, RawConnection, i64, i32, PathBuf) {
    let broker = RunningBroker::start_under(
        filesystem.path(),
        &[
            ("offsets.topic.num.partitions", "1"),
            ("transaction.state.log.num.partitions", "1"),
            ("log.segment.bytes", "1048576"),
            ("offsets.topic.segment.bytes", "1048576"),
            ("log.io.mode", io_mode),
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
    (broker, connection, producer_id, acked, filler)
}

#[test]
fn a_full_disk_refuses_produce_keeps_reads_and_recovers_when_space_returns() {
    let Some(filesystem) = SmallFilesystem::mount(FILESYSTEM_BYTES) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root)");
        return;
    };
    let (mut broker, mut connection, producer_id, mut acked, filler) = broker_on_a_full_disk(&filesystem, "auto");
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

/// Graceful shutdown flushes and seals; on a full disk those writes fail, and
/// the broker must still exit (once one was seen alive 14 s after SIGTERM).
#[test]
fn a_broker_on_a_full_disk_stops_when_asked_and_restarts_with_what_it_acknowledged() {
    for io_mode in ["direct", "buffered"] {
        let filesystem = SmallFilesystem::mount_ext4(FILESYSTEM_BYTES * 2).or_else(|| {
            eprintln!("no loop-mounted ext4 here; a tmpfs (buffered writes only) instead");
            SmallFilesystem::mount(FILESYSTEM_BYTES)
        });
        let Some(filesystem) = filesystem else {
            eprintln!("SKIPPED: cannot mount a filesystem here (not root)");
            return;
        };
        stop_on_a_full_disk(&filesystem, io_mode);
    }
}

fn stop_on_a_full_disk(filesystem: &SmallFilesystem, io_mode: &str) {
    let (mut broker, mut connection, producer_id, acked, filler) = broker_on_a_full_disk(filesystem, io_mode);
    let refusals_started = Instant::now();
    for _ in 0..300 {
        assert_eq!(produce_record(&mut connection, producer_id, acked), KAFKA_STORAGE_ERROR);
    }
    drop(connection);
    // Each core logs at most one storage error a second (the log may be on the full disk).
    let error_lines = broker.log().lines().filter(|line| line.contains("ERROR")).count();
    let seconds = refusals_started.elapsed().as_secs() as usize + 2;
    assert!(
        error_lines <= 4 * seconds + 4,
        "{io_mode}: {error_lines} error lines in {seconds} s"
    );
    broker.request_stop();
    // The grace period is 10 s; a little more for a slow machine.
    let deadline = Instant::now() + Duration::from_secs(20);
    while broker.is_running() {
        assert!(
            Instant::now() < deadline,
            "{io_mode}: the broker did not exit 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = broker.wait_for_exit();
    std::fs::remove_file(&filler).expect("freeing space");
    broker.restart();
    assert_log_holds(&broker, acked, &format!("{io_mode}: after a stop on a full disk"));
    drop(broker); // before the filesystem is unmounted
}

/// A partition writing with O_DIRECT keeps one segment file retention
/// deleted, to reuse (a spare). When the disk fills up (here through
/// another topic, without retention), the failed write makes every core
/// give that space back, so producing resumes with nobody freeing space.
/// The broker's log is on the full disk too, and logging must not fail it.
#[test]
fn a_full_disk_takes_back_the_spare_segment_files_first() {
    let Some(filesystem) = SmallFilesystem::mount_ext4(FILESYSTEM_BYTES * 2) else {
        eprintln!("SKIPPED: no loop-mounted ext4 here (not root, or no mkfs.ext4)");
        return;
    };
    let broker = RunningBroker::start_under(
        filesystem.path(),
        &[
            ("offsets.topic.num.partitions", "1"),
            ("transaction.state.log.num.partitions", "1"),
            ("offsets.topic.segment.bytes", "1048576"),
            ("log.segment.bytes", "1048576"),
            ("log.io.mode", "direct"),
            ("log.retention.check.interval.ms", "100"),
        ],
    );
    const RECYCLING: &str = "recycling";
    assert_eq!(
        create_topic_raw(broker.bootstrap(), RECYCLING, 1, &[("retention.bytes", "2097152")]),
        0
    );
    assert_eq!(create_topic_raw(broker.bootstrap(), TOPIC, 1, &[]), 0);
    let mut connection = RawConnection::connect(broker.bootstrap());
    let producer_id = connection.init_producer_id();
    let spare = broker
        .data_dir()
        .join(format!("{RECYCLING}-0"))
        .join("recycled-segment.spare");
    let mut produced = 0;
    while !spare.exists() {
        let batch = idempotent_batch(producer_id, 0, produced, &[record_value(produced)]);
        assert_eq!(connection.produce(RECYCLING, 0, batch).0, 0);
        produced += 1;
        assert!(produced < 5000, "retention never kept a spare segment file");
        std::thread::sleep(Duration::from_millis(1)); // retention runs meanwhile
    }
    let _filler = filesystem.fill_leaving(128 << 10);
    let other_producer = connection.init_producer_id();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut acked, mut refused) = (0, 0);
    loop {
        match produce_record(&mut connection, other_producer, acked) {
            0 if refused > 0 => break, // accepted again after a refusal
            0 => acked += 1,
            KAFKA_STORAGE_ERROR => {
                refused += 1;
                assert!(Instant::now() < deadline, "produce did not resume on the spare's space");
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("unexpected error {other}: {}", broker.log()),
        }
        assert!(acked < 5000, "the disk never filled up");
    }
    acked += 1;
    assert!(!spare.exists(), "the spare's space was given back");
    assert_log_holds(&broker, acked, "after the spare's space was used");
    drop(broker); // before the filesystem is unmounted
}
