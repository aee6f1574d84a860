//! One core: a pinned thread running its own io_uring event loop. It owns a
//! disjoint set of partitions outright (no locks), accepts connections on its
//! own SO_REUSEPORT listener, and serves requests from every core for the
//! partitions it owns.
//!
//! Invariants:
//! - A partition is opened only by its owner core ([`crate::runtime::router`]).
//! - Shard state is borrowed only between awaits, never across one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use ringlog_engine::io::spawn_supervised;
use ringlog_engine::log::compaction::CompactionPolicy;
use ringlog_engine::log::producer_state::{AppendCheckError, SequenceError};
use ringlog_engine::{io::spawn_local, BatchCache, Isolation, LogConfig, LogError, PartitionLog, SharedLog};
use tokio::sync::{mpsc, oneshot};

use crate::broker::Broker;
use crate::config::TimestampType;
use crate::coordinator::group::GroupConfig;
use crate::coordinator::offsets_log::{self, OffsetRecord, OFFSETS_TOPIC};
use crate::coordinator::transaction::{self, TransactionCoordinator, TRANSACTION_TOPIC};
use crate::coordinator::{self, GroupCoordinator};
use crate::net::listener;
use crate::runtime::append_positions;
use crate::runtime::controller;
use crate::runtime::messages::{
    ControlRequest, GroupRequest, PartitionRead, PartitionReads, PartitionResult, PartitionToRead, ProduceOutcome,
    ShardRequest, TopicPartition,
};
use crate::runtime::transactions;
use crate::topic_config::{Compression, TopicSettings};

/// How often group sessions and rebalance deadlines are checked.
const GROUP_TICK_MS: u64 = 100;
/// How often a partition whose write failed (disk full) tries to reopen.
const FAILED_PARTITION_RETRY_MS: u64 = 1000;
/// A partition unused this long closes its files (they reopen on use), so
/// thousands of partitions do not hold thousands of descriptors.
const IDLE_FILES_CLOSE_MS: i64 = 60_000;
/// How often each core looks for idle partitions and checks its budget.
const IDLE_FILES_SWEEP_MS: u64 = 1_000;
/// How long a shutdown waits for connections to finish their requests.
const DRAIN_TIMEOUT_MS: u64 = 10_000;
/// Read size when replaying `__consumer_offsets` at start.
const OFFSETS_LOAD_CHUNK_BYTES: usize = 16 * 1024 * 1024;

/// Everything a core needs to start.
pub struct CoreStartup {
    pub core_id: usize,
    pub broker: Arc<Broker>,
    pub requests: mpsc::UnboundedReceiver<ShardRequest>,
    /// Core 0 also runs the controller.
    pub control_requests: Option<mpsc::UnboundedReceiver<ControlRequest>>,
    /// The SO_REUSEPORT listener every core shares.
    pub listener: std::net::TcpListener,
    /// The core's own listener, its node's (`core.listeners`).
    pub own_listener: Option<std::net::TcpListener>,
    pub clean_shutdown: bool,
    /// Reports the number of partitions opened, or why the core could not start.
    pub ready: std::sync::mpsc::Sender<Result<usize, String>>,
    pub pin_to_cpu: Option<core_affinity::CoreId>,
}

struct OwnedPartition {
    log: SharedLog,
    settings: TopicSettings,
}

pub(crate) struct Shard {
    core_id: usize,
    pub(crate) broker: Arc<Broker>,
    partitions: HashMap<TopicPartition, OwnedPartition>,
    cache: Rc<RefCell<BatchCache>>,
    next_partition_key: u64,
    clean_shutdown: bool,
    groups: Rc<RefCell<GroupCoordinator>>,
    pub(crate) transactions: Rc<RefCell<TransactionCoordinator>>,
}

/// One partition's read as a fetch response carries it, with the offsets the
/// log had when read.
fn read_log(
    log: &PartitionLog,
    tp: &TopicPartition,
    offset: i64,
    max_bytes: usize,
    min_one_batch: bool,
    isolation: Isolation,
) -> PartitionResult<PartitionRead> {
    let offsets = log.offsets();
    match log.read_isolated(offset, max_bytes, min_one_batch, isolation) {
        Ok(result) => Ok(PartitionRead {
            chunks: result.chunks,
            total_bytes: result.total_bytes,
            records: u64::try_from(result.next_offset - offset).unwrap_or(0),
            offsets: Some(offsets),
            aborted: result.aborted.iter().map(|a| (a.producer_id, a.first_offset)).collect(),
        }),
        Err(LogError::OffsetOutOfRange { .. }) => Err(ResponseError::OffsetOutOfRange),
        Err(error) => Err(storage_error(tp, &error)),
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs one core until it is told to shut down.
pub fn run_core(startup: CoreStartup) {
    if let Some(cpu) = startup.pin_to_cpu {
        if !core_affinity::set_for_current(cpu) {
            tracing::warn!(core = startup.core_id, "could not pin thread to its CPU");
        }
    }
    crate::metrics::set_current_core(startup.core_id);
    tokio_uring::start(run_core_loop(startup));
}

/// The core's timers and background work, each started again if it panics.
fn spawn_services(shard: &Rc<RefCell<Shard>>, broker: &Broker) {
    let config = &broker.config;
    let own = shard.clone();
    spawn_supervised("group timer", move || run_group_timer(own.clone()));
    let (own, interval_ms) = (shard.clone(), config.log_retention_check_interval_ms);
    spawn_supervised("retention", move || run_retention_timer(own.clone(), interval_ms));
    let (own, backoff_ms) = (shard.clone(), config.log_cleaner_backoff_ms);
    spawn_supervised("cleaner", move || run_cleaner(own.clone(), backoff_ms));
    let own = shard.clone();
    spawn_supervised("failed partition repair", move || {
        run_failed_partition_repair(own.clone())
    });
    let (own, cores) = (shard.clone(), broker.core_count());
    spawn_supervised("idle files sweep", move || run_idle_files_sweep(own.clone(), cores));
    if let Some(interval_ms) = config.log_flush_interval_ms {
        let own = shard.clone();
        spawn_supervised("flush timer", move || run_flush_timer(own.clone(), interval_ms));
    }
}

async fn run_core_loop(startup: CoreStartup) {
    let CoreStartup {
        core_id,
        broker,
        mut requests,
        control_requests,
        listener,
        own_listener,
        clean_shutdown,
        ready,
        ..
    } = startup;
    let shard = Rc::new(RefCell::new(Shard {
        core_id,
        cache: Rc::new(RefCell::new(broker.new_batch_cache())),
        broker: broker.clone(),
        partitions: HashMap::new(),
        next_partition_key: 0,
        clean_shutdown,
        groups: Rc::new(RefCell::new(GroupCoordinator::new(
            GroupConfig {
                min_session_timeout_ms: broker.config.group_min_session_timeout_ms,
                max_session_timeout_ms: broker.config.group_max_session_timeout_ms,
                initial_rebalance_delay_ms: broker.config.group_initial_rebalance_delay_ms,
            },
            Duration::from_secs(broker.config.offsets_retention_minutes * 60),
        ))),
        transactions: Rc::new(RefCell::new(TransactionCoordinator::default())),
    }));
    let opened = shard.borrow_mut().open_owned_partitions();
    let opened = opened.and_then(|count| shard.borrow().load_internal_topics().map(|()| count));
    let _ = ready.send(opened);
    let accept_tasks = match std::iter::once((listener, false))
        .chain(own_listener.map(|own| (own, true)))
        .map(|(listener, own)| listener::start_accepting(listener, broker.clone(), core_id, own))
        .collect::<std::io::Result<Vec<_>>>()
    {
        Ok(tasks) => tasks,
        Err(error) => {
            tracing::error!(core = core_id, %error, "cannot accept connections");
            return;
        }
    };
    let stop_accepting = || accept_tasks.iter().for_each(|task| task.abort());
    if let Some(control_requests) = control_requests {
        spawn_local(controller::run_controller(broker.clone(), control_requests));
    }
    let prepared = shard.borrow().transactions.borrow().prepared();
    for (transactional_id, txn) in prepared {
        spawn_local(transactions::complete_prepared(shard.clone(), transactional_id, txn));
    }
    spawn_services(&shard, &broker);
    while let Some(request) = requests.recv().await {
        if let ShardRequest::Shutdown { reply } = request {
            stop_accepting();
            close_partitions(&shard).await;
            let _ = reply.send(());
            return;
        }
        match request {
            ShardRequest::Drain { reply } => {
                stop_accepting();
                crate::runtime::drain::begin();
                spawn_local(async move {
                    wait_for_connections_to_close().await;
                    let _ = reply.send(());
                });
            }
            ShardRequest::Metrics { reply } => {
                let _ = reply.send(shard.borrow().metrics_snapshot(requests.len()));
            }
            ShardRequest::OpenPartitions { partitions, reply } => {
                spawn_local(open_partitions_in_steps(shard.clone(), partitions, reply));
            }
            ShardRequest::Transaction {
                transactional_id,
                request,
            } => spawn_local(transactions::handle(shard.clone(), transactional_id, request)),
            other => shard.borrow_mut().handle(other),
        }
    }
}

/// `log.flush.interval.ms`: fsync every partition with unflushed records.
async fn run_flush_timer(shard: Rc<RefCell<Shard>>, interval_ms: u64) {
    let mut ticks = tokio::time::interval(Duration::from_millis(interval_ms));
    loop {
        ticks.tick().await;
        for owned in shard.borrow().partitions.values() {
            owned.log.borrow_mut().request_fsync();
        }
    }
}

/// Group session and rebalance timeouts, and expiry of old empty groups' offsets.
async fn run_group_timer(shard: Rc<RefCell<Shard>>) {
    let mut ticks = tokio::time::interval(Duration::from_millis(GROUP_TICK_MS));
    loop {
        ticks.tick().await;
        let groups = shard.borrow().groups.clone();
        let expired = groups.borrow_mut().tick(std::time::Instant::now());
        let overdue = shard.borrow().transactions.borrow().expired(now_ms());
        for (transactional_id, aborting) in overdue {
            spawn_local(transactions::abort_expired(shard.clone(), transactional_id, aborting));
        }
        for (group_id, partitions) in expired {
            tracing::info!(group = %group_id, "deleting offsets of a group empty past offsets.retention.minutes");
            let records = tombstones(&group_id, partitions);
            shard.borrow_mut().append_offset_records(&group_id, records, |_| {});
        }
    }
}

fn tombstones(group_id: &str, partitions: Vec<(String, i32)>) -> Vec<OffsetRecord> {
    partitions
        .into_iter()
        .map(|(topic, partition)| OffsetRecord {
            group: group_id.to_string(),
            topic,
            partition,
            committed: None,
        })
        .collect()
}

/// The cleaner of this core (`log.cleaner.backoff.ms`): compacts its
/// compacted partitions, one segment at a time, yielding between segments so
/// appends and fetches keep flowing.
async fn run_cleaner(shard: Rc<RefCell<Shard>>, backoff_ms: u64) {
    let mut ticks = tokio::time::interval(Duration::from_millis(backoff_ms));
    loop {
        ticks.tick().await;
        let candidates: Vec<(TopicPartition, SharedLog, CompactionPolicy)> = shard
            .borrow()
            .partitions
            .iter()
            .filter(|(_, owned)| owned.settings.cleanup_compact)
            .map(|(tp, owned)| (tp.clone(), owned.log.clone(), owned.settings.compaction_policy()))
            .collect();
        for (tp, log, policy) in candidates {
            if let Err(error) = compact_partition(&log, &policy).await {
                tracing::error!(topic = %tp.topic, partition = tp.partition, %error, "compaction failed");
            }
        }
    }
}

async fn compact_partition(log: &SharedLog, policy: &CompactionPolicy) -> Result<(), LogError> {
    let removed = PartitionLog::compact(log, policy, now_ms()).await?;
    if removed > 0 {
        tracing::debug!(dir = %log.borrow().dir().display(), removed, "compacted");
    }
    Ok(())
}

/// `log.retention.check.interval.ms`: retention on this core's partitions.
async fn run_retention_timer(shard: Rc<RefCell<Shard>>, interval_ms: u64) {
    let mut ticks = tokio::time::interval(Duration::from_millis(interval_ms));
    loop {
        ticks.tick().await;
        shard.borrow_mut().enforce_retention();
    }
}

/// Connections close once they have answered what they read (the core's
/// drain signal stops their reading); gives up after [`DRAIN_TIMEOUT_MS`].
async fn wait_for_connections_to_close() {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(DRAIN_TIMEOUT_MS);
    while crate::metrics::core_connections_open() > 0 {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                connections = crate::metrics::core_connections_open(),
                "connections still busy at shutdown; closing them"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Segment descriptors one core may hold: half the process's open-files limit
/// (the rest is for connections), shared by the cores.
fn segment_files_budget(cores: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we own.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let open_files_max = if known { limit.rlim_cur as usize } else { 1024 };
    (open_files_max / 2 / cores.max(1)).max(16)
}

/// Closes the files of partitions idle for [`IDLE_FILES_CLOSE_MS`], and of
/// the least recently used ones while the core holds more than its budget, so
/// the number of partitions is bounded by memory, not descriptors (those in
/// use at once still need theirs).
async fn run_idle_files_sweep(shard: Rc<RefCell<Shard>>, cores: usize) {
    let budget = segment_files_budget(cores);
    let mut ticks = tokio::time::interval(Duration::from_millis(IDLE_FILES_SWEEP_MS));
    loop {
        ticks.tick().await;
        let now = now_ms();
        let shard = shard.borrow();
        let mut open: Vec<(i64, &SharedLog, usize)> = Vec::new();
        for owned in shard.partitions.values() {
            let mut log = owned.log.borrow_mut();
            if log.open_files() > 0 && !log.release_idle_files(now, IDLE_FILES_CLOSE_MS) {
                open.push((log.last_used_ms(), &owned.log, log.open_files()));
            }
        }
        let mut held: usize = open.iter().map(|(_, _, files)| files).sum();
        if held <= budget {
            continue;
        }
        open.sort_unstable_by_key(|(last_used_ms, _, _)| *last_used_ms);
        let target = budget * 9 / 10;
        for (_, log, files) in open {
            if held <= target {
                break;
            }
            if log.borrow_mut().release_idle_files(now, 0) {
                held -= files;
            }
        }
        tracing::debug!(held, budget, "closed least recently used partitions' files");
    }
}

/// Partitions opened between yields when a topic is created: a topic of
/// thousands of partitions must not hold up the core's other work.
const PARTITIONS_OPENED_PER_STEP: usize = 64;

async fn open_partitions_in_steps(
    shard: Rc<RefCell<Shard>>,
    partitions: Vec<TopicPartition>,
    reply: oneshot::Sender<()>,
) {
    for step in partitions.chunks(PARTITIONS_OPENED_PER_STEP) {
        for tp in step {
            shard.borrow_mut().open_new_partition(tp);
        }
        tokio::task::yield_now().await;
    }
    let _ = reply.send(());
}

/// Writes resume by themselves once the disk has room again.
async fn run_failed_partition_repair(shard: Rc<RefCell<Shard>>) {
    let mut ticks = tokio::time::interval(Duration::from_millis(FAILED_PARTITION_RETRY_MS));
    loop {
        ticks.tick().await;
        shard.borrow_mut().reopen_failed_partitions();
    }
}

async fn close_partitions(shard: &Rc<RefCell<Shard>>) {
    let logs: Vec<(TopicPartition, SharedLog)> = shard
        .borrow_mut()
        .partitions
        .drain()
        .map(|(tp, owned)| (tp, owned.log))
        .collect();
    for (tp, log) in logs {
        if let Err(error) = PartitionLog::close(&log).await {
            tracing::error!(topic = %tp.topic, partition = tp.partition, %error, "closing partition failed");
        }
    }
}

/// Calls `visit` with each whole batch in `bytes`.
fn for_each_batch(mut bytes: &[u8], mut visit: impl FnMut(&ringlog_engine::batch::BatchHeader, &[u8])) {
    while let Ok(total) = ringlog_engine::batch::batch_total_bytes(bytes) {
        let Some(batch) = bytes.get(..total) else { break };
        if let Ok(header) = ringlog_engine::batch::BatchHeader::parse(batch) {
            visit(&header, batch);
        }
        bytes = &bytes[total..];
    }
}

/// Applies one replayed `__consumer_offsets` batch: plain commits at once,
/// transactional ones at their marker.
fn replay_offsets_batch(
    groups: &mut GroupCoordinator,
    header: &ringlog_engine::batch::BatchHeader,
    batch: &[u8],
    now: std::time::Instant,
) {
    if header.is_control() {
        if let Some(commit) = ringlog_engine::batch::marker_is_commit(batch) {
            groups.resolve_pending_transaction(header.producer_id, commit, now);
        }
        return;
    }
    let records: Vec<OffsetRecord> = ringlog_engine::batch::parse_records(batch)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.key.and_then(|key| offsets_log::decode(key, r.value)))
        .collect();
    if header.is_transactional() {
        groups.add_pending_transaction(header.producer_id, records);
    } else {
        for record in records {
            groups.apply(record, now);
        }
    }
}

/// One batch of offset-commit records (or tombstones).
fn offset_records_batch(records: &[OffsetRecord]) -> bytes::BytesMut {
    let encoded: Vec<_> = records
        .iter()
        .map(|r| {
            let key = offsets_log::encode_key(&r.group, &r.topic, r.partition);
            (key, r.committed.as_ref().map(offsets_log::encode_value))
        })
        .collect();
    let key_values: Vec<ringlog_engine::batch::KeyValue<'_>> =
        encoded.iter().map(|(k, v)| (Some(&k[..]), v.as_deref())).collect();
    ringlog_engine::batch::build_batch(&key_values, now_ms())
}

/// Compacted topics refuse records without a key, as Kafka does.
fn all_records_keyed(batch: &[u8], limit_bytes: usize) -> bool {
    let Ok(header) = ringlog_engine::batch::BatchHeader::parse(batch) else {
        return false;
    };
    let Ok(records) = ringlog_engine::compression::batch_records(batch, limit_bytes) else {
        return false;
    };
    ringlog_engine::batch::split_records(&records, header.records_count)
        .is_some_and(|records| records.iter().all(|r| r.key.is_some()))
}

/// Storage-side compression: batches whose codec differs from the topic's
/// `compression.type` are recompressed here, on the owning core.
fn recompress(
    batches: Vec<bytes::Bytes>,
    compression: Compression,
    limit_bytes: usize,
) -> Result<Vec<bytes::Bytes>, ringlog_engine::compression::CompressionError> {
    use ringlog_engine::batch::Codec;
    let target = match compression {
        Compression::Producer => return Ok(batches),
        Compression::Uncompressed => Codec::None,
        Compression::Gzip => Codec::Gzip,
        Compression::Snappy => Codec::Snappy,
        Compression::Lz4 => Codec::Lz4,
        Compression::Zstd => Codec::Zstd,
    };
    batches
        .into_iter()
        .map(|batch| {
            let recompressed = ringlog_engine::compression::recompress_batch(&batch, target, limit_bytes)?;
            Ok(recompressed.map_or(batch, bytes::BytesMut::freeze))
        })
        .collect()
}

/// Kafka's codes for idempotence refusals.
fn sequence_error(refusal: AppendCheckError) -> ResponseError {
    match refusal {
        AppendCheckError::Sequence(SequenceError::OutOfOrder { .. }) => ResponseError::OutOfOrderSequenceNumber,
        AppendCheckError::Sequence(SequenceError::InvalidEpoch { .. }) => ResponseError::InvalidProducerEpoch,
        AppendCheckError::DuplicateInBatchSet => ResponseError::DuplicateSequenceNumber,
    }
}

fn storage_error(tp: &TopicPartition, error: &LogError) -> ResponseError {
    if let Some(suppressed) = storage_error_log_allowed() {
        tracing::error!(topic = %tp.topic, partition = tp.partition, %error, suppressed, "partition storage error");
    }
    ResponseError::KafkaStorageError
}

/// While a disk is full every produce fails the same way, thousands a
/// second, and the log may be on that disk: each core logs at most one
/// storage error per [`STORAGE_ERROR_LOG_INTERVAL`].
#[derive(Default)]
struct LogThrottle {
    last_logged: Option<std::time::Instant>,
    suppressed: u64,
}

const STORAGE_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(1);

impl LogThrottle {
    /// `Some(how many were left out since the last one)` when this one may be logged.
    fn allow(&mut self, now: std::time::Instant) -> Option<u64> {
        if self
            .last_logged
            .is_some_and(|at| now.duration_since(at) < STORAGE_ERROR_LOG_INTERVAL)
        {
            self.suppressed += 1;
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

thread_local! {
    static STORAGE_ERROR_LOG: RefCell<LogThrottle> = RefCell::new(LogThrottle::default());
}

fn storage_error_log_allowed() -> Option<u64> {
    STORAGE_ERROR_LOG.with(|throttle| throttle.borrow_mut().allow(std::time::Instant::now()))
}

impl Shard {
    fn open_owned_partitions(&mut self) -> Result<usize, String> {
        let metadata = self.broker.metadata();
        let mut opened = 0;
        for topic in metadata.topics.values() {
            for state in &topic.partitions {
                let tp = TopicPartition {
                    topic: topic.name.as_str().into(),
                    partition: state.partition,
                };
                if self.broker.owner_core(&tp) == self.core_id {
                    let log = self.open_log(&tp, self.clean_shutdown).map_err(|e| e.to_string())?;
                    self.partitions.extend(log.map(|owned| (tp, owned)));
                    opened += 1;
                }
            }
        }
        Ok(opened)
    }

    fn partition_dir(&self, tp: &TopicPartition) -> PathBuf {
        self.broker.data_dir.join(format!("{}-{}", tp.topic, tp.partition))
    }

    /// Opens `tp`'s log from disk; `None` when metadata no longer knows it.
    /// `trust_files`: the last shutdown was clean, so indexes can be trusted.
    fn open_log(&mut self, tp: &TopicPartition, trust_files: bool) -> Result<Option<OwnedPartition>, LogError> {
        let metadata = self.broker.metadata();
        let Some(topic) = metadata.topics.get(&*tp.topic) else {
            return Ok(None);
        };
        let Some(state) = topic.partitions.get(tp.partition as usize) else {
            return Ok(None);
        };
        let config = &self.broker.config;
        let settings = TopicSettings::resolve(topic, config);
        let log_config = LogConfig {
            segment_bytes: settings.segment_bytes,
            segment_ms: settings.segment_ms,
            index_interval_bytes: config.log_index_interval_bytes,
            flush_interval_messages: config.log_flush_interval_messages,
            io_policy: self.broker.io_policy,
            leader_epoch: state.leader_epoch,
            recycle_segments: config.log_segment_recycle,
        };
        self.next_partition_key += 1;
        let dir = self.partition_dir(tp);
        let log = PartitionLog::open(
            &dir,
            self.next_partition_key,
            log_config,
            self.cache.clone(),
            trust_files,
            now_ms(),
        )?;
        Ok(Some(OwnedPartition { log, settings }))
    }

    /// Reopens from disk every partition whose write failed (disk full, I/O
    /// error) and that no task still holds: recovery drops whatever was not
    /// durable, and appends are accepted again. A log that cannot reopen yet
    /// stays as it is (still serving reads) until the next try.
    fn reopen_failed_partitions(&mut self) {
        let failed: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, owned)| owned.log.borrow().is_failed() && Rc::strong_count(&owned.log) == 1)
            .map(|(tp, _)| tp.clone())
            .collect();
        if !failed.is_empty() {
            // Perhaps for a full disk: the spare segment files of every core
            // give their space back first.
            for core in 0..self.broker.core_count() {
                self.broker.send_to_core(core, ShardRequest::RemoveSpareSegments);
            }
        }
        for tp in failed {
            match self.open_log(&tp, false) {
                Ok(Some(reopened)) => {
                    if let Some(old) = self.partitions.insert(tp.clone(), reopened) {
                        // Cached batches past the durable end must never be served.
                        self.cache.borrow_mut().remove_partition(old.log.borrow().key());
                    }
                    tracing::info!(topic = %tp.topic, partition = tp.partition, "partition reopened after a failed write; accepting appends again");
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, %error, "failed partition cannot reopen yet");
                }
            }
        }
    }

    fn remove_spare_segments(&self) {
        for owned in self.partitions.values() {
            owned.log.borrow_mut().remove_spare_segment();
        }
    }

    /// The partition if this core owns it and metadata knows it; opened lazily.
    fn partition(&mut self, tp: &TopicPartition) -> PartitionResult<&OwnedPartition> {
        if !self.partitions.contains_key(tp) {
            let known = self
                .broker
                .metadata()
                .topics
                .get(&*tp.topic)
                .is_some_and(|t| t.has_partition(tp.partition));
            if !known {
                return Err(ResponseError::UnknownTopicOrPartition);
            }
            let opened = self
                .open_log(tp, self.clean_shutdown)
                .map_err(|e| storage_error(tp, &e))?;
            self.partitions.extend(opened.map(|owned| (tp.clone(), owned)));
        }
        self.partitions.get(tp).ok_or(ResponseError::UnknownTopicOrPartition)
    }

    fn handle(&mut self, request: ShardRequest) {
        match request {
            ShardRequest::Produce {
                tp,
                batches,
                queued_bytes,
                reply,
            } => {
                self.produce(tp.clone(), batches, reply);
                let append_position = self
                    .partition(&tp)
                    .ok()
                    .and_then(|owned| owned.log.borrow().direct_append_position());
                append_positions::note_handled(&tp, queued_bytes, append_position);
            }
            ShardRequest::Read {
                tp,
                offset,
                max_bytes,
                min_one_batch,
                isolation,
                reply,
            } => {
                let read = self
                    .partition(&tp)
                    .and_then(|owned| read_log(&owned.log.borrow(), &tp, offset, max_bytes, min_one_batch, isolation));
                let _ = reply.send(read);
            }
            ShardRequest::ReadPartitions {
                reads,
                isolation,
                watch,
                reply,
            } => {
                let (results, watchers) = self.read_partitions(&reads, isolation, watch);
                let next = (!watchers.is_empty()).then(|| self.read_again_on_wake(reads, isolation, watchers));
                let _ = reply.send(PartitionReads { results, next });
            }
            ShardRequest::ListOffset {
                tp,
                timestamp,
                isolation,
                reply,
            } => {
                let _ = reply.send(self.list_offset(&tp, timestamp, isolation));
            }
            ShardRequest::EpochEndOffset { tp, epoch, reply } => {
                let result = self.partition(&tp).map(|p| p.log.borrow().end_offset_for_epoch(epoch));
                let _ = reply.send(result);
            }
            ShardRequest::DeletePartitions { partitions, reply } => {
                for tp in partitions {
                    self.delete_partition(&tp);
                }
                let _ = reply.send(());
            }
            ShardRequest::Group { group_id, request } => self.handle_group(group_id, request),
            ShardRequest::ListGroups { reply } => {
                let _ = reply.send(self.groups.borrow().list());
            }
            ShardRequest::ListTransactions { reply } => {
                let listed = self
                    .transactions
                    .borrow()
                    .iter()
                    .map(|(id, t)| (id.clone(), t.clone()))
                    .collect();
                let _ = reply.send(listed);
            }
            ShardRequest::WriteMarkers {
                partitions,
                producer_id,
                producer_epoch,
                commit,
                reply,
            } => self.write_markers(partitions, producer_id, producer_epoch, commit, reply),
            ShardRequest::DeleteRecords { tp, offset, reply } => {
                let _ = reply.send(self.delete_records(&tp, offset));
            }
            ShardRequest::ReloadTopicSettings { topics, reply } => {
                self.reload_topic_settings(&topics);
                let _ = reply.send(());
            }
            ShardRequest::RemoveSpareSegments => self.remove_spare_segments(),
            ShardRequest::PartitionSizes { reply } => {
                let sizes = self
                    .partitions
                    .iter()
                    .map(|(tp, owned)| (tp.clone(), owned.log.borrow().size_bytes()))
                    .collect();
                let _ = reply.send(sizes);
            }
            ShardRequest::Transaction { .. }
            | ShardRequest::Metrics { .. }
            | ShardRequest::Drain { .. }
            | ShardRequest::OpenPartitions { .. } => {
                unreachable!("handled by the core loop")
            }
            ShardRequest::Shutdown { .. } => unreachable!("handled by the core loop"),
        }
    }

    fn produce(
        &mut self,
        tp: TopicPartition,
        batches: Vec<bytes::Bytes>,
        reply: oneshot::Sender<PartitionResult<ProduceOutcome>>,
    ) {
        let limit_bytes = self.broker.config.socket_request_max_bytes;
        let owned = match self.partition(&tp) {
            Ok(owned) => owned,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        if owned.settings.cleanup_compact && !batches.iter().all(|b| all_records_keyed(b, limit_bytes)) {
            let _ = reply.send(Err(ResponseError::InvalidRecord));
            return;
        }
        let batches = match recompress(batches, owned.settings.compression, limit_bytes) {
            Ok(batches) => batches,
            Err(error) => {
                tracing::debug!(topic = %tp.topic, partition = tp.partition, %error, "batch refused");
                let _ = reply.send(Err(ResponseError::CorruptMessage));
                return;
            }
        };
        let now = now_ms();
        let log_append_time_ms = (owned.settings.timestamp_type == TimestampType::LogAppendTime).then_some(now);
        let appended = owned.log.borrow_mut().append(batches, log_append_time_ms, now);
        let append = match appended {
            Ok(append) => append,
            Err(LogError::Sequence(refusal)) => {
                let _ = reply.send(Err(sequence_error(refusal)));
                return;
            }
            Err(error) => {
                let _ = reply.send(Err(storage_error(&tp, &error)));
                return;
            }
        };
        let log_append_time_ms = match (log_append_time_ms, append.duplicate) {
            (Some(_), true) => Some(append.duplicate_of_timestamp),
            (time, _) => time,
        };
        let outcome = ProduceOutcome {
            append,
            log_append_time_ms: log_append_time_ms.unwrap_or(-1),
            log_start_offset: owned.log.borrow().offsets().log_start_offset,
        };
        let durable = owned.log.borrow_mut().wait_durable(append.next_offset);
        spawn_local(async move {
            let result = match durable.await {
                Ok(Ok(())) => Ok(outcome),
                Ok(Err(failed)) => {
                    if let Some(suppressed) = storage_error_log_allowed() {
                        tracing::error!(topic = %tp.topic, partition = tp.partition, %failed, suppressed, "produce not durable");
                    }
                    Err(ResponseError::KafkaStorageError)
                }
                Err(_) => Err(ResponseError::KafkaStorageError),
            };
            let _ = reply.send(result);
        });
    }

    /// Each partition is looked up once: read, then (with `watch`) a watcher
    /// past the high watermark that read saw.
    fn read_partitions(
        &mut self,
        reads: &[PartitionToRead],
        isolation: Isolation,
        watch: bool,
    ) -> (Vec<PartitionResult<PartitionRead>>, Vec<oneshot::Receiver<()>>) {
        let mut watchers = Vec::new();
        let results = reads
            .iter()
            .map(|wanted| -> PartitionResult<PartitionRead> {
                let log = &self.partition(&wanted.tp)?.log;
                let read = read_log(
                    &log.borrow(),
                    &wanted.tp,
                    wanted.offset,
                    wanted.max_bytes,
                    true,
                    isolation,
                )?;
                if watch {
                    let seen = read
                        .offsets
                        .map_or(wanted.offset, |o| o.high_watermark.max(wanted.offset));
                    watchers.extend(log.borrow_mut().watch(seen));
                }
                Ok(read)
            })
            .collect();
        (results, watchers)
    }

    /// Once one of `watchers` fires, reads `reads` again here (watching again)
    /// and answers the waiting fetch directly: the wake and the fresh data
    /// cross between cores as one message. Gives up when the fetch drops the
    /// receiver (it answered, or timed out).
    fn read_again_on_wake(
        &self,
        reads: Vec<PartitionToRead>,
        isolation: Isolation,
        watchers: Vec<oneshot::Receiver<()>>,
    ) -> oneshot::Receiver<PartitionReads> {
        let (mut reply, receiver) = oneshot::channel();
        let broker = self.broker.clone();
        let core = self.core_id;
        spawn_local(async move {
            tokio::select! {
                _ = reply.closed() => return,
                _ = futures_util::future::select_all(watchers) => {}
            }
            let request = ShardRequest::ReadPartitions {
                reads,
                isolation,
                watch: true,
                reply,
            };
            broker.send_to_core(core, request);
        });
        receiver
    }

    fn list_offset(
        &mut self,
        tp: &TopicPartition,
        timestamp: i64,
        isolation: Isolation,
    ) -> PartitionResult<(i64, i64)> {
        const LATEST: i64 = -1;
        const EARLIEST: i64 = -2;
        let owned = self.partition(tp)?;
        let log = owned.log.borrow();
        let offsets = log.offsets();
        match timestamp {
            LATEST => Ok((
                match isolation {
                    Isolation::ReadCommitted => offsets.last_stable_offset,
                    Isolation::ReadUncommitted => offsets.high_watermark,
                },
                -1,
            )),
            EARLIEST => Ok((offsets.log_start_offset, -1)),
            target if target >= 0 => match log.offset_for_timestamp(target) {
                Ok(Some(found)) => Ok(found),
                Ok(None) => Ok((-1, -1)),
                Err(error) => Err(storage_error(tp, &error)),
            },
            _ => Err(ResponseError::InvalidRequest),
        }
    }

    /// Replays this core's internal partitions: `__consumer_offsets` into its
    /// groups (transactional commits held until their marker), and
    /// `__transaction_state` into its transaction coordinator.
    fn load_internal_topics(&self) -> Result<(), String> {
        let now = std::time::Instant::now();
        let mut groups = self.groups.borrow_mut();
        let mut transactions = self.transactions.borrow_mut();
        let mut loaded = 0usize;
        for (tp, owned) in &self.partitions {
            let is_offsets = &*tp.topic == OFFSETS_TOPIC;
            if !is_offsets && &*tp.topic != TRANSACTION_TOPIC {
                continue;
            }
            let log = owned.log.borrow();
            let mut offset = log.offsets().log_start_offset;
            while offset < log.offsets().high_watermark {
                let (bytes, next_offset) = log
                    .read_into_memory(offset, OFFSETS_LOAD_CHUNK_BYTES)
                    .map_err(|e| format!("loading {}-{}: {e}", tp.topic, tp.partition))?;
                if next_offset <= offset {
                    break;
                }
                for_each_batch(&bytes, |header, batch| {
                    loaded += 1;
                    if is_offsets {
                        replay_offsets_batch(&mut groups, header, batch, now);
                    } else {
                        for record in ringlog_engine::batch::parse_records(batch).unwrap_or_default() {
                            if let Some((id, txn)) = record.key.and_then(|k| transaction::decode(k, record.value)) {
                                transactions.apply(id, txn);
                            }
                        }
                    }
                });
                offset = next_offset;
            }
        }
        if loaded > 0 {
            tracing::info!(core = self.core_id, batches = loaded, "replayed internal topics");
        }
        Ok(())
    }

    /// Appends `batch` to an internal partition this core owns; the receiver
    /// completes when it is durable.
    pub(crate) fn append_internal(
        &mut self,
        tp: &TopicPartition,
        batch: bytes::BytesMut,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<(), ringlog_engine::WriteFailed>>, ResponseError> {
        assert_eq!(
            self.broker.owner_core(tp),
            self.core_id,
            "internal writes stay on their owner core"
        );
        let now = now_ms();
        let owned = self.partition(tp).map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        let appended = owned.log.borrow_mut().append(vec![batch], None, now);
        let append = appended.map_err(|e| storage_error(tp, &e))?;
        Ok(owned.log.borrow_mut().wait_durable(append.next_offset))
    }

    fn offsets_tp(&self, group_id: &str) -> TopicPartition {
        TopicPartition {
            topic: OFFSETS_TOPIC.into(),
            partition: coordinator::offsets_partition(group_id, self.broker.offsets_partitions),
        }
    }

    /// Appends `records` to the group's offsets partition (owned by this core)
    /// and, once they are durable, applies them and calls `done`.
    fn append_offset_records(
        &mut self,
        group_id: &str,
        records: Vec<OffsetRecord>,
        done: impl FnOnce(Result<(), ResponseError>) + 'static,
    ) {
        if records.is_empty() {
            done(Ok(()));
            return;
        }
        let tp = self.offsets_tp(group_id);
        let batch = offset_records_batch(&records);
        let durable = match self.append_internal(&tp, batch) {
            Ok(durable) => durable,
            Err(_) => {
                done(Err(ResponseError::CoordinatorNotAvailable));
                return;
            }
        };
        let groups = self.groups.clone();
        spawn_local(async move {
            match durable.await {
                Ok(Ok(())) => {
                    let now = std::time::Instant::now();
                    let mut groups = groups.borrow_mut();
                    for record in records {
                        groups.apply(record, now);
                    }
                    drop(groups);
                    done(Ok(()));
                }
                _ => done(Err(ResponseError::CoordinatorNotAvailable)),
            }
        });
    }

    fn handle_group(&mut self, group_id: String, request: GroupRequest) {
        let now = std::time::Instant::now();
        let groups = self.groups.clone();
        let mut groups = groups.borrow_mut();
        let config = groups.config.clone();
        match request {
            GroupRequest::Join { request, reply } => {
                groups.group_mut(&group_id, now).join(request, &config, now, reply)
            }
            GroupRequest::Sync { request, reply } => groups.group_mut(&group_id, now).sync(request, now, reply),
            GroupRequest::Heartbeat {
                member_id,
                group_instance_id,
                generation_id,
                reply,
            } => {
                let group = groups.group_mut(&group_id, now);
                let _ = reply.send(group.heartbeat(&member_id, group_instance_id.as_deref(), generation_id, now));
            }
            GroupRequest::Leave { members, reply } => {
                let _ = reply.send(groups.group_mut(&group_id, now).leave(&members, &config, now));
            }
            GroupRequest::CommitOffsets {
                member_id,
                group_instance_id,
                generation_id,
                offsets,
                reply,
            } => {
                let check =
                    groups.check_commit(&group_id, &member_id, group_instance_id.as_deref(), generation_id, now);
                drop(groups);
                if let Err(error) = check {
                    let _ = reply.send(Err(error));
                    return;
                }
                let records = offsets
                    .into_iter()
                    .map(|(topic, partition, committed)| OffsetRecord {
                        group: group_id.clone(),
                        topic,
                        partition,
                        committed: Some(committed),
                    })
                    .collect();
                self.append_offset_records(&group_id, records, move |result| {
                    let _ = reply.send(result);
                });
            }
            GroupRequest::FetchOffsets { partitions, reply } => {
                let committed = groups.committed(&group_id);
                let answer = match partitions {
                    Some(partitions) => partitions
                        .into_iter()
                        .map(|(topic, partition)| {
                            let found = committed.and_then(|c| c.get(&(topic.clone(), partition))).cloned();
                            (topic, partition, found)
                        })
                        .collect(),
                    None => committed
                        .map(|c| c.iter().map(|((t, p), o)| (t.clone(), *p, Some(o.clone()))).collect())
                        .unwrap_or_default(),
                };
                let _ = reply.send(answer);
            }
            GroupRequest::Describe { reply } => {
                let _ = reply.send(groups.describe(&group_id));
            }
            GroupRequest::Delete { reply } => {
                let partitions = match groups.check_delete(&group_id) {
                    Ok(partitions) => partitions,
                    Err(error) => {
                        let _ = reply.send(Err(error));
                        return;
                    }
                };
                drop(groups);
                let forget = self.groups.clone();
                let id = group_id.clone();
                self.append_offset_records(&group_id, tombstones(&group_id, partitions), move |result| {
                    if result.is_ok() {
                        forget.borrow_mut().forget(&id);
                    }
                    let _ = reply.send(result);
                });
                if self.groups.borrow().committed(&group_id).is_none() {
                    self.groups.borrow_mut().forget(&group_id);
                }
            }
            GroupRequest::TxnCommitOffsets {
                producer_id,
                producer_epoch,
                offsets,
                reply,
            } => {
                drop(groups);
                let records: Vec<OffsetRecord> = offsets
                    .into_iter()
                    .map(|(topic, partition, committed)| OffsetRecord {
                        group: group_id.clone(),
                        topic,
                        partition,
                        committed: Some(committed),
                    })
                    .collect();
                let mut batch = offset_records_batch(&records);
                ringlog_engine::batch::make_transactional(&mut batch, producer_id, producer_epoch);
                let durable = match self.append_internal(&self.offsets_tp(&group_id), batch) {
                    Ok(durable) => durable,
                    Err(error) => {
                        let _ = reply.send(Err(error));
                        return;
                    }
                };
                let groups = self.groups.clone();
                spawn_local(async move {
                    let result = match durable.await {
                        Ok(Ok(())) => {
                            groups.borrow_mut().add_pending_transaction(producer_id, records);
                            Ok(())
                        }
                        _ => Err(ResponseError::CoordinatorNotAvailable),
                    };
                    let _ = reply.send(result);
                });
            }
            GroupRequest::DeleteOffsets { partitions, reply } => {
                let Some(group) = groups.group(&group_id) else {
                    let _ = reply.send(Err(ResponseError::GroupIdNotFound));
                    return;
                };
                let subscribed = group.subscribed_topics();
                let committed = groups.committed(&group_id);
                let mut results = Vec::with_capacity(partitions.len());
                let mut deleting = Vec::new();
                for (topic, partition) in partitions {
                    if subscribed.contains(&topic) {
                        results.push(Err(ResponseError::GroupSubscribedToTopic));
                    } else {
                        if committed.is_some_and(|c| c.contains_key(&(topic.clone(), partition))) {
                            deleting.push((topic, partition));
                        }
                        results.push(Ok(()));
                    }
                }
                drop(groups);
                self.append_offset_records(&group_id, tombstones(&group_id, deleting), move |outcome| {
                    let _ = reply.send(outcome.map(|()| results));
                });
            }
        }
    }

    /// Writes `producer_id`'s commit or abort marker on each partition (owned
    /// here); once all are durable, resolves transactional offset commits on
    /// `__consumer_offsets` partitions and replies.
    fn write_markers(
        &mut self,
        partitions: Vec<TopicPartition>,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        reply: oneshot::Sender<Result<(), ResponseError>>,
    ) {
        let now = now_ms();
        let mut durable = Vec::with_capacity(partitions.len());
        for tp in &partitions {
            let owned = match self.partition(tp) {
                Ok(owned) => owned,
                Err(error) => {
                    let _ = reply.send(Err(error));
                    return;
                }
            };
            let appended = owned
                .log
                .borrow_mut()
                .append_marker(producer_id, producer_epoch, commit, 0, now);
            match appended {
                Ok(append) => durable.push(owned.log.borrow_mut().wait_durable(append.next_offset)),
                // A newer epoch already wrote here: this transaction is over.
                Err(LogError::Sequence(refusal)) => {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, %refusal, "marker skipped");
                }
                Err(error) => {
                    let _ = reply.send(Err(storage_error(tp, &error)));
                    return;
                }
            }
        }
        let touches_offsets = partitions.iter().any(|tp| &*tp.topic == OFFSETS_TOPIC);
        let groups = self.groups.clone();
        spawn_local(async move {
            for receiver in durable {
                if !matches!(receiver.await, Ok(Ok(()))) {
                    let _ = reply.send(Err(ResponseError::KafkaStorageError));
                    return;
                }
            }
            if touches_offsets {
                groups
                    .borrow_mut()
                    .resolve_pending_transaction(producer_id, commit, std::time::Instant::now());
            }
            let _ = reply.send(Ok(()));
        });
    }

    fn open_new_partition(&mut self, tp: &TopicPartition) {
        if let Err(error) = self.partition(tp) {
            tracing::error!(topic = %tp.topic, partition = tp.partition, ?error, "cannot open new partition");
        }
    }

    fn metrics_snapshot(&self, queue_depth: usize) -> crate::metrics::CoreSnapshot {
        use crate::metrics::{CommittedStats, PartitionStats};
        let partitions = self
            .partitions
            .iter()
            .map(|(tp, owned)| {
                let log = owned.log.borrow();
                let offsets = log.offsets();
                PartitionStats {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    high_watermark: offsets.high_watermark,
                    size_bytes: log.size_bytes(),
                    segments: log.segment_count(),
                    writes_direct: log.active_io_mode() == ringlog_engine::IoMode::Direct,
                }
            })
            .collect();
        let committed = self
            .groups
            .borrow()
            .all_committed()
            .map(|(group, (topic, partition), committed)| CommittedStats {
                group: group.to_string(),
                topic: topic.clone(),
                partition: *partition,
                offset: committed.offset,
            })
            .collect();
        crate::metrics::CoreSnapshot {
            core_id: self.core_id,
            counters: crate::metrics::core_counters(),
            queue_depth,
            busy_seconds: crate::metrics::thread_cpu_seconds(),
            partitions,
            committed,
            log_writes: ringlog_engine::stats::write_latency(),
            segments_recycled: ringlog_engine::stats::segments_recycled(),
            direct_write_bytes: ringlog_engine::stats::direct_write_bytes(),
            cache_used_bytes: self.cache.borrow().used_bytes(),
            cache_budget_bytes: self.cache.borrow().budget_bytes(),
        }
    }

    fn delete_records(&mut self, tp: &TopicPartition, offset: i64) -> PartitionResult<i64> {
        let owned = self.partition(tp)?;
        let mut log = owned.log.borrow_mut();
        let offset = if offset < 0 {
            log.offsets().high_watermark
        } else {
            offset
        };
        match log.delete_records_before(offset) {
            Ok(start) => Ok(start),
            Err(LogError::OffsetOutOfRange { .. }) => Err(ResponseError::OffsetOutOfRange),
            Err(error) => Err(storage_error(tp, &error)),
        }
    }

    fn reload_topic_settings(&mut self, topics: &[String]) {
        let metadata = self.broker.metadata();
        for (tp, owned) in self.partitions.iter_mut() {
            if !topics.iter().any(|t| **t == *tp.topic) {
                continue;
            }
            if let Some(topic) = metadata.topics.get(&*tp.topic) {
                owned.settings = TopicSettings::resolve(topic, &self.broker.config);
                owned
                    .log
                    .borrow_mut()
                    .set_roll_limits(owned.settings.segment_bytes, owned.settings.segment_ms);
            }
        }
    }

    /// Applies retention to every partition of this core with the delete policy.
    fn enforce_retention(&mut self) {
        let now = now_ms();
        for (tp, owned) in &self.partitions {
            let settings = &owned.settings;
            if !settings.cleanup_delete {
                continue;
            }
            let outcome =
                owned
                    .log
                    .borrow_mut()
                    .enforce_retention(settings.retention_ms, settings.retention_bytes, now);
            match outcome {
                Ok(0) => {}
                Ok(deleted) => {
                    let start = owned.log.borrow().offsets().log_start_offset;
                    tracing::info!(topic = %tp.topic, partition = tp.partition, deleted, log_start_offset = start, "retention deleted segments");
                }
                Err(error) => tracing::error!(topic = %tp.topic, partition = tp.partition, %error, "retention failed"),
            }
        }
    }

    fn delete_partition(&mut self, tp: &TopicPartition) {
        append_positions::forget(tp);
        match self.partitions.remove(tp) {
            Some(owned) => {
                if let Err(error) = PartitionLog::delete(&owned.log) {
                    tracing::error!(topic = %tp.topic, partition = tp.partition, %error, "deleting partition files failed");
                }
            }
            None => {
                let dir = self.partition_dir(tp);
                if dir.exists() {
                    if let Err(error) = ringlog_engine::fs_offload::delete_dir_later(&dir) {
                        tracing::error!(dir = %dir.display(), %error, "deleting partition dir failed");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_log_lets_one_line_a_second_through_and_counts_the_rest() {
        let start = std::time::Instant::now();
        let mut throttle = LogThrottle::default();
        assert_eq!(throttle.allow(start), Some(0));
        for _ in 0..5 {
            assert_eq!(throttle.allow(start + Duration::from_millis(10)), None);
        }
        assert_eq!(throttle.allow(start + STORAGE_ERROR_LOG_INTERVAL), Some(5));
        assert_eq!(throttle.allow(start + STORAGE_ERROR_LOG_INTERVAL), None);
    }
}
