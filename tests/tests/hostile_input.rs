//! Hostile clients: length fields that claim far more than the request holds,
//! slow senders and crowds of connections. Each bad connection is closed or
//! refused on its own; the broker keeps serving everyone else.

use std::io::Write;
use std::net::TcpStream;

use kafka_protocol::messages::ApiVersionsRequest;
use ringlog_tests::{RawConnection, RunningBroker};

fn works(broker: &RunningBroker) -> bool {
    let mut connection = RawConnection::connect(broker.bootstrap());
    connection.request(3, &ApiVersionsRequest::default()).error_code == 0
}

fn unsigned_varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A size-prefixed frame: api key, version, correlation id, client id "x",
/// the header's tagged fields when `flexible`, then `body`.
fn frame(api_key: i16, version: i16, flexible: bool, body: &[u8]) -> Vec<u8> {
    let mut request = Vec::new();
    request.extend_from_slice(&api_key.to_be_bytes());
    request.extend_from_slice(&version.to_be_bytes());
    request.extend_from_slice(&1i32.to_be_bytes());
    request.extend_from_slice(&1i16.to_be_bytes());
    request.push(b'x');
    if flexible {
        request.push(0);
    }
    request.extend_from_slice(body);
    let mut framed = (request.len() as i32).to_be_bytes().to_vec();
    framed.extend(request);
    framed
}

/// Requests whose length fields claim billions of elements or bytes.
fn lying_requests() -> Vec<(&'static str, Vec<u8>)> {
    let mut produce_v9 = vec![0]; // null transactional id
    produce_v9.extend_from_slice(&1i16.to_be_bytes()); // acks
    produce_v9.extend_from_slice(&1000i32.to_be_bytes()); // timeout
    produce_v9.extend(unsigned_varint(u64::from(u32::MAX))); // topics: 4 billion
    produce_v9.extend_from_slice(&[0; 16]);

    let mut produce_v3 = (-1i16).to_be_bytes().to_vec(); // null transactional id
    produce_v3.extend_from_slice(&1i16.to_be_bytes());
    produce_v3.extend_from_slice(&1000i32.to_be_bytes());
    produce_v3.extend_from_slice(&i32::MAX.to_be_bytes()); // topics: 2 billion
    produce_v3.extend_from_slice(&[0; 16]);

    let mut records_v9 = vec![0];
    records_v9.extend_from_slice(&1i16.to_be_bytes());
    records_v9.extend_from_slice(&1000i32.to_be_bytes());
    records_v9.extend(unsigned_varint(2)); // one topic
    records_v9.extend(unsigned_varint(2)); // name "t"
    records_v9.push(b't');
    records_v9.extend(unsigned_varint(2)); // one partition
    records_v9.extend_from_slice(&0i32.to_be_bytes());
    records_v9.extend(unsigned_varint(u64::from(u32::MAX))); // records: 4 GB

    let mut metadata_v1 = i32::MAX.to_be_bytes().to_vec(); // topics: 2 billion
    metadata_v1.extend_from_slice(&[0; 8]);

    let mut string_v1 = 1i32.to_be_bytes().to_vec(); // one topic
    string_v1.extend_from_slice(&i16::MAX.to_be_bytes()); // a 32 KiB name, absent

    vec![
        ("Produce v9 claiming 4 billion topics", frame(0, 9, true, &produce_v9)),
        ("Produce v3 claiming 2 billion topics", frame(0, 3, false, &produce_v3)),
        ("Produce v9 claiming 4 GB of records", frame(0, 9, true, &records_v9)),
        (
            "Metadata v1 claiming 2 billion topics",
            frame(3, 1, false, &metadata_v1),
        ),
        (
            "Metadata v1 with a topic name longer than the request",
            frame(3, 1, false, &string_v1),
        ),
    ]
}

#[test]
fn length_fields_that_lie_close_one_connection_and_allocate_nothing() {
    let mut broker = RunningBroker::start(&[]);
    for (what, bytes) in lying_requests() {
        let mut connection = RawConnection::connect(broker.bootstrap());
        connection.send_bytes(&bytes).expect("sending");
        assert!(connection.is_closed_by_peer(), "{what}: the connection is closed");
        assert!(broker.is_running(), "{what}: the broker is still running");
        assert!(works(&broker), "{what}: others are still served");
    }
    let log = broker.log();
    assert!(log.contains("malformed"), "the broker says why it closed them:\n{log}");
}

#[test]
fn slow_senders_and_crowds_do_not_starve_others() {
    let broker = RunningBroker::start(&[]);
    // 1000 connections; half of them send a frame one byte at a time.
    let mut crowd: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(broker.bootstrap()).expect("connecting"))
        .collect();
    let slow_frame = frame(18, 3, true, &[0, 0]);
    for step in 0..slow_frame.len() - 1 {
        for stream in crowd.iter_mut().step_by(2) {
            stream.write_all(&slow_frame[step..step + 1]).expect("one byte");
        }
        assert!(works(&broker), "a well-behaved client is served");
    }
    let metrics = broker.http_get("/metrics");
    let open: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("ringlog_connections "))
        .and_then(|value| value.parse().ok())
        .expect("ringlog_connections");
    assert!(open >= 1000.0, "the crowd is counted: {open}");
}
