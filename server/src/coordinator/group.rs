//! One consumer group: Kafka's classic rebalance protocol as a state machine.
//!
//! States: Empty → PreparingRebalance → CompletingRebalance → Stable, back to
//! PreparingRebalance on any membership change. Owned by one core; driven by
//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup, and by [`Group::tick`] for
//! session and rebalance timeouts. Replies to parked JoinGroup/SyncGroup
//! requests go out through their oneshot senders.
//!
//! Invariants:
//! - Stable and CompletingRebalance have a leader who is a member.
//! - Every member's generation is the group's; a request naming another
//!   generation gets ILLEGAL_GENERATION.
//! - A static member (`group.instance.id`) maps to exactly one member id; a
//!   request with the instance id and another member id is FENCED_INSTANCE_ID.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// Kafka's names, as DescribeGroups and ListGroups report them.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
        }
    }
}

/// Bounds and delays, Kafka's `group.*` broker settings.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: u64,
}

pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone)]
pub struct JoinResult {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: String,
    pub member_id: String,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    pub fn error(error: ResponseError, member_id: &str) -> Self {
        Self {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

pub struct SyncRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone)]
pub struct SyncResult {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: ResponseError) -> Self {
        Self {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_heartbeat: Instant,
    awaiting_join: Option<oneshot::Sender<JoinResult>>,
    awaiting_sync: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    /// This member's metadata for `protocol`.
    pub fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| Some(name.as_str()) == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    fn session_expired(&self, now: Instant) -> bool {
        self.awaiting_join.is_none()
            && now.duration_since(self.last_heartbeat) > Duration::from_millis(self.session_timeout_ms as u64)
    }
}

pub struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they join.
    pending_members: HashMap<String, Instant>,
    static_members: HashMap<String, String>,
    rebalance_deadline: Option<Instant>,
    initial_delay_deadline: Option<Instant>,
    pub empty_since: Option<Instant>,
}

impl Group {
    pub fn new(group_id: &str, now: Instant) -> Self {
        Self {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_deadline: None,
            empty_since: Some(now),
        }
    }

    fn check_invariants(&self) {
        if matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance) {
            let leader = self.leader_id.as_deref().unwrap_or_default();
            assert!(
                self.members.contains_key(leader),
                "group {} has no leader member",
                self.group_id
            );
        }
        if self.state == GroupState::Empty {
            assert!(self.members.is_empty(), "empty group {} has members", self.group_id);
        }
    }

    /// Checks a request's member, instance and generation (SyncGroup,
    /// Heartbeat, OffsetCommit): Kafka's order of errors.
    pub fn check_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = group_instance_id {
            match self.static_members.get(instance) {
                Some(known) if known != member_id => return Err(ResponseError::FencedInstanceId),
                _ => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation_id != self.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|(name, _)| candidates.contains(name))
    }

    /// Protocols every member supports, in the leader's order of preference
    /// (or the first member's, before there is a leader).
    fn candidate_protocols(&self) -> Vec<String> {
        let leader = self.leader_id.as_ref().and_then(|l| self.members.get(l));
        let Some(first) = leader.or_else(|| self.members.values().next()) else {
            return Vec::new();
        };
        let mut candidates: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for member in self.members.values() {
            candidates.retain(|c| member.protocols.iter().any(|(n, _)| n == c));
        }
        candidates
    }

    /// Each member votes for its most preferred candidate; most votes wins.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(name).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        // Ties go to the leader's preference.
        candidates.into_iter().find(|c| votes.get(c.as_str()) == Some(&best))
    }

    fn new_member_id(client_id: &str) -> String {
        format!("{client_id}-{}", uuid::Uuid::new_v4())
    }

    pub fn join(
        &mut self,
        request: JoinRequest,
        config: &GroupConfig,
        now: Instant,
        reply: oneshot::Sender<JoinResult>,
    ) {
        let member_id = request.member_id.clone();
        if !(config.min_session_timeout_ms..=config.max_session_timeout_ms).contains(&request.session_timeout_ms) {
            let _ = reply.send(JoinResult::error(ResponseError::InvalidSessionTimeout, &member_id));
            return;
        }
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            let _ = reply.send(JoinResult::error(ResponseError::InconsistentGroupProtocol, &member_id));
            return;
        }
        if member_id.is_empty() {
            self.join_new_member(request, config, now, reply);
        } else {
            self.join_known_member(request, config, now, reply);
        }
        self.check_invariants();
    }

    fn join_new_member(
        &mut self,
        request: JoinRequest,
        config: &GroupConfig,
        now: Instant,
        reply: oneshot::Sender<JoinResult>,
    ) {
        let member_id = Self::new_member_id(&request.client_id);
        if let Some(instance) = request.group_instance_id.clone() {
            if let Some(old_member_id) = self.static_members.get(&instance).cloned() {
                self.replace_static_member(&old_member_id, &member_id, request, config, now, reply);
                return;
            }
            self.static_members.insert(instance, member_id.clone());
        } else if request.require_known_member_id {
            self.pending_members.insert(member_id.clone(), now);
            let _ = reply.send(JoinResult::error(ResponseError::MemberIdRequired, &member_id));
            return;
        }
        self.add_member(member_id, request, config, now, reply);
    }

    fn join_known_member(
        &mut self,
        request: JoinRequest,
        config: &GroupConfig,
        now: Instant,
        reply: oneshot::Sender<JoinResult>,
    ) {
        let member_id = request.member_id.clone();
        if let Some(instance) = &request.group_instance_id {
            if self
                .static_members
                .get(instance)
                .is_some_and(|known| *known != member_id)
            {
                let _ = reply.send(JoinResult::error(ResponseError::FencedInstanceId, &member_id));
                return;
            }
        }
        if self.pending_members.remove(&member_id).is_some() {
            self.add_member(member_id, request, config, now, reply);
            return;
        }
        let Some(member) = self.members.get_mut(&member_id) else {
            let _ = reply.send(JoinResult::error(ResponseError::UnknownMemberId, &member_id));
            return;
        };
        member.protocols = request.protocols;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.last_heartbeat = now;
        if let Some(previous) = member.awaiting_join.replace(reply) {
            let _ = previous.send(JoinResult::error(ResponseError::RebalanceInProgress, &member_id));
        }
        self.rebalance_for_join(config, now);
    }

    fn add_member(
        &mut self,
        member_id: String,
        request: JoinRequest,
        config: &GroupConfig,
        now: Instant,
        reply: oneshot::Sender<JoinResult>,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        self.members.insert(
            member_id.clone(),
            Member {
                member_id,
                group_instance_id: request.group_instance_id,
                client_id: request.client_id,
                client_host: request.client_host,
                session_timeout_ms: request.session_timeout_ms,
                rebalance_timeout_ms: request.rebalance_timeout_ms,
                protocols: request.protocols,
                assignment: Bytes::new(),
                last_heartbeat: now,
                awaiting_join: Some(reply),
                awaiting_sync: None,
            },
        );
        self.empty_since = None;
        self.rebalance_for_join(config, now);
    }

    /// A known static member rejoined without its member id (a restart): the
    /// old id is fenced and the new one takes its place and its assignment.
    fn replace_static_member(
        &mut self,
        old_member_id: &str,
        new_member_id: &str,
        request: JoinRequest,
        config: &GroupConfig,
        now: Instant,
        reply: oneshot::Sender<JoinResult>,
    ) {
        let Some(mut member) = self.members.remove(old_member_id) else {
            // Mapped but gone (expired): join as new.
            if let Some(instance) = &request.group_instance_id {
                self.static_members.insert(instance.clone(), new_member_id.to_string());
            }
            self.add_member(new_member_id.to_string(), request, config, now, reply);
            return;
        };
        if let Some(waiting) = member.awaiting_join.take() {
            let _ = waiting.send(JoinResult::error(ResponseError::FencedInstanceId, old_member_id));
        }
        if let Some(waiting) = member.awaiting_sync.take() {
            let _ = waiting.send(SyncResult::error(ResponseError::FencedInstanceId));
        }
        member.member_id = new_member_id.to_string();
        member.last_heartbeat = now;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        let protocols_unchanged = member.protocols == request.protocols;
        member.protocols = request.protocols;
        if let Some(instance) = &request.group_instance_id {
            self.static_members.insert(instance.clone(), new_member_id.to_string());
        }
        let was_leader = self.leader_id.as_deref() == Some(old_member_id);
        if was_leader {
            self.leader_id = Some(new_member_id.to_string());
        }
        if self.state == GroupState::Stable && protocols_unchanged && !was_leader {
            // KIP-345: no rebalance; the member syncs to get its assignment.
            self.members.insert(new_member_id.to_string(), member);
            let _ = reply.send(JoinResult {
                error: None,
                generation_id: self.generation_id,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                leader_id: self.leader_id.clone().unwrap_or_default(),
                member_id: new_member_id.to_string(),
                members: Vec::new(),
            });
            return;
        }
        member.awaiting_join = Some(reply);
        self.members.insert(new_member_id.to_string(), member);
        self.rebalance_for_join(config, now);
    }

    /// A member (re)joined: start a rebalance, or let the running one finish.
    fn rebalance_for_join(&mut self, config: &GroupConfig, now: Instant) {
        match self.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            _ => self.prepare_rebalance(config, now),
        }
    }

    fn prepare_rebalance(&mut self, config: &GroupConfig, now: Instant) {
        if self.state == GroupState::CompletingRebalance {
            for member in self.members.values_mut() {
                if let Some(waiting) = member.awaiting_sync.take() {
                    let _ = waiting.send(SyncResult::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        let rebalance_timeout_ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0))
            .max()
            .unwrap_or(0);
        self.rebalance_deadline = Some(now + Duration::from_millis(rebalance_timeout_ms as u64));
        // An empty group waits a little for more members (Kafka's
        // group.initial.rebalance.delay.ms), so a fleet starting together
        // gets one rebalance instead of one per member.
        self.initial_delay_deadline =
            (self.state == GroupState::Empty).then(|| now + Duration::from_millis(config.initial_rebalance_delay_ms));
        self.state = GroupState::PreparingRebalance;
        self.maybe_complete_join(now);
    }

    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.awaiting_join.is_some());
        let delay_over = self.initial_delay_deadline.is_none_or(|d| now >= d);
        let timed_out = self.rebalance_deadline.is_some_and(|d| now >= d);
        if !((all_joined && delay_over) || timed_out) {
            return;
        }
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in missing {
            self.remove_member(&member_id);
        }
        self.generation_id += 1;
        if self.members.is_empty() {
            self.become_empty(now);
            return;
        }
        self.protocol_name = self.select_protocol();
        if self.leader_id.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        self.rebalance_deadline = None;
        self.initial_delay_deadline = None;
        let leader_id = self.leader_id.clone().unwrap_or_default();
        let protocol_name = self.protocol_name.clone();
        let everyone: Vec<JoinedMember> = self
            .members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(protocol_name.as_deref()),
            })
            .collect();
        for member in self.members.values_mut() {
            member.last_heartbeat = now;
            if let Some(waiting) = member.awaiting_join.take() {
                let _ = waiting.send(JoinResult {
                    error: None,
                    generation_id: self.generation_id,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    leader_id: leader_id.clone(),
                    member_id: member.member_id.clone(),
                    members: if member.member_id == leader_id {
                        everyone.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }

    fn become_empty(&mut self, now: Instant) {
        self.state = GroupState::Empty;
        self.protocol_name = None;
        self.protocol_type = None;
        self.leader_id = None;
        self.rebalance_deadline = None;
        self.initial_delay_deadline = None;
        self.empty_since = Some(now);
    }

    fn remove_member(&mut self, member_id: &str) {
        if let Some(mut member) = self.members.remove(member_id) {
            if let Some(instance) = &member.group_instance_id {
                if self.static_members.get(instance).is_some_and(|m| m == member_id) {
                    self.static_members.remove(instance);
                }
            }
            if let Some(waiting) = member.awaiting_join.take() {
                let _ = waiting.send(JoinResult::error(ResponseError::UnknownMemberId, member_id));
            }
            if let Some(waiting) = member.awaiting_sync.take() {
                let _ = waiting.send(SyncResult::error(ResponseError::UnknownMemberId));
            }
        }
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = None;
        }
    }

    /// A membership change: rebalance, or finish one that was waiting.
    fn after_member_left(&mut self, config: &GroupConfig, now: Instant) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.generation_id += 1;
                    self.become_empty(now);
                } else {
                    self.prepare_rebalance(config, now);
                }
            }
            GroupState::PreparingRebalance => {
                if self.members.is_empty() {
                    self.generation_id += 1;
                    self.become_empty(now);
                } else {
                    self.maybe_complete_join(now);
                }
            }
            GroupState::Empty => {}
        }
    }

    pub fn sync(&mut self, request: SyncRequest, now: Instant, reply: oneshot::Sender<SyncResult>) {
        if let Err(error) = self.check_member(
            &request.member_id,
            request.group_instance_id.as_deref(),
            request.generation_id,
        ) {
            let _ = reply.send(SyncResult::error(error));
            return;
        }
        let protocol_mismatch = request
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref())
            || request
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != self.protocol_name.as_ref());
        if protocol_mismatch {
            let _ = reply.send(SyncResult::error(ResponseError::InconsistentGroupProtocol));
            return;
        }
        match self.state {
            GroupState::Empty => {
                let _ = reply.send(SyncResult::error(ResponseError::UnknownMemberId));
            }
            GroupState::PreparingRebalance => {
                let _ = reply.send(SyncResult::error(ResponseError::RebalanceInProgress));
            }
            GroupState::Stable => {
                let assignment = self
                    .members
                    .get(&request.member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                let _ = reply.send(self.sync_result(assignment));
            }
            GroupState::CompletingRebalance => {
                let is_leader = self.leader_id.as_deref() == Some(request.member_id.as_str());
                if let Some(member) = self.members.get_mut(&request.member_id) {
                    member.last_heartbeat = now;
                    member.awaiting_sync = Some(reply);
                }
                if is_leader {
                    let assignments: HashMap<String, Bytes> = request.assignments.into_iter().collect();
                    for member in self.members.values_mut() {
                        member.assignment = assignments.get(&member.member_id).cloned().unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    let protocol_type = self.protocol_type.clone();
                    let protocol_name = self.protocol_name.clone();
                    for member in self.members.values_mut() {
                        if let Some(waiting) = member.awaiting_sync.take() {
                            let _ = waiting.send(SyncResult {
                                error: None,
                                protocol_type: protocol_type.clone(),
                                protocol_name: protocol_name.clone(),
                                assignment: member.assignment.clone(),
                            });
                        }
                    }
                }
            }
        }
        self.check_invariants();
    }

    fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Empty {
            return Err(ResponseError::UnknownMemberId);
        }
        self.check_member(member_id, group_instance_id, generation_id)?;
        if let Some(member) = self.members.get_mut(member_id) {
            member.last_heartbeat = now;
        }
        match self.state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// LeaveGroup for each `(member_id, group_instance_id)`.
    pub fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        config: &GroupConfig,
        now: Instant,
    ) -> Vec<Result<(), ResponseError>> {
        let mut results = Vec::with_capacity(leaving.len());
        let mut anyone_left = false;
        for (member_id, instance) in leaving {
            let member_id = match (member_id.is_empty(), instance) {
                (true, Some(instance)) => self.static_members.get(instance).cloned().unwrap_or_default(),
                _ => member_id.clone(),
            };
            if let Some(instance) = instance {
                if self
                    .static_members
                    .get(instance)
                    .is_some_and(|known| *known != member_id)
                {
                    results.push(Err(ResponseError::FencedInstanceId));
                    continue;
                }
            }
            if self.pending_members.remove(&member_id).is_some() {
                results.push(Ok(()));
                continue;
            }
            if !self.members.contains_key(&member_id) {
                results.push(Err(ResponseError::UnknownMemberId));
                continue;
            }
            self.remove_member(&member_id);
            anyone_left = true;
            results.push(Ok(()));
        }
        if anyone_left {
            self.after_member_left(config, now);
        }
        self.check_invariants();
        results
    }

    /// Expires silent members and overdue rebalances.
    pub fn tick(&mut self, config: &GroupConfig, now: Instant) {
        self.pending_members.retain(|_, since| {
            now.duration_since(*since) < Duration::from_millis(config.max_session_timeout_ms as u64)
        });
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_expired(now))
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in &expired {
            tracing::info!(group = %self.group_id, member = %member_id, "member session expired");
            self.remove_member(member_id);
        }
        if !expired.is_empty() {
            self.after_member_left(config, now);
        } else {
            self.maybe_complete_join(now);
        }
        self.check_invariants();
    }

    /// Topics the members subscribe to (consumer protocol metadata).
    pub fn subscribed_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .members
            .values()
            .flat_map(|m| parse_subscription_topics(&m.metadata_for(self.protocol_name.as_deref())))
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }
}

/// Topics of a consumer-protocol subscription: version i16, then an array
/// (i32 count) of i16-length strings. Anything unreadable gives no topics.
pub fn parse_subscription_topics(metadata: &[u8]) -> Vec<String> {
    fn take<'a>(bytes: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
        let (head, tail) = (bytes.get(..len)?, bytes.get(len..)?);
        *bytes = tail;
        Some(head)
    }
    let mut rest = metadata;
    let parse = |rest: &mut &[u8]| -> Option<Vec<String>> {
        take(rest, 2)?;
        let count = i32::from_be_bytes(take(rest, 4)?.try_into().ok()?);
        let mut topics = Vec::new();
        for _ in 0..count.max(0) {
            let len = i16::from_be_bytes(take(rest, 2)?.try_into().ok()?);
            topics.push(String::from_utf8(take(rest, len.max(0) as usize)?.to_vec()).ok()?);
        }
        Some(topics)
    };
    parse(&mut rest).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: GroupConfig = GroupConfig {
        min_session_timeout_ms: 10,
        max_session_timeout_ms: 60_000,
        initial_rebalance_delay_ms: 0,
    };

    fn join_request(member_id: &str, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            group_instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 1_000,
            rebalance_timeout_ms: 5_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from_static(b"meta")))
                .collect(),
            require_known_member_id: true,
        }
    }

    fn join(group: &mut Group, request: JoinRequest, now: Instant) -> oneshot::Receiver<JoinResult> {
        let (sender, receiver) = oneshot::channel();
        group.join(request, &CONFIG, now, sender);
        receiver
    }

    /// Two-step join (KIP-394): MEMBER_ID_REQUIRED, then join with that id.
    fn join_new(group: &mut Group, protocols: &[&str], now: Instant) -> (String, oneshot::Receiver<JoinResult>) {
        let mut first = join(group, join_request("", protocols), now);
        let result = first.try_recv().expect("answered at once");
        assert_eq!(result.error, Some(ResponseError::MemberIdRequired));
        let receiver = join(group, join_request(&result.member_id, protocols), now);
        (result.member_id, receiver)
    }

    fn sync(
        group: &mut Group,
        member_id: &str,
        generation_id: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> oneshot::Receiver<SyncResult> {
        let (sender, receiver) = oneshot::channel();
        let request = SyncRequest {
            member_id: member_id.to_string(),
            group_instance_id: None,
            generation_id,
            protocol_type: None,
            protocol_name: None,
            assignments,
        };
        group.sync(request, now, sender);
        receiver
    }

    #[test]
    fn two_members_rebalance_to_stable() {
        let now = Instant::now();
        let mut group = Group::new("g", now);
        let (a, mut a_join) = join_new(&mut group, &["range"], now);
        let a_result = a_join.try_recv().expect("single member completes at once");
        assert_eq!(a_result.generation_id, 1);
        assert_eq!(a_result.leader_id, a);
        let mut a_sync = sync(&mut group, &a, 1, vec![(a.clone(), Bytes::from_static(b"all"))], now);
        assert_eq!(
            a_sync.try_recv().expect("synced").assignment,
            Bytes::from_static(b"all")
        );
        assert_eq!(group.state, GroupState::Stable);

        // b joins: a learns through its heartbeat and rejoins.
        let (b, mut b_join) = join_new(&mut group, &["range"], now);
        assert!(b_join.try_recv().is_err(), "b waits for a");
        assert_eq!(
            group.heartbeat(&a, None, 1, now),
            Err(ResponseError::RebalanceInProgress)
        );
        let mut a_join = join(&mut group, join_request(&a, &["range"]), now);
        let a_result = a_join.try_recv().expect("complete");
        let b_result = b_join.try_recv().expect("complete");
        assert_eq!(a_result.generation_id, 2);
        assert_eq!(a_result.members.len(), 2, "leader sees everyone");
        assert!(b_result.members.is_empty(), "followers see no one");
        let mut b_sync = sync(&mut group, &b, 2, vec![], now);
        assert!(b_sync.try_recv().is_err(), "follower waits for the leader");
        let assignments = vec![
            (a.clone(), Bytes::from_static(b"p0")),
            (b.clone(), Bytes::from_static(b"p1")),
        ];
        let mut a_sync = sync(&mut group, &a, 2, assignments, now);
        assert_eq!(
            a_sync.try_recv().expect("leader synced").assignment,
            Bytes::from_static(b"p0")
        );
        assert_eq!(
            b_sync.try_recv().expect("follower synced").assignment,
            Bytes::from_static(b"p1")
        );
        assert_eq!(group.heartbeat(&b, None, 1, now), Err(ResponseError::IllegalGeneration));
        assert_eq!(group.heartbeat(&b, None, 2, now), Ok(()));
        assert_eq!(
            group.heartbeat("nobody", None, 2, now),
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn silent_member_expires_and_leaving_empties_the_group() {
        let now = Instant::now();
        let mut group = Group::new("g", now);
        let (a, mut a_join) = join_new(&mut group, &["range"], now);
        a_join.try_recv().expect("joined");
        sync(&mut group, &a, 1, vec![], now).try_recv().expect("synced");
        let later = now + Duration::from_millis(1_500);
        group.tick(&CONFIG, later);
        assert_eq!(group.state, GroupState::Empty, "session timeout removed the member");
        assert_eq!(group.generation_id, 2);
        let (b, mut b_join) = join_new(&mut group, &["range"], later);
        b_join.try_recv().expect("joined");
        assert_eq!(group.leave(&[(b, None)], &CONFIG, later), vec![Ok(())]);
        assert_eq!(group.state, GroupState::Empty);
    }

    #[test]
    fn inconsistent_protocols_are_refused() {
        let now = Instant::now();
        let mut group = Group::new("g", now);
        let (_, mut a_join) = join_new(&mut group, &["range"], now);
        a_join.try_recv().expect("joined");
        let mut refused = join(&mut group, join_request("", &["roundrobin"]), now);
        assert_eq!(
            refused.try_recv().expect("answered").error,
            Some(ResponseError::InconsistentGroupProtocol)
        );
    }

    #[test]
    fn protocol_is_chosen_by_votes_among_common_ones() {
        let now = Instant::now();
        let mut group = Group::new("g", now);
        let (a, mut a_join) = join_new(&mut group, &["cooperative-sticky", "range"], now);
        a_join.try_recv().expect("joined");
        sync(&mut group, &a, 1, vec![], now).try_recv().expect("synced");
        let (_, mut b_join) = join_new(&mut group, &["range", "cooperative-sticky"], now);
        let mut a_join = join(&mut group, join_request(&a, &["cooperative-sticky", "range"]), now);
        let result = a_join.try_recv().expect("complete");
        b_join.try_recv().expect("complete");
        assert_eq!(
            result.protocol_name.as_deref(),
            Some("cooperative-sticky"),
            "a tie goes to the leader's preference"
        );
    }

    #[test]
    fn static_member_restart_takes_over_without_rebalance() {
        let now = Instant::now();
        let mut group = Group::new("g", now);
        let static_join = |member_id: &str| JoinRequest {
            group_instance_id: Some("instance-1".into()),
            ..join_request(member_id, &["range"])
        };
        let (leader, mut leader_join) = join_new(&mut group, &["range"], now);
        leader_join.try_recv().expect("joined");
        sync(&mut group, &leader, 1, vec![], now).try_recv().expect("synced");
        let mut s_join = join(&mut group, static_join(""), now);
        let mut l_join = join(&mut group, join_request(&leader, &["range"]), now);
        let first = s_join.try_recv().expect("complete");
        l_join.try_recv().expect("complete");
        let old_id = first.member_id.clone();
        let assignments = vec![(old_id.clone(), Bytes::from_static(b"mine"))];
        sync(&mut group, &leader, 2, assignments, now)
            .try_recv()
            .expect("synced");
        // Restart: same instance id, no member id.
        let mut again = join(&mut group, static_join(""), now);
        let result = again.try_recv().expect("answered without a rebalance");
        assert_eq!(result.generation_id, 2);
        assert_ne!(result.member_id, old_id);
        assert_eq!(group.state, GroupState::Stable);
        let synced = sync(&mut group, &result.member_id, 2, vec![], now)
            .try_recv()
            .expect("synced");
        assert_eq!(synced.assignment, Bytes::from_static(b"mine"));
        assert_eq!(
            group.heartbeat(&old_id, Some("instance-1"), 2, now),
            Err(ResponseError::FencedInstanceId)
        );
    }

    #[test]
    fn subscription_topics_parse() {
        let mut metadata = vec![0u8, 1, 0, 0, 0, 2];
        for topic in ["a", "bc"] {
            metadata.extend_from_slice(&(topic.len() as i16).to_be_bytes());
            metadata.extend_from_slice(topic.as_bytes());
        }
        assert_eq!(parse_subscription_topics(&metadata), vec!["a", "bc"]);
        assert!(parse_subscription_topics(&metadata[..7]).is_empty());
    }
}
