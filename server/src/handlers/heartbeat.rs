//! Heartbeat (key 12), v0-v4: keeps a member's session alive and tells it when
//! a rebalance has begun (REBALANCE_IN_PROGRESS).

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::runtime::messages::GroupRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

pub async fn handle(body: HeartbeatRequest, request: RequestContext) -> HandlerOutcome {
    let result = request
        .broker()
        .call_group(&body.group_id, |reply| GroupRequest::Heartbeat {
            member_id: body.member_id.to_string(),
            group_instance_id: body.group_instance_id.as_ref().map(|i| i.to_string()),
            generation_id: body.generation_id,
            reply,
        })
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
    request.respond(&HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code())))
}
