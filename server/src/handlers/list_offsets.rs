//! ListOffsets (key 2), v1-v6: earliest (-2), latest (-1), and the first offset
//! whose timestamp is at or after a given time. read_committed (isolation
//! level 1) answers "latest" with the last stable offset.

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::protocol::VersionRange;
use ringlog_engine::Isolation;

use super::{ask_partition_owner, HandlerOutcome, RequestContext};
use crate::runtime::messages::ShardRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 6 };

pub async fn handle(body: ListOffsetsRequest, request: RequestContext) -> HandlerOutcome {
    let version = request.version;
    let broker = request.broker();
    let metadata = broker.metadata();
    let mut topics = Vec::with_capacity(body.topics.len());
    for topic in body.topics {
        let name: std::sync::Arc<str> = topic.name.as_str().into();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let index = partition.partition_index;
            let timestamp = partition.timestamp;
            let isolation = if body.isolation_level == 1 {
                Isolation::ReadCommitted
            } else {
                Isolation::ReadUncommitted
            };
            let outcome = ask_partition_owner(
                broker,
                &metadata,
                &name,
                index,
                partition.current_leader_epoch,
                |tp, reply| ShardRequest::ListOffset {
                    tp,
                    timestamp,
                    isolation,
                    reply,
                },
            )
            .await;
            let mut response = ListOffsetsPartitionResponse::default().with_partition_index(index);
            match outcome {
                Ok(((offset, timestamp), leader_epoch)) => {
                    response.offset = offset;
                    response.timestamp = timestamp;
                    if version >= 4 {
                        response.leader_epoch = if offset >= 0 { leader_epoch } else { -1 };
                    }
                }
                Err(error) => {
                    response.error_code = error.code();
                    response.offset = -1;
                    response.timestamp = -1;
                }
            }
            partitions.push(response);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    request.respond(&ListOffsetsResponse::default().with_topics(topics))
}
