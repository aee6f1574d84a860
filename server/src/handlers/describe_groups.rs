//! DescribeGroups (key 15), v0-v5: state, protocol and members with their
//! client ids, hosts, subscriptions and assignments. An unknown group is
//! described as Dead with no members, as Kafka does.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::runtime::messages::GroupRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

pub async fn handle(body: DescribeGroupsRequest, request: RequestContext) -> HandlerOutcome {
    let mut groups = Vec::with_capacity(body.groups.len());
    for group_id in body.groups {
        let description = request
            .broker()
            .call_group(&group_id, |reply| GroupRequest::Describe { reply })
            .await;
        let mut described = DescribedGroup::default().with_group_id(group_id);
        let Some(description) = description else {
            described.error_code = ResponseError::CoordinatorNotAvailable.code();
            groups.push(described);
            continue;
        };
        described.group_state = StrBytes::from_static_str(description.state);
        described.protocol_type = StrBytes::from_string(description.protocol_type);
        described.protocol_data = StrBytes::from_string(description.protocol_name);
        described.members = description
            .members
            .into_iter()
            .map(|m| {
                let mut member = DescribedGroupMember::default()
                    .with_member_id(StrBytes::from_string(m.member_id))
                    .with_client_id(StrBytes::from_string(m.client_id))
                    .with_client_host(StrBytes::from_string(m.client_host))
                    .with_member_metadata(m.metadata)
                    .with_member_assignment(m.assignment);
                if request.version >= 4 {
                    member.group_instance_id = m.group_instance_id.map(StrBytes::from_string);
                }
                member
            })
            .collect();
        groups.push(described);
    }
    request.respond(&DescribeGroupsResponse::default().with_groups(groups))
}
