//! JoinGroup (key 11), v0-v9: members join, the coordinator picks a protocol
//! and a leader, and answers everyone when the rebalance completes. v4+ new
//! members first get MEMBER_ID_REQUIRED (KIP-394); v5+ static members (KIP-345).

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::coordinator::group::{JoinRequest, JoinResult};
use crate::runtime::messages::GroupRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 9 };

pub async fn handle(body: JoinGroupRequest, request: RequestContext) -> HandlerOutcome {
    let version = request.version;
    let group_id = body.group_id.to_string();
    let result = if group_id.is_empty() {
        JoinResult::error(ResponseError::InvalidGroupId, &body.member_id)
    } else {
        let join = JoinRequest {
            member_id: body.member_id.to_string(),
            group_instance_id: body.group_instance_id.as_ref().map(|i| i.to_string()),
            client_id: request.client_id.clone(),
            client_host: format!("/{}", request.connection.peer.ip()),
            session_timeout_ms: body.session_timeout_ms,
            rebalance_timeout_ms: if version >= 1 {
                body.rebalance_timeout_ms
            } else {
                body.session_timeout_ms
            },
            protocol_type: body.protocol_type.to_string(),
            protocols: body
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            require_known_member_id: version >= 4,
        };
        request
            .broker()
            .call_group(&group_id, |reply| GroupRequest::Join { request: join, reply })
            .await
            .unwrap_or_else(|| JoinResult::error(ResponseError::CoordinatorNotAvailable, &body.member_id))
    };
    let mut response = JoinGroupResponse::default()
        .with_error_code(result.error.map_or(0, |e| e.code()))
        .with_generation_id(result.generation_id)
        .with_leader(StrBytes::from_string(result.leader_id))
        .with_member_id(StrBytes::from_string(result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|m| {
                    let mut member = JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_metadata(m.metadata);
                    if version >= 5 {
                        member.group_instance_id = m.group_instance_id.map(StrBytes::from_string);
                    }
                    member
                })
                .collect(),
        );
    // Before v7 the protocol name is not nullable.
    response.protocol_name = match (result.protocol_name, version >= 7) {
        (Some(name), _) => Some(StrBytes::from_string(name)),
        (None, true) => None,
        (None, false) => Some(StrBytes::default()),
    };
    if version >= 7 {
        response.protocol_type = result.protocol_type.map(StrBytes::from_string);
    }
    request.respond(&response)
}
