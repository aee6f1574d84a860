//! DescribeTransactions (key 65), v0: state, producer, timeout, start time
//! and partitions of each transactional id.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::runtime::messages::TxnRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

pub async fn handle(body: DescribeTransactionsRequest, request: RequestContext) -> HandlerOutcome {
    let mut states = Vec::with_capacity(body.transactional_ids.len());
    for transactional_id in body.transactional_ids {
        let described = request
            .broker()
            .call_transaction(&transactional_id, |reply| TxnRequest::Describe { reply })
            .await
            .flatten();
        let mut state = TransactionState::default().with_transactional_id(transactional_id);
        match described {
            None => state.error_code = ResponseError::TransactionalIdNotFound.code(),
            Some(txn) => {
                let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (topic, partition) in &txn.partitions {
                    by_topic.entry(topic.clone()).or_default().push(*partition);
                }
                state.transaction_state = StrBytes::from_static_str(txn.state.name());
                state.transaction_timeout_ms = txn.timeout_ms;
                state.transaction_start_time_ms = txn.start_ms;
                state.producer_id = ProducerId(txn.producer_id);
                state.producer_epoch = txn.producer_epoch;
                state.topics = by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        TopicData::default()
                            .with_topic(TopicName(StrBytes::from_string(topic)))
                            .with_partitions(partitions)
                    })
                    .collect();
            }
        }
        states.push(state);
    }
    request.respond(&DescribeTransactionsResponse::default().with_transaction_states(states))
}
