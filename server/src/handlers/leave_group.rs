//! LeaveGroup (key 13), v0-v5 (v3+: several members, by member id or
//! group instance id).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::runtime::messages::GroupRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

pub async fn handle(body: LeaveGroupRequest, request: RequestContext) -> HandlerOutcome {
    let batched = request.version >= 3;
    let leaving: Vec<(String, Option<String>)> = if batched {
        body.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(body.member_id.to_string(), None)]
    };
    let count = leaving.len();
    let results = request
        .broker()
        .call_group(&body.group_id, |reply| GroupRequest::Leave {
            members: leaving.clone(),
            reply,
        })
        .await
        .unwrap_or_else(|| vec![Err(ResponseError::CoordinatorNotAvailable); count]);
    let mut response = LeaveGroupResponse::default();
    if batched {
        response.members = leaving
            .into_iter()
            .zip(&results)
            .map(|((member_id, instance), result)| {
                MemberResponse::default()
                    .with_member_id(StrBytes::from_string(member_id))
                    .with_group_instance_id(instance.map(StrBytes::from_string))
                    .with_error_code(result.err().map_or(0, |e| e.code()))
            })
            .collect();
    } else {
        response.error_code = results.first().and_then(|r| r.err()).map_or(0, |e| e.code());
    }
    request.respond(&response)
}
