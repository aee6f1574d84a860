//! SyncGroup (key 14), v0-v5: the leader hands in the assignment; everyone
//! receives theirs once it has.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::coordinator::group::{SyncRequest, SyncResult};
use crate::runtime::messages::GroupRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

pub async fn handle(body: SyncGroupRequest, request: RequestContext) -> HandlerOutcome {
    let group_id = body.group_id.to_string();
    let sync = SyncRequest {
        member_id: body.member_id.to_string(),
        group_instance_id: body.group_instance_id.map(|i| i.to_string()),
        generation_id: body.generation_id,
        protocol_type: body.protocol_type.map(|t| t.to_string()),
        protocol_name: body.protocol_name.map(|n| n.to_string()),
        assignments: body
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let result = request
        .broker()
        .call_group(&group_id, |reply| GroupRequest::Sync { request: sync, reply })
        .await
        .unwrap_or_else(|| SyncResult::error(ResponseError::CoordinatorNotAvailable));
    let mut response = SyncGroupResponse::default()
        .with_error_code(result.error.map_or(0, |e| e.code()))
        .with_assignment(result.assignment);
    if request.version >= 5 {
        response.protocol_type = result.protocol_type.map(StrBytes::from_string);
        response.protocol_name = result.protocol_name.map(StrBytes::from_string);
    }
    request.respond(&response)
}
