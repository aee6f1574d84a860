//! Fetch (key 1), v4-v13 (v13 names topics by topic id): zero-copy reads with
//! long polling.
//!
//! Each partition is read on its owner core; the answers are cached `Bytes` or
//! segment-file regions, which the response carries as they are (sendfile).
//! When fewer than `min_bytes` are available the fetch sleeps on watchers,
//! parked by the owner cores in the same turn as their reads, until an append
//! moves one of the high watermarks or `max_wait_ms` passes: woken by appends,
//! not by a timer loop. Each pass is one message per core, whatever the
//! number of partitions (it was three per partition: read, watch, read
//! again, which at 50 MB/s of small batches was most of the broker's work).
//! After a watcher fires only its core is read again: the other cores'
//! partitions have not moved, their reads still stand and their watchers stay
//! parked, so an append on the connection's own core wakes the fetch without
//! a message to another core.
//!
//! read_committed (isolation level 1) stops at the last stable offset and lists
//! the aborted transactions in range, so clients drop their records.
//!
//! Fetch sessions (KIP-227) are not kept: every response carries session id 0,
//! which tells clients to send full fetch requests.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, FetchRequest};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use ringlog_engine::Isolation;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{check_leader_epoch, HandlerOutcome, RequestContext};
use crate::broker::Broker;
use crate::metrics;
use crate::protocol::fetch_response::{self, FetchedPartition, FetchedTopic, FIRST_TOPIC_ID_VERSION};
use crate::runtime::drain;
use crate::runtime::messages::{PartitionRead, PartitionResult, PartitionToRead, ShardRequest, TopicPartition};

pub const VERSIONS: VersionRange = VersionRange { min: 4, max: 13 };

struct WantedPartition {
    tp: TopicPartition,
    fetch_offset: i64,
    partition_max_bytes: usize,
    /// Refused before reading (unknown partition, stale epoch).
    refusal: Option<ResponseError>,
}

struct WantedTopic {
    name: String,
    topic_id: uuid::Uuid,
    partitions: Vec<WantedPartition>,
}

fn resolve_topics(body: &FetchRequest, broker: &Broker, version: i16) -> Vec<WantedTopic> {
    let metadata = broker.metadata();
    body.topics
        .iter()
        .map(|topic| {
            let known = if version >= FIRST_TOPIC_ID_VERSION {
                metadata.topic_by_id(topic.topic_id)
            } else {
                metadata.topics.get(topic.topic.as_str())
            };
            let name = known.map_or_else(|| topic.topic.to_string(), |t| t.name.clone());
            let unknown_topic = if version >= FIRST_TOPIC_ID_VERSION {
                ResponseError::UnknownTopicId
            } else {
                ResponseError::UnknownTopicOrPartition
            };
            let topic_name: Arc<str> = name.as_str().into();
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let state = known.and_then(|t| {
                        t.has_partition(partition.partition)
                            .then(|| &t.partitions[partition.partition as usize])
                    });
                    let refusal = match (known, state) {
                        (None, _) => Some(unknown_topic),
                        (Some(_), None) => Some(ResponseError::UnknownTopicOrPartition),
                        (Some(_), Some(state)) => {
                            check_leader_epoch(partition.current_leader_epoch, state.leader_epoch).err()
                        }
                    };
                    WantedPartition {
                        tp: TopicPartition {
                            topic: topic_name.clone(),
                            partition: partition.partition,
                        },
                        fetch_offset: partition.fetch_offset,
                        partition_max_bytes: partition.partition_max_bytes.max(0) as usize,
                        refusal,
                    }
                })
                .collect();
            WantedTopic {
                name,
                topic_id: known.map_or(topic.topic_id, |t| t.topic_id),
                partitions,
            }
        })
        .collect()
}

/// Per topic, per partition, in request order: what the last read of each
/// wanted partition found.
type Reads = Vec<Vec<PartitionResult<PartitionRead>>>;

/// A watcher parked on a partition's owner core, with that core: it fires
/// when the partition advances past what the read before it saw.
type Watcher = (usize, oneshot::Receiver<()>);

/// Placeholders before the first pass: refusals stay, every other partition
/// reads as NOT_LEADER_OR_FOLLOWER until its owner answers.
fn unread(topics: &[WantedTopic]) -> Reads {
    topics
        .iter()
        .map(|topic| {
            topic
                .partitions
                .iter()
                .map(|wanted| Err(wanted.refusal.unwrap_or(ResponseError::NotLeaderOrFollower)))
                .collect()
        })
        .collect()
}

/// One core's share of a pass.
#[derive(Default)]
struct CoreReads {
    partitions: Vec<PartitionToRead>,
    /// (topic, partition) index in the request of each read, in order.
    positions: Vec<(usize, usize)>,
}

/// Reads the wanted partitions of every owner core, or of `only_core`, into
/// `reads`: one message per core, the cores in parallel. With `watch` the
/// owners also park watchers in the same turn; they are returned.
async fn read_pass(
    broker: &Broker,
    topics: &[WantedTopic],
    isolation: Isolation,
    watch: bool,
    only_core: Option<usize>,
    reads: &mut Reads,
) -> Vec<Watcher> {
    let mut per_core: Vec<CoreReads> = (0..broker.core_count()).map(|_| CoreReads::default()).collect();
    for (topic_index, topic) in topics.iter().enumerate() {
        for (partition_index, wanted) in topic.partitions.iter().enumerate() {
            if wanted.refusal.is_some() {
                continue;
            }
            let core_id = broker.owner_core(&wanted.tp);
            if only_core.is_some_and(|only| only != core_id) {
                continue;
            }
            let core = &mut per_core[core_id];
            core.partitions.push(PartitionToRead {
                tp: wanted.tp.clone(),
                offset: wanted.fetch_offset,
                max_bytes: wanted.partition_max_bytes,
            });
            core.positions.push((topic_index, partition_index));
        }
    }
    let mut pending = Vec::new();
    for (core, CoreReads { partitions, positions }) in per_core.into_iter().enumerate() {
        if partitions.is_empty() {
            continue;
        }
        let (reply, receiver) = oneshot::channel();
        broker.send_to_core(
            core,
            ShardRequest::ReadPartitions {
                reads: partitions,
                isolation,
                watch,
                reply,
            },
        );
        pending.push((core, positions, receiver));
    }
    let mut watchers = Vec::new();
    for (core, positions, receiver) in pending {
        // A core shutting down drops the request: its partitions keep what
        // they held (NOT_LEADER_OR_FOLLOWER before their first read).
        let Ok(answer) = receiver.await else { continue };
        watchers.extend(answer.watchers.into_iter().map(|watcher| (core, watcher)));
        for ((topic_index, partition_index), result) in positions.into_iter().zip(answer.results) {
            reads[topic_index][partition_index] = result;
        }
    }
    watchers
}

/// Waits for the first watcher to fire; returns its core. Only the one
/// returned has completed (the others were still pending when polled).
async fn first_fired(watchers: &mut [Watcher]) -> usize {
    let waiting = watchers.iter_mut().map(|(core, receiver)| {
        Box::pin(async move {
            // A dropped sender (the partition closed) wakes the fetch too.
            let _ = receiver.await;
            *core
        })
    });
    futures_util::future::select_all(waiting).await.0
}

pub async fn handle(body: FetchRequest, request: RequestContext) -> HandlerOutcome {
    let broker = request.broker();
    let version = request.version;
    let topics = resolve_topics(&body, broker, version);
    let max_wait_ms = (body.max_wait_ms.max(0) as u64).min(broker.config.fetch_max_wait_ms_max);
    let deadline = Instant::now() + Duration::from_millis(max_wait_ms);
    let min_bytes = body.min_bytes.max(0) as usize;
    let isolation = if body.isolation_level == 1 {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };
    let response_max_bytes = if body.max_bytes > 0 {
        body.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut reads = unread(&topics);
    let mut watchers: Vec<Watcher> = Vec::new();
    // Every owner core, or after a watcher fired only its core: the other
    // cores' partitions have not moved since they were read, and their
    // watchers are still parked.
    let mut only_core = None;
    loop {
        // Watchers cost a channel per partition: only a long poll parks them.
        let may_wait = min_bytes > 0 && Instant::now() < deadline;
        match only_core {
            // The re-read core parks fresh watchers; drop its old ones.
            Some(core) => watchers.retain(|(owner, _)| *owner != core),
            None => watchers.clear(),
        }
        watchers.extend(read_pass(broker, &topics, isolation, may_wait, only_core, &mut reads).await);
        only_core = None;
        let available_bytes: usize = reads.iter().flatten().flatten().map(|r| r.total_bytes).sum();
        let any_error = reads.iter().flatten().any(Result::is_err);
        let draining = drain::is_draining();
        if available_bytes >= min_bytes || any_error || draining || Instant::now() >= deadline {
            let fetched = assemble(topics, reads, response_max_bytes);
            return Ok(Some(fetch_response::encode(
                version,
                request.correlation_id,
                0,
                fetched,
            )));
        }
        // A shutdown answers long polls at once, with what they have.
        let stopping = drain::drained();
        if watchers.is_empty() {
            // Nothing to watch (or every watcher list was full): wait out max_wait_ms.
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = stopping => {}
            }
            continue;
        }
        tokio::select! {
            core = first_fired(&mut watchers) => only_core = Some(core),
            _ = tokio::time::sleep_until(deadline) => {}
            _ = stopping => {}
        }
    }
}

/// Builds the response, keeping within the response's `max_bytes` except for
/// the first partition with data (KIP-74).
fn assemble(
    topics: Vec<WantedTopic>,
    reads: Vec<Vec<PartitionResult<PartitionRead>>>,
    response_max_bytes: usize,
) -> Vec<FetchedTopic> {
    let mut remaining_bytes = response_max_bytes;
    let mut any_data = false;
    topics
        .into_iter()
        .zip(reads)
        .map(|(topic, topic_reads)| FetchedTopic {
            name: topic.name,
            topic_id: topic.topic_id,
            partitions: topic
                .partitions
                .into_iter()
                .zip(topic_reads)
                .map(|(wanted, read)| match read {
                    Ok(read) => {
                        let offsets = read.offsets;
                        let fits = read.total_bytes <= remaining_bytes || !any_data;
                        let records = if fits { read.chunks } else { Vec::new() };
                        if fits && read.total_bytes > 0 {
                            metrics::count_fetched(&wanted.tp.topic, read.total_bytes as u64, read.records);
                            any_data = true;
                            remaining_bytes = remaining_bytes.saturating_sub(read.total_bytes);
                        }
                        FetchedPartition {
                            partition: wanted.tp.partition,
                            error_code: 0,
                            high_watermark: offsets.map_or(-1, |o| o.high_watermark),
                            last_stable_offset: offsets.map_or(-1, |o| o.last_stable_offset),
                            log_start_offset: offsets.map_or(-1, |o| o.log_start_offset),
                            aborted: if fits { read.aborted } else { Vec::new() },
                            records,
                        }
                    }
                    Err(error) => {
                        metrics::count_error(ApiKey::Fetch as i16, error);
                        FetchedPartition {
                            partition: wanted.tp.partition,
                            error_code: error.code(),
                            high_watermark: -1,
                            last_stable_offset: -1,
                            log_start_offset: -1,
                            aborted: Vec::new(),
                            records: Vec::new(),
                        }
                    }
                })
                .collect(),
        })
        .collect()
}
