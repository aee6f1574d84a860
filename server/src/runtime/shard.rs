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
use ringlog_engine::{io::spawn_local, BatchCache, LogConfig, LogError, PartitionLog, SharedLog};
use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::config::TimestampType;
use crate::metadata::TopicSettings;
use crate::net::listener;
use crate::runtime::controller;
use crate::runtime::messages::{
    ControlRequest, PartitionRead, PartitionResult, ProduceOutcome, ShardRequest, TopicPartition,
};

/// Everything a core needs to start.
pub struct CoreStartup {
    pub core_id: usize,
    pub broker: Arc<Broker>,
    pub requests: mpsc::UnboundedReceiver<ShardRequest>,
    /// Core 0 also runs the controller.
    pub control_requests: Option<mpsc::UnboundedReceiver<ControlRequest>>,
    pub listener: std::net::TcpListener,
    pub clean_shutdown: bool,
    /// Reports the number of partitions opened, or why the core could not start.
    pub ready: std::sync::mpsc::Sender<Result<usize, String>>,
    pub pin_to_cpu: Option<core_affinity::CoreId>,
}

struct OwnedPartition {
    log: SharedLog,
    settings: TopicSettings,
}

struct Shard {
    core_id: usize,
    broker: Arc<Broker>,
    partitions: HashMap<TopicPartition, OwnedPartition>,
    cache: Rc<RefCell<BatchCache>>,
    next_partition_key: u64,
    clean_shutdown: bool,
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
    tokio_uring::start(run_core_loop(startup));
}

async fn run_core_loop(startup: CoreStartup) {
    let CoreStartup {
        core_id,
        broker,
        mut requests,
        control_requests,
        listener,
        clean_shutdown,
        ready,
        ..
    } = startup;
    let shard = Rc::new(RefCell::new(Shard {
        core_id,
        cache: Rc::new(RefCell::new(BatchCache::new(
            broker.config.log_cache_bytes_per_core,
        ))),
        broker: broker.clone(),
        partitions: HashMap::new(),
        next_partition_key: 0,
        clean_shutdown,
    }));
    let opened = shard.borrow_mut().open_owned_partitions();
    let _ = ready.send(opened);
    let accept_task = match listener::start_accepting(listener, broker.clone(), core_id) {
        Ok(task) => task,
        Err(error) => {
            tracing::error!(core = core_id, %error, "cannot accept connections");
            return;
        }
    };
    if let Some(control_requests) = control_requests {
        spawn_local(controller::run_controller(broker.clone(), control_requests));
    }
    if let Some(interval_ms) = broker.config.log_flush_interval_ms {
        spawn_local(run_flush_timer(shard.clone(), interval_ms));
    }
    while let Some(request) = requests.recv().await {
        if let ShardRequest::Shutdown { reply } = request {
            accept_task.abort();
            close_partitions(&shard).await;
            let _ = reply.send(());
            return;
        }
        shard.borrow_mut().handle(request);
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

fn storage_error(tp: &TopicPartition, error: &LogError) -> ResponseError {
    tracing::error!(topic = %tp.topic, partition = tp.partition, %error, "partition storage error");
    ResponseError::KafkaStorageError
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
                    self.open_partition(&tp).map_err(|e| e.to_string())?;
                    opened += 1;
                }
            }
        }
        Ok(opened)
    }

    fn partition_dir(&self, tp: &TopicPartition) -> PathBuf {
        self.broker
            .data_dir
            .join(format!("{}-{}", tp.topic, tp.partition))
    }

    fn open_partition(&mut self, tp: &TopicPartition) -> Result<(), LogError> {
        let metadata = self.broker.metadata();
        let Some(topic) = metadata.topics.get(&*tp.topic) else {
            return Ok(());
        };
        let Some(state) = topic.partitions.get(tp.partition as usize) else {
            return Ok(());
        };
        let config = &self.broker.config;
        let settings = TopicSettings::resolve(topic, config);
        let log_config = LogConfig {
            segment_bytes: settings.segment_bytes,
            segment_ms: settings.segment_ms,
            index_interval_bytes: config.log_index_interval_bytes,
            flush_interval_messages: config.log_flush_interval_messages,
            io_mode: self.broker.io_mode,
            leader_epoch: state.leader_epoch,
        };
        self.next_partition_key += 1;
        let dir = self.partition_dir(tp);
        let log = PartitionLog::open(
            &dir,
            self.next_partition_key,
            log_config,
            self.cache.clone(),
            self.clean_shutdown,
            now_ms(),
        )?;
        self.partitions
            .insert(tp.clone(), OwnedPartition { log, settings });
        Ok(())
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
            self.open_partition(tp).map_err(|e| storage_error(tp, &e))?;
        }
        self.partitions
            .get(tp)
            .ok_or(ResponseError::UnknownTopicOrPartition)
    }

    fn handle(&mut self, request: ShardRequest) {
        match request {
            ShardRequest::Produce { tp, batches, reply } => self.produce(tp, batches, reply),
            ShardRequest::Read {
                tp,
                offset,
                max_bytes,
                min_one_batch,
                reply,
            } => {
                let _ = reply.send(self.read(&tp, offset, max_bytes, min_one_batch));
            }
            ShardRequest::Watch { tp, offset, reply } => {
                let watcher = self
                    .partition(&tp)
                    .ok()
                    .and_then(|p| p.log.borrow_mut().watch(offset));
                let _ = reply.send(watcher);
            }
            ShardRequest::ListOffset {
                tp,
                timestamp,
                reply,
            } => {
                let _ = reply.send(self.list_offset(&tp, timestamp));
            }
            ShardRequest::EpochEndOffset { tp, epoch, reply } => {
                let result = self
                    .partition(&tp)
                    .map(|p| p.log.borrow().end_offset_for_epoch(epoch));
                let _ = reply.send(result);
            }
            ShardRequest::OpenPartitions { partitions, reply } => {
                for tp in partitions {
                    if let Err(error) = self.partition(&tp) {
                        tracing::error!(topic = %tp.topic, partition = tp.partition, ?error, "cannot open new partition");
                    }
                }
                let _ = reply.send(());
            }
            ShardRequest::DeletePartitions { partitions, reply } => {
                for tp in partitions {
                    self.delete_partition(&tp);
                }
                let _ = reply.send(());
            }
            ShardRequest::Shutdown { .. } => unreachable!("handled by the core loop"),
        }
    }

    fn produce(
        &mut self,
        tp: TopicPartition,
        batches: Vec<bytes::BytesMut>,
        reply: tokio::sync::oneshot::Sender<PartitionResult<ProduceOutcome>>,
    ) {
        let owned = match self.partition(&tp) {
            Ok(owned) => owned,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        let now = now_ms();
        let log_append_time_ms =
            (owned.settings.timestamp_type == TimestampType::LogAppendTime).then_some(now);
        let appended = owned
            .log
            .borrow_mut()
            .append(batches, log_append_time_ms, now);
        let append = match appended {
            Ok(append) => append,
            Err(error) => {
                let _ = reply.send(Err(storage_error(&tp, &error)));
                return;
            }
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
                    tracing::error!(topic = %tp.topic, partition = tp.partition, %failed, "produce not durable");
                    Err(ResponseError::KafkaStorageError)
                }
                Err(_) => Err(ResponseError::KafkaStorageError),
            };
            let _ = reply.send(result);
        });
    }

    fn read(
        &mut self,
        tp: &TopicPartition,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> PartitionResult<PartitionRead> {
        let owned = self.partition(tp)?;
        let log = owned.log.borrow();
        let offsets = log.offsets();
        match log.read(offset, max_bytes, min_one_batch) {
            Ok(result) => Ok(PartitionRead {
                chunks: result.chunks,
                total_bytes: result.total_bytes,
                offsets: Some(offsets),
            }),
            Err(LogError::OffsetOutOfRange { .. }) => Err(ResponseError::OffsetOutOfRange),
            Err(error) => Err(storage_error(tp, &error)),
        }
    }

    fn list_offset(&mut self, tp: &TopicPartition, timestamp: i64) -> PartitionResult<(i64, i64)> {
        const LATEST: i64 = -1;
        const EARLIEST: i64 = -2;
        let owned = self.partition(tp)?;
        let log = owned.log.borrow();
        let offsets = log.offsets();
        match timestamp {
            LATEST => Ok((offsets.high_watermark, -1)),
            EARLIEST => Ok((offsets.log_start_offset, -1)),
            target if target >= 0 => match log.offset_for_timestamp(target) {
                Ok(Some(found)) => Ok(found),
                Ok(None) => Ok((-1, -1)),
                Err(error) => Err(storage_error(tp, &error)),
            },
            _ => Err(ResponseError::InvalidRequest),
        }
    }

    fn delete_partition(&mut self, tp: &TopicPartition) {
        match self.partitions.remove(tp) {
            Some(owned) => {
                if let Err(error) = PartitionLog::delete(&owned.log) {
                    tracing::error!(topic = %tp.topic, partition = tp.partition, %error, "deleting partition files failed");
                }
            }
            None => {
                let dir = self.partition_dir(tp);
                if dir.exists() {
                    if let Err(error) = std::fs::remove_dir_all(&dir) {
                        tracing::error!(dir = %dir.display(), %error, "deleting partition dir failed");
                    }
                }
            }
        }
    }
}
