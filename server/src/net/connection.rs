//! One client connection: size-prefixed frames in, responses out in request
//! order, many requests in flight (pipelining).
//!
//! Two stages per request, as in Redpanda: the reader *dispatches* each frame
//! before reading the next one (so appends from one connection reach their
//! partitions in order), and the response future then runs concurrently; the
//! writer awaits the futures in request order.
//!
//! Invariants:
//! - A frame larger than `socket.request.max.bytes`, a truncated frame, an
//!   unknown API or a request that does not decode closes this connection only,
//!   with one log line; nothing from such a frame is ever appended.
//! - At most [`INFLIGHT_REQUESTS_MAX`] requests, and at most
//!   `connection.max.inflight.bytes` of request bytes (a larger single request
//!   alone), of one connection are read but not yet answered; past either the
//!   reader stops reading the socket, so a client cannot make the broker
//!   buffer without bound. The bytes are released once the response is written.
//! - At shutdown a connection reads no further request, writes the responses
//!   to those it read, then closes.
//! - A connection that sends nothing for `connections.max.idle.ms` is closed;
//!   connections beyond `max.connections` are closed when accepted
//!   (`net/listener.rs`).
//! - With `log.read.drop.page.cache`, the segment pages a response sent are
//!   dropped from the page cache [`SENT_PAGES_DROP_DELAY`] after they were
//!   sent (best effort: the kernel skips pages still in use).

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use ringlog_engine::limits::DIRECT_IO_ALIGNMENT_BYTES;
use ringlog_engine::FileRegion;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::config::ReadMode;
use crate::handlers::{self, HandlerError, HandlerOutcome};
use crate::metrics;
use crate::net::{direct_read, frame_pool, sendfile};
use crate::protocol::{produce_prefix, Response, ResponseChunk};
use crate::runtime::{append_positions, drain};

/// Requests of one connection dispatched but not yet answered.
pub const INFLIGHT_REQUESTS_MAX: usize = 128;
/// Smallest valid request: api key, version, correlation id, client id length.
const REQUEST_HEADER_BYTES_MIN: usize = 10;
/// Memory chunks gathered into one writev.
const IOVECS_PER_WRITE_MAX: usize = 64;

/// What a connection knows about itself, shared with its handlers.
pub struct ConnectionContext {
    pub broker: Arc<Broker>,
    pub peer: SocketAddr,
    /// `Some(core)` when the connection came in on that core's own listener:
    /// the client reached it as that core's node (`crate::nodes`).
    pub node_core: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("frame of {size_bytes} bytes is over socket.request.max.bytes ({max_bytes})")]
    TooLarge { size_bytes: i64, max_bytes: usize },
    #[error("frame of {size_bytes} bytes is too short for a request header")]
    TooShort { size_bytes: i64 },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("reading from socket: {0}")]
    Io(#[from] io::Error),
}

/// A response on its way, with the request bytes it holds of the budget.
type PendingResponse = (JoinHandle<HandlerOutcome>, OwnedSemaphorePermit);

pub async fn serve(stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>, core_id: usize, node_core: Option<usize>) {
    let max_frame_bytes = broker.config.socket_request_max_bytes;
    let budget_bytes = broker.config.connection_max_inflight_bytes.min(u32::MAX as usize);
    let budget = Arc::new(Semaphore::new(budget_bytes));
    let idle_timeout = Duration::from_millis(broker.config.connections_max_idle_ms);
    tracing::debug!(%peer, core = core_id, "connection accepted");
    let context = Rc::new(ConnectionContext {
        broker,
        peer,
        node_core,
    });
    let (reader, writer) = stream.into_split();
    let mut frames = FrameReader::new(reader);
    let (pending_sender, pending_receiver) = mpsc::channel(INFLIGHT_REQUESTS_MAX);
    let region_sender = RegionSender::new(&context.broker);
    let writer_task = tokio::task::spawn_local(write_responses(writer, pending_receiver, peer, region_sender));
    // One waiter for the connection's life, polled with every read.
    let draining = drain::drained();
    tokio::pin!(draining);
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut draining => {
                tracing::debug!(%peer, "broker shutting down: answering what was read, then closing");
                break;
            }
            next = tokio::time::timeout(
                idle_timeout,
                frames.next(max_frame_bytes, &budget, budget_bytes),
            ) => next,
        };
        let Ok(next) = next else {
            tracing::debug!(%peer, "closing idle connection (connections.max.idle.ms)");
            break;
        };
        let (frame, permit) = match next {
            Ok(Some(read)) => read,
            Ok(None) => break,
            Err(FrameError::Io(error)) => {
                tracing::debug!(%peer, %error, "connection read failed");
                break;
            }
            Err(error) => {
                tracing::warn!(%peer, %error, "closing connection");
                break;
            }
        };
        let api_key = i16::from_be_bytes([frame[0], frame[1]]);
        let started = Instant::now();
        let pending: JoinHandle<HandlerOutcome> = match handlers::dispatch(&context, frame).await {
            Ok(response_future) => tokio::task::spawn_local(async move {
                let outcome = response_future.await;
                match outcome {
                    Ok(_) => metrics::observe_request(api_key, started.elapsed()),
                    Err(_) => metrics::count_connection_error(api_key),
                }
                outcome
            }),
            Err(error) => {
                metrics::count_connection_error(api_key);
                tracing::warn!(%peer, %error, "closing connection after a bad request");
                break;
            }
        };
        if pending_sender.send((pending, permit)).await.is_err() {
            break; // the writer stopped: the peer is gone
        }
    }
    drop(pending_sender);
    let _ = writer_task.await;
}

/// Reads size-prefixed frames through one buffer, so that one `recv` takes
/// whatever the client has pipelined (the next frames, or the next size
/// prefix with this body) instead of two calls per frame. Frames are split off
/// the buffer without a copy; the batches they carry may live on in the batch
/// cache, holding their part of the buffer's allocation. A large frame is
/// read into a pooled buffer of its own instead (see `net/frame_pool.rs`).
struct FrameReader<Socket> {
    socket: Socket,
    buffer: BytesMut,
    arena: frame_pool::FrameArena,
}

/// What one read asks for at least: a few typical produce or fetch requests.
/// Small, because an idle connection keeps the unused rest of it.
const READ_CHUNK_BYTES: usize = 16 * 1024;
const SIZE_PREFIX_BYTES: usize = 4;
/// What a large frame's placement reads first (`FrameReader::read_pooled`):
/// a produce request's fields before its first batch, unless its client or
/// topic names are unusually long.
const FRAME_START_BYTES: usize = 512;
const _: () = assert!(FRAME_START_BYTES < frame_pool::POOLED_FRAME_BYTES_MIN);
/// How long a connection keeps a part-used chunk for large frames while it
/// sends nothing (`net/frame_pool.rs`).
const CHUNK_IDLE_RELEASE: Duration = Duration::from_millis(100);

impl<Socket: AsyncRead + Unpin> FrameReader<Socket> {
    fn new(socket: Socket) -> Self {
        Self {
            socket,
            buffer: BytesMut::new(),
            arena: frame_pool::FrameArena::default(),
        }
    }

    /// Reads one frame once the connection's budget has room for it (a frame
    /// larger than the whole budget waits for every other to be answered).
    /// At most one frame plus one read chunk is buffered beyond the budget.
    async fn next(
        &mut self,
        max_bytes: usize,
        budget: &Arc<Semaphore>,
        budget_bytes: usize,
    ) -> Result<Option<(Bytes, OwnedSemaphorePermit)>, FrameError> {
        if !self.fill_size_prefix().await? {
            return if self.buffer.is_empty() {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        let size_bytes = i32::from_be_bytes([self.buffer[0], self.buffer[1], self.buffer[2], self.buffer[3]]);
        if size_bytes < 0 || size_bytes as usize > max_bytes {
            return Err(FrameError::TooLarge {
                size_bytes: i64::from(size_bytes),
                max_bytes,
            });
        }
        let size_bytes = size_bytes as usize;
        if size_bytes < REQUEST_HEADER_BYTES_MIN {
            return Err(FrameError::TooShort {
                size_bytes: size_bytes as i64,
            });
        }
        let charge_bytes = size_bytes.min(budget_bytes) as u32;
        let permit = budget
            .clone()
            .acquire_many_owned(charge_bytes)
            .await
            .map_err(|_| FrameError::Truncated)?; // the budget is never closed
        if size_bytes >= frame_pool::POOLED_FRAME_BYTES_MIN {
            // The request's header and first fields, to place its batch by.
            if !self.fill(SIZE_PREFIX_BYTES + FRAME_START_BYTES).await? {
                return Err(FrameError::Truncated);
            }
            self.buffer.advance(SIZE_PREFIX_BYTES);
            return Ok(Some((self.read_pooled(size_bytes).await?, permit)));
        }
        if !self.fill(SIZE_PREFIX_BYTES + size_bytes).await? {
            return Err(FrameError::Truncated);
        }
        self.buffer.advance(SIZE_PREFIX_BYTES);
        Ok(Some((self.buffer.split_to(size_bytes).freeze(), permit)))
    }

    /// Reads a large frame's body (its size prefix consumed) into a pooled
    /// buffer (`net/frame_pool.rs`): what the last read buffered first, then
    /// straight from the socket. A produce frame is placed so that its first
    /// batch lies where its partition's O_DIRECT write can take it without a
    /// copy (`runtime/append_positions.rs`).
    async fn read_pooled(&mut self, size_bytes: usize) -> Result<Bytes, FrameError> {
        let buffered = self.buffer.len().min(size_bytes);
        let mut frame = match batch_placement(&self.buffer[..buffered]) {
            Some((offset_in_frame, file_position)) => {
                let shift = |free_address: usize| congruent_shift(free_address + offset_in_frame, file_position);
                self.arena.reserve(size_bytes, DIRECT_IO_ALIGNMENT_BYTES, shift)
            }
            None => self.arena.reserve(size_bytes, 0, |_| 0),
        };
        let body = frame.as_mut_slice();
        body[..buffered].copy_from_slice(&self.buffer[..buffered]);
        self.buffer.advance(buffered);
        let mut filled = buffered;
        while filled < size_bytes {
            match self.socket.read(&mut body[filled..]).await? {
                0 => return Err(FrameError::Truncated),
                read => filled += read,
            }
        }
        Ok(frame.freeze())
    }

    /// Reads the next frame's size prefix; false if the peer closed first. A
    /// connection that holds a chunk for large frames and sends nothing for
    /// [`CHUNK_IDLE_RELEASE`] lets go of it.
    async fn fill_size_prefix(&mut self) -> io::Result<bool> {
        if !self.arena.holds_chunk() || self.buffer.len() >= SIZE_PREFIX_BYTES {
            return self.fill(SIZE_PREFIX_BYTES).await;
        }
        match tokio::time::timeout(CHUNK_IDLE_RELEASE, self.fill(SIZE_PREFIX_BYTES)).await {
            Ok(filled) => filled,
            Err(_) => {
                self.arena.release();
                self.fill(SIZE_PREFIX_BYTES).await
            }
        }
    }

    /// Reads until `wanted` bytes are buffered; false if the peer closed first.
    /// A new chunk is allocated only when the frame does not fit the current
    /// one: frames split off earlier keep the old chunk alive (in the batch
    /// cache, perhaps for minutes), so a chunk per small frame would pin
    /// 16 KiB for every 100-byte batch cached.
    async fn fill(&mut self, wanted: usize) -> io::Result<bool> {
        while self.buffer.len() < wanted {
            let missing = wanted - self.buffer.len();
            if self.buffer.capacity() - self.buffer.len() < missing {
                self.buffer.reserve(missing.max(READ_CHUNK_BYTES));
            }
            if self.socket.read_buf(&mut self.buffer).await? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Where a produce frame's first batch starts in the frame, and the file
/// position its partition will write it at, if this core writes that
/// partition with O_DIRECT; from the frame's first bytes.
fn batch_placement(frame_start: &[u8]) -> Option<(usize, u64)> {
    let batch = produce_prefix::first_batch(frame_start)?;
    Some((batch.offset, append_positions::predicted(batch.topic, batch.partition)?))
}

/// How far past `address` to put a byte so that its address is congruent to
/// `file_position` modulo the O_DIRECT alignment.
fn congruent_shift(address: usize, file_position: u64) -> usize {
    let align = DIRECT_IO_ALIGNMENT_BYTES;
    (file_position as usize % align + align - address % align) % align
}

async fn write_responses(
    mut writer: OwnedWriteHalf,
    mut pending: mpsc::Receiver<PendingResponse>,
    peer: SocketAddr,
    mut region_sender: RegionSender,
) {
    // The permit is dropped (its bytes returned) once the response is written.
    while let Some((next, _permit)) = region_sender.drop_while_waiting(pending.recv()).await {
        let response = match next.await {
            Ok(Ok(Some(response))) => response,
            Ok(Ok(None)) => continue, // acks=0 produce: no response
            Ok(Err(error)) => {
                log_handler_error(peer, &error);
                break;
            }
            Err(join_error) => {
                tracing::error!(%peer, %join_error, "request handler panicked; closing connection");
                break;
            }
        };
        region_sender.drop_due_pages();
        if let Err(error) = send_response(&mut writer, response, &mut region_sender).await {
            tracing::debug!(%peer, %error, "writing response failed");
            break;
        }
    }
    let _ = writer.shutdown().await;
    region_sender.drop_remaining().await;
}

/// How long sent pages stay in the page cache. Until the client has read
/// them and acknowledged them, and the kernel has freed the socket buffers
/// that held them, the kernel skips them when asked to drop them; right after
/// the next request arrives is not always late enough.
const SENT_PAGES_DROP_DELAY: Duration = Duration::from_millis(50);

/// Sends this connection's segment file regions (`log.read.mode`). With
/// sendfile and `log.read.drop.page.cache`, it also remembers what it sent,
/// so that those pages leave the page cache once [`SENT_PAGES_DROP_DELAY`]
/// has passed: checked when the next response is due, or by a timer while
/// none is.
struct RegionSender {
    read_mode: ReadMode,
    drop_page_cache: bool,
    /// Regions sent with sendfile, with the time their pages may be dropped.
    sent: VecDeque<(Instant, FileRegion)>,
    /// With direct reads: the bytes after the regions sent, read ahead.
    read_aheads: direct_read::ReadAheads,
}

impl RegionSender {
    fn new(broker: &Broker) -> Self {
        Self {
            // Already sendfile where direct reads cannot work (main.rs).
            read_mode: broker.config.log_read_mode,
            drop_page_cache: broker.config.log_read_drop_page_cache,
            sent: VecDeque::new(),
            read_aheads: direct_read::ReadAheads::default(),
        }
    }

    /// With `log.read.mode=direct`, starts reading a response's file
    /// regions; with sendfile, `None`.
    fn start_direct_reads(&mut self, chunks: &[ResponseChunk]) -> Option<direct_read::DirectReads> {
        let regions = chunks.iter().filter_map(|chunk| match chunk {
            ResponseChunk::File(region) => Some(region.clone()),
            ResponseChunk::Memory(_) => None,
        });
        (self.read_mode == ReadMode::Direct).then(|| direct_read::DirectReads::start(regions, &mut self.read_aheads))
    }

    /// Sends a region whose reads `start_direct_reads` began, then reads
    /// what follows it ahead of the next fetch.
    async fn send_direct(
        &mut self,
        writer: &mut OwnedWriteHalf,
        started: direct_read::StartedRegion,
        region: &FileRegion,
    ) -> io::Result<()> {
        direct_read::send_region_read_direct(writer, started).await?;
        self.read_aheads.start_after(region);
        Ok(())
    }

    async fn send_file(&mut self, writer: &mut OwnedWriteHalf, region: FileRegion) -> io::Result<()> {
        sendfile::send_region(writer.as_ref(), &region).await?;
        if self.drop_page_cache {
            self.sent.push_back((Instant::now() + SENT_PAGES_DROP_DELAY, region));
        }
        Ok(())
    }

    /// Drops the pages of every region whose delay has passed.
    fn drop_due_pages(&mut self) {
        let now = Instant::now();
        while let Some((_, region)) = self.sent.pop_front_if(|(due, _)| *due <= now) {
            sendfile::drop_from_page_cache(&region);
        }
    }

    /// Awaits `next`, dropping pages as they fall due meanwhile.
    async fn drop_while_waiting<T>(&mut self, next: impl Future<Output = T>) -> T {
        tokio::pin!(next);
        while let Some(&(due, _)) = self.sent.front() {
            tokio::select! {
                value = &mut next => return value,
                _ = tokio::time::sleep_until(due.into()) => self.drop_due_pages(),
            }
        }
        next.await
    }

    /// Drops the remaining pages as they fall due (the connection is closed).
    async fn drop_remaining(&mut self) {
        while let Some(&(due, _)) = self.sent.front() {
            tokio::time::sleep_until(due.into()).await;
            self.drop_due_pages();
        }
    }
}

fn log_handler_error(peer: SocketAddr, error: &HandlerError) {
    tracing::warn!(%peer, %error, "closing connection");
}

async fn send_response(
    writer: &mut OwnedWriteHalf,
    response: Response,
    region_sender: &mut RegionSender,
) -> io::Result<()> {
    let size_prefix = Bytes::copy_from_slice(&(response.total_bytes as i32).to_be_bytes());
    let mut memory: Vec<Bytes> = vec![size_prefix];
    let mut direct_reads = region_sender.start_direct_reads(&response.chunks);
    for chunk in response.chunks {
        match chunk {
            ResponseChunk::Memory(bytes) => memory.push(bytes),
            ResponseChunk::File(region) => {
                write_all_vectored(writer, &mut memory).await?;
                match direct_reads.as_mut().and_then(direct_read::DirectReads::next_region) {
                    Some(started) => region_sender.send_direct(writer, started, &region).await?,
                    None => region_sender.send_file(writer, region).await?,
                }
            }
        }
    }
    write_all_vectored(writer, &mut memory).await
}

/// Writes and drains `chunks` with as few writev calls as possible.
async fn write_all_vectored(writer: &mut OwnedWriteHalf, chunks: &mut Vec<Bytes>) -> io::Result<()> {
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<IoSlice<'_>> = chunks[first..]
            .iter()
            .take(IOVECS_PER_WRITE_MAX)
            .map(|c| IoSlice::new(c))
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let chunk = &mut chunks[first];
            if written >= chunk.len() {
                written -= chunk.len();
                first += 1;
            } else {
                let _ = chunk.split_to(written);
                written = 0;
            }
        }
        while first < chunks.len() && chunks[first].is_empty() {
            first += 1;
        }
    }
    chunks.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A socket that returns the given pieces, one per read, then end of stream.
    struct Pieces(VecDeque<Vec<u8>>);

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(mut piece) = self.0.pop_front() {
                let taken = piece.len().min(out.remaining());
                out.put_slice(&piece[..taken]);
                if taken < piece.len() {
                    self.0.push_front(piece.split_off(taken));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    fn frame(body_byte: u8, body_bytes: usize) -> Vec<u8> {
        let mut frame = (body_bytes as i32).to_be_bytes().to_vec();
        frame.resize(4 + body_bytes, body_byte);
        frame
    }

    /// `stream` in reads of `piece_bytes` (the last one shorter).
    fn split(stream: Vec<u8>, piece_bytes: usize) -> Vec<Vec<u8>> {
        stream.chunks(piece_bytes).map(<[u8]>::to_vec).collect()
    }

    async fn read_all(pieces: Vec<Vec<u8>>) -> (Vec<Bytes>, Result<(), FrameError>) {
        let budget = Arc::new(Semaphore::new(1 << 20));
        let mut reader = FrameReader::new(Pieces(pieces.into()));
        let mut frames = Vec::new();
        loop {
            match reader.next(1 << 20, &budget, 1 << 20).await {
                Ok(Some((frame, _permit))) => frames.push(frame),
                Ok(None) => return (frames, Ok(())),
                Err(error) => return (frames, Err(error)),
            }
        }
    }

    #[tokio::test]
    async fn a_produce_frame_is_placed_so_its_batch_lies_congruent_to_its_file_position() {
        let tp = crate::runtime::messages::TopicPartition {
            topic: "placed".into(),
            partition: 2,
        };
        let file_position = 3 * DIRECT_IO_ALIGNMENT_BYTES as u64 + 1_234;
        append_positions::note_handled(&tp, 0, Some(file_position));
        let records = vec![7u8; 300_000];
        let request = produce_prefix::encoded_request(9, "placed", 2, &records);
        let untracked = produce_prefix::encoded_request(9, "elsewhere", 0, &records);
        let mut stream = Vec::new();
        for body in [&request, &untracked] {
            stream.extend_from_slice(&(body.len() as i32).to_be_bytes());
            stream.extend_from_slice(body);
        }
        let (frames, end) = read_all(split(stream, 9_973)).await;
        assert!(end.is_ok());
        assert_eq!(
            (&frames[0][..], &frames[1][..]),
            (&request[..], &untracked[..]),
            "read whole"
        );
        let offset = produce_prefix::first_batch(&frames[0])
            .expect("a produce request")
            .offset;
        let batch_address = frames[0].as_ptr() as usize + offset;
        assert_eq!(
            batch_address % DIRECT_IO_ALIGNMENT_BYTES,
            file_position as usize % DIRECT_IO_ALIGNMENT_BYTES
        );
        append_positions::forget(&tp);
    }

    #[tokio::test]
    async fn small_frames_read_one_by_one_share_one_chunk() {
        let pieces: Vec<Vec<u8>> = (0..20).map(|i| frame(i, 100)).collect();
        let (frames, end) = read_all(pieces).await;
        assert!(end.is_ok());
        assert_eq!(frames.len(), 20);
        for (i, pair) in frames.windows(2).enumerate() {
            assert!(pair[0].iter().all(|&b| b == i as u8));
            // Contiguous in one allocation: the next body starts 4 bytes
            // (its size prefix) after this one ends.
            assert_eq!(pair[1].as_ptr() as usize - pair[0].as_ptr() as usize, 104, "frame {i}");
        }
    }

    #[tokio::test]
    async fn frames_are_joined_and_split_whatever_the_reads() {
        let mut stream: Vec<u8> = [frame(1, 30_000), frame(2, 12), frame(3, 5_000)].concat();
        // Pieces of 3 bytes, then the rest split unevenly.
        let mut pieces = vec![stream.drain(..3).collect::<Vec<u8>>()];
        pieces.extend(split(stream, 7_919));
        let (frames, end) = read_all(pieces).await;
        assert!(end.is_ok());
        let lengths: Vec<usize> = frames.iter().map(Bytes::len).collect();
        assert_eq!(lengths, [30_000, 12, 5_000]);
        assert!(frames[2].iter().all(|&b| b == 3));
    }

    #[tokio::test]
    async fn a_large_frame_is_read_whole_into_a_pooled_buffer_whatever_the_reads() {
        let large = frame_pool::POOLED_FRAME_BYTES_MIN + 12_345;
        let mut stream: Vec<u8> = [frame(1, 100), frame(2, large), frame(3, 10)].concat();
        for (i, byte) in stream[108..108 + large].iter_mut().enumerate() {
            *byte = (i % 251) as u8;
        }
        let (frames, end) = read_all(split(stream, 65_521)).await;
        assert!(end.is_ok());
        let lengths: Vec<usize> = frames.iter().map(Bytes::len).collect();
        assert_eq!(lengths, [100, large, 10]);
        assert!(frames[1].iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        assert!(frames[2].iter().all(|&b| b == 3));
        let mut cut = frame(4, large);
        cut.truncate(large / 2);
        let (frames, end) = read_all(vec![cut]).await;
        assert!(frames.is_empty());
        assert!(matches!(end, Err(FrameError::Truncated)));
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_frame_is_truncated() {
        let mut cut = frame(9, 50);
        cut.truncate(20);
        let (frames, end) = read_all(vec![frame(1, 10), cut]).await;
        assert_eq!(frames.len(), 1);
        assert!(matches!(end, Err(FrameError::Truncated)));
    }
}
