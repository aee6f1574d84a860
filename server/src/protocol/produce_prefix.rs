//! Finds the first record batch of a produce request from the frame's first
//! bytes, before the rest has arrived: which partition it goes to and where
//! in the frame it starts. The connection uses it to place a large frame in
//! memory (`runtime/append_positions.rs`). Only a hint: a frame it cannot
//! read (another API, a version it does not know, a prefix too short) gives
//! `None`, and the full decoder judges every request as before.

use super::wire::Cursor;

const PRODUCE_API_KEY: i16 = 0;
/// Produce versions whose requests use the flexible (compact) encoding.
const FIRST_FLEXIBLE_VERSION: i16 = 9;
const LAST_KNOWN_VERSION: i16 = 9;

/// The first batch of a produce request.
#[derive(Debug, PartialEq, Eq)]
pub struct FirstBatch<'a> {
    pub topic: &'a str,
    pub partition: i32,
    /// Where the partition's record set starts, from the frame's first byte
    /// (after the size prefix).
    pub offset: usize,
}

/// `frame_start`: the first bytes of a request frame, size prefix excluded.
pub fn first_batch(frame_start: &[u8]) -> Option<FirstBatch<'_>> {
    let mut cursor = Cursor::new(frame_start);
    if cursor.i16()? != PRODUCE_API_KEY {
        return None;
    }
    let version = cursor.i16()?;
    if !(0..=LAST_KNOWN_VERSION).contains(&version) {
        return None;
    }
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    cursor.skip(4)?; // correlation id
    cursor.skip_nullable_string(false)?; // client id: never compact in the header
    if flexible {
        cursor.skip_tagged_fields()?;
    }
    if version >= 3 {
        cursor.skip_nullable_string(flexible)?; // transactional id
    }
    cursor.skip(2 + 4)?; // acks, timeout
    if cursor.array_len(flexible)? == 0 {
        return None;
    }
    let topic = cursor.string(flexible)?;
    if cursor.array_len(flexible)? == 0 {
        return None;
    }
    let partition = cursor.i32()?;
    let records_len = cursor.bytes_len(flexible)?;
    (records_len > 0).then_some(FirstBatch {
        topic,
        partition,
        offset: cursor.position(),
    })
}

/// A produce request of `version` carrying `records` for one partition,
/// as a client encodes it (header and body, no size prefix).
#[cfg(test)]
pub(crate) fn encoded_request(version: i16, topic: &str, partition: i32, records: &[u8]) -> Vec<u8> {
    use bytes::BytesMut;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, RequestHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let header = RequestHeader::default()
        .with_request_api_key(0)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("a-client")));
    let request = ProduceRequest::default()
        .with_transactional_id(
            (version >= 3).then(|| kafka_protocol::messages::TransactionalId(StrBytes::from_static_str("tx"))),
        )
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(bytes::Bytes::copy_from_slice(records)))])]);
    let header_version = if version >= FIRST_FLEXIBLE_VERSION { 2 } else { 1 };
    let mut buf = BytesMut::new();
    header.encode(&mut buf, header_version).expect("header");
    request.encode(&mut buf, version).expect("body");
    buf.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_batch_in_every_version_the_codec_reads() {
        let records = b"RECORDS-0123456789";
        for version in 3..=LAST_KNOWN_VERSION {
            let frame = encoded_request(version, "topic-a", 5, records);
            let found = first_batch(&frame).unwrap_or_else(|| panic!("v{version}"));
            assert_eq!((found.topic, found.partition), ("topic-a", 5), "v{version}");
            assert_eq!(
                &frame[found.offset..found.offset + records.len()],
                records,
                "v{version}"
            );
        }
    }

    #[test]
    fn anything_else_is_none_never_a_panic() {
        let frame = encoded_request(9, "topic-a", 0, b"R");
        let record_offset = first_batch(&frame).expect("whole").offset;
        for cut in 0..record_offset {
            assert_eq!(first_batch(&frame[..cut]), None, "cut at {cut}");
        }
        let mut fetch = frame.clone();
        fetch[1] = 1;
        assert_eq!(first_batch(&fetch), None, "another API");
        let mut future = frame.clone();
        future[3] = 42;
        assert_eq!(first_batch(&future), None, "an unknown version");
        assert_eq!(first_batch(&encoded_request(9, "topic-a", 0, b"")), None, "no records");
    }
}
