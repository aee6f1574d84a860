//! Fetch responses (v4-v13), encoded by hand so that record batches are never
//! copied: everything but the records goes into small memory chunks, and each
//! partition's records are appended as the cached `Bytes` or file regions the
//! engine returned.

use bytes::{BufMut, BytesMut};
use ringlog_engine::ReadChunk;

use super::wire::{put_array_len, put_bytes_len, put_no_tagged_fields, put_string};
use super::Response;

pub const FIRST_FLEXIBLE_VERSION: i16 = 12;
pub const FIRST_TOPIC_ID_VERSION: i16 = 13;

pub struct FetchedPartition {
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// `(producer id, first offset)` of aborted transactions in range.
    pub aborted: Vec<(i64, i64)>,
    pub records: Vec<ReadChunk>,
}

impl FetchedPartition {
    pub fn records_bytes(&self) -> usize {
        self.records.iter().map(ReadChunk::len).sum()
    }
}

pub struct FetchedTopic {
    pub name: String,
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<FetchedPartition>,
}

/// Builds the whole response (header included) for a Fetch at `version`.
pub fn encode(version: i16, correlation_id: i32, error_code: i16, topics: Vec<FetchedTopic>) -> Response {
    assert!(
        (4..=FIRST_TOPIC_ID_VERSION).contains(&version),
        "fetch v{version} is not encoded here"
    );
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    let mut response = Response::default();
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(correlation_id);
    put_no_tagged_fields(&mut buf, flexible); // response header v1
    buf.put_i32(0); // throttle_time_ms
    if version >= 7 {
        buf.put_i16(error_code);
        buf.put_i32(0); // session_id: every fetch is answered sessionless
    }
    put_array_len(&mut buf, flexible, topics.len());
    for topic in topics {
        if version >= FIRST_TOPIC_ID_VERSION {
            buf.put_slice(topic.topic_id.as_bytes());
        } else {
            put_string(&mut buf, flexible, &topic.name);
        }
        put_array_len(&mut buf, flexible, topic.partitions.len());
        for partition in topic.partitions {
            buf.put_i32(partition.partition);
            buf.put_i16(partition.error_code);
            buf.put_i64(partition.high_watermark);
            buf.put_i64(partition.last_stable_offset);
            if version >= 5 {
                buf.put_i64(partition.log_start_offset);
            }
            put_array_len(&mut buf, flexible, partition.aborted.len());
            for (producer_id, first_offset) in &partition.aborted {
                buf.put_i64(*producer_id);
                buf.put_i64(*first_offset);
                put_no_tagged_fields(&mut buf, flexible);
            }
            if version >= 11 {
                buf.put_i32(-1); // preferred_read_replica
            }
            put_bytes_len(&mut buf, flexible, Some(partition.records_bytes()));
            if !partition.records.is_empty() {
                response.push_memory(buf.split().freeze());
                for chunk in partition.records {
                    match chunk {
                        ReadChunk::Memory(bytes) => response.push_memory(bytes),
                        ReadChunk::File(region) => response.push_file(region),
                    }
                }
            }
            put_no_tagged_fields(&mut buf, flexible); // partition
        }
        put_no_tagged_fields(&mut buf, flexible); // topic
    }
    put_no_tagged_fields(&mut buf, flexible); // response
    response.push_memory(buf.freeze());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ResponseChunk;
    use bytes::Bytes;
    use kafka_protocol::messages::{FetchResponse, ResponseHeader};
    use kafka_protocol::protocol::Decodable;

    fn flatten(response: Response) -> Bytes {
        let mut out = BytesMut::new();
        for chunk in response.chunks {
            match chunk {
                ResponseChunk::Memory(bytes) => out.extend_from_slice(&bytes),
                ResponseChunk::File(_) => unreachable!("memory only in this test"),
            }
        }
        out.freeze()
    }

    /// Decodes our hand-encoded bytes with the generated codec, every version.
    #[test]
    fn hand_encoding_decodes_with_the_generated_codec() {
        let batch = ringlog_engine::batch::build_batch(&[(None, Some(b"hello"))], 5).freeze();
        for version in 4..=FIRST_TOPIC_ID_VERSION {
            let topic_id = uuid::Uuid::new_v4();
            let topics = vec![FetchedTopic {
                name: "t".into(),
                topic_id,
                partitions: vec![
                    FetchedPartition {
                        partition: 3,
                        error_code: 0,
                        high_watermark: 10,
                        last_stable_offset: 10,
                        log_start_offset: 0,
                        aborted: vec![(42, 7)],
                        records: vec![ReadChunk::Memory(batch.clone())],
                    },
                    FetchedPartition {
                        partition: 4,
                        error_code: 1,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                        aborted: vec![],
                        records: vec![],
                    },
                ],
            }];
            let response = encode(version, 77, 0, topics);
            let total = response.total_bytes;
            let mut bytes = flatten(response);
            assert_eq!(bytes.len(), total);
            let header_version = if version >= FIRST_FLEXIBLE_VERSION { 1 } else { 0 };
            let header = ResponseHeader::decode(&mut bytes, header_version).expect("header");
            assert_eq!(header.correlation_id, 77);
            let decoded = FetchResponse::decode(&mut bytes, version).expect("body decodes");
            assert!(bytes.is_empty(), "v{version}: trailing bytes");
            let topic = &decoded.responses[0];
            if version >= FIRST_TOPIC_ID_VERSION {
                assert_eq!(topic.topic_id, topic_id);
            } else {
                assert_eq!(topic.topic.as_str(), "t");
            }
            assert_eq!(topic.partitions[0].records.as_ref(), Some(&batch));
            assert_eq!(topic.partitions[0].high_watermark, 10);
            let aborted = topic.partitions[0].aborted_transactions.as_ref().expect("aborted list");
            assert_eq!((aborted[0].producer_id.0, aborted[0].first_offset), (42, 7));
            assert_eq!(topic.partitions[1].error_code, 1);
        }
    }
}
