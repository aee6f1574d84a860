//! Test harness: starts the real `ringlog` binary on an ephemeral loopback port
//! with a temporary data dir, stops it by PID, and speaks raw Kafka protocol
//! for tests that need exact bytes. Tests use real clients for everything else.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The broker binary: `$RINGLOG_BIN`, or the workspace's debug build.
pub fn ringlog_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| workspace_binary("RINGLOG_BIN", "ringlog-server", "ringlog"))
}

/// The load generator: `$RINGLOG_BENCH_BIN`, or the workspace's debug build.
pub fn bench_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| workspace_binary("RINGLOG_BENCH_BIN", "ringlog-bench", "ringlog-bench"))
}

/// `$env_var` if set, else binary `bin` of `package` in the workspace's debug
/// build, built first (callers cache the answer: once per test process).
fn workspace_binary(env_var: &str, package: &str, bin: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env_var) {
        return PathBuf::from(path);
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .current_dir(workspace_root())
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building {bin} failed");
    workspace_root().join("target/debug").join(bin)
}

/// A running `ringlog serve`. Killed (SIGKILL) when dropped.
pub struct RunningBroker {
    child: Option<Child>,
    root: tempfile::TempDir,
    settings: Vec<(String, String)>,
    advertised_listener: Option<String>,
    address: String,
    metrics_address: String,
}

impl RunningBroker {
    /// Starts a broker with `--set key=value` for each setting.
    pub fn start(settings: &[(&str, &str)]) -> Self {
        Self::start_under(&std::env::temp_dir(), settings)
    }

    /// As [`Self::start`], with the data dir under `parent` (another filesystem).
    pub fn start_under(parent: &Path, settings: &[(&str, &str)]) -> Self {
        Self::start_with(parent, settings, None)
    }

    /// As [`Self::start`], telling clients to connect to `advertised` (a proxy).
    pub fn start_advertising(advertised: &str, settings: &[(&str, &str)]) -> Self {
        Self::start_with(&std::env::temp_dir(), settings, Some(advertised.to_string()))
    }

    fn start_with(parent: &Path, settings: &[(&str, &str)], advertised_listener: Option<String>) -> Self {
        let root = tempfile::tempdir_in(parent).expect("temp dir");
        let settings = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut broker = Self {
            child: None,
            root,
            settings,
            advertised_listener,
            address: String::new(),
            metrics_address: String::new(),
        };
        broker.launch();
        broker
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("broker.log")
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("broker log file");
        let mut command = Command::new(ringlog_binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--cores", "2", "--data-dir"])
            .arg(self.data_dir())
            .env(
                "RUST_LOG",
                std::env::var("RINGLOG_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(log);
        for (key, value) in &self.settings {
            command.arg("--set").arg(format!("{key}={value}"));
        }
        if let Some(advertised) = &self.advertised_listener {
            command.args(["--advertised-listener", advertised]);
        }
        let mut child = command.spawn().expect("spawning ringlog");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut metrics_address = None;
        let address = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!("broker did not start; log:\n{}", self.log());
            };
            if let Some(address) = line.strip_prefix("ringlog metrics on ") {
                metrics_address = Some(address.to_string());
            }
            if let Some(address) = line.strip_prefix("ringlog listening on ") {
                break address.to_string();
            }
        };
        self.address = address;
        self.metrics_address = metrics_address.expect("the broker prints its metrics address first");
        self.child = Some(child);
    }

    /// `host:port` of the `/metrics` and `/status` endpoint.
    pub fn metrics_address(&self) -> &str {
        &self.metrics_address
    }

    /// The body of `GET path` on the metrics endpoint.
    pub fn http_get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(&self.metrics_address).expect("connecting to the metrics endpoint");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("sending GET");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("reading the response");
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
        body.to_string()
    }

    /// The sum over all label sets of the Prometheus metric `name` (a
    /// per-core family summed over the cores).
    pub fn metric_sum(&self, name: &str) -> f64 {
        let prefix = format!("{name}{{");
        self.http_get("/metrics")
            .lines()
            .filter(|line| line.starts_with(&prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The value of the unlabelled Prometheus metric `name`, if reported.
    pub fn unlabelled_metric(&self, name: &str) -> Option<f64> {
        let prefix = format!("{name} ");
        self.http_get("/metrics")
            .lines()
            .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        &self.address
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal_and_wait(&mut self, signal: libc::c_int) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the PID of a child we spawned and still own.
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and returns at once; [`Self::wait_for_exit`] collects it.
    pub fn request_stop(&self) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on the PID of a child we spawned and still own.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        }
    }

    /// Waits for the broker process to end; its exit status.
    pub fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("a running broker");
        child.wait().expect("waiting for the broker")
    }

    /// Graceful stop (SIGTERM): flushes and writes the clean-shutdown marker.
    pub fn stop(&mut self) {
        self.signal_and_wait(libc::SIGTERM);
    }

    /// Crash (SIGKILL): nothing is flushed or sealed.
    pub fn kill(&mut self) {
        self.signal_and_wait(libc::SIGKILL);
    }

    /// Starts again on the same data dir (a new port).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill before restarting");
        self.launch();
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for RunningBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Python interpreter from the virtualenvs `scripts/test.sh` makes.
pub fn python_venv(name: &str) -> PathBuf {
    let python = workspace_root().join(".venv").join(name).join("bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/test.sh (it creates the venvs)",
        python.display()
    );
    python
}

/// A script of `tests/python`.
pub fn python_script(name: &str) -> PathBuf {
    workspace_root().join("tests/python").join(name)
}

/// Runs a command to completion, panicking with its output when it fails.
pub fn run_ok(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A Produce request (acks=all) of one record set to one partition.
pub fn produce_request(topic: &str, partition: i32, records: Bytes) -> kafka_protocol::messages::ProduceRequest {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    kafka_protocol::messages::ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// An idempotent batch of `values` from `producer_id` at `epoch`, its first
/// record at `sequence`.
pub fn idempotent_batch(producer_id: i64, epoch: i16, sequence: i32, values: &[String]) -> Bytes {
    use ringlog_engine::batch::{
        build_batch, compute_crc, BASE_SEQUENCE_POS, CRC_POS, PRODUCER_EPOCH_POS, PRODUCER_ID_POS,
    };
    let records: Vec<_> = values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
    // Now, not a fixed time: retention by time must not see these as old.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut batch = build_batch(&records, now_ms);
    batch[PRODUCER_ID_POS..PRODUCER_ID_POS + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH_POS..PRODUCER_EPOCH_POS + 2].copy_from_slice(&epoch.to_be_bytes());
    batch[BASE_SEQUENCE_POS..BASE_SEQUENCE_POS + 4].copy_from_slice(&sequence.to_be_bytes());
    let crc = compute_crc(&batch);
    batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    batch.freeze()
}

pub fn topic_name(name: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(StrBytes::from_string(name.to_string()))
}

/// A plain TCP connection speaking Kafka frames, for exact-byte tests.
pub struct RawConnection {
    stream: TcpStream,
    next_correlation_id: i32,
    peer: String,
}

impl RawConnection {
    pub fn connect(address: &str) -> Self {
        Self::try_connect(address).expect("connecting")
    }

    /// As [`Self::connect`], for tests where the broker may be down.
    pub fn try_connect(address: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            stream,
            next_correlation_id: 1,
            peer: address.to_string(),
        })
    }

    /// The address this connection was opened to.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Frames and sends a request; returns its correlation id.
    pub fn send<R: Request>(&mut self, version: i16, body: &R) -> i32 {
        self.try_send(version, body).expect("sending request")
    }

    /// As [`Self::send`], for tests where the broker may be killed.
    pub fn try_send<R: Request>(&mut self, version: i16, body: &R) -> std::io::Result<i32> {
        let (correlation_id, frame) = self.frame(version, body);
        self.send_bytes(&frame)?;
        Ok(correlation_id)
    }

    /// A request framed (size prefix and header) but not sent, with its
    /// correlation id: for tests that cut or join frames themselves.
    pub fn frame<R: Request>(&mut self, version: i16, body: &R) -> (i32, BytesMut) {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("ringlog-tests")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, R::header_version(version))
            .expect("encode header");
        body.encode(&mut buf, version).expect("encode body");
        let mut frame = BytesMut::with_capacity(buf.len() + 4);
        frame.put_i32(buf.len() as i32);
        frame.extend_from_slice(&buf);
        (correlation_id, frame)
    }

    /// Reads the response to the oldest request not yet answered, which must
    /// be `correlation_id` (Kafka answers in order on a connection).
    pub fn try_receive<R: Request>(&mut self, version: i16, correlation_id: i32) -> std::io::Result<R::Response> {
        let invalid = |reason: String| std::io::Error::new(std::io::ErrorKind::InvalidData, reason);
        let mut frame = self.read_frame()?;
        let header = ResponseHeader::decode(&mut frame, <R::Response as HeaderVersion>::header_version(version))
            .map_err(|e| invalid(e.to_string()))?;
        assert_eq!(header.correlation_id, correlation_id, "responses in request order");
        R::Response::decode(&mut frame, version).map_err(|e| invalid(e.to_string()))
    }

    /// Reads one response frame (without its size prefix).
    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut frame)?;
        Ok(Bytes::from(frame))
    }

    /// Sends a request and decodes its response.
    pub fn request<R: Request>(&mut self, version: i16, body: &R) -> R::Response {
        let correlation_id = self.send(version, body);
        self.try_receive::<R>(version, correlation_id)
            .expect("reading the response")
    }

    /// Produce v9 with acks=all of one record set to one partition; returns
    /// the partition's `(error code, base offset)`.
    pub fn produce(&mut self, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
        let response = self.request(9, &produce_request(topic, partition, records));
        let partition = &response.responses[0].partition_responses[0];
        (partition.error_code, partition.base_offset)
    }

    /// A new idempotent producer id (epoch 0).
    pub fn init_producer_id(&mut self) -> i64 {
        let request = kafka_protocol::messages::InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000);
        let response = self.request(4, &request);
        assert_eq!(response.error_code, 0, "InitProducerId");
        assert_eq!(response.producer_epoch, 0);
        response.producer_id.0
    }

    /// Every record of `topic`/`partition` from its log start to its high
    /// watermark, as `(offset, value)`. Panics on a batch whose CRC-32C or
    /// framing is wrong: a broker must never serve one. If retention moves
    /// the log start past the read meanwhile, reads again from the new start.
    pub fn read_partition(&mut self, topic: &str, partition: i32) -> Vec<(i64, Vec<u8>)> {
        const ATTEMPTS: usize = 20;
        for _ in 0..ATTEMPTS {
            let start = self.earliest_offset(topic, partition);
            if let Some(records) = self.read_partition_from(topic, partition, start) {
                return records;
            }
        }
        panic!("{topic}/{partition}: {ATTEMPTS} reads from the log start were out of range (retention outran them?)");
    }

    /// The log start offset (ListOffsets, earliest).
    pub fn earliest_offset(&mut self, topic: &str, partition: i32) -> i64 {
        use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
        use kafka_protocol::messages::{BrokerId, ListOffsetsRequest};
        const EARLIEST: i64 = -2;
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(EARLIEST)])]);
        let response = self.request(4, &request);
        let answer = &response.topics[0].partitions[0];
        assert_eq!(answer.error_code, 0, "ListOffsets {topic}/{partition}");
        answer.offset
    }

    /// `read_partition` from `start`; `None` if the log start passed the read.
    fn read_partition_from(&mut self, topic: &str, partition: i32, start: i64) -> Option<Vec<(i64, Vec<u8>)>> {
        use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
        use ringlog_engine::batch::{batch_total_bytes, parse_records, validate_batch};
        const OFFSET_OUT_OF_RANGE: i16 = 1;
        let mut records = Vec::new();
        let mut offset = start;
        loop {
            let request = kafka_protocol::messages::FetchRequest::default()
                .with_max_wait_ms(0)
                .with_min_bytes(0)
                .with_max_bytes(4 << 20)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20)])]);
            let response = self.request(11, &request);
            let data = &response.responses[0].partitions[0];
            if data.error_code == OFFSET_OUT_OF_RANGE {
                return None;
            }
            assert_eq!(
                data.error_code, 0,
                "fetching {topic}/{partition} at {offset} (log start {}, high watermark {})",
                data.log_start_offset, data.high_watermark
            );
            let set = data.records.clone().unwrap_or_default();
            let mut rest = &set[..];
            // A response may end inside a batch (Kafka's max bytes): the
            // next fetch starts at that batch.
            while let Ok(total_bytes) = batch_total_bytes(rest) {
                if total_bytes > rest.len() {
                    break;
                }
                let batch = &rest[..total_bytes];
                let header = validate_batch(batch)
                    .unwrap_or_else(|e| panic!("corrupt batch served from {topic}/{partition}: {e}"));
                if !header.is_control() {
                    let parsed = parse_records(batch).expect("uncompressed records");
                    records.extend(
                        parsed
                            .into_iter()
                            .filter(|r| r.offset >= offset)
                            .map(|r| (r.offset, r.value.unwrap_or_default().to_vec())),
                    );
                }
                offset = offset.max(header.next_offset());
                rest = &rest[total_bytes..];
            }
            if offset >= data.high_watermark {
                return Some(records);
            }
        }
    }

    /// True when the broker has closed this connection (EOF or reset).
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut byte = [0u8; 1];
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

/// Reads the correlation id and the rest of a raw response frame.
pub fn split_correlation_id(mut frame: Bytes) -> (i32, Bytes) {
    let correlation_id = frame.get_i32();
    (correlation_id, frame)
}

/// A TCP proxy on loopback that can cut every connection through it at
/// intervals, to test client retries (idempotence) against real disconnects.
pub struct ChaosProxy {
    address: String,
    state: std::sync::Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    target: std::sync::Mutex<Option<String>>,
    live: std::sync::Mutex<Vec<TcpStream>>,
    chaos: std::sync::atomic::AtomicBool,
    stopped: std::sync::atomic::AtomicBool,
    cuts: std::sync::atomic::AtomicUsize,
}

impl ChaosProxy {
    /// Listens now; forwards once [`Self::set_target`] names the upstream.
    pub fn start(cut_interval: Duration) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let address = listener.local_addr().expect("proxy address").to_string();
        let state = std::sync::Arc::new(ProxyState::default());
        let accept_state = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept_state.stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let target = accept_state.target.lock().expect("lock").clone();
                let Some(Ok(upstream)) = target.map(TcpStream::connect) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let pipes = [
                    (client.try_clone(), upstream.try_clone()),
                    (upstream.try_clone(), client.try_clone()),
                ];
                for pipe in pipes {
                    if let (Ok(mut from), Ok(mut to)) = pipe {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        });
                    }
                }
                accept_state.live.lock().expect("lock").extend([client, upstream]);
            }
        });
        let chaos_state = state.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(cut_interval);
            if chaos_state.stopped.load(Ordering::Relaxed) {
                return;
            }
            if chaos_state.chaos.load(Ordering::Relaxed) {
                let mut live = chaos_state.live.lock().expect("lock");
                if !live.is_empty() {
                    chaos_state.cuts.fetch_add(1, Ordering::Relaxed);
                }
                for stream in live.drain(..) {
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                }
            }
        });
        Self { address, state }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn set_target(&self, target: &str) {
        *self.state.target.lock().expect("lock") = Some(target.to_string());
    }

    /// While on, every connection through the proxy is cut at each interval.
    pub fn set_chaos(&self, on: bool) {
        self.state.chaos.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many times live connections were cut.
    pub fn cuts(&self) -> usize {
        self.state.cuts.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        self.state.stopped.store(true, Ordering::Relaxed);
        for stream in self.state.live.lock().expect("lock").drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        let _ = TcpStream::connect(&self.address); // wake the accept loop
    }
}

/// Creates `name` with `partitions` partitions through librdkafka's admin API.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for result in admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .expect("create_topics")
    {
        result.expect("topic created");
    }
}

/// Creates a topic over the raw protocol (CreateTopics v7) with `configs`;
/// returns the error code (0 on success).
pub fn create_topic_raw(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) -> i16 {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    let mut connection = RawConnection::connect(bootstrap);
    connection
        .request(7, &CreateTopicsRequest::default().with_topics(vec![topic]))
        .topics[0]
        .error_code
}

/// librdkafka consumer settings for tests that assign partitions or commit
/// by hand: `group.id` set, auto-commit off. Callers add what they need.
pub fn manual_consumer_config(bootstrap: &str, group: &str) -> rdkafka::config::ClientConfig {
    let mut config = rdkafka::config::ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    config
}

/// Assigns `consumer` partitions `0..partitions` of `topic`, each from its
/// first offset (explicit assignment: no group rebalance involved).
pub fn assign_from_beginning(consumer: &impl rdkafka::consumer::Consumer, topic: &str, partitions: i32) {
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
}
