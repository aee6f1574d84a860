//! EndTxn (key 26), v0-v3: commit or abort. Answered once the decision is
//! durable and every partition of the transaction has its marker.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::runtime::messages::TxnRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

pub async fn handle(body: EndTxnRequest, request: RequestContext) -> HandlerOutcome {
    let outcome = request
        .broker()
        .call_transaction(&body.transactional_id, |reply| TxnRequest::End {
            producer_id: body.producer_id.0,
            producer_epoch: body.producer_epoch,
            commit: body.committed,
            reply,
        })
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
    request.respond(&EndTxnResponse::default().with_error_code(outcome.err().map_or(0, |e| e.code())))
}
