//! TxnOffsetCommit (key 28), v0-v3: a consume-transform-produce application's
//! input positions, written into `__consumer_offsets` as part of its
//! transaction: they count only once the transaction commits.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::coordinator::offsets_log::CommittedOffset;
use crate::runtime::messages::GroupRequest;
use crate::runtime::shard::now_ms;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

pub async fn handle(body: TxnOffsetCommitRequest, request: RequestContext) -> HandlerOutcome {
    let broker = request.broker();
    let metadata = broker.metadata();
    let now = now_ms();
    let known = |topic: &str, partition: i32| metadata.partition_state(topic, partition).is_some();
    let offsets: Vec<(String, i32, CommittedOffset)> = body
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
        .filter(|(t, p)| known(t.name.as_str(), p.partition_index))
        .map(|(t, p)| {
            (
                t.name.to_string(),
                p.partition_index,
                CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: if request.version >= 2 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                    commit_timestamp_ms: now,
                },
            )
        })
        .collect();
    let outcome = if offsets.is_empty() {
        Ok(())
    } else {
        broker
            .call_group(&body.group_id, |reply| GroupRequest::TxnCommitOffsets {
                producer_id: body.producer_id.0,
                producer_epoch: body.producer_epoch,
                offsets,
                reply,
            })
            .await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
    };
    let topics = body
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let error = if known(topic.name.as_str(), p.partition_index) {
                        outcome.err()
                    } else {
                        Some(ResponseError::UnknownTopicOrPartition)
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    request.respond(&TxnOffsetCommitResponse::default().with_topics(topics))
}
