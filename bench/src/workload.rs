//! The workloads: produce (throughput), consume (throughput from the start of
//! the log to the end seen when it began), e2e (latency at a fixed rate,
//! measured from each record's intended send time, which corrects for
//! coordinated omission), mixed (produce while consumers tail the log).

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use ringlog_engine::batch::{self, Codec};

use crate::client::{Connection, ProduceTarget};
use crate::fetch_stream::{FetchConnection, FetchedPartition};
use crate::Params;

/// Shared progress counters, printed once a second on a terminal.
#[derive(Default)]
pub struct Progress {
    records: AtomicU64,
    bytes: AtomicU64,
}

impl Progress {
    fn add(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn spawn_printer(self: &Arc<Self>, label: &'static str) -> tokio::task::JoinHandle<()> {
        let progress = self.clone();
        tokio::spawn(async move {
            if !std::io::stderr().is_terminal() {
                return;
            }
            let (mut last_records, mut last_bytes) = (0, 0);
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let records = progress.records.load(Ordering::Relaxed);
                let bytes = progress.bytes.load(Ordering::Relaxed);
                eprintln!(
                    "{label}: {:>10} records/s {:>9.1} MB/s",
                    records - last_records,
                    (bytes - last_bytes) as f64 / 1e6
                );
                (last_records, last_bytes) = (records, bytes);
            }
        })
    }
}

pub fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, 60_000_000, 3) {
        Ok(histogram) => histogram,
        Err(error) => unreachable!("fixed histogram bounds are valid: {error}"),
    }
}

fn topic_name(params: &Params) -> TopicName {
    TopicName(StrBytes::from_string(params.topic.clone()))
}

/// The CreateTopics version this tool prefers (v4: replication factor -1
/// means the broker's default).
const CREATE_TOPICS_VERSION: i16 = 4;

/// Creates the topic if absent (TOPIC_ALREADY_EXISTS is fine). A broker
/// without CreateTopics (librdkafka's mock broker, for one) closes the
/// connection on an unknown API, so ask ApiVersions first and skip creation
/// there: the topic must then exist already or be created on first use.
pub async fn ensure_topic(params: &Params) -> anyhow::Result<()> {
    let mut connection = Connection::connect(&params.bootstrap, 1).await?;
    let versions = connection.call(0, &ApiVersionsRequest::default()).await?;
    let Some(version) = create_topics_version(&versions) else {
        eprintln!(
            "ringlog-bench: the broker has no CreateTopics; {} must exist with {} partitions",
            params.topic, params.partitions
        );
        return Ok(());
    };
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(params))
            .with_num_partitions(params.partitions)
            .with_replication_factor(if version >= CREATE_TOPICS_VERSION { -1 } else { 1 })]);
    let response = connection.call(version, &request).await?;
    let code = response.topics.first().map_or(0, |t| t.error_code);
    anyhow::ensure!(code == 0 || code == 36, "creating {}: error {code}", params.topic);
    Ok(())
}

/// The highest CreateTopics version both sides speak, if the broker has it.
fn create_topics_version(versions: &ApiVersionsResponse) -> Option<i16> {
    let create_topics = versions
        .api_keys
        .iter()
        .find(|api| api.api_key == ApiKey::CreateTopics as i16)?;
    let version = create_topics.max_version.min(CREATE_TOPICS_VERSION);
    (version >= create_topics.min_version && version >= 0).then_some(version)
}

pub(crate) fn codec(name: &str) -> anyhow::Result<Codec> {
    Ok(match name {
        "none" => Codec::None,
        "gzip" => Codec::Gzip,
        "snappy" => Codec::Snappy,
        "lz4" => Codec::Lz4,
        "zstd" => Codec::Zstd,
        other => anyhow::bail!("unknown compression {other:?}"),
    })
}

pub fn acks(text: &str) -> anyhow::Result<i16> {
    Ok(match text {
        "0" => 0,
        "1" => 1,
        "all" | "-1" => -1,
        other => anyhow::bail!("acks must be 0, 1 or all, not {other:?}"),
    })
}

/// One batch of `records` records of `record_bytes` (values; keys per the
/// distribution), in `codec`. The first 8 value bytes carry `stamp`.
pub(crate) fn build_batch(
    records: usize,
    record_bytes: usize,
    keys: &str,
    codec: Codec,
    stamps: &[u64],
) -> anyhow::Result<Bytes> {
    let mut values: Vec<Vec<u8>> = Vec::with_capacity(records);
    for i in 0..records {
        let mut value = vec![b'x'; record_bytes.max(8)];
        value[..8].copy_from_slice(&stamps.get(i).copied().unwrap_or(0).to_be_bytes());
        values.push(value);
    }
    let key_of = |i: usize| -> Option<Vec<u8>> {
        match keys {
            "sequential" => Some(format!("key-{i}").into_bytes()),
            "random" => Some(format!("key-{}", (i * 2_654_435_761) % 1_000_000).into_bytes()),
            _ => None,
        }
    };
    let keys: Vec<Option<Vec<u8>>> = (0..records).map(key_of).collect();
    let pairs: Vec<_> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| (k.as_deref(), Some(&v[..])))
        .collect();
    let plain: BytesMut = batch::build_batch(&pairs, now_ms());
    let batch = ringlog_engine::compression::recompress_batch(&plain, codec, usize::MAX)?.unwrap_or(plain);
    Ok(batch.freeze())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Records per batch so that a batch stays under --batch-bytes: each record
/// adds a few bytes of framing (length, attributes, deltas, key and header
/// counts) to its value.
pub(crate) fn records_per_batch(params: &Params) -> u64 {
    const RECORD_OVERHEAD_BYTES: usize = 16;
    (params.batch_bytes / (params.record_bytes.max(1) + RECORD_OVERHEAD_BYTES)).max(1) as u64
}

/// How long the broker may take to replicate (it has nothing to replicate).
pub(crate) const PRODUCE_TIMEOUT_MS: i32 = 30_000;

/// Totals of a run.
pub struct Totals {
    pub records: u64,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub latency_us: Histogram<u64>,
    pub errors: u64,
    /// e2e: produce request sent to its response, microseconds.
    pub acks_latency_us: Option<Histogram<u64>>,
}

impl Totals {
    pub(crate) fn empty() -> Self {
        Self::empty_over(0.0)
    }

    fn empty_over(elapsed_s: f64) -> Self {
        Self {
            records: 0,
            bytes: 0,
            elapsed_s,
            latency_us: new_histogram(),
            errors: 0,
            acks_latency_us: None,
        }
    }
}

/// What one producer connection sends: to `partitions` of `leader`, at
/// most `bytes_per_s` if set.
struct ProducerRoute {
    leader: String,
    partitions: Vec<i32>,
    bytes_per_s: Option<f64>,
}

/// One producer connection, sending to its partitions in turn until `until`;
/// statistics only after `measure_from`.
async fn producer_task(
    params: Arc<Params>,
    route: ProducerRoute,
    measure_from: Instant,
    until: Instant,
    progress: Arc<Progress>,
) -> anyhow::Result<Totals> {
    let acks = acks(&params.acks)?;
    let records_per_batch = records_per_batch(&params) as usize;
    let batch = build_batch(
        records_per_batch,
        params.record_bytes,
        &params.key_distribution,
        codec(&params.compression)?,
        &[],
    )?;
    let ProducerRoute {
        leader,
        partitions,
        bytes_per_s,
    } = route;
    let mut connection = Connection::connect(&leader, params.in_flight).await?;
    let mut in_flight = VecDeque::new();
    let mut totals = Totals::empty();
    let mut target = ProduceTarget {
        topic: &params.topic,
        partition: 0,
        acks,
        timeout_ms: PRODUCE_TIMEOUT_MS,
    };
    let started = Instant::now();
    let mut sent_bytes = 0u64;
    let mut next_partition = 0usize;
    while Instant::now() < until {
        if let Some(rate) = bytes_per_s {
            let due = started + Duration::from_secs_f64(sent_bytes as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        target.partition = partitions[next_partition % partitions.len()];
        next_partition += 1;
        let sent_at = Instant::now();
        sent_bytes += batch.len() as u64;
        in_flight.push_back((sent_at, connection.send_produce(&target, batch.clone()).await?));
        if in_flight.len() >= params.in_flight {
            if let Some((sent_at, response)) = in_flight.pop_front() {
                settle(
                    response.await?,
                    sent_at,
                    measure_from,
                    records_per_batch,
                    batch.len(),
                    &mut totals,
                    &progress,
                );
            }
        }
    }
    while let Some((sent_at, response)) = in_flight.pop_front() {
        settle(
            response.await?,
            sent_at,
            measure_from,
            records_per_batch,
            batch.len(),
            &mut totals,
            &progress,
        );
    }
    Ok(totals)
}

/// Counts one answered produce request (`None`: acks=0, nothing to wait for).
fn settle(
    response: Option<ProduceResponse>,
    sent_at: Instant,
    measure_from: Instant,
    records: usize,
    bytes: usize,
    totals: &mut Totals,
    progress: &Progress,
) {
    let failure = response.as_ref().and_then(|response| {
        response
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.error_code != 0)
    });
    if let Some(failure) = failure {
        if totals.errors == 0 {
            eprintln!("ringlog-bench: produce failed with error code {}", failure.error_code);
        }
        totals.errors += 1;
        return;
    }
    progress.add(records as u64, bytes as u64);
    if sent_at >= measure_from {
        totals.records += records as u64;
        totals.bytes += bytes as u64;
        if response.is_some() {
            let _ = totals.latency_us.record(sent_at.elapsed().as_micros().max(1) as u64);
        }
    }
}

fn partitions_of(task: usize, tasks: usize, partitions: i32) -> Vec<i32> {
    let mine: Vec<i32> = (0..partitions).filter(|p| *p as usize % tasks == task).collect();
    if mine.is_empty() {
        vec![task as i32 % partitions.max(1)]
    } else {
        mine
    }
}

/// Waits for every task and merges their totals over the time since `since`.
async fn join(tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Totals>>>, since: Instant) -> anyhow::Result<Totals> {
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await?);
    }
    merge(results, since.elapsed().as_secs_f64())
}

pub(crate) fn merge(results: Vec<anyhow::Result<Totals>>, elapsed_s: f64) -> anyhow::Result<Totals> {
    let mut merged = Totals {
        records: 0,
        bytes: 0,
        elapsed_s,
        latency_us: new_histogram(),
        errors: 0,
        acks_latency_us: None,
    };
    for result in results {
        let totals = result?;
        merged.records += totals.records;
        merged.bytes += totals.bytes;
        merged.errors += totals.errors;
        merged.latency_us.add(&totals.latency_us).map_err(anyhow::Error::msg)?;
    }
    Ok(merged)
}

/// Record size of the background (slow) producers.
const BACKGROUND_RECORD_BYTES: usize = 100;
/// Background connections opened at once (the broker's accept backlog is finite).
const BACKGROUND_CONNECTS_AT_ONCE: usize = 64;

/// One slow client: a record every `interval` until `until`; its acked records.
async fn background_producer(
    params: Arc<Params>,
    connection: Connection,
    index: usize,
    until: Instant,
) -> anyhow::Result<u64> {
    let mut connection = connection;
    let interval = Duration::from_millis(params.background_interval_ms.max(1));
    let batch = build_batch(1, BACKGROUND_RECORD_BYTES, "none", Codec::None, &[])?;
    let partition = (index % params.partitions.max(1) as usize) as i32;
    // Spread the clients over the interval instead of sending in waves.
    let phase = interval.mul_f64(index as f64 / params.background_connections.max(1) as f64);
    let mut next = Instant::now() + phase;
    let mut acked = 0;
    while next < until {
        tokio::time::sleep_until(next.into()).await;
        let target = ProduceTarget {
            topic: &params.topic,
            partition,
            acks: 1,
            timeout_ms: PRODUCE_TIMEOUT_MS,
        };
        let response = connection.send_produce(&target, batch.clone()).await?.await?;
        let failed = response
            .iter()
            .flat_map(|r| r.responses.iter())
            .flat_map(|t| t.partition_responses.iter())
            .any(|p| p.error_code != 0);
        acked += u64::from(!failed);
        next += interval;
    }
    Ok(acked)
}

/// Opens `--background-connections` connections (a few at a time) and starts
/// their slow producers.
async fn start_background_producers(
    params: &Arc<Params>,
    until: Instant,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<anyhow::Result<u64>>>> {
    let mut tasks = Vec::with_capacity(params.background_connections);
    let indexes: Vec<usize> = (0..params.background_connections).collect();
    for group in indexes.chunks(BACKGROUND_CONNECTS_AT_ONCE) {
        let connects: Vec<_> = group
            .iter()
            .map(|_| {
                let bootstrap = params.bootstrap.clone();
                tokio::spawn(async move { Connection::connect(&bootstrap, 1).await })
            })
            .collect();
        for (index, connect) in group.iter().zip(connects) {
            let connection = connect.await??;
            tasks.push(tokio::spawn(background_producer(
                params.clone(),
                connection,
                *index,
                until,
            )));
        }
    }
    Ok(tasks)
}

pub async fn produce(params: Arc<Params>) -> anyhow::Result<Totals> {
    let background_until = Instant::now()
        + Duration::from_secs_f64(params.warmup_s + params.duration_s)
        + Duration::from_millis(params.background_interval_ms);
    let background = start_background_producers(&params, background_until).await?;
    if !background.is_empty() {
        eprintln!("ringlog-bench: {} background connections open", background.len());
    }
    let progress = Arc::new(Progress::default());
    let printer = progress.spawn_printer("produce");
    let measure_from = Instant::now() + Duration::from_secs_f64(params.warmup_s);
    let until = measure_from + Duration::from_secs_f64(params.duration_s);
    // Each producer has a connection per leader of its partitions, as a
    // Kafka client has one per broker.
    let mut tasks = Vec::new();
    for task in 0..params.producers {
        let partitions = partitions_of(task, params.producers, params.partitions);
        for (leader, group) in params.routes(&partitions) {
            let bytes_per_s = params
                .rate_mb_s
                .map(|rate| rate * 1e6 / params.producers as f64 * group.len() as f64 / partitions.len() as f64);
            let route = ProducerRoute {
                leader,
                partitions: group,
                bytes_per_s,
            };
            tasks.push(tokio::spawn(producer_task(
                params.clone(),
                route,
                measure_from,
                until,
                progress.clone(),
            )));
        }
    }
    let totals = join(tasks, measure_from).await;
    printer.abort();
    report_background(background).await;
    totals
}

async fn report_background(tasks: Vec<tokio::task::JoinHandle<anyhow::Result<u64>>>) {
    if tasks.is_empty() {
        return;
    }
    let (connections, mut acked, mut failed) = (tasks.len(), 0, 0);
    for task in tasks {
        match task.await {
            Ok(Ok(records)) => acked += records,
            _ => failed += 1,
        }
    }
    eprintln!("ringlog-bench: background: {connections} connections, {acked} records acknowledged, {failed} connections failed");
}

/// ListOffsets at `timestamp` (-2 earliest, -1 latest) for every partition.
pub(crate) async fn offsets(params: &Params, timestamp: i64) -> anyhow::Result<Vec<i64>> {
    let mut connection = Connection::connect(&params.bootstrap, 1).await?;
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(params))
            .with_partitions(
                (0..params.partitions)
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let response = connection.call(4, &request).await?;
    let mut offsets = vec![0; params.partitions.max(0) as usize];
    for partition in response.topics.iter().flat_map(|t| t.partitions.iter()) {
        if let Some(slot) = offsets.get_mut(partition.partition_index as usize) {
            *slot = partition.offset;
        }
    }
    Ok(offsets)
}

pub(crate) fn fetch_request(params: &Params, positions: &[(i32, i64)], max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(params))
            .with_partitions(
                positions
                    .iter()
                    .map(|(p, offset)| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(*offset)
                            .with_partition_max_bytes(8 << 20)
                    })
                    .collect(),
            )])
}

/// The offset after the last whole batch in `records`.
pub(crate) fn next_offset(mut records: &[u8], current: i64) -> i64 {
    let mut next = current;
    while let Ok(total) = batch::batch_total_bytes(records) {
        let Some(whole) = records.get(..total) else { break };
        if let Ok(header) = batch::BatchHeader::parse(whole) {
            next = next.max(header.next_offset());
        }
        records = &records[total..];
    }
    next
}

const OFFSET_OUT_OF_RANGE: i16 = 1;

/// One consumer connection on a thread of its own, reading its partitions
/// from `positions` up to `ends` (or until `until`) through the copy-free
/// [`FetchConnection`].
fn consumer_thread(
    params: Arc<Params>,
    leader: String,
    mut positions: Vec<(i32, i64)>,
    ends: Vec<i64>,
    until: Instant,
    progress: Arc<Progress>,
) -> anyhow::Result<Totals> {
    let mut connection = FetchConnection::connect(&leader)?;
    let mut totals = Totals::empty();
    while Instant::now() < until && positions.iter().any(|(p, offset)| *offset < ends[*p as usize]) {
        let started = Instant::now();
        let fetched = connection.fetch(&fetch_request(&params, &positions, 500))?;
        let _ = totals.latency_us.record(started.elapsed().as_micros().max(1) as u64);
        let mut reset_from_earliest = false;
        for partition in fetched {
            let Some(position) = positions.iter_mut().find(|(p, _)| *p == partition.partition) else {
                continue;
            };
            match next_position(&partition, position.1) {
                Next::Read(next) => {
                    totals.records += partition.records;
                    totals.bytes += partition.bytes;
                    progress.add(partition.records, partition.bytes);
                    position.1 = next;
                }
                Next::From(start) => position.1 = start,
                Next::FromEarliest => reset_from_earliest = true,
                Next::Failed => totals.errors += 1,
            }
        }
        if reset_from_earliest {
            let earliest = earliest_offsets(&params)?;
            for (partition, offset) in positions.iter_mut() {
                *offset = (*offset).max(earliest.get(*partition as usize).copied().unwrap_or(0));
            }
        }
    }
    Ok(totals)
}

/// Where a consumer goes on after one partition of a fetch response.
#[derive(Debug, PartialEq)]
enum Next {
    /// The records were read: on from this offset.
    Read(i64),
    /// Retention moved the log start past us: on from it, as a client with
    /// `auto.offset.reset=earliest` does.
    From(i64),
    /// As `From`, but the broker did not say where the log starts (Kafka
    /// answers OFFSET_OUT_OF_RANGE with a log start of -1): ask ListOffsets.
    FromEarliest,
    Failed,
}

fn next_position(partition: &FetchedPartition, position: i64) -> Next {
    match partition.error_code {
        0 => Next::Read(partition.next_offset.unwrap_or(position).max(position)),
        OFFSET_OUT_OF_RANGE if partition.log_start_offset > position => Next::From(partition.log_start_offset),
        OFFSET_OUT_OF_RANGE => Next::FromEarliest,
        _ => Next::Failed,
    }
}

/// The log start of every partition, from a consumer's own thread.
fn earliest_offsets(params: &Params) -> anyhow::Result<Vec<i64>> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(offsets(params, -2))
}

pub async fn consume(params: Arc<Params>) -> anyhow::Result<Totals> {
    let starts = offsets(&params, -2).await?;
    let ends = offsets(&params, -1).await?;
    let progress = Arc::new(Progress::default());
    let printer = progress.spawn_printer("consume");
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(params.duration_s);
    let consumers = spawn_consumers(&params, &starts, &ends, until, &progress)?;
    let results = join_consumers(consumers).await?;
    printer.abort();
    merge(results, started.elapsed().as_secs_f64())
}

/// Produce at full speed (or --rate-mb-s) while consumers tail the log from
/// its end: returns (produced, consumed).
pub async fn mixed(params: Arc<Params>) -> anyhow::Result<(Totals, Totals)> {
    let starts = offsets(&params, -1).await?;
    let tailing = vec![i64::MAX; starts.len()];
    let consumed_progress = Arc::new(Progress::default());
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(params.warmup_s + params.duration_s);
    let consumers = spawn_consumers(&params, &starts, &tailing, until, &consumed_progress)?;
    let produced = produce(params.clone()).await;
    let consumed = join_consumers(consumers).await?;
    let consumed = merge(consumed, started.elapsed().as_secs_f64());
    Ok((produced?, consumed?))
}

type ConsumerThread = std::thread::JoinHandle<anyhow::Result<Totals>>;

/// For each consumer, a thread per leader of its share of the partitions,
/// reading them from `starts` until `ends` or `until`.
fn spawn_consumers(
    params: &Arc<Params>,
    starts: &[i64],
    ends: &[i64],
    until: Instant,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<ConsumerThread>> {
    let mut threads = Vec::new();
    for task in 0..params.consumers {
        let partitions = partitions_of(task, params.consumers, params.partitions);
        for (leader, group) in params.routes(&partitions) {
            let positions = group.into_iter().map(|p| (p, starts[p as usize])).collect();
            let (params, ends, progress) = (params.clone(), ends.to_vec(), progress.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("consumer-{task}"))
                    .spawn(move || consumer_thread(params, leader, positions, ends, until, progress))?,
            );
        }
    }
    Ok(threads)
}

async fn join_consumers(threads: Vec<ConsumerThread>) -> anyhow::Result<Vec<anyhow::Result<Totals>>> {
    Ok(tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("consumer thread panicked")))
            })
            .collect::<Vec<_>>()
    })
    .await?)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    use super::*;
    use crate::fetch_stream::FetchedPartition;

    #[test]
    fn a_consumer_behind_the_log_start_goes_on_from_it() {
        let partition = |error_code, log_start_offset, next_offset| FetchedPartition {
            partition: 0,
            error_code,
            log_start_offset,
            records: 3,
            bytes: 300,
            next_offset,
        };
        assert_eq!(next_position(&partition(0, 0, Some(13)), 10), Next::Read(13));
        assert_eq!(next_position(&partition(0, 0, None), 10), Next::Read(10));
        assert_eq!(
            next_position(&partition(OFFSET_OUT_OF_RANGE, 50, None), 10),
            Next::From(50)
        );
        // Kafka and ringlog answer OFFSET_OUT_OF_RANGE with a log start of -1.
        assert_eq!(
            next_position(&partition(OFFSET_OUT_OF_RANGE, -1, None), 10),
            Next::FromEarliest
        );
        assert_eq!(next_position(&partition(6, 0, None), 10), Next::Failed);
    }

    fn broker_with(apis: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
        ApiVersionsResponse::default().with_api_keys(
            apis.iter()
                .map(|&(key, min, max)| {
                    ApiVersion::default()
                        .with_api_key(key as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
    }

    #[test]
    fn create_topics_uses_the_highest_version_both_sides_speak() {
        let kafka = broker_with(&[(ApiKey::Produce, 0, 11), (ApiKey::CreateTopics, 2, 7)]);
        assert_eq!(create_topics_version(&kafka), Some(CREATE_TOPICS_VERSION));
        let old = broker_with(&[(ApiKey::CreateTopics, 0, 2)]);
        assert_eq!(create_topics_version(&old), Some(2));
    }

    #[test]
    fn create_topics_is_skipped_where_the_broker_lacks_it() {
        let mock = broker_with(&[(ApiKey::Produce, 0, 10), (ApiKey::Fetch, 0, 16)]);
        assert_eq!(create_topics_version(&mock), None, "librdkafka's mock broker");
        let newer_only = broker_with(&[(ApiKey::CreateTopics, 5, 7)]);
        assert_eq!(create_topics_version(&newer_only), None);
    }
}
