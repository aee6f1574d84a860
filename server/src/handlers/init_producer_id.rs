//! InitProducerId (key 22), v0-v5 (v5 only says the client understands
//! TRANSACTION_ABORTABLE, which this broker never returns).
//!
//! Without a transactional id (idempotent producers): a producer id never
//! handed out before (reserved in durable blocks) and epoch 0, as Kafka.
//! With one: the transaction coordinator bumps the id's epoch (fencing older
//! producers) and aborts its open transaction first, if any; a new id gets a
//! fresh producer id.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::runtime::messages::TxnRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

pub async fn handle(body: InitProducerIdRequest, request: RequestContext) -> HandlerOutcome {
    let broker = request.broker();
    let outcome = match &body.transactional_id {
        None => broker.allocate_producer_id().await.map(|id| (id, 0)),
        // Kafka refuses an empty transactional id outright.
        Some(id) if id.is_empty() => Err(ResponseError::InvalidRequest),
        Some(_)
            if body.transaction_timeout_ms <= 0
                || body.transaction_timeout_ms > broker.config.transaction_max_timeout_ms =>
        {
            Err(ResponseError::InvalidTransactionTimeout)
        }
        Some(id) => {
            let requested = (body.producer_id.0 >= 0 && body.producer_epoch >= 0)
                .then_some((body.producer_id.0, body.producer_epoch));
            broker
                .call_transaction(id, |reply| TxnRequest::InitProducerId {
                    timeout_ms: body.transaction_timeout_ms,
                    requested,
                    reply,
                })
                .await
                .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
        }
    };
    let mut response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match outcome {
        Ok((producer_id, epoch)) => {
            response.producer_id = ProducerId(producer_id);
            response.producer_epoch = epoch;
        }
        Err(error) => response.error_code = error.code(),
    }
    request.respond(&response)
}
