//! `ringlog`: the broker binary. `ringlog serve` starts a node.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ringlog_engine::{IoMode, IoPolicy};
use tokio::sync::mpsc;

use ringlog_server::broker::Broker;
use ringlog_server::config::{BrokerConfig, LogIoMode, ReadMode};
use ringlog_server::metadata::ClusterMetadata;
use ringlog_server::nodes::Nodes;
use ringlog_server::runtime::messages::ShardRequest;
use ringlog_server::runtime::shard::{run_core, CoreStartup};
use ringlog_server::{admin, metadata, metrics, net};

/// mimalloc instead of glibc's malloc: with many 4 KiB-aligned O_DIRECT
/// buffers freed between small allocations, glibc's bins fragmented and
/// `_int_malloc` took a fifth of the broker's CPU at 50 MB/s (perf).
/// Built with `no_thp`: mimalloc then leaves huge pages to the system's THP
/// policy instead of asking for them. On the development VM a fresh 2 MiB
/// page costs ~7 ms at first touch (291 MB/s, against 1.4-1.7 GB/s in 4 KiB
/// pages), and filling the batch cache with such pages was most of the
/// broker's CPU in short produce runs (docs/PERFORMANCE.md, session 5).
#[global_allocator]
static GLOBAL_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Written at clean shutdown, removed at start: its presence lets recovery
/// trust the segment indexes instead of scanning.
const CLEAN_SHUTDOWN_FILE_NAME: &str = ".clean-shutdown";
const LOCK_FILE_NAME: &str = ".lock";

#[derive(Parser)]
#[command(name = "ringlog", version, about = "Kafka-compatible event-streaming broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a broker node.
    #[command(after_help = BrokerConfig::help_table())]
    Serve(ServeArgs),
    /// Topics of a running broker: create, list, describe, alter, delete.
    Topic {
        /// Broker to talk to.
        #[arg(long, default_value = "127.0.0.1:9092", global = true)]
        bootstrap: String,
        #[command(subcommand)]
        command: admin::TopicCommand,
    },
    /// A running broker at a glance: version, uptime, cores, partitions per
    /// core, connections, throughput over the last minute.
    Status {
        /// The broker's metrics endpoint (its --metrics-listen).
        #[arg(long, default_value = "127.0.0.1:9644")]
        metrics_address: String,
        /// Print the JSON the broker answered instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Consumer groups of a running broker: list, describe with lag, reset offsets, delete.
    Group {
        /// Broker to talk to.
        #[arg(long, default_value = "127.0.0.1:9092", global = true)]
        bootstrap: String,
        #[command(subcommand)]
        command: admin::GroupCommand,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to accept Kafka clients on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// Directory for segments and metadata.
    #[arg(long, default_value = "./ringlog-data")]
    data_dir: PathBuf,
    /// Cores (threads) to run; default: all online cores.
    #[arg(long)]
    cores: Option<usize>,
    /// host:port clients are told to connect to; default: the listen address.
    #[arg(long)]
    advertised_listener: Option<String>,
    /// TOML file of broker settings (Kafka names).
    #[arg(long)]
    config: Option<PathBuf>,
    /// One broker setting, KEY=VALUE; repeatable; overrides the file.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = admin::parse_key_value)]
    set: Vec<(String, String)>,
    /// Address of the HTTP endpoint for Prometheus (/metrics) and `ringlog
    /// status` (/status); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9644")]
    metrics_listen: SocketAddr,
    /// Log level when RUST_LOG is unset (error, warn, info, debug, trace).
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Group { bootstrap, command } => admin::run_group_command(&bootstrap, command),
        Command::Topic { bootstrap, command } => admin::run_topic_command(&bootstrap, command),
        Command::Status { metrics_address, json } => admin::status::run(&metrics_address, json),
    };
    if let Err(error) = result {
        eprintln!("ringlog: {error:#}");
        std::process::exit(1);
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // Otherwise a log line that cannot be written (stderr to a file on a
        // full disk) is reported with eprintln!, which panics when that
        // fails too: the thread that logged died (a produce got no answer).
        .log_internal_errors(false)
        .init();
}

/// Partitions and connections each hold descriptors: raise the soft limit to
/// the hard one (what Kafka's and Redpanda's service files ask for).
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    if raised {
        tracing::debug!(open_files_max = limit.rlim_cur, "open files limit");
    } else {
        tracing::warn!(error = %std::io::Error::last_os_error(), "could not raise the open files limit");
    }
}

/// Holds an exclusive lock on the data dir for the process's lifetime, so two
/// brokers never write the same segments.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = data_dir.join(LOCK_FILE_NAME);
    let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    // SAFETY: flock on a valid, owned descriptor.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        anyhow::bail!("data dir {} is in use by another ringlog process", data_dir.display());
    }
    Ok(file)
}

fn advertised_address(args: &ServeArgs, bound: SocketAddr) -> anyhow::Result<(String, i32)> {
    match &args.advertised_listener {
        None => Ok((bound.ip().to_string(), i32::from(bound.port()))),
        Some(listener) => {
            let (host, port) = listener
                .rsplit_once(':')
                .with_context(|| format!("--advertised-listener {listener:?} is not host:port"))?;
            let port: u16 = port.parse().with_context(|| format!("bad port in {listener:?}"))?;
            Ok((host.to_string(), i32::from(port)))
        }
    }
}

/// The nodes clients are told about, and each core's own listener when
/// `core.listeners` gives every core a node (`ringlog_server::nodes`).
fn bind_nodes(
    args: &ServeArgs,
    config: &BrokerConfig,
    core_count: usize,
    node_id: i32,
    (advertised_host, advertised_port): (&str, i32),
) -> anyhow::Result<(Vec<std::net::TcpListener>, Nodes)> {
    if !config
        .core_listeners
        .resolve(|| core_count > 1 && args.advertised_listener.is_none())
    {
        return Ok((Vec::new(), Nodes::single(node_id, advertised_host, advertised_port)));
    }
    let listeners = net::listener::bind_core_listeners(args.listen.ip(), config.core_listeners_first_port, core_count)
        .context("binding core listeners (core.listeners=false turns them off)")?;
    let ports = listeners
        .iter()
        .map(|listener| listener.local_addr().map(|address| i32::from(address.port())))
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok((listeners, Nodes::per_core(node_id, advertised_host, &ports)))
}

/// `log.read.mode=direct` needs a data dir that takes O_DIRECT (`log.io.mode`
/// direct or auto) and segments that can be reopened for O_DIRECT; without
/// either, fetches use sendfile, said once at start. Under auto, segments of
/// quiet partitions go through the page cache; the kernel writes their dirty
/// pages back before an O_DIRECT read of them, so such reads stay coherent.
fn effective_read_mode(wanted: ReadMode, io_mode: IoMode, data_dir: &Path) -> ReadMode {
    if wanted == ReadMode::Sendfile {
        return ReadMode::Sendfile;
    }
    if io_mode != IoMode::Direct {
        tracing::warn!("log.read.mode=direct needs O_DIRECT (log.io.mode direct or auto); fetches use sendfile");
        return ReadMode::Sendfile;
    }
    if let Err(error) = ringlog_engine::io::probe_direct_reopen(data_dir) {
        tracing::warn!(%error, "segments cannot be reopened for O_DIRECT reads; fetches use sendfile");
        return ReadMode::Sendfile;
    }
    ReadMode::Direct
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    init_logging(&args.log_level);
    raise_open_files_limit();
    let mut config = BrokerConfig::load(args.config.as_deref(), &args.set)?;
    net::chunk_supply::choose_pages(config.socket_request_huge_pages);
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let _lock = lock_data_dir(&args.data_dir)?;
    // Partition directories a crash left half deleted.
    ringlog_engine::fs_offload::remove_leftovers(&args.data_dir);
    let clean_marker = args.data_dir.join(CLEAN_SHUTDOWN_FILE_NAME);
    let clean_shutdown = clean_marker.exists();
    let io_mode = match config.log_io_mode {
        LogIoMode::Direct | LogIoMode::Auto => ringlog_engine::io::probe_direct_io(&args.data_dir),
        LogIoMode::Buffered => IoMode::Buffered,
    };
    let io_policy = match (config.log_io_mode, io_mode) {
        (LogIoMode::Auto, IoMode::Direct) => IoPolicy::Auto {
            direct_above_bytes_per_s: config.log_io_auto_direct_bytes_per_second,
            core_direct_above_bytes_per_s: config.log_io_auto_core_direct_bytes_per_second,
        },
        _ => IoPolicy::Fixed(io_mode),
    };
    config.log_read_mode = effective_read_mode(config.log_read_mode, io_mode, &args.data_dir);
    let mut metadata = ClusterMetadata::load_or_create(&args.data_dir, config.node_id)?;
    ensure_internal_topics(&mut metadata, &config, &args.data_dir)?;
    let core_count = args
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let listeners = net::listener::bind_reuseport(args.listen, core_count)
        .with_context(|| format!("listening on {}", args.listen))?;
    let bound = listeners[0].local_addr()?;
    let (advertised_host, advertised_port) = advertised_address(&args, bound)?;
    let (core_listeners, nodes) = bind_nodes(
        &args,
        &config,
        core_count,
        metadata.node_id,
        (&advertised_host, advertised_port),
    )?;

    let mut core_senders = Vec::with_capacity(core_count);
    let mut core_receivers = Vec::with_capacity(core_count);
    for _ in 0..core_count {
        let (sender, receiver) = mpsc::unbounded_channel::<ShardRequest>();
        core_senders.push(sender);
        core_receivers.push(receiver);
    }
    let (controller_sender, controller_receiver) = mpsc::unbounded_channel();
    let broker = Arc::new(Broker::new(
        config,
        args.data_dir.clone(),
        io_policy,
        nodes,
        metadata,
        core_senders,
        controller_sender,
    ));

    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    let (ready_sender, ready_receiver) = std::sync::mpsc::channel();
    let mut threads = Vec::with_capacity(core_count);
    let mut controller_receiver = Some(controller_receiver);
    let mut core_listeners = core_listeners.into_iter();
    for (core_id, (requests, listener)) in core_receivers.into_iter().zip(listeners).enumerate() {
        let startup = CoreStartup {
            core_id,
            broker: broker.clone(),
            requests,
            control_requests: if core_id == 0 { controller_receiver.take() } else { None },
            listener,
            own_listener: core_listeners.next(),
            clean_shutdown,
            ready: ready_sender.clone(),
            pin_to_cpu: (!cpus.is_empty()).then(|| cpus[core_id % cpus.len()]),
        };
        let thread = std::thread::Builder::new()
            .name(format!("ringlog-core-{core_id}"))
            .spawn(move || run_core(startup))
            .context("starting core thread")?;
        threads.push(thread);
    }
    let mut partitions = 0;
    for _ in 0..core_count {
        match ready_receiver.recv() {
            Ok(Ok(opened)) => partitions += opened,
            Ok(Err(reason)) => anyhow::bail!("a core failed to start: {reason}"),
            Err(_) => anyhow::bail!("a core exited during start"),
        }
    }
    // From here on a crash must make the next start scan the logs.
    if clean_shutdown {
        std::fs::remove_file(&clean_marker).with_context(|| format!("removing {}", clean_marker.display()))?;
    }
    tracing::info!(
        %bound,
        cores = core_count,
        node_ports = ?broker.nodes.all().iter().map(|node| node.port).collect::<Vec<_>>(),
        partitions,
        ?io_mode,
        io_auto = matches!(io_policy, IoPolicy::Auto { .. }),
        cache_max_bytes_per_core = broker.cache_bytes_per_core(),
        clean_start = clean_shutdown,
        data_dir = %args.data_dir.display(),
        "ringlog is serving"
    );
    let metrics_bound = metrics::http::start(broker.clone(), args.metrics_listen, started)
        .with_context(|| format!("serving metrics on {}", args.metrics_listen))?;
    tracing::info!(%metrics_bound, "metrics endpoint is serving /metrics and /status");
    // Machine-readable lines on stdout, for scripts and tests; the listening
    // line comes last.
    println!("ringlog metrics on {metrics_bound}");
    println!("ringlog listening on {bound}");

    wait_for_shutdown_signal()?;
    tracing::info!("shutting down: finishing in-flight requests");
    drain_cores(&broker);
    tracing::info!("shutting down: flushing and sealing partitions");
    let all_closed = shut_down_cores(&broker, core_count);
    for thread in threads {
        let _ = thread.join();
    }
    if all_closed {
        // Seals and snapshots still on the background thread first. Indexes
        // and snapshots were written without fsyncs: one syncfs makes them
        // durable before the marker says they can be trusted.
        ringlog_engine::fs_offload::wait_for_all();
        ringlog_engine::io::sync_filesystem(&args.data_dir)
            .with_context(|| format!("syncing {}", args.data_dir.display()))?;
        ringlog_engine::io::write_file_durably(&clean_marker, b"")
            .with_context(|| format!("writing {}", clean_marker.display()))?;
    }
    tracing::info!(clean = all_closed, "stopped");
    Ok(())
}

/// Creates the internal compacted topics on first start, with Kafka's settings.
fn ensure_internal_topics(
    metadata: &mut ClusterMetadata,
    config: &BrokerConfig,
    data_dir: &Path,
) -> anyhow::Result<()> {
    use ringlog_server::coordinator::offsets_log::OFFSETS_TOPIC;
    use ringlog_server::coordinator::transaction::TRANSACTION_TOPIC;
    let wanted = [
        (OFFSETS_TOPIC, config.offsets_topic_num_partitions),
        (TRANSACTION_TOPIC, config.transaction_state_log_num_partitions),
    ];
    let mut created = false;
    for (name, partitions) in wanted {
        if metadata.topics.contains_key(name) {
            continue;
        }
        let configs = [
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                config.offsets_topic_segment_bytes.to_string(),
            ),
        ]
        .into_iter()
        .collect();
        let topic = metadata::TopicMetadata::new(name, partitions, metadata.node_id, configs);
        metadata.topics.insert(name.to_string(), topic);
        created = true;
    }
    if created {
        metadata.persist(data_dir)?;
    }
    Ok(())
}

fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        Ok(())
    })
}

/// Runs `future` on a small runtime of the main thread's own.
fn block_on<F: std::future::Future>(future: F) -> Option<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    Some(runtime.block_on(future))
}

/// Asks every core to stop accepting and finish its connections' requests.
fn drain_cores(broker: &Broker) {
    block_on(broker.ask_every_core(|reply| ShardRequest::Drain { reply }));
}

/// Asks every core to close its partitions; true when all of them did.
fn shut_down_cores(broker: &Broker, core_count: usize) -> bool {
    block_on(broker.ask_every_core(|reply| ShardRequest::Shutdown { reply }))
        .is_some_and(|closed| closed.len() == core_count)
}
