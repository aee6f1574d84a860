//! ListGroups (key 16), v0-v4 (v4: filter by state): every group of every core.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};

use super::{HandlerOutcome, RequestContext};
use crate::runtime::messages::ShardRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

pub async fn handle(body: ListGroupsRequest, request: RequestContext) -> HandlerOutcome {
    let per_core = request
        .broker()
        .ask_every_core(|reply| ShardRequest::ListGroups { reply })
        .await;
    let wanted_states: Vec<String> = body.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let mut groups: Vec<_> = per_core
        .into_iter()
        .flatten()
        .filter(|g| wanted_states.is_empty() || wanted_states.contains(&g.state.to_lowercase()))
        .collect();
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    let listed = groups
        .into_iter()
        .map(|g| {
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type));
            if request.version >= 4 {
                listed.group_state = StrBytes::from_static_str(g.state);
            }
            listed
        })
        .collect();
    request.respond(&ListGroupsResponse::default().with_groups(listed))
}
