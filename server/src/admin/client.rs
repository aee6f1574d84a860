//! A small blocking Kafka client for the `ringlog` admin commands. It speaks
//! versions every Kafka since 2.4 and ringlog accept, so the commands also
//! work against other Kafka-compatible brokers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {address}: {source}")]
    Connect { address: String, source: std::io::Error },
    #[error("talking to the broker: {0}")]
    Io(#[from] std::io::Error),
    #[error("broker sent a response that does not decode: {0}")]
    Decode(String),
    #[error("encoding request: {0}")]
    Encode(String),
}

/// Largest response accepted (a describe of many partitions stays far below).
const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

pub struct AdminClient {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl AdminClient {
    pub fn connect(address: &str) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(address).map_err(|source| ClientError::Connect {
            address: address.to_string(),
            source,
        })?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Self {
            stream,
            next_correlation_id: 1,
        })
    }

    pub fn request<R: Request>(&mut self, version: i16, body: &R) -> Result<R::Response, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("ringlog-admin")));
        let mut buf = BytesMut::new();
        buf.put_i32(0); // size, filled below
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(|e| ClientError::Encode(e.to_string()))?;
        body.encode(&mut buf, version)
            .map_err(|e| ClientError::Encode(e.to_string()))?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf)?;

        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > RESPONSE_BYTES_MAX {
            return Err(ClientError::Decode(format!("response size {size}")));
        }
        let mut frame = vec![0u8; size as usize];
        self.stream.read_exact(&mut frame)?;
        let mut frame = Bytes::from(frame);
        let response_header =
            ResponseHeader::decode(&mut frame, <R::Response as HeaderVersion>::header_version(version))
                .map_err(|e| ClientError::Decode(e.to_string()))?;
        if response_header.correlation_id != correlation_id {
            return Err(ClientError::Decode("correlation id mismatch".into()));
        }
        R::Response::decode(&mut frame, version).map_err(|e| ClientError::Decode(e.to_string()))
    }
}
