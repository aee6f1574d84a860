//! AddOffsetsToTxn (key 25), v0-v3: the group's `__consumer_offsets` partition
//! joins the transaction, so its TxnOffsetCommit is committed or aborted with it.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::coordinator::{self, offsets_log::OFFSETS_TOPIC};
use crate::runtime::messages::TxnRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

pub async fn handle(body: AddOffsetsToTxnRequest, request: RequestContext) -> HandlerOutcome {
    let broker = request.broker();
    let partition = coordinator::offsets_partition(&body.group_id, broker.offsets_partitions);
    let outcome = broker
        .call_transaction(&body.transactional_id, |reply| TxnRequest::AddPartitions {
            producer_id: body.producer_id.0,
            producer_epoch: body.producer_epoch,
            partitions: vec![(OFFSETS_TOPIC.to_string(), partition)],
            reply,
        })
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
    request.respond(&AddOffsetsToTxnResponse::default().with_error_code(outcome.err().map_or(0, |e| e.code())))
}
