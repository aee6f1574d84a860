//! OffsetCommit (key 8), v2-v8: a group's positions, durable in
//! `__consumer_offsets` before the answer. Partitions of unknown topics and
//! oversized metadata are refused one by one; the rest commit together.

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::coordinator::offsets_log::CommittedOffset;
use crate::runtime::messages::GroupRequest;
use crate::runtime::shard::now_ms;

pub const VERSIONS: VersionRange = VersionRange { min: 2, max: 8 };

/// Kafka's `offset.metadata.max.bytes`.
const OFFSET_METADATA_BYTES_MAX: usize = 4096;

pub async fn handle(body: OffsetCommitRequest, request: RequestContext) -> HandlerOutcome {
    let broker = request.broker();
    let metadata = broker.metadata();
    let group_id = body.group_id.to_string();
    let now = now_ms();
    // Per partition: Ok(commit) to write, or the refusal.
    let mut checked = Vec::new();
    for topic in &body.topics {
        for partition in &topic.partitions {
            let committed_metadata = partition
                .committed_metadata
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            let outcome = if group_id.is_empty() {
                Err(ResponseError::InvalidGroupId)
            } else if metadata
                .partition_state(topic.name.as_str(), partition.partition_index)
                .is_none()
            {
                Err(ResponseError::UnknownTopicOrPartition)
            } else if committed_metadata.len() > OFFSET_METADATA_BYTES_MAX {
                Err(ResponseError::OffsetMetadataTooLarge)
            } else {
                Ok(CommittedOffset {
                    offset: partition.committed_offset,
                    leader_epoch: if request.version >= 6 {
                        partition.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: committed_metadata,
                    commit_timestamp_ms: now,
                })
            };
            checked.push((topic.name.to_string(), partition.partition_index, outcome));
        }
    }
    let offsets: Vec<_> = checked
        .iter()
        .filter_map(|(t, p, o)| o.as_ref().ok().map(|c| (t.clone(), *p, c.clone())))
        .collect();
    let commit_result = if offsets.is_empty() {
        Ok(())
    } else {
        broker
            .call_group(&group_id, |reply| GroupRequest::CommitOffsets {
                member_id: body.member_id.to_string(),
                group_instance_id: body.group_instance_id.as_ref().map(|i| i.to_string()),
                generation_id: body.generation_id_or_member_epoch,
                offsets,
                reply,
            })
            .await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
    };
    let mut checked = checked.into_iter();
    let topics = body
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .filter_map(|_| checked.next())
                .map(|(_, partition, outcome)| {
                    let error = match outcome {
                        Ok(_) => commit_result.err(),
                        Err(error) => Some(error),
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(partition)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    request.respond(&OffsetCommitResponse::default().with_topics(topics))
}
