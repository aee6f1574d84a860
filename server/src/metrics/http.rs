//! The operator's endpoint on `--metrics-listen`: `GET /metrics` (Prometheus
//! text) and `GET /status` (JSON for `ringlog status`).
//!
//! It runs on its own unpinned thread with a small tokio runtime, so a scrape
//! never holds up a core: cores only answer one `ShardRequest::Metrics` each.
//! HTTP is hand-written because one GET route with `Connection: close` is all
//! Prometheus needs; a server crate would bring a stack for 60 lines.
//!
//! Invariants: a request head over [`REQUEST_HEAD_BYTES_MAX`] or slower than
//! [`REQUEST_TIMEOUT`] is dropped; one connection is served at a time per
//! accept (scrapes are rare), each on its own task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::exposition::{self, GroupLag, Scrape};
use super::{CoreSnapshot, TopicTraffic, TRAFFIC_WINDOW_S};
use crate::broker::Broker;
use crate::nodes::NodeAddress;
use crate::runtime::messages::{ShardRequest, TopicPartition};

const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What `GET /status` answers and `ringlog status` prints.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub uptime_s: f64,
    pub cores: usize,
    pub partitions_per_core: Vec<usize>,
    pub connections: u64,
    pub last_minute: Throughput,
    /// The brokers clients are told about: with core listeners node k is
    /// core k. Absent from brokers older than this field.
    #[serde(default)]
    pub nodes: Vec<NodeAddress>,
}

/// Averages over the last [`TRAFFIC_WINDOW_S`] seconds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Throughput {
    pub bytes_in_per_s: f64,
    pub records_in_per_s: f64,
    pub bytes_out_per_s: f64,
    /// Absent from brokers older than this field.
    #[serde(default)]
    pub records_out_per_s: f64,
}

/// Binds `address` now (so a taken port stops the start) and serves it on a
/// thread of its own. Returns the bound address.
pub fn start(broker: Arc<Broker>, address: SocketAddr, started: Instant) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new()
        .name("ringlog-metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::error!(%error, "metrics listener failed");
                        return;
                    }
                };
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => {
                            let broker = broker.clone();
                            tokio::spawn(async move {
                                let served = tokio::time::timeout(REQUEST_TIMEOUT, serve(stream, &broker, started));
                                if let Ok(Err(error)) = served.await {
                                    tracing::debug!(%error, "metrics request failed");
                                }
                            });
                        }
                        Err(error) => {
                            tracing::warn!(%error, "metrics accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
        })?;
    Ok(bound)
}

async fn serve(mut stream: TcpStream, broker: &Broker, started: Instant) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await?;
        if read == 0 || head.len() + read > REQUEST_HEAD_BYTES_MAX {
            return Ok(());
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let request_line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(request_line);
    let mut words = request_line.split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => {
            let scrape = scrape(broker, started).await;
            ("200 OK", "text/plain; version=0.0.4", exposition::render(&scrape))
        }
        ("GET", "/status") => {
            let cores = broker.ask_every_core(|reply| ShardRequest::Metrics { reply }).await;
            let body = serde_json::to_string_pretty(&status(broker, &cores, started.elapsed().as_secs_f64()))
                .unwrap_or_default();
            ("200 OK", "application/json", body)
        }
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics or /status\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".to_string()),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

fn status(broker: &Broker, cores: &[CoreSnapshot], uptime_s: f64) -> Status {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let minute: TopicTraffic = cores.iter().map(|core| core.counters.window.last_window(now_s)).sum();
    // A broker younger than a minute averages over its age.
    let seconds = uptime_s.clamp(1.0, TRAFFIC_WINDOW_S as f64);
    Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_s,
        cores: cores.len(),
        partitions_per_core: cores.iter().map(|c| c.partitions.len()).collect(),
        connections: cores.iter().map(|c| c.counters.connections_open).sum(),
        last_minute: Throughput {
            bytes_in_per_s: minute.bytes_in as f64 / seconds,
            records_in_per_s: minute.records_in as f64 / seconds,
            bytes_out_per_s: minute.bytes_out as f64 / seconds,
            records_out_per_s: minute.records_out as f64 / seconds,
        },
        nodes: broker.nodes.all().to_vec(),
    }
}

async fn scrape(broker: &Broker, started: Instant) -> Scrape {
    let cores = broker.ask_every_core(|reply| ShardRequest::Metrics { reply }).await;
    let lags = group_lags(broker, &cores).await;
    Scrape {
        uptime_s: started.elapsed().as_secs_f64(),
        cores,
        lags,
        disk_free_bytes: ringlog_engine::io::filesystem_space(&broker.data_dir).map(|space| space.available_bytes),
        request_frame_huge_pages: crate::net::chunk_supply::huge_pages_in_use(),
    }
}

/// Joins each committed offset (from its group's core) with its partition's
/// high watermark (from the partition's core).
async fn group_lags(broker: &Broker, cores: &[CoreSnapshot]) -> Vec<GroupLag> {
    let high_watermarks: std::collections::HashMap<(&str, i32), i64> = cores
        .iter()
        .flat_map(|c| &c.partitions)
        .map(|p| ((&*p.topic, p.partition), p.high_watermark))
        .collect();
    let now_ms = crate::runtime::shard::now_ms();
    let mut lags = Vec::new();
    for committed in cores.iter().flat_map(|c| &c.committed) {
        let Some(high_watermark) = high_watermarks.get(&(committed.topic.as_str(), committed.partition)) else {
            continue; // the topic is gone
        };
        let offset_lag = (high_watermark - committed.offset).max(0);
        let time_lag_s = if offset_lag == 0 {
            0.0
        } else {
            let tp = TopicPartition {
                topic: committed.topic.as_str().into(),
                partition: committed.partition,
            };
            first_timestamp_at(broker, tp, committed.offset)
                .await
                .map_or(0.0, |timestamp_ms| (now_ms - timestamp_ms).max(0) as f64 / 1000.0)
        };
        lags.push(GroupLag {
            group: committed.group.clone(),
            topic: committed.topic.clone(),
            partition: committed.partition,
            offset_lag,
            time_lag_s,
        });
    }
    lags
}

/// The first timestamp of the batch holding `offset`, read on this thread.
async fn first_timestamp_at(broker: &Broker, tp: TopicPartition, offset: i64) -> Option<i64> {
    use ringlog_engine::batch::{BatchHeader, BATCH_HEADER_BYTES};
    use ringlog_engine::ReadChunk;
    let read = broker
        .call_owner(tp, |tp, reply| ShardRequest::Read {
            tp,
            offset,
            max_bytes: BATCH_HEADER_BYTES,
            min_one_batch: true,
            isolation: ringlog_engine::Isolation::ReadUncommitted,
            reply,
        })
        .await?
        .ok()?;
    // A cached batch comes as its stamped prefix and the rest: gather the
    // header across chunks.
    let mut header = Vec::with_capacity(BATCH_HEADER_BYTES);
    for chunk in &read.chunks {
        let wanted = BATCH_HEADER_BYTES - header.len();
        match chunk {
            ReadChunk::Memory(bytes) => header.extend_from_slice(&bytes[..wanted.min(bytes.len())]),
            ReadChunk::File(region) => {
                use std::os::unix::fs::FileExt;
                let mut from_file = vec![0u8; wanted.min(region.len as usize)];
                region.file.read_exact_at(&mut from_file, region.position).ok()?;
                header.extend_from_slice(&from_file);
            }
        }
        if header.len() == BATCH_HEADER_BYTES {
            break;
        }
    }
    BatchHeader::parse(&header).ok().map(|h| h.base_timestamp)
}

/// `ringlog status`: asks a running broker's metrics endpoint.
pub fn fetch_status(address: &str) -> anyhow::Result<Status> {
    use anyhow::Context;
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)
        .with_context(|| format!("connecting to the metrics endpoint {address}"))?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    write!(
        stream,
        "GET /status HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .context("reading the /status response")?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("the /status response has no header end")?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "/status answered: {}",
        head.lines().next().unwrap_or("")
    );
    serde_json::from_str(body).context("parsing /status")
}
