//! A pipelined Kafka connection: requests go out as they come; responses come
//! back in request order (Kafka's guarantee per connection), so a FIFO of
//! pending replies is all the bookkeeping needed.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Responses larger than this are refused (a broken broker, not a big fetch).
const RESPONSE_BYTES_MAX: usize = 512 * 1024 * 1024;

type Pending = oneshot::Sender<anyhow::Result<Bytes>>;
/// A request frame as parts written with one `writev`: a produce request's
/// record batch goes out from its own buffer, not copied into the frame.
type Frame = Vec<Bytes>;
/// Produce v9: flexible encoding, topics by name.
pub const PRODUCE_VERSION: i16 = 9;

pub struct Connection {
    /// Frames to write, with where their response goes (`None`: no response,
    /// as for acks=0 produce).
    outgoing: mpsc::Sender<(Frame, Option<Pending>)>,
    next_correlation_id: i32,
}

impl Connection {
    pub async fn connect(address: &str, in_flight_max: usize) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let (mut reader, mut writer) = stream.into_split();
        let (outgoing, mut requests) = mpsc::channel::<(Frame, Option<Pending>)>(in_flight_max.max(1));
        let (pending_sender, mut pending) = mpsc::unbounded_channel::<Pending>();
        tokio::spawn(async move {
            while let Some((frame, reply)) = requests.recv().await {
                if let Err(error) = write_frame(&mut writer, frame).await {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(error.into()));
                    }
                    return;
                }
                if let Some(reply) = reply {
                    if pending_sender.send(reply).is_err() {
                        return;
                    }
                }
            }
        });
        tokio::spawn(async move {
            while let Some(reply) = pending.recv().await {
                let _ = reply.send(read_frame(&mut reader).await);
            }
        });
        Ok(Self {
            outgoing,
            next_correlation_id: 1,
        })
    }

    fn next_correlation_id(&mut self) -> i32 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        correlation_id
    }

    async fn enqueue(&mut self, frame: Frame, reply: Option<Pending>) -> anyhow::Result<()> {
        self.outgoing
            .send((frame, reply))
            .await
            .map_err(|_| anyhow::anyhow!("connection closed"))
    }

    /// Sends a frame; the returned future yields the decoded response.
    async fn send_frame<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
        frame: Frame,
    ) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<R::Response>>> {
        let (reply, receiver) = oneshot::channel();
        self.enqueue(frame, Some(reply)).await?;
        Ok(async move {
            let frame = receiver.await.map_err(|_| anyhow::anyhow!("connection closed"))??;
            decode_response::<R>(frame, version, correlation_id)
        })
    }

    /// Sends a request; the returned future yields the decoded response.
    pub async fn send<R: Request>(
        &mut self,
        version: i16,
        body: &R,
    ) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<R::Response>>> {
        let correlation_id = self.next_correlation_id();
        let frame = vec![encode_request(version, correlation_id, body)?];
        self.send_frame::<R>(version, correlation_id, frame).await
    }

    /// Sends one batch to one partition; with acks=0 nothing comes back and
    /// the future yields `None` at once.
    pub async fn send_produce(
        &mut self,
        produce: &ProduceTarget<'_>,
        batch: Bytes,
    ) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<Option<ProduceResponse>>>> {
        let correlation_id = self.next_correlation_id();
        let frame = encode_produce(correlation_id, produce, batch);
        let response = if produce.acks == 0 {
            self.enqueue(frame, None).await?;
            None
        } else {
            Some(
                self.send_frame::<ProduceRequest>(PRODUCE_VERSION, correlation_id, frame)
                    .await?,
            )
        };
        Ok(async move {
            match response {
                Some(response) => response.await.map(Some),
                None => Ok(None),
            }
        })
    }

    /// Sends a request and waits for its response.
    pub async fn call<R: Request>(&mut self, version: i16, body: &R) -> anyhow::Result<R::Response> {
        self.send(version, body).await?.await
    }
}

/// A size-prefixed request frame with its header.
pub(crate) fn encode_request<R: Request>(version: i16, correlation_id: i32, body: &R) -> anyhow::Result<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("ringlog-bench")));
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header
        .encode(&mut frame, R::header_version(version))
        .map_err(anyhow::Error::msg)?;
    body.encode(&mut frame, version).map_err(anyhow::Error::msg)?;
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Ok(frame.freeze())
}

/// Where a produce request goes.
pub struct ProduceTarget<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub acks: i16,
    pub timeout_ms: i32,
}

/// A Produce v9 request of one batch, encoded by hand so that the batch is
/// a part of its own (kafka-protocol's encoder copies it into the frame,
/// which cost the load generator a memcpy of every byte it sends).
pub fn encode_produce(correlation_id: i32, target: &ProduceTarget<'_>, batch: Bytes) -> Frame {
    const CLIENT_ID: &[u8] = b"ringlog-bench";
    let mut head = BytesMut::with_capacity(64 + target.topic.len());
    head.put_i32(0); // size, filled in below
    head.put_i16(ProduceRequest::KEY);
    head.put_i16(PRODUCE_VERSION);
    head.put_i32(correlation_id);
    head.put_i16(CLIENT_ID.len() as i16); // client id: a classic nullable string
    head.put_slice(CLIENT_ID);
    head.put_u8(0); // header tagged fields
    head.put_u8(0); // transactional id: null
    head.put_i16(target.acks);
    head.put_i32(target.timeout_ms);
    put_unsigned_varint(&mut head, 2); // one topic
    put_unsigned_varint(&mut head, target.topic.len() as u32 + 1);
    head.put_slice(target.topic.as_bytes());
    put_unsigned_varint(&mut head, 2); // one partition
    head.put_i32(target.partition);
    put_unsigned_varint(&mut head, batch.len() as u32 + 1);
    // After the batch: partition, topic and request tagged fields.
    let tail = Bytes::from_static(&[0, 0, 0]);
    let size = head.len() - 4 + batch.len() + tail.len();
    head[..4].copy_from_slice(&(size as i32).to_be_bytes());
    vec![head.freeze(), batch, tail]
}

fn put_unsigned_varint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Writes every part of `frame`, gathering them into `writev` calls.
async fn write_frame(writer: &mut tokio::net::tcp::OwnedWriteHalf, mut frame: Frame) -> std::io::Result<()> {
    use bytes::Buf;
    frame.retain(|part| !part.is_empty());
    let mut first = 0;
    while first < frame.len() {
        let slices: Vec<std::io::IoSlice<'_>> = frame[first..].iter().map(|p| std::io::IoSlice::new(p)).collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let part = &mut frame[first];
            let step = written.min(part.len());
            part.advance(step);
            written -= step;
            if part.is_empty() {
                first += 1;
            }
        }
    }
    Ok(())
}

/// Decodes a response frame (size prefix already stripped) to request `R`.
fn decode_response<R: Request>(mut frame: Bytes, version: i16, correlation_id: i32) -> anyhow::Result<R::Response> {
    let header = ResponseHeader::decode(&mut frame, <R::Response as HeaderVersion>::header_version(version))
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(header.correlation_id == correlation_id, "response out of order");
    R::Response::decode(&mut frame, version).map_err(anyhow::Error::msg)
}

fn check_response_size(size: i32) -> anyhow::Result<usize> {
    anyhow::ensure!(
        size >= 0 && (size as usize) <= RESPONSE_BYTES_MAX,
        "response size {size}"
    );
    Ok(size as usize)
}

async fn read_frame(reader: &mut tokio::net::tcp::OwnedReadHalf) -> anyhow::Result<Bytes> {
    let size = check_response_size(reader.read_i32().await?)?;
    let mut frame = BytesMut::zeroed(size);
    reader.read_exact(&mut frame).await?;
    Ok(frame.freeze())
}

/// A connection on blocking sockets, for latency measurements: the calling
/// thread wakes the moment a response arrives, with no runtime hand-off.
/// `try_clone` gives a second handle, so one thread may send while another
/// reads the responses (which come back in request order).
pub struct BlockingConnection {
    stream: std::net::TcpStream,
    next_correlation_id: i32,
}

impl BlockingConnection {
    pub fn connect(address: &str) -> anyhow::Result<Self> {
        let stream = std::net::TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            next_correlation_id: 1,
        })
    }

    /// A handle on the same socket, for reading responses on another thread.
    pub fn try_clone(&self) -> anyhow::Result<Self> {
        Ok(Self {
            stream: self.stream.try_clone()?,
            next_correlation_id: 1,
        })
    }

    /// Writes a request; returns its correlation id.
    pub fn send<R: Request>(&mut self, version: i16, body: &R) -> anyhow::Result<i32> {
        use std::io::Write;
        let correlation_id = self.next_correlation_id();
        self.stream.write_all(&encode_request(version, correlation_id, body)?)?;
        Ok(correlation_id)
    }

    /// Sends one batch to one partition; returns the correlation id.
    pub fn send_produce(&mut self, target: &ProduceTarget<'_>, batch: Bytes) -> anyhow::Result<i32> {
        use std::io::Write;
        let correlation_id = self.next_correlation_id();
        let frame = encode_produce(correlation_id, target, batch);
        let mut slices: Vec<std::io::IoSlice<'_>> = frame.iter().map(|p| std::io::IoSlice::new(p)).collect();
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            let written = self.stream.write_vectored(slices)?;
            anyhow::ensure!(written > 0, "connection closed");
            std::io::IoSlice::advance_slices(&mut slices, written);
        }
        Ok(correlation_id)
    }

    fn next_correlation_id(&mut self) -> i32 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        correlation_id
    }

    /// Reads the next response, which must answer `correlation_id`.
    pub fn receive<R: Request>(&mut self, version: i16, correlation_id: i32) -> anyhow::Result<R::Response> {
        use std::io::Read;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let mut frame = BytesMut::zeroed(check_response_size(i32::from_be_bytes(size))?);
        self.stream.read_exact(&mut frame)?;
        decode_response::<R>(frame.freeze(), version, correlation_id)
    }

    pub fn call<R: Request>(&mut self, version: i16, body: &R) -> anyhow::Result<R::Response> {
        let correlation_id = self.send(version, body)?;
        self.receive::<R>(version, correlation_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::TopicName;

    #[test]
    fn hand_encoded_produce_matches_kafka_protocol() {
        let batch = Bytes::from(vec![7u8; 300]); // a length needing a 2-byte varint
        let target = ProduceTarget {
            topic: "bench",
            partition: 5,
            acks: -1,
            timeout_ms: 30_000,
        };
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("bench")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(5)
                    .with_records(Some(batch.clone()))])]);
        let expected = encode_request(PRODUCE_VERSION, 42, &request).expect("encodes");
        assert_eq!(encode_produce(42, &target, batch).concat(), expected.to_vec());
    }
}
