//! The broker's storage settings, end to end: O_DIRECT or its fallback on tmpfs,
//! buffered mode with an fsync before every acknowledgement, LogAppendTime.

use std::path::Path;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use ringlog_tests::{assign_from_beginning, manual_consumer_config, RunningBroker};

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
    let consumer: BaseConsumer = manual_consumer_config(broker.bootstrap(), "storage-modes")
        .create()
        .expect("consumer");
    assign_from_beginning(&consumer, topic, 1);
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.len() < count && std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(std::time::Duration::from_millis(500)) {
            let message = message.expect("consume");
            assert_eq!(message.payload(), Some(format!("v{}", seen.len()).as_bytes()));
            assert_eq!(message.offset(), seen.len() as i64);
            seen.push(message.timestamp());
        }
    }
    assert_eq!(seen.len(), count);
    seen
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
