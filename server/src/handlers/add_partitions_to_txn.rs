//! AddPartitionsToTxn (key 24), v0-v3: the partitions a transaction writes,
//! so its commit or abort marker reaches each. (v4+ is broker-to-broker.)

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::runtime::messages::TxnRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

pub async fn handle(body: AddPartitionsToTxnRequest, request: RequestContext) -> HandlerOutcome {
    let broker = request.broker();
    let metadata = broker.metadata();
    let wanted: Vec<(String, i32)> = body
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
        .collect();
    let unknown = |topic: &str, partition: i32| metadata.partition_state(topic, partition).is_none();
    let any_unknown = wanted.iter().any(|(t, p)| unknown(t, *p));
    // Kafka: unknown partitions fail, the others are not attempted.
    let outcome = if any_unknown {
        Err(ResponseError::OperationNotAttempted)
    } else {
        broker
            .call_transaction(&body.v3_and_below_transactional_id, |reply| TxnRequest::AddPartitions {
                producer_id: body.v3_and_below_producer_id.0,
                producer_epoch: body.v3_and_below_producer_epoch,
                partitions: wanted.clone(),
                reply,
            })
            .await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
    };
    let results = body
        .v3_and_below_topics
        .into_iter()
        .map(|topic| {
            let results_by_partition = topic
                .partitions
                .iter()
                .map(|partition| {
                    let error = if unknown(topic.name.as_str(), *partition) {
                        Some(ResponseError::UnknownTopicOrPartition)
                    } else {
                        outcome.err()
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*partition)
                        .with_partition_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name)
                .with_results_by_partition(results_by_partition)
        })
        .collect();
    request.respond(&AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results))
}
