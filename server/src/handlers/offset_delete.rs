//! OffsetDelete (key 47), v0: removes a group's commits for partitions of
//! topics its members do not subscribe to (else GROUP_SUBSCRIBED_TO_TOPIC).

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::runtime::messages::GroupRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

pub async fn handle(body: OffsetDeleteRequest, request: RequestContext) -> HandlerOutcome {
    let partitions: Vec<(String, i32)> = body
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), p.partition_index)))
        .collect();
    let outcome = request
        .broker()
        .call_group(&body.group_id, |reply| GroupRequest::DeleteOffsets {
            partitions,
            reply,
        })
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
    let mut response = OffsetDeleteResponse::default();
    let results = match outcome {
        Ok(results) => results,
        Err(error) => {
            response.error_code = error.code();
            return request.respond(&response);
        }
    };
    let mut results = results.into_iter();
    response.topics = body
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let error = results.next().and_then(|r| r.err());
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    request.respond(&response)
}
