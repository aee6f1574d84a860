//! Entry points the fuzz targets (`tests/fuzz`) and the corpus replay test
//! (`tests/tests/fuzz_corpus.rs`) share: everything the broker does with a
//! record set a producer sends, from bytes that may be anything.
//!
//! Invariant: these functions return on any input; a panic or an allocation
//! beyond [`DECOMPRESSED_LIMIT_BYTES`] plus the input's size is a bug.

use crate::batch::{self, Codec, CRC_POS};
use crate::compression;

/// Decompression bound used here (the broker uses `max.message.bytes`-scaled
/// limits of the same kind).
pub const DECOMPRESSED_LIMIT_BYTES: usize = 1 << 20;

/// Splits `record_set` into batches as Produce does and, for each, validates
/// it, parses its records, decompresses them and recompresses them to every
/// codec. When `fix_crc` is set each batch's CRC-32C is rewritten first, so
/// fuzzing reaches past the checksum into records and codecs.
pub fn record_set(record_set: &[u8], fix_crc: bool) {
    let mut rest = record_set.to_vec();
    let mut start = 0;
    while let Ok(total_bytes) = batch::batch_total_bytes(&rest[start..]) {
        let Some(end) = start.checked_add(total_bytes).filter(|end| *end <= rest.len()) else {
            return;
        };
        let one = &mut rest[start..end];
        if fix_crc && one.len() >= CRC_POS + 4 {
            let crc = batch::compute_crc(one);
            one[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
        }
        one_batch(one);
        start = end;
    }
}

fn one_batch(bytes: &[u8]) {
    let Ok(header) = batch::validate_batch(bytes) else {
        return;
    };
    let _ = batch::parse_records(bytes);
    let _ = batch::marker_is_commit(bytes);
    if let Ok(records) = compression::batch_records(bytes, DECOMPRESSED_LIMIT_BYTES) {
        assert!(
            records.len() <= DECOMPRESSED_LIMIT_BYTES,
            "decompression went past its limit"
        );
        let _ = batch::split_records(&records, header.records_count);
    }
    for target in [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let _ = compression::recompress_batch(bytes, target, DECOMPRESSED_LIMIT_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_junk_and_real_batches() {
        record_set(&[], true);
        record_set(&[0xff; 100], true);
        let real = batch::build_batch(&[(Some(b"k"), Some(b"v"))], 1);
        record_set(&real, false);
        let mut truncated = real.to_vec();
        truncated.truncate(real.len() - 3);
        record_set(&truncated, true);
    }
}
