//! DeleteGroups (key 42), v0-v2: an empty group and its committed offsets go
//! (tombstones in `__consumer_offsets`); a group with members is NON_EMPTY_GROUP.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::runtime::messages::GroupRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

pub async fn handle(body: DeleteGroupsRequest, request: RequestContext) -> HandlerOutcome {
    let mut results = Vec::with_capacity(body.groups_names.len());
    for group_id in body.groups_names {
        let outcome = request
            .broker()
            .call_group(&group_id, |reply| GroupRequest::Delete { reply })
            .await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(outcome.err().map_or(0, |e| e.code())),
        );
    }
    request.respond(&DeleteGroupsResponse::default().with_results(results))
}
