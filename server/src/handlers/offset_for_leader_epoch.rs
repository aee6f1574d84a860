//! OffsetForLeaderEpoch (key 23), v2-v4: where a leader epoch ended, so a
//! consumer can detect log truncation after a leader change.

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::protocol::VersionRange;

use super::{ask_partition_owner, HandlerOutcome, RequestContext};
use crate::runtime::messages::ShardRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 2, max: 4 };

pub async fn handle(body: OffsetForLeaderEpochRequest, request: RequestContext) -> HandlerOutcome {
    let broker = request.broker();
    let metadata = broker.metadata();
    let mut topics = Vec::with_capacity(body.topics.len());
    for topic in body.topics {
        let name: std::sync::Arc<str> = topic.topic.as_str().into();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let mut result = EpochEndOffset::default()
                .with_partition(partition.partition)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            let epoch = partition.leader_epoch;
            let outcome = ask_partition_owner(
                broker,
                &metadata,
                &name,
                partition.partition,
                partition.current_leader_epoch,
                |tp, reply| ShardRequest::EpochEndOffset { tp, epoch, reply },
            )
            .await
            .map(|(answer, _)| answer);
            match outcome {
                Ok((epoch, end_offset)) => {
                    result.leader_epoch = epoch;
                    result.end_offset = end_offset;
                }
                Err(error) => result.error_code = error.code(),
            }
            partitions.push(result);
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions),
        );
    }
    request.respond(&OffsetForLeaderEpochResponse::default().with_topics(topics))
}
