//! A pipelined Kafka connection: requests go out as they come; responses come
//! back in request order (Kafka's guarantee per connection), so a FIFO of
//! pending replies is all the bookkeeping needed.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Responses larger than this are refused (a broken broker, not a big fetch).
const RESPONSE_BYTES_MAX: usize = 512 * 1024 * 1024;

type Pending = oneshot::Sender<anyhow::Result<Bytes>>;

pub struct Connection {
    /// Frames to write, with where their response goes (`None`: no response,
    /// as for acks=0 produce).
    outgoing: mpsc::Sender<(Bytes, Option<Pending>)>,
    next_correlation_id: i32,
}

impl Connection {
    pub async fn connect(address: &str, in_flight_max: usize) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let (mut reader, mut writer) = stream.into_split();
        let (outgoing, mut requests) = mpsc::channel::<(Bytes, Option<Pending>)>(in_flight_max.max(1));
        let (pending_sender, mut pending) = mpsc::unbounded_channel::<Pending>();
        tokio::spawn(async move {
            while let Some((frame, reply)) = requests.recv().await {
                if let Err(error) = writer.write_all(&frame).await {
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

    fn frame<R: Request>(&mut self, version: i16, body: &R) -> anyhow::Result<(Bytes, i32)> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        Ok((encode_request(version, correlation_id, body)?, correlation_id))
    }

    /// Sends a request that gets no response (acks=0 produce).
    pub async fn send_oneway<R: Request>(&mut self, version: i16, body: &R) -> anyhow::Result<()> {
        let (frame, _) = self.frame(version, body)?;
        self.outgoing
            .send((frame, None))
            .await
            .map_err(|_| anyhow::anyhow!("connection closed"))
    }

    /// Sends a request; the returned future yields the decoded response.
    pub async fn send<R: Request>(
        &mut self,
        version: i16,
        body: &R,
    ) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<R::Response>>> {
        let (frame, correlation_id) = self.frame(version, body)?;
        let (reply, receiver) = oneshot::channel();
        self.outgoing
            .send((frame, Some(reply)))
            .await
            .map_err(|_| anyhow::anyhow!("connection closed"))?;
        Ok(async move {
            let frame = receiver.await.map_err(|_| anyhow::anyhow!("connection closed"))??;
            decode_response::<R>(frame, version, correlation_id)
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
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        self.stream.write_all(&encode_request(version, correlation_id, body)?)?;
        Ok(correlation_id)
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
