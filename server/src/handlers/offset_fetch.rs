//! OffsetFetch (key 9), v1-v8: committed positions of a group (v8: of several
//! groups). Partitions without a commit answer offset -1. Asking for no topics
//! (null, v2+) returns every committed partition of the group.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::{StrBytes, VersionRange};

use super::{HandlerOutcome, RequestContext};
use crate::coordinator::offsets_log::CommittedOffset;
use crate::runtime::messages::GroupRequest;

pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 8 };

type Committed = Vec<(String, i32, Option<CommittedOffset>)>;
/// A topic's partitions and their commits.
type TopicCommits = (String, Vec<(i32, Option<CommittedOffset>)>);

async fn fetch_group(request: &RequestContext, group_id: &str, partitions: Option<Vec<(String, i32)>>) -> Committed {
    let asked = partitions.clone();
    request
        .broker()
        .call_group(group_id, |reply| GroupRequest::FetchOffsets { partitions, reply })
        .await
        .unwrap_or_else(|| {
            asked
                .unwrap_or_default()
                .into_iter()
                .map(|(t, p)| (t, p, None))
                .collect()
        })
}

/// `(topic, partitions)` in first-seen order.
fn by_topic(committed: Committed) -> Vec<TopicCommits> {
    let mut topics: Vec<TopicCommits> = Vec::new();
    for (topic, partition, offset) in committed {
        match topics.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, partitions)) => partitions.push((partition, offset)),
            None => topics.push((topic, vec![(partition, offset)])),
        }
    }
    topics
}

fn parts(offset: &Option<CommittedOffset>, version: i16) -> (i64, i32, StrBytes) {
    match offset {
        Some(c) => (
            c.offset,
            if version >= 5 { c.leader_epoch } else { -1 },
            StrBytes::from_string(c.metadata.clone()),
        ),
        None => (-1, -1, StrBytes::default()),
    }
}

/// `(topic, partition)` pairs a request names; `None` asks for every commit.
/// (v8 and older versions name topics with distinct generated types.)
macro_rules! requested {
    ($topics:expr) => {
        $topics.as_ref().map(|topics| {
            topics
                .iter()
                .flat_map(|t| t.partition_indexes.iter().map(|p| (t.name.to_string(), *p)))
                .collect::<Vec<(String, i32)>>()
        })
    };
}

/// The response topics for `committed`, in the given generated types.
macro_rules! topics_response {
    ($topic:ty, $partition:ty, $committed:expr, $version:expr) => {
        by_topic($committed)
            .into_iter()
            .map(|(topic, partitions)| {
                <$topic>::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(partition, offset)| {
                                let (committed_offset, epoch, metadata) = parts(&offset, $version);
                                <$partition>::default()
                                    .with_partition_index(partition)
                                    .with_committed_offset(committed_offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(metadata))
                            })
                            .collect(),
                    )
            })
            .collect()
    };
}

pub async fn handle(body: OffsetFetchRequest, request: RequestContext) -> HandlerOutcome {
    let version = request.version;
    if version >= 8 {
        let mut groups = Vec::with_capacity(body.groups.len());
        for group in &body.groups {
            let committed = fetch_group(&request, &group.group_id, requested!(group.topics)).await;
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(group.group_id.0.clone()))
                    .with_topics(topics_response!(
                        OffsetFetchResponseTopics,
                        OffsetFetchResponsePartitions,
                        committed,
                        version
                    )),
            );
        }
        return request.respond(&OffsetFetchResponse::default().with_groups(groups));
    }
    let committed = fetch_group(&request, &body.group_id, requested!(body.topics)).await;
    let topics = topics_response!(
        OffsetFetchResponseTopic,
        OffsetFetchResponsePartition,
        committed,
        version
    );
    request.respond(&OffsetFetchResponse::default().with_topics(topics))
}
