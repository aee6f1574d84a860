//! Produce (key 0), v3-v9 (v0-v2 advertised for old librdkafka, which turns off
//! compression when Produce's minimum is above 0, and refused when used).
//!
//! Each partition's record set is split into batches and every batch checked
//! (magic 2, length, CRC-32C, `max.message.bytes`) before anything of that
//! partition is appended: one bad batch refuses the partition's whole set.
//! acks=0 gets no response (but its request still waits for the write, so
//! the connection's in-flight bound holds it back); acks=1 and acks=-1 (all, which on one node is the
//! leader alone) are answered once the append is durable under the flush policy.

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;
use ringlog_engine::batch::{self, BatchError};
use tokio::sync::oneshot;

use super::{HandlerOutcome, RequestContext, ResponseFuture};
use crate::metadata::validate_topic_name;
use crate::metrics;
use crate::runtime::append_positions;
use crate::runtime::messages::{PartitionResult, ProduceOutcome, ShardRequest, TopicPartition};
use crate::topic_config::TopicSettings;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 9 };

type Refusal = (ResponseError, String);

enum PartitionProgress {
    Done(i32, Refusal),
    Appending(i32, oneshot::Receiver<PartitionResult<ProduceOutcome>>, BatchesSize),
}

/// What one partition's record set holds, counted for metrics once appended.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct BatchesSize {
    bytes: u64,
    records: u64,
}

/// Splits a record set into checked batches: slices of the request frame, not
/// copies (the log stamps a separate 16-byte prefix).
fn split_batches(records: &Bytes, max_message_bytes: usize) -> Result<(Vec<Bytes>, BatchesSize), Refusal> {
    let mut batches = Vec::new();
    let mut size = BatchesSize::default();
    let mut rest = &records[..];
    while !rest.is_empty() {
        let total_bytes = batch::batch_total_bytes(rest).map_err(batch_refusal)?;
        if total_bytes > rest.len() {
            return Err((
                ResponseError::CorruptMessage,
                format!("record batch of {total_bytes} bytes truncated to {}", rest.len()),
            ));
        }
        if total_bytes > max_message_bytes {
            return Err((
                ResponseError::MessageTooLarge,
                format!("record batch of {total_bytes} bytes is over max.message.bytes ({max_message_bytes})"),
            ));
        }
        let header = batch::validate_batch(&rest[..total_bytes]).map_err(batch_refusal)?;
        if header.is_control() {
            return Err((
                ResponseError::InvalidRecord,
                "producers may not write control batches".into(),
            ));
        }
        size.bytes += total_bytes as u64;
        size.records += u64::try_from(header.records_count).unwrap_or(0);
        let start = records.len() - rest.len();
        batches.push(records.slice(start..start + total_bytes));
        rest = &rest[total_bytes..];
    }
    if batches.is_empty() {
        return Err((
            ResponseError::InvalidRecord,
            "produce request without record batches".into(),
        ));
    }
    Ok((batches, size))
}

fn batch_refusal(error: BatchError) -> Refusal {
    let code = match error {
        BatchError::UnsupportedMagic { .. } => ResponseError::UnsupportedForMessageFormat,
        _ => ResponseError::CorruptMessage,
    };
    (code, error.to_string())
}

/// Stage one: check every partition's batches and hand them to their owners.
pub async fn dispatch(body: ProduceRequest, request: RequestContext) -> ResponseFuture {
    let acks = body.acks;
    let broker = request.broker();
    let mut topics: Vec<(TopicName, Vec<PartitionProgress>)> = Vec::with_capacity(body.topic_data.len());
    for topic in body.topic_data {
        let name = topic.name.as_str();
        let topic_metadata = match validate_topic_name(name) {
            Err(message) => Err((ResponseError::InvalidTopicException, message)),
            Ok(()) => broker.topic_or_auto_create(name, true).await.ok_or((
                ResponseError::UnknownTopicOrPartition,
                format!("unknown topic {name:?}"),
            )),
        };
        let settings = topic_metadata
            .as_ref()
            .ok()
            .map(|t| TopicSettings::resolve(t, &broker.config));
        let topic_name: std::sync::Arc<str> = name.into();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let index = data.index;
            let checked = match (&topic_metadata, &settings) {
                _ if !(-1..=1).contains(&acks) => Err((
                    ResponseError::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, not {acks}"),
                )),
                (Err(refusal), _) => Err(refusal.clone()),
                (Ok(t), Some(settings)) if t.has_partition(index) => {
                    split_batches(&data.records.unwrap_or_default(), settings.max_message_bytes)
                }
                _ => Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("{name} has no partition {index}"),
                )),
            };
            partitions.push(match checked {
                Err(refusal) => PartitionProgress::Done(index, refusal),
                Ok((batches, size)) => {
                    let tp = TopicPartition {
                        topic: topic_name.clone(),
                        partition: index,
                    };
                    let (reply, receiver) = oneshot::channel();
                    let core = broker.owner_core(&tp);
                    let queued_bytes = if append_positions::note_queued(&tp, size.bytes) {
                        size.bytes
                    } else {
                        0
                    };
                    let request = ShardRequest::Produce {
                        tp,
                        batches,
                        queued_bytes,
                        reply,
                    };
                    broker.send_to_core(core, request);
                    PartitionProgress::Appending(index, receiver, size)
                }
            });
        }
        topics.push((topic.name, partitions));
    }
    Box::pin(respond(request, acks, topics))
}

/// Stage two: wait for the owners and answer.
async fn respond(
    request: RequestContext,
    acks: i16,
    topics: Vec<(TopicName, Vec<PartitionProgress>)>,
) -> HandlerOutcome {
    let version = request.version;
    let mut responses = Vec::with_capacity(topics.len());
    for (name, partitions) in topics {
        let mut partition_responses = Vec::with_capacity(partitions.len());
        for progress in partitions {
            let (index, outcome) = match progress {
                PartitionProgress::Done(index, refusal) => (index, Err(refusal)),
                PartitionProgress::Appending(index, receiver, size) => {
                    let outcome = match receiver.await {
                        Ok(Ok(outcome)) => {
                            metrics::count_produced(name.as_str(), size.bytes, size.records);
                            Ok(outcome)
                        }
                        Ok(Err(error)) => Err((error, error.to_string())),
                        Err(_) => Err((
                            ResponseError::NotLeaderOrFollower,
                            "partition owner is shutting down".into(),
                        )),
                    };
                    (index, outcome)
                }
            };
            partition_responses.push(partition_response(version, index, outcome));
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partition_responses),
        );
    }
    if acks == 0 {
        return Ok(None);
    }
    request.respond(&ProduceResponse::default().with_responses(responses))
}

fn partition_response(version: i16, index: i32, outcome: Result<ProduceOutcome, Refusal>) -> PartitionProduceResponse {
    let mut response = PartitionProduceResponse::default().with_index(index);
    match outcome {
        Ok(outcome) => {
            response.base_offset = outcome.append.base_offset;
            response.log_append_time_ms = outcome.log_append_time_ms;
            if version >= 5 {
                response.log_start_offset = outcome.log_start_offset;
            }
        }
        Err((error, message)) => {
            metrics::count_error(ApiKey::Produce as i16, error);
            response.error_code = error.code();
            response.base_offset = -1;
            if version >= 8 {
                response.error_message = Some(StrBytes::from_string(message));
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn splits_concatenated_batches_and_refuses_bad_ones() {
        let one = batch::build_batch(&[(None, Some(b"a"))], 1);
        let two = batch::build_batch(&[(None, Some(b"b")), (None, Some(b"c"))], 2);
        let mut set = BytesMut::new();
        set.extend_from_slice(&one);
        set.extend_from_slice(&two);
        let set = set.freeze();
        let (batches, size) = split_batches(&set, 1 << 20).expect("valid");
        assert_eq!(batches.len(), 2);
        assert_eq!(
            size,
            BatchesSize {
                bytes: set.len() as u64,
                records: 3
            }
        );
        assert_eq!(
            split_batches(&set, 10).expect_err("must be refused").0,
            ResponseError::MessageTooLarge
        );
        assert_eq!(
            split_batches(&set.slice(..set.len() - 1), 1 << 20)
                .expect_err("must be refused")
                .0,
            ResponseError::CorruptMessage
        );
        let mut corrupt = BytesMut::from(&set[..]);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert_eq!(
            split_batches(&corrupt.freeze(), 1 << 20)
                .expect_err("must be refused")
                .0,
            ResponseError::CorruptMessage
        );
        assert_eq!(
            split_batches(&Bytes::new(), 1 << 20).expect_err("must be refused").0,
            ResponseError::InvalidRecord
        );
    }
}
