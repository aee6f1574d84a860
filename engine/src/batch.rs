//! Kafka record batch v2 (magic 2): header layout, CRC-32C, offset assignment.
//!
//! Invariants:
//! - A batch accepted by [`validate_batch`] has magic 2, a length that matches the
//!   bytes present, and a CRC-32C over `attributes..end` that matches its header.
//! - The broker rewrites only `baseOffset` and `partitionLeaderEpoch` (not covered
//!   by the CRC) unless LogAppendTime is requested, in which case the CRC is
//!   recomputed after stamping `maxTimestamp` and the timestamp-type attribute.
//! - Batch bytes are otherwise stored and served verbatim, whatever the codec.

use bytes::{Buf, Bytes, BytesMut};

/// All multi-byte fields are big-endian.
pub const BASE_OFFSET_POS: usize = 0;
pub const BATCH_LENGTH_POS: usize = 8;
pub const PARTITION_LEADER_EPOCH_POS: usize = 12;
pub const MAGIC_POS: usize = 16;
pub const CRC_POS: usize = 17;
pub const ATTRIBUTES_POS: usize = 21;
pub const LAST_OFFSET_DELTA_POS: usize = 23;
pub const BASE_TIMESTAMP_POS: usize = 27;
pub const MAX_TIMESTAMP_POS: usize = 35;
pub const PRODUCER_ID_POS: usize = 43;
pub const PRODUCER_EPOCH_POS: usize = 51;
pub const BASE_SEQUENCE_POS: usize = 53;
pub const RECORDS_COUNT_POS: usize = 57;
/// Size of the fixed batch header, up to and including `recordsCount`.
pub const BATCH_HEADER_BYTES: usize = 61;
/// `baseOffset` and `batchLength` precede what `batchLength` counts.
pub const LOG_OVERHEAD_BYTES: usize = 12;

const _: () = assert!(RECORDS_COUNT_POS + 4 == BATCH_HEADER_BYTES);
const _: () = assert!(BATCH_LENGTH_POS + 4 == LOG_OVERHEAD_BYTES);

pub const MAGIC_V2: i8 = 2;

const ATTR_CODEC_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

/// Compression codec named by the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// Why a batch was refused; each maps to one Kafka error code in the server.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch truncated: {present_bytes} bytes present, {needed_bytes} needed")]
    Truncated { present_bytes: usize, needed_bytes: usize },
    #[error("record batch length {batch_length} is invalid")]
    InvalidLength { batch_length: i32 },
    #[error("unsupported record batch magic {magic} (only magic 2 is accepted)")]
    UnsupportedMagic { magic: i8 },
    #[error("record batch CRC mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("record batch has invalid compression codec {codec}")]
    InvalidCodec { codec: i16 },
    #[error("record batch declares {records_count} records but lastOffsetDelta {last_offset_delta}")]
    InconsistentCount { records_count: i32, last_offset_delta: i32 },
}

/// A read-only view of a batch header. Cheap to build: reads fixed positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the fixed header; `bytes` must hold at least [`BATCH_HEADER_BYTES`].
    pub fn parse(bytes: &[u8]) -> Result<Self, BatchError> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated {
                present_bytes: bytes.len(),
                needed_bytes: BATCH_HEADER_BYTES,
            });
        }
        let mut b = &bytes[..BATCH_HEADER_BYTES];
        Ok(Self {
            base_offset: b.get_i64(),
            batch_length: b.get_i32(),
            partition_leader_epoch: b.get_i32(),
            magic: b.get_i8(),
            crc: b.get_u32(),
            attributes: b.get_i16(),
            last_offset_delta: b.get_i32(),
            base_timestamp: b.get_i64(),
            max_timestamp: b.get_i64(),
            producer_id: b.get_i64(),
            producer_epoch: b.get_i16(),
            base_sequence: b.get_i32(),
            records_count: b.get_i32(),
        })
    }

    /// Whole size of the batch on disk and on the wire.
    pub fn total_bytes(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD_BYTES
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn codec(&self) -> Result<Codec, BatchError> {
        match self.attributes & ATTR_CODEC_MASK {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Gzip),
            2 => Ok(Codec::Snappy),
            3 => Ok(Codec::Lz4),
            4 => Ok(Codec::Zstd),
            codec => Err(BatchError::InvalidCodec { codec }),
        }
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// Smallest `batchLength` a well-formed v2 batch can have (header, no records).
const BATCH_LENGTH_MIN: i32 = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;

/// Reads the total size of the batch starting at `bytes`, checking only the length
/// field, so callers can split a buffer of concatenated batches.
pub fn batch_total_bytes(bytes: &[u8]) -> Result<usize, BatchError> {
    if bytes.len() < LOG_OVERHEAD_BYTES {
        return Err(BatchError::Truncated {
            present_bytes: bytes.len(),
            needed_bytes: LOG_OVERHEAD_BYTES,
        });
    }
    let batch_length = (&bytes[BATCH_LENGTH_POS..]).get_i32();
    if batch_length < BATCH_LENGTH_MIN {
        return Err(BatchError::InvalidLength { batch_length });
    }
    Ok(batch_length as usize + LOG_OVERHEAD_BYTES)
}

/// CRC-32C over `attributes..end`, as the v2 format defines it.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_POS..])
}

/// Checks one complete batch (exactly `bytes`): magic, length, CRC and counts.
pub fn validate_batch(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let total_bytes = batch_total_bytes(bytes)?;
    if bytes.len() < BATCH_HEADER_BYTES {
        return Err(BatchError::Truncated {
            present_bytes: bytes.len(),
            needed_bytes: BATCH_HEADER_BYTES,
        });
    }
    // Check the magic before the rest: older formats have another layout.
    let magic = bytes[MAGIC_POS] as i8;
    if magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic { magic });
    }
    if total_bytes != bytes.len() {
        return Err(BatchError::Truncated {
            present_bytes: bytes.len(),
            needed_bytes: total_bytes,
        });
    }
    let header = BatchHeader::parse(bytes)?;
    let actual = compute_crc(bytes);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    header.codec()?;
    if header.records_count < 0
        || header.last_offset_delta < 0
        || (header.records_count > 0 && header.last_offset_delta < header.records_count - 1)
    {
        return Err(BatchError::InconsistentCount {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Stamps broker-assigned fields into a validated batch before it is appended.
/// `log_append_time_ms` is `Some` when the topic uses LogAppendTime.
pub fn stamp_batch(
    batch: &mut BytesMut,
    base_offset: i64,
    partition_leader_epoch: i32,
    log_append_time_ms: Option<i64>,
) {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    batch[BASE_OFFSET_POS..BASE_OFFSET_POS + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[PARTITION_LEADER_EPOCH_POS..PARTITION_LEADER_EPOCH_POS + 4]
        .copy_from_slice(&partition_leader_epoch.to_be_bytes());
    if let Some(now_ms) = log_append_time_ms {
        let attributes = (&batch[ATTRIBUTES_POS..]).get_i16() | ATTR_LOG_APPEND_TIME;
        batch[ATTRIBUTES_POS..ATTRIBUTES_POS + 2].copy_from_slice(&attributes.to_be_bytes());
        batch[MAX_TIMESTAMP_POS..MAX_TIMESTAMP_POS + 8].copy_from_slice(&now_ms.to_be_bytes());
        let crc = compute_crc(batch);
        batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Bytes of a batch's start that the broker stamps: base offset, batch length
/// and partition leader epoch, all before the CRC-covered part.
pub const STAMPED_PREFIX_BYTES: usize = MAGIC_POS;
const _: () = assert!(PARTITION_LEADER_EPOCH_POS + 4 == STAMPED_PREFIX_BYTES && STAMPED_PREFIX_BYTES < CRC_POS);

/// A batch as the log stores it: `head` holds what the broker stamped, `rest`
/// the producer's bytes as they arrived (a slice of the request frame), so
/// appending never copies a batch to change 16 of its bytes. When stamping
/// changes CRC-covered bytes (LogAppendTime), `head` is the whole batch and
/// `rest` is empty.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    pub head: Bytes,
    pub rest: Bytes,
}

impl StoredBatch {
    pub fn len(&self) -> usize {
        self.head.len() + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pieces to write or send, in order (no empty ones).
    pub fn chunks(&self) -> impl Iterator<Item = &Bytes> {
        [&self.head, &self.rest].into_iter().filter(|chunk| !chunk.is_empty())
    }

    /// The batch's header as stored.
    pub fn header(&self) -> Result<BatchHeader, BatchError> {
        let mut header = [0u8; BATCH_HEADER_BYTES];
        let from_head = self.head.len().min(BATCH_HEADER_BYTES);
        header[..from_head].copy_from_slice(&self.head[..from_head]);
        let from_rest = (BATCH_HEADER_BYTES - from_head).min(self.rest.len());
        header[from_head..from_head + from_rest].copy_from_slice(&self.rest[..from_rest]);
        BatchHeader::parse(&header[..from_head + from_rest])
    }
}

/// Stamps a validated batch for the log (see [`stamp_batch`]), copying only
/// its first [`STAMPED_PREFIX_BYTES`] unless LogAppendTime rewrites more.
pub fn stamp(
    batch: Bytes,
    base_offset: i64,
    partition_leader_epoch: i32,
    log_append_time_ms: Option<i64>,
) -> StoredBatch {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    if log_append_time_ms.is_some() {
        let mut whole = BytesMut::from(&batch[..]);
        stamp_batch(&mut whole, base_offset, partition_leader_epoch, log_append_time_ms);
        return StoredBatch {
            head: whole.freeze(),
            rest: Bytes::new(),
        };
    }
    let mut head = BytesMut::from(&batch[..STAMPED_PREFIX_BYTES]);
    head[BASE_OFFSET_POS..BASE_OFFSET_POS + 8].copy_from_slice(&base_offset.to_be_bytes());
    head[PARTITION_LEADER_EPOCH_POS..PARTITION_LEADER_EPOCH_POS + 4]
        .copy_from_slice(&partition_leader_epoch.to_be_bytes());
    StoredBatch {
        head: head.freeze(),
        rest: batch.slice(STAMPED_PREFIX_BYTES..),
    }
}

/// A record as tests and tools build it: key and value, either may be null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds an uncompressed v2 batch from `(key, value)` records. Used by tests,
/// tools and internal topics; produced with base offset 0.
pub fn build_batch(records: &[KeyValue<'_>], timestamp_ms: i64) -> BytesMut {
    use bytes::BufMut;
    let mut body = BytesMut::new();
    for (index, (key, value)) in records.iter().enumerate() {
        let mut record = BytesMut::new();
        record.put_i8(0);
        put_varint(&mut record, 0); // timestamp delta
        put_varint(&mut record, index as i64); // offset delta
        put_nullable_bytes(&mut record, *key);
        put_nullable_bytes(&mut record, *value);
        put_varint(&mut record, 0); // header count
        put_varint(&mut body, record.len() as i64);
        body.extend_from_slice(&record);
    }
    let mut batch = BytesMut::with_capacity(BATCH_HEADER_BYTES + body.len());
    let last_offset_delta = records.len().saturating_sub(1) as i32;
    batch.put_i64(0);
    batch.put_i32((BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES + body.len()) as i32);
    batch.put_i32(0);
    batch.put_i8(MAGIC_V2);
    batch.put_u32(0);
    batch.put_i16(0);
    batch.put_i32(last_offset_delta);
    batch.put_i64(timestamp_ms);
    batch.put_i64(timestamp_ms);
    batch.put_i64(-1);
    batch.put_i16(-1);
    batch.put_i32(-1);
    batch.put_i32(records.len() as i32);
    batch.extend_from_slice(&body);
    let crc = compute_crc(&batch);
    batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// Makes `batch` part of `producer_id`'s transaction (no sequence, as the
/// broker's own transactional writes such as TxnOffsetCommit have none).
pub fn make_transactional(batch: &mut BytesMut, producer_id: i64, producer_epoch: i16) {
    let attributes = (&batch[ATTRIBUTES_POS..]).get_i16() | ATTR_TRANSACTIONAL;
    batch[ATTRIBUTES_POS..ATTRIBUTES_POS + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[PRODUCER_ID_POS..PRODUCER_ID_POS + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH_POS..PRODUCER_EPOCH_POS + 2].copy_from_slice(&producer_epoch.to_be_bytes());
    batch[BASE_SEQUENCE_POS..BASE_SEQUENCE_POS + 4].copy_from_slice(&(-1i32).to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A transaction marker: a control batch of one record whose key is
/// `version i16 = 0, type i16 (0 abort, 1 commit)` and whose value is
/// `version i16 = 0, coordinator epoch i32`.
pub fn build_control_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> BytesMut {
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&i16::from(commit).to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let mut batch = build_batch(&[(Some(&key), Some(&value))], timestamp_ms);
    batch[ATTRIBUTES_POS..ATTRIBUTES_POS + 2].copy_from_slice(&(ATTR_TRANSACTIONAL | ATTR_CONTROL).to_be_bytes());
    batch[PRODUCER_ID_POS..PRODUCER_ID_POS + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH_POS..PRODUCER_EPOCH_POS + 2].copy_from_slice(&producer_epoch.to_be_bytes());
    let crc = compute_crc(&batch);
    batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// For a control batch: `Some(true)` for a commit marker, `Some(false)` for
/// an abort; `None` for anything else.
pub fn marker_is_commit(batch: &[u8]) -> Option<bool> {
    let header = BatchHeader::parse(batch).ok()?;
    if !header.is_control() {
        return None;
    }
    let records = parse_records(batch)?;
    let key = records.first()?.key?;
    let marker_type = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
    Some(marker_type == 1)
}

fn put_nullable_bytes(buf: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(buf, -1),
        Some(bytes) => {
            put_varint(buf, bytes.len() as i64);
            buf.extend_from_slice(bytes);
        }
    }
}

/// Zigzag varint, as record fields use.
pub fn put_varint(buf: &mut BytesMut, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        if zigzag < 0x80 {
            buf.extend_from_slice(&[zigzag as u8]);
            return;
        }
        buf.extend_from_slice(&[(zigzag as u8 & 0x7f) | 0x80]);
        zigzag >>= 7;
    }
}

/// Reads a zigzag varint; `None` when truncated or longer than 10 bytes.
pub fn get_varint(buf: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// One record of a (decompressed) records section, with its encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSlice<'a> {
    pub offset_delta: i64,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The whole record as encoded, length prefix included.
    pub encoded: &'a [u8],
}

/// Splits a decompressed records section into its `count` records; `None`
/// when it is malformed.
pub fn split_records(records: &[u8], count: i32) -> Option<Vec<RecordSlice<'_>>> {
    let mut rest = records;
    let mut out = Vec::with_capacity(count.clamp(0, 4096) as usize);
    for _ in 0..count {
        let start = rest;
        let length = usize::try_from(get_varint(&mut rest)?).ok()?;
        let prefix_bytes = start.len() - rest.len();
        let mut record = rest.get(..length)?;
        let encoded = &start[..prefix_bytes + length];
        rest = &rest[length..];
        record = record.get(1..)?; // attributes
        let timestamp_delta = get_varint(&mut record)?;
        let offset_delta = get_varint(&mut record)?;
        let key = get_nullable_bytes(&mut record)?;
        let value = get_nullable_bytes(&mut record)?;
        out.push(RecordSlice {
            offset_delta,
            timestamp_delta,
            key,
            value,
            encoded,
        });
    }
    Some(out)
}

/// One record of an uncompressed batch, borrowing from the batch bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// The records of an uncompressed batch; `None` when the batch is compressed
/// or malformed. Headers are skipped.
pub fn parse_records(batch: &[u8]) -> Option<Vec<RecordView<'_>>> {
    let header = BatchHeader::parse(batch).ok()?;
    if header.codec().ok()? != Codec::None {
        return None;
    }
    let mut body = batch.get(BATCH_HEADER_BYTES..header.total_bytes())?;
    let mut records = Vec::with_capacity(header.records_count.clamp(0, 4096) as usize);
    for _ in 0..header.records_count {
        let length = usize::try_from(get_varint(&mut body)?).ok()?;
        let mut record = body.get(..length)?;
        body = &body[length..];
        record = record.get(1..)?; // attributes
        let timestamp_delta = get_varint(&mut record)?;
        let offset_delta = get_varint(&mut record)?;
        let key = get_nullable_bytes(&mut record)?;
        let value = get_nullable_bytes(&mut record)?;
        records.push(RecordView {
            // Deltas come from the producer: a sum that overflows is malformed.
            offset: header.base_offset.checked_add(offset_delta)?,
            timestamp_ms: header.base_timestamp.checked_add(timestamp_delta)?,
            key,
            value,
        });
    }
    Some(records)
}

fn get_nullable_bytes<'a>(buf: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    let length = get_varint(buf)?;
    if length < 0 {
        return Some(None);
    }
    let bytes = buf.get(..length as usize)?;
    *buf = &buf[length as usize..];
    Some(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BytesMut {
        build_batch(&[(Some(b"k1"), Some(b"v1")), (None, Some(b"v2"))], 1_000)
    }

    #[test]
    fn built_batch_validates() {
        let batch = sample();
        let header = validate_batch(&batch).expect("valid");
        assert_eq!(header.records_count, 2);
        assert_eq!(header.last_offset_delta, 1);
        assert_eq!(header.total_bytes(), batch.len());
        assert_eq!(header.codec(), Ok(Codec::None));
    }

    #[test]
    fn flipped_payload_bit_fails_crc() {
        let mut batch = sample();
        let last = batch.len() - 1;
        batch[last] ^= 0x01;
        assert!(matches!(validate_batch(&batch), Err(BatchError::CrcMismatch { .. })));
    }

    #[test]
    fn stamping_offset_and_epoch_keeps_crc_valid() {
        let mut batch = sample();
        stamp_batch(&mut batch, 42, 7, None);
        let header = validate_batch(&batch).expect("still valid");
        assert_eq!(header.base_offset, 42);
        assert_eq!(header.partition_leader_epoch, 7);
        assert_eq!(header.last_offset(), 43);
    }

    #[test]
    fn log_append_time_stamps_and_recomputes_crc() {
        let mut batch = sample();
        stamp_batch(&mut batch, 0, 0, Some(99_999));
        let header = validate_batch(&batch).expect("crc recomputed");
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 99_999);
    }

    #[test]
    fn wrong_magic_is_refused() {
        let mut batch = sample();
        batch[MAGIC_POS] = 1;
        assert_eq!(validate_batch(&batch), Err(BatchError::UnsupportedMagic { magic: 1 }));
    }

    #[test]
    fn truncated_batch_is_refused() {
        let batch = sample();
        assert!(matches!(
            validate_batch(&batch[..batch.len() - 3]),
            Err(BatchError::Truncated { .. })
        ));
        assert!(matches!(validate_batch(&batch[..5]), Err(BatchError::Truncated { .. })));
    }

    #[test]
    fn negative_length_is_refused() {
        let mut batch = sample();
        batch[BATCH_LENGTH_POS..BATCH_LENGTH_POS + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(
            batch_total_bytes(&batch),
            Err(BatchError::InvalidLength { batch_length: -5 })
        );
    }

    #[test]
    fn control_batches_say_commit_or_abort() {
        for commit in [true, false] {
            let batch = build_control_batch(7, 2, commit, 0, 5);
            let header = validate_batch(&batch).expect("valid");
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (7, 2));
            assert_eq!(marker_is_commit(&batch), Some(commit));
        }
        assert_eq!(marker_is_commit(&sample()), None);
    }

    #[test]
    fn varint_round_trips() {
        for value in [0i64, 1, -1, 63, -64, 300, -300, i64::MAX, i64::MIN] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, value);
            let mut slice = &buf[..];
            assert_eq!(get_varint(&mut slice), Some(value));
            assert!(slice.is_empty());
        }
    }

    #[test]
    fn records_of_uncompressed_batch() {
        let mut batch = sample();
        stamp_batch(&mut batch, 10, 0, None);
        let records = parse_records(&batch).expect("uncompressed");
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].offset, 11);
        assert_eq!(records[0].timestamp_ms, 1_000);
        assert_eq!(records[0].key, Some(&b"k1"[..]));
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].value, Some(&b"v2"[..]));
    }
}
