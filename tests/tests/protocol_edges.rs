//! Exact protocol behaviour over raw sockets: bad input, error codes, version
//! negotiation, pipelining and long-poll fetch, against the real binary.

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use ringlog_engine::batch::build_batch;
use ringlog_tests::{create_topic_raw, split_correlation_id, topic_name, RawConnection, RunningBroker};

fn create_topic(connection: &mut RawConnection, name: &str, partitions: i32, configs: &[(&str, &str)]) -> i16 {
    create_topic_raw(connection.peer(), name, partitions, configs)
}

fn fetch_request(topic: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

fn latest_offset(connection: &mut RawConnection, topic: &str, timestamp: i64) -> (i16, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(-1)
                .with_timestamp(timestamp)])]);
    let response = connection.request(6, &request);
    let partition = &response.topics[0].partitions[0];
    (partition.error_code, partition.offset)
}

fn assert_still_serving(broker: &RunningBroker) {
    let mut connection = RawConnection::connect(broker.bootstrap());
    let response = connection.request(3, &ApiVersionsRequest::default());
    assert_eq!(response.error_code, 0);
    assert!(!response.api_keys.is_empty());
}

#[test]
fn garbage_bytes_close_only_that_connection() {
    let broker = RunningBroker::start(&[]);
    let mut healthy = RawConnection::connect(broker.bootstrap());
    let mut attacker = RawConnection::connect(broker.bootstrap());
    attacker.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    assert!(attacker.is_closed_by_peer(), "garbage must close the connection");
    let response = healthy.request(3, &ApiVersionsRequest::default());
    assert_eq!(response.error_code, 0);
    assert_still_serving(&broker);
}

#[test]
fn oversized_truncated_and_unknown_frames_are_refused() {
    let broker = RunningBroker::start(&[("socket.request.max.bytes", "1048576")]);
    let mut oversized = RawConnection::connect(broker.bootstrap());
    oversized
        .send_bytes(&(200 * 1024 * 1024i32).to_be_bytes())
        .expect("send");
    assert!(oversized.is_closed_by_peer());

    let mut negative = RawConnection::connect(broker.bootstrap());
    negative.send_bytes(&(-5i32).to_be_bytes()).expect("send");
    assert!(negative.is_closed_by_peer());

    let mut unknown_api = RawConnection::connect(broker.bootstrap());
    let mut frame = BytesMut::new();
    frame.put_i32(10);
    frame.put_i16(999); // no such API key
    frame.put_i16(0);
    frame.put_i32(7);
    frame.put_i16(-1);
    unknown_api.send_bytes(&frame).expect("send");
    assert!(unknown_api.is_closed_by_peer());

    // Truncated: promise 100 bytes, send 10, hang up.
    let mut truncated = RawConnection::connect(broker.bootstrap());
    truncated.send_bytes(&100i32.to_be_bytes()).expect("send");
    truncated.send_bytes(&[0u8; 10]).expect("send");
    drop(truncated);

    // A body that does not decode as the API it names.
    let mut malformed = RawConnection::connect(broker.bootstrap());
    let mut frame = BytesMut::new();
    frame.put_i32(14);
    frame.put_i16(0); // Produce
    frame.put_i16(9);
    frame.put_i32(8);
    frame.put_i16(-1);
    frame.put_i32(-99); // nonsense where a compact string should be
    malformed.send_bytes(&frame).expect("send");
    assert!(malformed.is_closed_by_peer());

    assert_still_serving(&broker);
    assert!(broker.log().contains("closing connection"), "refusals are logged");
}

/// A client asking ApiVersions at a version we lack gets the v0-format error
/// with the full list, which is how clients downgrade.
#[test]
fn unsupported_api_versions_version_gets_v0_error_with_the_list() {
    let broker = RunningBroker::start(&[]);
    let mut connection = RawConnection::connect(broker.bootstrap());
    let mut frame = BytesMut::new();
    frame.put_i32(10);
    frame.put_i16(18); // ApiVersions
    frame.put_i16(99);
    frame.put_i32(42);
    frame.put_i16(-1);
    connection.send_bytes(&frame).expect("send");
    let (correlation_id, mut body) = split_correlation_id(connection.read_frame().expect("response"));
    assert_eq!(correlation_id, 42);
    use kafka_protocol::protocol::Decodable;
    let response = ApiVersionsResponse::decode(&mut body, 0).expect("v0 body");
    assert_eq!(response.error_code, 35, "UNSUPPORTED_VERSION");
    let api_versions = response
        .api_keys
        .iter()
        .find(|k| k.api_key == 18)
        .expect("ApiVersions listed");
    assert_eq!((api_versions.min_version, api_versions.max_version), (0, 4));
}

/// The exact list a client sees: update it with every API added (a black-box
/// check that nothing is advertised by accident).
#[test]
fn api_versions_advertises_every_implemented_api() {
    let broker = RunningBroker::start(&[]);
    let mut connection = RawConnection::connect(broker.bootstrap());
    for version in 0..=4 {
        let response = connection.request(version, &ApiVersionsRequest::default());
        let keys: Vec<i16> = response.api_keys.iter().map(|k| k.api_key).collect();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(
            keys,
            vec![
                0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 23, 24, 25, 26, 28, 32, 33, 35, 37,
                42, 44, 47, 65, 66
            ],
            "v{version}"
        );
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let broker = RunningBroker::start(&[]);
    let mut connection = RawConnection::connect(broker.bootstrap());
    let mut sent = Vec::new();
    for i in 0..40 {
        sent.push(if i % 2 == 0 {
            connection.send(3, &ApiVersionsRequest::default())
        } else {
            connection.send(12, &MetadataRequest::default().with_topics(None))
        });
    }
    for expected in sent {
        let (correlation_id, _) = split_correlation_id(connection.read_frame().expect("response"));
        assert_eq!(correlation_id, expected);
    }
}

/// Five requests in one write that also carries the next frame's first three
/// bytes, then that frame a few bytes at a time: the broker splits and joins
/// frames by their size prefixes, whatever the reads return.
#[test]
fn frames_are_split_and_joined_across_reads() {
    let broker = RunningBroker::start(&[]);
    let mut connection = RawConnection::connect(broker.bootstrap());
    let mut expected = Vec::new();
    let mut joined = BytesMut::new();
    for _ in 0..5 {
        let (correlation_id, frame) = connection.frame(3, &ApiVersionsRequest::default());
        expected.push(correlation_id);
        joined.extend_from_slice(&frame);
    }
    let (correlation_id, dribbled) = connection.frame(12, &MetadataRequest::default().with_topics(None));
    expected.push(correlation_id);
    joined.extend_from_slice(&dribbled[..3]);
    connection.send_bytes(&joined).expect("send");
    for piece in dribbled[3..].chunks(7) {
        std::thread::sleep(Duration::from_millis(2));
        connection.send_bytes(piece).expect("send");
    }
    for correlation_id in expected {
        let (answered, _) = split_correlation_id(connection.read_frame().expect("response"));
        assert_eq!(answered, correlation_id);
    }
}

#[test]
fn corrupt_or_oversized_batches_are_refused_and_nothing_is_appended() {
    let broker = RunningBroker::start(&[("message.max.bytes", "2000")]);
    let mut connection = RawConnection::connect(broker.bootstrap());
    assert_eq!(create_topic(&mut connection, "edges", 1, &[]), 0);
    let mut corrupt = build_batch(&[(Some(b"k"), Some(b"v"))], 1_000);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(connection.produce("edges", 0, corrupt.freeze()).0, 2, "CORRUPT_MESSAGE");
    let big_value = vec![b'x'; 5000];
    let big = build_batch(&[(None, Some(&big_value))], 1_000);
    assert_eq!(connection.produce("edges", 0, big.freeze()).0, 10, "MESSAGE_TOO_LARGE");
    assert_eq!(latest_offset(&mut connection, "edges", -1), (0, 0), "nothing appended");
    let good = build_batch(&[(Some(b"k"), Some(b"v"))], 1_000);
    assert_eq!(connection.produce("edges", 0, good.freeze()), (0, 0));
    assert_eq!(
        connection
            .produce("edges", 7, build_batch(&[(None, Some(b"v"))], 1).freeze())
            .0,
        3
    );
}

#[test]
fn topic_admin_errors_are_kafkas() {
    let broker = RunningBroker::start(&[]);
    let mut connection = RawConnection::connect(broker.bootstrap());
    assert_eq!(create_topic(&mut connection, "admin", 3, &[]), 0);
    assert_eq!(
        create_topic(&mut connection, "admin", 3, &[]),
        36,
        "TOPIC_ALREADY_EXISTS"
    );
    assert_eq!(
        create_topic(&mut connection, "bad/name", 1, &[]),
        17,
        "INVALID_TOPIC_EXCEPTION"
    );
    assert_eq!(create_topic(&mut connection, "zero", 0, &[]), 37, "INVALID_PARTITIONS");
    assert_eq!(
        create_topic(&mut connection, "cfg", 1, &[("segment.bytes", "-1")]),
        40,
        "INVALID_CONFIG"
    );
    let replicated = CreatableTopic::default()
        .with_name(topic_name("replicated"))
        .with_num_partitions(1)
        .with_replication_factor(3);
    let response = connection.request(7, &CreateTopicsRequest::default().with_topics(vec![replicated]));
    assert_eq!(response.topics[0].error_code, 38, "INVALID_REPLICATION_FACTOR");

    let metadata = connection.request(12, &MetadataRequest::default().with_topics(None));
    let admin = metadata
        .topics
        .iter()
        .find(|t| t.name.as_deref().map(|n| n.as_str()) == Some("admin"));
    let admin = admin.expect("listed");
    assert_eq!(admin.partitions.len(), 3);
    assert!(!admin.topic_id.is_nil(), "topics have ids");

    let delete = DeleteTopicsRequest::default().with_topic_names(vec![topic_name("admin"), topic_name("nope")]);
    let response = connection.request(4, &delete);
    assert_eq!(response.responses[0].error_code, 0);
    assert_eq!(response.responses[1].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(
        create_topic(&mut connection, "admin", 1, &[]),
        0,
        "re-created after delete"
    );
}

#[test]
fn fetch_out_of_range_and_list_offsets_by_time() {
    let broker = RunningBroker::start(&[]);
    let mut connection = RawConnection::connect(broker.bootstrap());
    assert_eq!(create_topic(&mut connection, "times", 1, &[]), 0);
    for (i, timestamp) in [1_000i64, 2_000, 3_000].into_iter().enumerate() {
        let batch = build_batch(&[(None, Some(b"a")), (None, Some(b"b"))], timestamp);
        assert_eq!(connection.produce("times", 0, batch.freeze()), (0, 2 * i as i64));
    }
    assert_eq!(latest_offset(&mut connection, "times", -2), (0, 0));
    assert_eq!(latest_offset(&mut connection, "times", -1), (0, 6));
    assert_eq!(latest_offset(&mut connection, "times", 1_500), (0, 2));
    assert_eq!(latest_offset(&mut connection, "times", 3_000), (0, 4));
    assert_eq!(latest_offset(&mut connection, "times", 9_000), (0, -1));
    let response = connection.request(12, &fetch_request("times", 100, 0));
    assert_eq!(response.responses[0].partitions[0].error_code, 1, "OFFSET_OUT_OF_RANGE");
    let response = connection.request(4, &fetch_request("times", 3, 0));
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.high_watermark, 6);
    let records = partition.records.clone().expect("records");
    assert_eq!(
        i64::from_be_bytes(records[..8].try_into().expect("8 bytes")),
        2,
        "batch holding offset 3"
    );
}

/// Fetch v13 names topics by the id Metadata v10+ reports; an unknown id gets
/// UNKNOWN_TOPIC_ID.
#[test]
fn fetch_v13_reads_by_topic_id() {
    let broker = RunningBroker::start(&[]);
    let mut connection = RawConnection::connect(broker.bootstrap());
    assert_eq!(create_topic(&mut connection, "by-id", 1, &[]), 0);
    assert_eq!(
        connection
            .produce("by-id", 0, build_batch(&[(None, Some(b"x"))], 1).freeze())
            .0,
        0
    );
    let metadata = connection.request(12, &MetadataRequest::default().with_topics(None));
    let topic_id = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "by-id"))
        .expect("listed")
        .topic_id;
    let mut request = fetch_request("", 0, 0);
    request.topics[0].topic_id = topic_id;
    let response = connection.request(13, &request);
    assert_eq!(response.responses[0].topic_id, topic_id);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert!(partition.records.as_ref().is_some_and(|r| !r.is_empty()));
    request.topics[0].topic_id = uuid::Uuid::new_v4();
    let response = connection.request(13, &request);
    assert_eq!(response.responses[0].partitions[0].error_code, 100, "UNKNOWN_TOPIC_ID");
}

/// A fetch waiting on an empty partition returns when a record arrives,
/// long before its max_wait_ms.
#[test]
fn long_poll_fetch_is_woken_by_an_append() {
    let broker = RunningBroker::start(&[]);
    let mut consumer = RawConnection::connect(broker.bootstrap());
    assert_eq!(create_topic(&mut consumer, "poll", 1, &[]), 0);
    let started = Instant::now();
    let fetch = consumer.send(12, &fetch_request("poll", 0, 60_000));
    std::thread::sleep(Duration::from_millis(300));
    let mut producer = RawConnection::connect(broker.bootstrap());
    assert_eq!(
        producer
            .produce("poll", 0, build_batch(&[(None, Some(b"wake"))], 1).freeze())
            .0,
        0
    );
    let (correlation_id, _) = split_correlation_id(consumer.read_frame().expect("fetch response"));
    assert_eq!(correlation_id, fetch);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "woken by the append, not the 60 s timeout"
    );
}

/// A long poll over partitions on both cores, woken once per append, answers
/// when the appends together reach `min_bytes`, with every partition's batch
/// and well before its `max_wait_ms`: every wake sees both cores' appends.
#[test]
fn long_poll_fetch_gathers_appends_from_both_cores() {
    const PARTITIONS: i32 = 4;
    let broker = RunningBroker::start(&[]);
    let mut consumer = RawConnection::connect(broker.bootstrap());
    let mut producer = RawConnection::connect(broker.bootstrap());
    assert_eq!(create_topic(&mut consumer, "gather", PARTITIONS, &[]), 0);
    let batch = || build_batch(&[(None, Some(&[7u8; 100][..]))], 1).freeze();
    let partitions = (0..PARTITIONS)
        .map(|partition| {
            FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    let mut request = fetch_request("gather", 0, 20_000).with_min_bytes(PARTITIONS * batch().len() as i32);
    request.topics[0].partitions = partitions;
    let started = Instant::now();
    let fetch = consumer.send(12, &request);
    for partition in 0..PARTITIONS {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(producer.produce("gather", partition, batch()).0, 0);
    }
    let response = consumer.try_receive::<FetchRequest>(12, fetch).expect("fetch response");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the appends, not the 20 s timeout"
    );
    let returned: Vec<i32> = response.responses[0]
        .partitions
        .iter()
        .filter(|p| p.error_code == 0 && p.records.as_ref().is_some_and(|r| !r.is_empty()))
        .map(|p| p.partition_index)
        .collect();
    assert_eq!(returned, (0..PARTITIONS).collect::<Vec<_>>(), "every partition's batch");
}

/// Regression guard: a fetch whose partition gets data between its read and
/// its watch must not sleep out max_wait_ms. Many rounds of "fetch at the end,
/// append at once" make that race likely; every fetch must return far sooner
/// than its 20 s wait.
#[test]
fn long_poll_fetches_racing_appends_are_not_stranded() {
    let broker = RunningBroker::start(&[]);
    let mut consumer = RawConnection::connect(broker.bootstrap());
    let mut producer = RawConnection::connect(broker.bootstrap());
    assert_eq!(create_topic(&mut consumer, "race", 1, &[]), 0);
    for round in 0..200i64 {
        let started = Instant::now();
        let fetch = consumer.send(12, &fetch_request("race", round, 20_000));
        assert_eq!(
            producer
                .produce("race", 0, build_batch(&[(None, Some(b"r"))], 1).freeze())
                .0,
            0
        );
        let (correlation_id, _) = split_correlation_id(consumer.read_frame().expect("fetch response"));
        assert_eq!(correlation_id, fetch);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "round {round}: fetch stranded until its max_wait_ms"
        );
    }
}
