//! e2e: latency from each record's intended send time to its arrival at a
//! consumer, at a fixed rate. Measuring from the intended time, not the
//! actual one, corrects for coordinated omission: a stalled producer makes
//! every record it should have sent meanwhile late.
//!
//! The producer and the consumer each run on an OS thread of their own with
//! blocking sockets. An async runtime's millisecond timer and its task
//! hand-offs would add more delay than the broker under test takes; here the
//! producer sleeps with a 1 µs timer slack and the consumer wakes the moment
//! its fetch response arrives.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kafka_protocol::messages::{FetchRequest, ProduceRequest};
use ringlog_engine::batch::{self, Codec};

use crate::client::{BlockingConnection, ProduceTarget, PRODUCE_VERSION};
use crate::workload::Totals;
use crate::workload::{
    acks, build_batch, codec, fetch_request, next_offset, offsets, records_per_batch, PRODUCE_TIMEOUT_MS,
};
use crate::Params;

/// How long the consumer keeps reading after the producer stops, for the
/// records still on their way.
const DRAIN_MS: u64 = 500;

/// The schedule: record `i` is due at `i * interval` after `origin`.
#[derive(Clone, Copy)]
struct Schedule {
    origin: Instant,
    interval_ns: f64,
    measure_from: Instant,
    until: Instant,
}

impl Schedule {
    /// Records due by `now`: every `i` with `i * interval <= now - origin`.
    fn due_by(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.origin).as_nanos() as f64 / self.interval_ns) as u64 + 1
    }

    fn stamp_ns(&self, record: u64) -> u64 {
        (record as f64 * self.interval_ns) as u64
    }

    fn measured(&self, stamp_ns: u64) -> bool {
        self.origin + Duration::from_nanos(stamp_ns) >= self.measure_from
    }
}

pub async fn e2e(params: Arc<Params>) -> anyhow::Result<Totals> {
    let rate_mb_s = params.rate_mb_s.unwrap_or(50.0);
    anyhow::ensure!(rate_mb_s > 0.0, "--rate-mb-s must be positive");
    let records_per_s = rate_mb_s * 1e6 / params.record_bytes.max(8) as f64;
    let starts = offsets(&params, -1).await?;
    let origin = Instant::now();
    let measure_from = origin + Duration::from_secs_f64(params.warmup_s);
    let schedule = Schedule {
        origin,
        interval_ns: 1e9 / records_per_s,
        measure_from,
        until: measure_from + Duration::from_secs_f64(params.duration_s),
    };
    let producer_params = params.clone();
    let producer = std::thread::Builder::new()
        .name("e2e-producer".into())
        .spawn(move || produce_on_schedule(&producer_params, schedule))?;
    // A consumer per leader, as a Kafka client fetches from each broker.
    let all_partitions: Vec<i32> = (0..params.partitions).collect();
    let consumers = params
        .routes(&all_partitions)
        .into_iter()
        .map(|(leader, partitions)| {
            let positions = partitions.iter().map(|&p| (p, starts[p as usize])).collect();
            let consumer_params = params.clone();
            std::thread::Builder::new()
                .name("e2e-consumer".into())
                .spawn(move || consume_and_time(&consumer_params, &leader, schedule, positions))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (produced, consumed) = tokio::task::spawn_blocking(move || {
        let consumed: Vec<_> = consumers.into_iter().map(|consumer| consumer.join()).collect();
        (producer.join(), consumed)
    })
    .await?;
    let acknowledged = produced.map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    let consumed = consumed
        .into_iter()
        .map(|joined| joined.unwrap_or_else(|_| Err(anyhow::anyhow!("consumer thread panicked"))))
        .collect();
    let mut totals = crate::workload::merge(consumed, params.duration_s)?;
    totals.errors += acknowledged.failed;
    totals.acks_latency_us = acknowledged.latency_us;
    totals.elapsed_s = params.duration_s;
    Ok(totals)
}

/// Lets `std::thread::sleep` wake within a microsecond of its deadline
/// (Linux's default timer slack is 50 µs).
fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only affects
    // the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
    }
}

/// What the producer's requests got back.
struct Acknowledged {
    failed: u64,
    /// Send to response, microseconds; `None` with acks=0 (no responses).
    latency_us: Option<Histogram<u64>>,
}

/// The producer's connection to one leader, and the thread that reads its
/// responses (none with acks=0).
struct LeaderLink {
    connection: BlockingConnection,
    /// Holds the requests in flight: a full channel blocks the producer
    /// until the reader has taken a response.
    in_flight: SyncSender<(i32, Instant)>,
    reader: Option<std::thread::JoinHandle<anyhow::Result<Acknowledged>>>,
}

impl LeaderLink {
    fn open(leader: &str, acks: i16, in_flight_max: usize) -> anyhow::Result<Self> {
        let connection = BlockingConnection::connect(leader)?;
        let (in_flight, answered) = sync_channel::<(i32, Instant)>(in_flight_max.max(1));
        let reader = if acks == 0 {
            None
        } else {
            let responses = connection.try_clone()?;
            Some(std::thread::spawn(move || count_failed_produces(responses, answered)))
        };
        Ok(Self {
            connection,
            in_flight,
            reader,
        })
    }

    /// Stops sending and waits for the outstanding responses.
    fn finish(self) -> anyhow::Result<Acknowledged> {
        drop(self.in_flight);
        match self.reader {
            Some(reader) => reader
                .join()
                .map_err(|_| anyhow::anyhow!("produce response reader panicked"))?,
            None => Ok(Acknowledged {
                failed: 0,
                latency_us: None,
            }),
        }
    }
}

/// Sends every due record, in one batch per wake-up, to the partitions in
/// turn, each on its leader's connection.
fn produce_on_schedule(params: &Params, schedule: Schedule) -> anyhow::Result<Acknowledged> {
    tighten_timer_slack();
    let acks = acks(&params.acks)?;
    let codec = codec(&params.compression)?;
    let linger = Duration::from_micros(params.linger_us);
    let all_partitions: Vec<i32> = (0..params.partitions).collect();
    let routes = params.routes(&all_partitions);
    let mut links = routes
        .iter()
        .map(|(leader, _)| LeaderLink::open(leader, acks, params.in_flight))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let link_of: Vec<usize> = all_partitions
        .iter()
        .map(|p| routes.iter().position(|(_, group)| group.contains(p)).unwrap_or(0))
        .collect();
    let mut sent = 0u64;
    let mut partition = 0i32;
    let records_per_batch = records_per_batch(params);
    'schedule: while Instant::now() < schedule.until {
        let due = schedule.due_by(Instant::now());
        while due > sent {
            // After a stall many records are due at once: one batch per
            // --batch-bytes keeps each under the broker's message size limit.
            let count = (due - sent).min(records_per_batch);
            let stamps: Vec<u64> = (sent..sent + count).map(|i| schedule.stamp_ns(i)).collect();
            sent += count;
            let batch = build_batch(stamps.len(), params.record_bytes, "none", codec, &stamps)?;
            let target = ProduceTarget {
                topic: &params.topic,
                partition: partition % params.partitions,
                acks,
                timeout_ms: PRODUCE_TIMEOUT_MS,
            };
            partition = partition.wrapping_add(1);
            let link = &mut links[link_of[target.partition as usize]];
            let correlation_id = link.connection.send_produce(&target, batch)?;
            if acks != 0 && link.in_flight.send((correlation_id, Instant::now())).is_err() {
                break 'schedule; // the reader stopped: its error is reported below
            }
        }
        std::thread::sleep(linger);
    }
    let mut acknowledged = Acknowledged {
        failed: 0,
        latency_us: (acks != 0).then(crate::workload::new_histogram),
    };
    for link in links {
        let one = link.finish()?;
        acknowledged.failed += one.failed;
        if let (Some(all), Some(latency_us)) = (acknowledged.latency_us.as_mut(), one.latency_us) {
            all.add(&latency_us).map_err(anyhow::Error::msg)?;
        }
    }
    Ok(acknowledged)
}

const FETCH_VERSION: i16 = 12;

/// Reads the produce responses, counting failures and timing each from its
/// send, which tells the producer's share of the end-to-end time from the
/// consumer's.
fn count_failed_produces(
    mut connection: BlockingConnection,
    answered: Receiver<(i32, Instant)>,
) -> anyhow::Result<Acknowledged> {
    let mut failed = 0;
    let mut latency_us = crate::workload::new_histogram();
    for (correlation_id, sent_at) in answered {
        let response = connection.receive::<ProduceRequest>(PRODUCE_VERSION, correlation_id)?;
        let _ = latency_us.record(sent_at.elapsed().as_micros().max(1) as u64);
        let error = response
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.error_code != 0);
        if let Some(error) = error {
            if failed == 0 {
                eprintln!("ringlog-bench: produce failed with error code {}", error.error_code);
            }
            failed += 1;
        }
    }
    Ok(Acknowledged {
        failed,
        latency_us: Some(latency_us),
    })
}

/// Fetches `positions`' partitions from `leader` until the run ends,
/// recording arrival minus intended send time of each measured record.
fn consume_and_time(
    params: &Params,
    leader: &str,
    schedule: Schedule,
    mut positions: Vec<(i32, i64)>,
) -> anyhow::Result<Totals> {
    let mut connection = BlockingConnection::connect(leader)?;
    let mut totals = Totals::empty();
    let stop_at = schedule.until + Duration::from_millis(DRAIN_MS);
    while Instant::now() < stop_at {
        let request: FetchRequest = fetch_request(params, &positions, params.fetch_max_wait_ms);
        let response = connection.call(FETCH_VERSION, &request)?;
        let arrived_ns = schedule.origin.elapsed().as_nanos() as u64;
        for partition in response.responses.iter().flat_map(|t| t.partitions.iter()) {
            let Some(records) = partition.records.as_deref() else {
                continue;
            };
            for stamp_ns in record_stamps(records)? {
                if schedule.measured(stamp_ns) {
                    totals.records += 1;
                    totals.bytes += params.record_bytes as u64;
                    let _ = totals
                        .latency_us
                        .record((arrived_ns.saturating_sub(stamp_ns) / 1000).max(1));
                }
            }
            if let Some(position) = positions.iter_mut().find(|(p, _)| *p == partition.partition_index) {
                position.1 = next_offset(records, position.1);
            }
        }
    }
    Ok(totals)
}

/// The send stamps (first 8 value bytes) of every record in whole batches.
fn record_stamps(mut records: &[u8]) -> anyhow::Result<Vec<u64>> {
    let mut stamps = Vec::new();
    while let Ok(total) = batch::batch_total_bytes(records) {
        let Some(whole) = records.get(..total) else { break };
        let decoded = ringlog_engine::compression::recompress_batch(whole, Codec::None, 64 << 20)?;
        let plain = decoded.as_deref().unwrap_or(whole);
        for record in batch::parse_records(plain).unwrap_or_default() {
            if let Some(stamp) = record.value.and_then(|v| v.get(..8)).and_then(|b| b.try_into().ok()) {
                stamps.push(u64::from_be_bytes(stamp));
            }
        }
        records = &records[total..];
    }
    Ok(stamps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_counts_a_record_due_at_its_own_instant() {
        let origin = Instant::now();
        let schedule = Schedule {
            origin,
            interval_ns: 1000.0,
            measure_from: origin + Duration::from_micros(5),
            until: origin + Duration::from_millis(1),
        };
        assert_eq!(schedule.due_by(origin), 1, "record 0 is due at the origin");
        assert_eq!(schedule.due_by(origin + Duration::from_nanos(999)), 1);
        assert_eq!(schedule.due_by(origin + Duration::from_nanos(1000)), 2);
        assert_eq!(schedule.stamp_ns(3), 3000);
        assert!(!schedule.measured(4000) && schedule.measured(5000));
    }

    #[test]
    fn stamps_come_back_from_plain_and_compressed_batches() {
        for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
            let one = build_batch(3, 64, "none", codec, &[7, 8, 9]).expect("batch");
            let two = build_batch(1, 64, "none", codec, &[10]).expect("batch");
            let records = [&one[..], &two[..]].concat();
            assert_eq!(record_stamps(&records).expect("stamps"), vec![7, 8, 9, 10]);
        }
    }
}
