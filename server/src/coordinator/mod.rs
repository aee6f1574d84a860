//! The group coordinator of one core: the groups this core owns and their
//! committed offsets.
//!
//! A group is owned by the core that owns its `__consumer_offsets` partition
//! (`offsets_partition`), so a commit is an append on the same core, with no
//! cross-core hop. Commits are applied to memory only once their records are
//! durable; at start each core replays its `__consumer_offsets` partitions.
//!
//! Invariant: `offsets` holds exactly what the durable records say.

pub mod group;
pub mod offsets_log;
pub mod record_codec;
pub mod transaction;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;

use group::{Group, GroupConfig, GroupState};
use offsets_log::{CommittedOffset, OffsetRecord};

/// The `__consumer_offsets` partition that holds `group_id`'s commits.
pub fn offsets_partition(group_id: &str, offsets_partitions: i32) -> i32 {
    assert!(offsets_partitions > 0, "the offsets topic has partitions");
    (crate::runtime::router::stable_hash(group_id) % offsets_partitions as u64) as i32
}

pub type PartitionOffsets = BTreeMap<(String, i32), CommittedOffset>;

#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

pub struct GroupCoordinator {
    pub config: GroupConfig,
    offsets_retention: Duration,
    groups: HashMap<String, Group>,
    offsets: HashMap<String, PartitionOffsets>,
    /// TxnOffsetCommit records per producer id, durable but not yet
    /// committed: applied at the commit marker, dropped at the abort marker.
    pending_transactions: HashMap<i64, Vec<OffsetRecord>>,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig, offsets_retention: Duration) -> Self {
        Self {
            config,
            offsets_retention,
            groups: HashMap::new(),
            offsets: HashMap::new(),
            pending_transactions: HashMap::new(),
        }
    }

    /// The group, created empty on first use.
    pub fn group_mut(&mut self, group_id: &str, now: Instant) -> &mut Group {
        self.groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, now))
    }

    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    /// Applies a durable `__consumer_offsets` record.
    pub fn apply(&mut self, record: OffsetRecord, now: Instant) {
        let key = (record.topic, record.partition);
        match record.committed {
            Some(committed) => {
                self.offsets
                    .entry(record.group.clone())
                    .or_default()
                    .insert(key, committed);
                self.group_mut(&record.group, now);
            }
            None => {
                if let Some(offsets) = self.offsets.get_mut(&record.group) {
                    offsets.remove(&key);
                    if offsets.is_empty() {
                        self.offsets.remove(&record.group);
                    }
                }
            }
        }
    }

    pub fn add_pending_transaction(&mut self, producer_id: i64, records: Vec<OffsetRecord>) {
        self.pending_transactions
            .entry(producer_id)
            .or_default()
            .extend(records);
    }

    /// The producer's transaction ended: its offset commits apply or vanish.
    pub fn resolve_pending_transaction(&mut self, producer_id: i64, commit: bool, now: Instant) {
        let Some(records) = self.pending_transactions.remove(&producer_id) else {
            return;
        };
        if commit {
            for record in records {
                self.apply(record, now);
            }
        }
    }

    /// Every committed offset of every group on this core.
    pub fn all_committed(&self) -> impl Iterator<Item = (&str, &(String, i32), &CommittedOffset)> {
        self.offsets.iter().flat_map(|(group, offsets)| {
            offsets
                .iter()
                .map(move |(tp, committed)| (group.as_str(), tp, committed))
        })
    }

    pub fn committed(&self, group_id: &str) -> Option<&PartitionOffsets> {
        self.offsets.get(group_id)
    }

    /// Kafka's checks before an OffsetCommit: a simple (generation -1) commit
    /// needs an empty group; a member's commit needs its current generation.
    pub fn check_commit(
        &mut self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        let group = self.group_mut(group_id, now);
        if generation_id < 0 && group.state == GroupState::Empty {
            return Ok(());
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        group.check_member(member_id, group_instance_id, generation_id)
    }

    /// Runs timeouts; returns the commits of groups empty for longer than
    /// `offsets.retention.minutes`, for the caller to delete durably.
    pub fn tick(&mut self, now: Instant) -> Vec<(String, Vec<(String, i32)>)> {
        for group in self.groups.values_mut() {
            group.tick(&self.config, now);
        }
        let mut expired = Vec::new();
        for (group_id, group) in &self.groups {
            let empty_too_long = group
                .empty_since
                .is_some_and(|since| now.duration_since(since) >= self.offsets_retention);
            if empty_too_long {
                if let Some(offsets) = self.offsets.get(group_id) {
                    expired.push((group_id.clone(), offsets.keys().cloned().collect()));
                }
            }
        }
        // Groups with neither members nor offsets are forgotten.
        let offsets = &self.offsets;
        self.groups
            .retain(|id, group| group.state != GroupState::Empty || offsets.contains_key(id));
        expired
    }

    pub fn list(&self) -> Vec<GroupListing> {
        self.groups
            .values()
            .map(|group| GroupListing {
                group_id: group.group_id.clone(),
                protocol_type: group.protocol_type.clone().unwrap_or_else(|| "consumer".into()),
                state: group.state.name(),
            })
            .collect()
    }

    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let Some(group) = self.groups.get(group_id) else {
            return GroupDescription {
                state: "Dead",
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            };
        };
        let protocol = group.protocol_name.as_deref();
        GroupDescription {
            state: group.state.name(),
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_name: group.protocol_name.clone().unwrap_or_default(),
            members: group
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata_for(protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// DeleteGroups: only an empty group; returns its commits to delete.
    pub fn check_delete(&self, group_id: &str) -> Result<Vec<(String, i32)>, ResponseError> {
        match self.groups.get(group_id) {
            None => Err(ResponseError::GroupIdNotFound),
            Some(group) if group.state != GroupState::Empty => Err(ResponseError::NonEmptyGroup),
            Some(_) => Ok(self
                .offsets
                .get(group_id)
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()),
        }
    }

    /// Forgets a deleted group (its tombstones are durable).
    pub fn forget(&mut self, group_id: &str) {
        self.groups.remove(group_id);
        self.offsets.remove(group_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coordinator(retention: Duration) -> GroupCoordinator {
        let config = GroupConfig {
            min_session_timeout_ms: 10,
            max_session_timeout_ms: 60_000,
            initial_rebalance_delay_ms: 0,
        };
        GroupCoordinator::new(config, retention)
    }

    fn commit(group: &str, offset: i64) -> OffsetRecord {
        OffsetRecord {
            group: group.into(),
            topic: "t".into(),
            partition: 0,
            committed: Some(CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 0,
            }),
        }
    }

    #[test]
    fn commits_apply_and_tombstones_delete() {
        let now = Instant::now();
        let mut groups = coordinator(Duration::from_secs(3600));
        groups.apply(commit("g", 5), now);
        groups.apply(commit("g", 9), now);
        assert_eq!(groups.committed("g").map(|c| c[&("t".to_string(), 0)].offset), Some(9));
        assert_eq!(groups.list().len(), 1);
        groups.apply(
            OffsetRecord {
                committed: None,
                ..commit("g", 0)
            },
            now,
        );
        assert!(groups.committed("g").is_none());
        groups.tick(now);
        assert!(
            groups.list().is_empty(),
            "a group with no members and no offsets is forgotten"
        );
    }

    #[test]
    fn offsets_of_long_empty_groups_expire() {
        let now = Instant::now();
        let mut groups = coordinator(Duration::from_secs(60));
        groups.apply(commit("idle", 5), now);
        assert!(groups.tick(now + Duration::from_secs(30)).is_empty());
        let expired = groups.tick(now + Duration::from_secs(61));
        assert_eq!(expired, vec![("idle".to_string(), vec![("t".to_string(), 0)])]);
    }

    #[test]
    fn simple_commits_need_an_empty_group() {
        let now = Instant::now();
        let mut groups = coordinator(Duration::from_secs(60));
        assert_eq!(groups.check_commit("g", "", None, -1, now), Ok(()));
        assert_eq!(
            groups.check_commit("g", "ghost", None, 3, now),
            Err(ResponseError::UnknownMemberId)
        );
    }
}
