//! InitProducerId (key 22), v0-v4, for idempotent producers: a producer id
//! never handed out before (ids are reserved in durable blocks) and epoch 0,
//! as Kafka answers requests without a transactional id.
//! Transactional ids are refused with UNSUPPORTED_VERSION until transactions
//! exist, so transactional clients fail at once with a clear error.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

pub async fn handle(body: InitProducerIdRequest, request: RequestContext) -> HandlerOutcome {
    let mut response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let outcome = match &body.transactional_id {
        None => request.broker().allocate_producer_id().await,
        // Kafka refuses an empty transactional id outright.
        Some(id) if id.is_empty() => Err(ResponseError::InvalidRequest),
        Some(_) => Err(ResponseError::UnsupportedVersion),
    };
    match outcome {
        Ok(producer_id) => {
            response.producer_id = ProducerId(producer_id);
            response.producer_epoch = 0;
        }
        Err(error) => response.error_code = error.code(),
    }
    request.respond(&response)
}
