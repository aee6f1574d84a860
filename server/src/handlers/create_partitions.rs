//! CreatePartitions (key 37), v0-v3: grow a topic (never shrink); the new
//! partitions spread over the cores like the first ones.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

pub async fn handle(body: CreatePartitionsRequest, request: RequestContext) -> HandlerOutcome {
    let nodes = &request.broker().nodes;
    // Replica assignments may only name this broker's nodes (each partition
    // is led by its owner core's node whatever they name).
    let foreign = |topic: &kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic| {
        topic
            .assignments
            .iter()
            .flatten()
            .any(|a| a.broker_ids.iter().any(|b| !nodes.contains(b.0)))
    };
    let asked: Vec<(String, i32)> = body
        .topics
        .iter()
        .filter(|t| !foreign(t))
        .map(|t| (t.name.to_string(), t.count))
        .collect();
    let mut outcomes = request
        .broker()
        .create_partitions(asked, body.validate_only)
        .await
        .into_iter();
    let results = body
        .topics
        .iter()
        .map(|topic| {
            let outcome = if foreign(topic) {
                Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "only brokers {:?} exist",
                        nodes.all().iter().map(|n| n.node_id).collect::<Vec<_>>()
                    ),
                ))
            } else {
                outcomes.next().unwrap_or(Ok(()))
            };
            let mut result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
            if let Err((error, message)) = outcome {
                result.error_code = error.code();
                result.error_message = Some(StrBytes::from_string(message));
            }
            result
        })
        .collect();
    request.respond(&CreatePartitionsResponse::default().with_results(results))
}
