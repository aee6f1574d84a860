//! Kill -9 durability. A pipelined idempotent producer (acks=all) writes
//! numbered records to every partition while the broker is SIGKILLed at random
//! moments, over and over. After each restart every partition must hold records
//! 0..n in order, each exactly once, with n at least what had been
//! acknowledged before the kill, and every batch served must pass its CRC.
//!
//! Short by default (a few kills, part of `scripts/test.sh`);
//! `scripts/crash-loop.sh` runs it long with `RINGLOG_CRASH_KILLS` and
//! `RINGLOG_CRASH_SEED`, and records the result in docs/RELIABILITY.md.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;
use ringlog_tests::{create_topic_raw, idempotent_batch, topic_name, RawConnection, RunningBroker};

const TOPIC: &str = "crash";
const PARTITIONS: i32 = 4;
const RECORDS_PER_BATCH: i64 = 5;
/// Requests in flight on the producer's connection (Kafka's idempotent
/// producer allows up to 5).
const INFLIGHT_REQUESTS: usize = 4;
const PRODUCE_VERSION: i16 = 9;
/// Kafka's retriable answers while a partition is (re)opening.
const RETRIABLE_ERRORS: [i16; 3] = [6, 7, 56]; // NOT_LEADER, REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR

fn record_value(partition: i32, number: i64) -> String {
    format!("p{partition}-{number:09}")
}

/// What the producer thread and the killer share.
struct Shared {
    address: Mutex<String>,
    /// Records acknowledged per partition: always a prefix 0..n.
    acked: Mutex<Vec<i64>>,
    stop: AtomicBool,
}

/// One produce request: a batch for every partition, each starting at
/// `first_record` (which is also its idempotent sequence number).
struct PendingRequest {
    first_record: i64,
    correlation_id: i32,
}

fn produce_request(producer_id: i64, first_record: i64) -> ProduceRequest {
    let partitions = (0..PARTITIONS)
        .map(|partition| {
            let values: Vec<String> = (first_record..first_record + RECORDS_PER_BATCH)
                .map(|n| record_value(partition, n))
                .collect();
            let sequence = i32::try_from(first_record).expect("sequence fits i32");
            PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(idempotent_batch(producer_id, 0, sequence, &values)))
        })
        .collect();
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(TOPIC))
            .with_partition_data(partitions)])
}

/// Sends every pending request again, in order, on a fresh connection.
fn resend(connection: &mut RawConnection, producer_id: i64, pending: &mut VecDeque<PendingRequest>) -> bool {
    for request in pending.iter_mut() {
        match connection.try_send(PRODUCE_VERSION, &produce_request(producer_id, request.first_record)) {
            Ok(correlation_id) => request.correlation_id = correlation_id,
            Err(_) => return false,
        }
    }
    true
}

/// Produces until `stop` is set and everything sent is acknowledged,
/// reconnecting (to the address the killer publishes) and resending whatever
/// was not acknowledged, with the same sequence numbers.
fn produce_until_stopped(shared: &Shared, producer_id: i64) {
    let mut pending: VecDeque<PendingRequest> = VecDeque::new();
    let mut next_record = 0;
    let mut connection: Option<RawConnection> = None;
    loop {
        let stopping = shared.stop.load(Ordering::Relaxed);
        if stopping && pending.is_empty() {
            return;
        }
        let Some(open) = connection.as_mut() else {
            let address = shared.address.lock().expect("address").clone();
            if let Ok(mut fresh) = RawConnection::try_connect(&address) {
                if resend(&mut fresh, producer_id, &mut pending) {
                    connection = Some(fresh);
                    continue;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        while pending.len() < INFLIGHT_REQUESTS && !stopping {
            let Ok(correlation_id) = open.try_send(PRODUCE_VERSION, &produce_request(producer_id, next_record)) else {
                break;
            };
            pending.push_back(PendingRequest {
                first_record: next_record,
                correlation_id,
            });
            next_record += RECORDS_PER_BATCH;
        }
        let Some(oldest) = pending.front() else { continue };
        let response = match open.try_receive::<ProduceRequest>(PRODUCE_VERSION, oldest.correlation_id) {
            Ok(response) => response,
            Err(_) => {
                connection = None; // killed: reconnect and resend
                continue;
            }
        };
        let errors: Vec<i16> = response.responses[0]
            .partition_responses
            .iter()
            .map(|p| p.error_code)
            .filter(|code| *code != 0)
            .collect();
        if let Some(code) = errors.iter().find(|code| !RETRIABLE_ERRORS.contains(code)) {
            panic!(
                "produce of records from {} refused with error {code}",
                oldest.first_record
            );
        }
        if !errors.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
            connection = None; // retry the same requests, in order
            continue;
        }
        let first_record = oldest.first_record;
        pending.pop_front();
        let mut acked = shared.acked.lock().expect("acked");
        for count in acked.iter_mut() {
            *count = first_record + RECORDS_PER_BATCH;
        }
    }
}

/// Every partition holds records `k..n` in order, once each, with `n >= acked`
/// and `k == 0` unless retention may have deleted a prefix. Returns the sum
/// of the `n`s (with `k == 0`, the records present).
fn verify(broker: &RunningBroker, acked: &[i64], when: &str, retention: bool) -> i64 {
    let mut connection = RawConnection::connect(broker.bootstrap());
    let mut ends = 0;
    for partition in 0..PARTITIONS {
        let records = connection.read_partition(TOPIC, partition);
        let first = records.first().map_or(0, |(_, value)| record_number(value));
        assert!(
            retention || first == 0,
            "{when}: partition {partition} starts at record {first}: lost 0..{first}"
        );
        let end = first + records.len() as i64;
        let acked = acked[partition as usize];
        assert!(
            end >= acked,
            "{when}: partition {partition} holds records up to {end} but {acked} were acknowledged: lost {}",
            acked - end
        );
        let mut previous_offset = -1;
        for (index, (offset, value)) in records.iter().enumerate() {
            let expected = record_value(partition, first + index as i64);
            // Offsets rise; they may skip where a roll's new segment outlived
            // the unacknowledged tail of the one before it.
            assert!(*offset > previous_offset, "{when}: partition {partition}: offsets rise");
            previous_offset = *offset;
            assert_eq!(
                String::from_utf8_lossy(value),
                expected,
                "{when}: partition {partition} offset {offset}: each record once, in order"
            );
        }
        ends += end;
    }
    ends
}

/// The number in a value [`record_value`] made.
fn record_number(value: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(value);
    text.rsplit('-')
        .next()
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("not a numbered record: {text:?}"))
}

/// xorshift64: reproducible kill timings from a printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn acked_total(shared: &Shared) -> i64 {
    shared.acked.lock().expect("acked").iter().sum()
}

/// Returns the broker, still serving, for checks of its files, and how many
/// segments its incarnations recycled (each counted just before its end).
fn crash_loop(settings: &[(&str, &str)], default_kills: u64) -> (RunningBroker, f64) {
    let retention = settings.iter().any(|(key, _)| *key == "log.retention.bytes");
    let kills = env_number("RINGLOG_CRASH_KILLS", default_kills);
    let clock_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let seed = env_number("RINGLOG_CRASH_SEED", clock_seed).max(1);
    println!("crash loop: {kills} kills, seed {seed}, settings {settings:?}");
    let mut rng = Rng(seed);
    let mut broker = RunningBroker::start(settings);
    assert_eq!(create_topic_raw(broker.bootstrap(), TOPIC, PARTITIONS, &[]), 0);
    let producer_id = RawConnection::connect(broker.bootstrap()).init_producer_id();
    let shared = Arc::new(Shared {
        address: Mutex::new(broker.bootstrap().to_string()),
        acked: Mutex::new(vec![0; PARTITIONS as usize]),
        stop: AtomicBool::new(false),
    });
    let producer = {
        let shared = shared.clone();
        std::thread::spawn(move || produce_until_stopped(&shared, producer_id))
    };
    let started = Instant::now();
    let mut recycled = 0.0;
    for kill in 1..=kills {
        // Kill under load: only once the producer got acknowledgements from
        // this incarnation, then after a random extra delay.
        let before = acked_total(&shared);
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked_total(&shared) == before && !producer.is_finished() {
            assert!(
                Instant::now() < deadline,
                "kill {kill}: the producer made no progress in 30 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        recycled += broker.metric_sum("ringlog_core_segments_recycled_total");
        broker.kill();
        let acked = shared.acked.lock().expect("acked").clone();
        broker.restart();
        *shared.address.lock().expect("address") = broker.bootstrap().to_string();
        let present = verify(&broker, &acked, &format!("after kill {kill}"), retention);
        println!(
            "kill {kill}: acknowledged {} records, {present} present",
            acked.iter().sum::<i64>()
        );
    }
    shared.stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer thread");
    let acked = shared.acked.lock().expect("acked").clone();
    recycled += broker.metric_sum("ringlog_core_segments_recycled_total");
    // A clean stop and start keeps everything too.
    broker.stop();
    broker.restart();
    let present = verify(&broker, &acked, "after the final clean restart", retention);
    let acked_records: i64 = acked.iter().sum();
    assert_eq!(
        present, acked_records,
        "nothing in flight at the end: the log is exactly what was acknowledged"
    );
    println!(
        "crash-loop result: kills={kills} seed={seed} acked_records={acked_records} lost=0 duplicated=0 corrupt=0 elapsed_s={:.0}",
        started.elapsed().as_secs_f64()
    );
    (broker, recycled)
}

#[test]
fn no_acknowledged_record_is_lost_or_duplicated_under_kill_9_with_flush_every_batch() {
    crash_loop(&[("log.flush.interval.messages", "1")], 6);
}

#[test]
fn a_process_kill_loses_nothing_acknowledged_with_flush_never() {
    // The device survives a process kill: an acknowledgement after the
    // O_DIRECT write completes is enough.
    crash_loop(&[("log.io.mode", "direct")], 4);
}

/// `log.io.mode=auto` with a threshold the producer passes within a second:
/// every incarnation reopens its last segment (often an O_DIRECT one with
/// preallocated zeros) through the page cache, then rolls to O_DIRECT
/// under load, so kills land before, during and after the switch.
#[test]
fn a_process_kill_loses_nothing_acknowledged_while_partitions_switch_write_modes() {
    let (broker, _) = crash_loop(
        &[("log.io.mode", "auto"), ("log.io.auto.direct.bytes.per.second", "4096")],
        4,
    );
    let segments = std::fs::read_dir(broker.data_dir().join(format!("{TOPIC}-0")))
        .expect("partition dir")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count();
    assert!(
        segments > 1,
        "the write mode changed at least once: {segments} segments"
    );
}

/// Retention deleting segments all along, with recycling: each new O_DIRECT
/// segment reuses a deleted one's file, so kills land while recycled files
/// hold new batches followed by old ones. Recovery must take only the new.
#[test]
fn a_process_kill_loses_nothing_acknowledged_while_segment_files_are_recycled() {
    let (broker, recycled) = crash_loop(
        &[
            ("log.io.mode", "direct"),
            ("log.segment.recycle", "true"),
            ("log.segment.bytes", "4096"),
            ("log.retention.bytes", "8192"),
            ("log.retention.check.interval.ms", "100"),
        ],
        4,
    );
    let first_segment = broker
        .data_dir()
        .join(format!("{TOPIC}-0"))
        .join("00000000000000000000.log");
    assert!(!first_segment.exists(), "retention deleted segments");
    assert!(recycled > 0.0, "segment files were reused while the broker was killed");
}
