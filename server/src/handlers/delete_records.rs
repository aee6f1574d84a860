//! DeleteRecords (key 21), v0-v2: moves each partition's log start offset
//! forward (-1: to the high watermark); whole segments below it are deleted.

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{ask_partition_owner, HandlerOutcome, RequestContext};
use crate::runtime::messages::ShardRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

pub async fn handle(body: DeleteRecordsRequest, request: RequestContext) -> HandlerOutcome {
    let broker = request.broker();
    let metadata = broker.metadata();
    let mut topics = Vec::with_capacity(body.topics.len());
    for topic in body.topics {
        let name: std::sync::Arc<str> = topic.name.as_str().into();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let offset = partition.offset;
            let outcome = ask_partition_owner(broker, &metadata, &name, partition.partition_index, -1, |tp, reply| {
                ShardRequest::DeleteRecords { tp, offset, reply }
            })
            .await;
            let mut result = DeleteRecordsPartitionResult::default().with_partition_index(partition.partition_index);
            match outcome {
                Ok((low_watermark, _)) => result.low_watermark = low_watermark,
                Err(error) => {
                    result.error_code = error.code();
                    result.low_watermark = -1;
                }
            }
            partitions.push(result);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    request.respond(&DeleteRecordsResponse::default().with_topics(topics))
}
