//! Kafka wire encoding that the handlers share. This code never touches a
//! socket: it turns messages into [`Response`]s, which the connection writes.

pub mod fetch_response;
pub mod produce_prefix;
pub mod wire;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;
use ringlog_engine::FileRegion;

/// One piece of a response on the wire: bytes in memory, or a region of a
/// segment file that goes to the socket with `sendfile`.
#[derive(Debug)]
pub enum ResponseChunk {
    Memory(Bytes),
    File(FileRegion),
}

/// A response without its 4-byte size prefix: header and body, in order.
#[derive(Debug, Default)]
pub struct Response {
    pub chunks: Vec<ResponseChunk>,
    pub total_bytes: usize,
}

impl Response {
    pub fn push_memory(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.total_bytes += bytes.len();
            self.chunks.push(ResponseChunk::Memory(bytes));
        }
    }

    pub fn push_file(&mut self, region: FileRegion) {
        if region.len > 0 {
            self.total_bytes += region.len as usize;
            self.chunks.push(ResponseChunk::File(region));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("encoding {api:?} v{version} response: {reason}")]
    Message { api: ApiKey, version: i16, reason: String },
}

/// Encodes `header + body` for a response to `api` at `version`.
pub fn encode_response<M: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &M,
) -> Result<Response, EncodeError> {
    let error = |reason: String| EncodeError::Message { api, version, reason };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api.response_header_version(version);
    let size = header
        .compute_size(header_version)
        .and_then(|h| body.compute_size(version).map(|b| h + b))
        .map_err(|e| error(e.to_string()))?;
    let mut buf = BytesMut::with_capacity(size);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| error(e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| error(e.to_string()))?;
    let mut response = Response::default();
    response.push_memory(buf.freeze());
    Ok(response)
}
