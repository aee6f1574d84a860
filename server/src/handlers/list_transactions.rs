//! ListTransactions (key 66), v0: every transactional id of every core,
//! filtered by state and producer id.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId};
use kafka_protocol::protocol::{StrBytes, VersionRange};

use super::{HandlerOutcome, RequestContext};
use crate::runtime::messages::ShardRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

pub async fn handle(body: ListTransactionsRequest, request: RequestContext) -> HandlerOutcome {
    let per_core = request
        .broker()
        .ask_every_core(|reply| ShardRequest::ListTransactions { reply })
        .await;
    let states: Vec<String> = body.state_filters.iter().map(|s| s.to_string()).collect();
    let producers: Vec<i64> = body.producer_id_filters.iter().map(|p| p.0).collect();
    let mut listed: Vec<_> = per_core
        .into_iter()
        .flatten()
        .filter(|(_, txn)| states.is_empty() || states.iter().any(|s| s == txn.state.name()))
        .filter(|(_, txn)| producers.is_empty() || producers.contains(&txn.producer_id))
        .collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    let transaction_states = listed
        .into_iter()
        .map(|(id, txn)| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                .with_producer_id(ProducerId(txn.producer_id))
                .with_transaction_state(StrBytes::from_static_str(txn.state.name()))
        })
        .collect();
    request.respond(&ListTransactionsResponse::default().with_transaction_states(transaction_states))
}
