//! Fetch (key 1), v4-v13 (v13 names topics by topic id): zero-copy reads with
//! long polling.
//!
//! Each partition is read on its owner core; the answers are cached `Bytes` or
//! segment-file regions, which the response carries as they are (sendfile).
//! When fewer than `min_bytes` are available the fetch sleeps until an append
//! moves one of the high watermarks or `max_wait_ms` passes: woken by appends,
//! not by a timer loop. The owner cores park watchers in the same turn as
//! their reads; when one fires, that owner reads its partitions again and
//! sends the fresh answer to the fetch, which replaces that core's share and
//! decides again. So a wake is one message between cores (it was three:
//! wake, read request, answer), and the first read is one message per core,
//! whatever the number of partitions.
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
use crate::runtime::messages::{
    PartitionRead, PartitionReads, PartitionResult, PartitionToRead, ShardRequest, TopicPartition,
};

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

/// Where one core's answers go: (topic, partition) index in the request of
/// each partition it reads, in the order it answers.
type Positions = Vec<(usize, usize)>;

/// What one pass over the wanted partitions found.
struct FetchPass {
    /// Per topic, per partition, in request order.
    reads: Vec<Vec<PartitionResult<PartitionRead>>>,
    /// Per watching core: its partitions read again once one of them advances.
    rereads: Vec<(Positions, oneshot::Receiver<PartitionReads>)>,
}

impl FetchPass {
    fn available_bytes(&self) -> usize {
        self.reads.iter().flatten().flatten().map(|r| r.total_bytes).sum()
    }

    fn any_error(&self) -> bool {
        self.reads.iter().flatten().any(Result::is_err)
    }

    /// Puts a core's fresh answer in place of what it read before.
    fn merge(&mut self, positions: &Positions, results: Vec<PartitionResult<PartitionRead>>) {
        debug_assert_eq!(
            positions.len(),
            results.len(),
            "a core answers each partition it was asked"
        );
        for (&(topic_index, partition_index), result) in positions.iter().zip(results) {
            self.reads[topic_index][partition_index] = result;
        }
    }

    /// Waits for the first core to read again and merges its answer. A core
    /// shutting down drops its re-read: the fetch stops waiting on it.
    async fn next_reread(&mut self) {
        let receivers = self.rereads.iter_mut().map(|(_, receiver)| receiver);
        let (answer, index, _) = futures_util::future::select_all(receivers).await;
        match answer {
            Ok(PartitionReads { results, next }) => {
                let positions = std::mem::take(&mut self.rereads[index].0);
                self.merge(&positions, results);
                match next {
                    Some(next) => self.rereads[index] = (positions, next),
                    None => drop(self.rereads.swap_remove(index)),
                }
            }
            Err(_) => drop(self.rereads.swap_remove(index)),
        }
    }
}

/// One core's share of a pass.
#[derive(Default)]
struct CoreReads {
    partitions: Vec<PartitionToRead>,
    positions: Positions,
}

/// Reads every wanted partition on its owner: one message per core, all cores
/// in parallel. With `watch` the owners also park watchers in the same turn.
async fn read_all(broker: &Broker, topics: &[WantedTopic], isolation: Isolation, watch: bool) -> FetchPass {
    let mut per_core: Vec<CoreReads> = (0..broker.core_count()).map(|_| CoreReads::default()).collect();
    let reads = topics
        .iter()
        .map(|topic| {
            topic
                .partitions
                .iter()
                .map(|wanted| Err(wanted.refusal.unwrap_or(ResponseError::NotLeaderOrFollower)))
                .collect()
        })
        .collect();
    for (topic_index, topic) in topics.iter().enumerate() {
        for (partition_index, wanted) in topic.partitions.iter().enumerate() {
            if wanted.refusal.is_some() {
                continue;
            }
            let core = &mut per_core[broker.owner_core(&wanted.tp)];
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
        pending.push((positions, receiver));
    }
    let mut pass = FetchPass {
        reads,
        rereads: Vec::new(),
    };
    for (positions, receiver) in pending {
        // A core shutting down drops the request: its partitions keep the
        // NOT_LEADER_OR_FOLLOWER placeholder.
        let Ok(PartitionReads { results, next }) = receiver.await else {
            continue;
        };
        pass.merge(&positions, results);
        pass.rereads.extend(next.map(|next| (positions, next)));
    }
    pass
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
    // Watchers cost a channel per partition: only a long poll parks them.
    let may_wait = min_bytes > 0 && Instant::now() < deadline;
    let mut pass = read_all(broker, &topics, isolation, may_wait).await;
    loop {
        let enough = pass.available_bytes() >= min_bytes || pass.any_error();
        if enough || drain::is_draining() || Instant::now() >= deadline {
            break;
        }
        // A shutdown answers long polls at once, with what they have.
        let stopping = drain::drained();
        let woken = async {
            if pass.rereads.is_empty() {
                // Nothing to watch (every watcher list was full): wait out max_wait_ms.
                std::future::pending::<()>().await;
            }
            pass.next_reread().await;
        };
        tokio::select! {
            _ = woken => continue,
            _ = tokio::time::sleep_until(deadline) => {}
            _ = stopping => {}
        }
        // Partitions whose watcher lists were full advance unseen: one last look.
        pass = read_all(broker, &topics, isolation, false).await;
        break;
    }
    let fetched = assemble(topics, pass.reads, response_max_bytes);
    Ok(Some(fetch_response::encode(
        version,
        request.correlation_id,
        0,
        fetched,
    )))
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
