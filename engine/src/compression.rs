//! Record-batch compression: the codecs Kafka clients read and write, and
//! recompression of a batch to another codec (storage-side compression).
//!
//! Only the records section after the 61-byte header is compressed; recoding a
//! batch keeps every header field (offset deltas, timestamps, producer id,
//! epoch and sequence) but the codec bits, the length and the CRC.
//!
//! Invariant: decompression never produces more than the caller's bound, so a
//! forged length cannot make the broker allocate without limit.

use std::io::{Read, Write};

use bytes::{BufMut, BytesMut};

use crate::batch::{self, BatchHeader, Codec, ATTRIBUTES_POS, BATCH_HEADER_BYTES, BATCH_LENGTH_POS, CRC_POS};

/// Snappy as the Java client frames it ("xerial"): a magic header, then
/// blocks each prefixed by their compressed length.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    #[error("{codec:?} data does not decompress: {reason}")]
    Corrupt { codec: Codec, reason: String },
    #[error("decompressed records exceed {limit_bytes} bytes")]
    TooLarge { limit_bytes: usize },
}

fn corrupt(codec: Codec, reason: impl ToString) -> CompressionError {
    CompressionError::Corrupt {
        codec,
        reason: reason.to_string(),
    }
}

/// Reads `reader` to the end, refusing more than `limit_bytes`.
fn read_bounded(codec: Codec, reader: impl Read, limit_bytes: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    reader
        .take(limit_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > limit_bytes {
        return Err(CompressionError::TooLarge { limit_bytes });
    }
    Ok(out)
}

fn snappy_decompress(data: &[u8], limit_bytes: usize) -> Result<Vec<u8>, CompressionError> {
    if !data.starts_with(XERIAL_MAGIC) {
        let length = snap::raw::decompress_len(data).map_err(|e| corrupt(Codec::Snappy, e))?;
        if length > limit_bytes {
            return Err(CompressionError::TooLarge { limit_bytes });
        }
        return snap::raw::Decoder::new()
            .decompress_vec(data)
            .map_err(|e| corrupt(Codec::Snappy, e));
    }
    let mut rest = data
        .get(XERIAL_HEADER_BYTES..)
        .ok_or_else(|| corrupt(Codec::Snappy, "short xerial header"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (length, tail) = rest
            .split_at_checked(4)
            .ok_or_else(|| corrupt(Codec::Snappy, "short block length"))?;
        let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
        let block = tail
            .get(..length)
            .ok_or_else(|| corrupt(Codec::Snappy, "short block"))?;
        let block_length = snap::raw::decompress_len(block).map_err(|e| corrupt(Codec::Snappy, e))?;
        if out.len() + block_length > limit_bytes {
            return Err(CompressionError::TooLarge { limit_bytes });
        }
        out.extend(
            snap::raw::Decoder::new()
                .decompress_vec(block)
                .map_err(|e| corrupt(Codec::Snappy, e))?,
        );
        rest = &tail[length..];
    }
    Ok(out)
}

fn snappy_compress_xerial(data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::with_capacity(data.len() / 2 + XERIAL_HEADER_BYTES);
    out.extend_from_slice(XERIAL_MAGIC);
    out.put_i32(1); // version
    out.put_i32(1); // compatible version
    let mut encoder = snap::raw::Encoder::new();
    for block in data.chunks(XERIAL_BLOCK_BYTES) {
        let compressed = encoder.compress_vec(block).map_err(|e| corrupt(Codec::Snappy, e))?;
        out.put_u32(compressed.len() as u32);
        out.extend_from_slice(&compressed);
    }
    Ok(out)
}

/// Decompresses a records section, producing at most `limit_bytes`.
pub fn decompress(codec: Codec, data: &[u8], limit_bytes: usize) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Codec::None => {
            if data.len() > limit_bytes {
                return Err(CompressionError::TooLarge { limit_bytes });
            }
            Ok(data.to_vec())
        }
        Codec::Gzip => read_bounded(codec, flate2::read::GzDecoder::new(data), limit_bytes),
        Codec::Snappy => snappy_decompress(data, limit_bytes),
        Codec::Lz4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(data), limit_bytes),
        Codec::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(data).map_err(|e| corrupt(codec, e))?;
            read_bounded(codec, decoder, limit_bytes)
        }
    }
}

pub fn compress(codec: Codec, data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).map_err(|e| corrupt(codec, e))?;
            encoder.finish().map_err(|e| corrupt(codec, e))
        }
        Codec::Snappy => snappy_compress_xerial(data),
        Codec::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(data).map_err(|e| corrupt(codec, e))?;
            encoder.finish().map_err(|e| corrupt(codec, e))
        }
        Codec::Zstd => zstd::bulk::compress(data, 3).map_err(|e| corrupt(codec, e)),
    }
}

fn codec_bits(codec: Codec) -> i16 {
    match codec {
        Codec::None => 0,
        Codec::Gzip => 1,
        Codec::Snappy => 2,
        Codec::Lz4 => 3,
        Codec::Zstd => 4,
    }
}

/// The records section of a batch, decompressed (at most `limit_bytes`).
pub fn batch_records(batch_bytes: &[u8], limit_bytes: usize) -> Result<Vec<u8>, CompressionError> {
    let header = BatchHeader::parse(batch_bytes).map_err(|e| corrupt(Codec::None, e))?;
    let codec = header.codec().map_err(|e| corrupt(Codec::None, e))?;
    decompress(codec, &batch_bytes[BATCH_HEADER_BYTES..], limit_bytes)
}

/// Rewrites a validated batch with `target` as its codec; `None` when it
/// already has it. Control batches are left alone.
pub fn recompress_batch(
    batch_bytes: &[u8],
    target: Codec,
    limit_bytes: usize,
) -> Result<Option<BytesMut>, CompressionError> {
    let header = BatchHeader::parse(batch_bytes).map_err(|e| corrupt(Codec::None, e))?;
    let current = header.codec().map_err(|e| corrupt(Codec::None, e))?;
    if current == target || header.is_control() {
        return Ok(None);
    }
    let records = decompress(current, &batch_bytes[BATCH_HEADER_BYTES..], limit_bytes)?;
    let compressed = compress(target, &records)?;
    let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + compressed.len());
    out.extend_from_slice(&batch_bytes[..BATCH_HEADER_BYTES]);
    out.extend_from_slice(&compressed);
    let attributes = (header.attributes & !0x07) | codec_bits(target);
    out[ATTRIBUTES_POS..ATTRIBUTES_POS + 2].copy_from_slice(&attributes.to_be_bytes());
    let batch_length = (out.len() - batch::LOG_OVERHEAD_BYTES) as i32;
    out[BATCH_LENGTH_POS..BATCH_LENGTH_POS + 4].copy_from_slice(&batch_length.to_be_bytes());
    let crc = batch::compute_crc(&out);
    out[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_batch, parse_records, validate_batch};

    const LIMIT: usize = 1 << 20;

    fn sample() -> BytesMut {
        let values: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("log line number {i} with some repetition").into_bytes())
            .collect();
        let records: Vec<_> = values.iter().map(|v| (Some(&b"host-a"[..]), Some(&v[..]))).collect();
        build_batch(&records, 1_700_000_000_000)
    }

    #[test]
    fn every_codec_round_trips_a_batch() {
        let original = sample();
        let original_records = parse_records(&original).expect("records");
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let compressed = recompress_batch(&original, codec, LIMIT)
                .expect("recompress")
                .expect("changed");
            let header = validate_batch(&compressed).expect("valid batch, CRC recomputed");
            assert_eq!(header.codec().expect("codec"), codec);
            assert_eq!(header.records_count, 50);
            assert!(compressed.len() < original.len(), "{codec:?} shrinks repetitive logs");
            let back = recompress_batch(&compressed, Codec::None, LIMIT)
                .expect("decompress")
                .expect("changed");
            assert_eq!(back, original, "{codec:?}: decompressing gives the original batch back");
            assert_eq!(parse_records(&back).expect("records"), original_records);
        }
    }

    #[test]
    fn raw_snappy_is_read_too() {
        let data = b"librdkafka writes raw snappy blocks".repeat(10);
        let raw = snap::raw::Encoder::new().compress_vec(&data).expect("compress");
        assert_eq!(decompress(Codec::Snappy, &raw, LIMIT).expect("raw"), data);
        let xerial = compress(Codec::Snappy, &data).expect("compress");
        assert!(xerial.starts_with(XERIAL_MAGIC));
        assert_eq!(decompress(Codec::Snappy, &xerial, LIMIT).expect("xerial"), data);
    }

    #[test]
    fn decompression_is_bounded() {
        let zeros = vec![0u8; 10 * LIMIT];
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let bomb = compress(codec, &zeros).expect("compress");
            assert!(
                matches!(decompress(codec, &bomb, LIMIT), Err(CompressionError::TooLarge { .. })),
                "{codec:?}"
            );
        }
        assert!(matches!(
            decompress(Codec::Zstd, b"not zstd", LIMIT),
            Err(CompressionError::Corrupt { .. })
        ));
    }
}
