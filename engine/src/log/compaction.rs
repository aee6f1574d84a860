//! Log compaction (cleanup.policy=compact), as pure functions over segment
//! bytes: [`OffsetMap::add_segment`] learns each key's latest offset from the
//! dirty segments, [`clean_segment`] rewrites a segment keeping only records
//! that are their key's latest. The partition log does the file work.
//!
//! Invariants:
//! - A record is dropped only when a later record with the same key exists in
//!   the log (or it is a tombstone past `delete.retention.ms`, or aborted
//!   transactional data). So the latest value of every key survives any
//!   sequence of cleanings, interrupted or not.
//! - Offsets are kept: a surviving batch keeps its base offset and
//!   lastOffsetDelta (gaps inside are fine); control batches are kept.

use std::collections::HashMap;

use bytes::BytesMut;

use crate::batch::{self, BatchHeader, Codec, BATCH_HEADER_BYTES, BATCH_LENGTH_POS, CRC_POS, RECORDS_COUNT_POS};
use crate::compression::{self, CompressionError};

/// Decompressed records of one batch are bounded by this (a segment we wrote
/// ourselves; the bound only guards against damage).
const BATCH_RECORDS_BYTES_MAX: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct CompactionPolicy {
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    #[error("segment bytes are damaged at position {position}")]
    Damaged { position: usize },
    #[error(transparent)]
    Compression(#[from] CompressionError),
}

/// Whole batches of a segment's bytes with their headers.
fn batches(bytes: &[u8]) -> impl Iterator<Item = Result<(BatchHeader, &[u8]), CompactionError>> {
    let mut position = 0usize;
    std::iter::from_fn(move || {
        let rest = bytes.get(position..)?;
        if rest.is_empty() {
            return None;
        }
        let item = batch::batch_total_bytes(rest)
            .ok()
            .and_then(|total| Some((BatchHeader::parse(rest).ok()?, rest.get(..total)?)))
            .ok_or(CompactionError::Damaged { position });
        match &item {
            Ok((_, whole)) => position += whole.len(),
            Err(_) => position = bytes.len(),
        }
        Some(item)
    })
}

/// Each key's latest offset over the dirty part of the log.
#[derive(Debug, Default)]
pub struct OffsetMap {
    latest: HashMap<Vec<u8>, i64>,
}

impl OffsetMap {
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Learns the keys of a segment's batches; `aborted` says whether a
    /// producer's batch at an offset belongs to an aborted transaction (its
    /// records must not shadow committed ones).
    pub fn add_segment(&mut self, bytes: &[u8], aborted: impl Fn(i64, i64) -> bool) -> Result<(), CompactionError> {
        for item in batches(bytes) {
            let (header, whole) = item?;
            if header.is_control() || (header.is_transactional() && aborted(header.producer_id, header.base_offset)) {
                continue;
            }
            let records = compression::batch_records(whole, BATCH_RECORDS_BYTES_MAX)?;
            let slices =
                batch::split_records(&records, header.records_count).ok_or(CompactionError::Damaged { position: 0 })?;
            for record in slices {
                if let Some(key) = record.key {
                    let offset = header.base_offset + record.offset_delta;
                    let latest = self.latest.entry(key.to_vec()).or_insert(offset);
                    *latest = (*latest).max(offset);
                }
            }
        }
        Ok(())
    }

    /// True when `offset` is not superseded for `key`.
    fn is_latest(&self, key: &[u8], offset: i64) -> bool {
        self.latest.get(key).is_none_or(|latest| *latest <= offset)
    }
}

/// What a cleaning removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanStats {
    pub records_removed: u64,
    pub batches_removed: u64,
}

/// Rewrites a segment's bytes, keeping each record only if it is its key's
/// latest, dropping tombstones older than `tombstone_horizon_ms` and aborted
/// transactional batches. Batch boundaries, base offsets and lastOffsetDelta
/// are kept; emptied batches disappear.
pub fn clean_segment(
    bytes: &[u8],
    map: &OffsetMap,
    aborted: impl Fn(i64, i64) -> bool,
    tombstone_horizon_ms: i64,
) -> Result<(Vec<u8>, CleanStats), CompactionError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut stats = CleanStats::default();
    for item in batches(bytes) {
        let (header, whole) = item?;
        if header.is_control() {
            out.extend_from_slice(whole);
            continue;
        }
        if header.is_transactional() && aborted(header.producer_id, header.base_offset) {
            stats.batches_removed += 1;
            stats.records_removed += header.records_count.max(0) as u64;
            continue;
        }
        let codec = header.codec().map_err(|_| CompactionError::Damaged { position: 0 })?;
        let records = compression::batch_records(whole, BATCH_RECORDS_BYTES_MAX)?;
        let slices =
            batch::split_records(&records, header.records_count).ok_or(CompactionError::Damaged { position: 0 })?;
        let keep: Vec<_> = slices
            .iter()
            .filter(|r| {
                let offset = header.base_offset + r.offset_delta;
                let latest = r.key.is_none_or(|key| map.is_latest(key, offset));
                let expired_tombstone =
                    r.value.is_none() && header.base_timestamp + r.timestamp_delta < tombstone_horizon_ms;
                latest && !expired_tombstone
            })
            .collect();
        let removed = slices.len() - keep.len();
        stats.records_removed += removed as u64;
        if keep.is_empty() {
            stats.batches_removed += 1;
        } else if removed == 0 {
            out.extend_from_slice(whole);
        } else {
            let section: Vec<u8> = keep.iter().flat_map(|r| r.encoded.iter().copied()).collect();
            out.extend_from_slice(&rebuild(whole, codec, keep.len() as i32, &section)?);
        }
    }
    Ok((out, stats))
}

/// A batch with the same header but other records.
fn rebuild(original: &[u8], codec: Codec, records_count: i32, section: &[u8]) -> Result<BytesMut, CompactionError> {
    let compressed = compression::compress(codec, section)?;
    let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + compressed.len());
    out.extend_from_slice(&original[..BATCH_HEADER_BYTES]);
    out.extend_from_slice(&compressed);
    out[RECORDS_COUNT_POS..RECORDS_COUNT_POS + 4].copy_from_slice(&records_count.to_be_bytes());
    let batch_length = (out.len() - batch::LOG_OVERHEAD_BYTES) as i32;
    out[BATCH_LENGTH_POS..BATCH_LENGTH_POS + 4].copy_from_slice(&batch_length.to_be_bytes());
    let crc = batch::compute_crc(&out);
    out[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_batch, parse_records, stamp_batch, validate_batch};

    /// A batch to write: base offset, then `(key, value)` records.
    type TestBatch<'a> = (i64, Vec<(&'a str, Option<&'a str>)>);

    fn segment(batches: &[TestBatch<'_>], timestamp_ms: i64) -> Vec<u8> {
        let mut out = Vec::new();
        for (base, records) in batches {
            let records: Vec<_> = records
                .iter()
                .map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes)))
                .collect();
            let mut batch = build_batch(&records, timestamp_ms);
            stamp_batch(&mut batch, *base, 0, None);
            out.extend_from_slice(&batch);
        }
        out
    }

    fn survivors(bytes: &[u8]) -> Vec<(i64, String, Option<String>)> {
        batches(bytes)
            .flat_map(|item| {
                let (_, whole) = item.expect("batch");
                validate_batch(whole).expect("valid CRC");
                parse_records(whole)
                    .expect("records")
                    .into_iter()
                    .map(|r| {
                        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).to_string());
                        (r.offset, text(r.key).unwrap_or_default(), text(r.value))
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn only_the_latest_value_per_key_survives_and_offsets_stay() {
        let old = segment(
            &[
                (0, vec![("a", Some("1")), ("b", Some("1"))]),
                (2, vec![("a", Some("2"))]),
            ],
            1_000,
        );
        let newer = segment(&[(3, vec![("b", Some("2")), ("c", None)])], 1_000);
        let mut map = OffsetMap::default();
        map.add_segment(&old, |_, _| false).expect("map");
        map.add_segment(&newer, |_, _| false).expect("map");
        let (cleaned, stats) = clean_segment(&old, &map, |_, _| false, 0).expect("clean");
        assert_eq!(survivors(&cleaned), vec![(2, "a".into(), Some("2".into()))]);
        assert_eq!(stats.records_removed, 2);
        assert_eq!(stats.batches_removed, 1, "the emptied first batch is gone");
        let first = BatchHeader::parse(&cleaned).expect("header");
        assert_eq!((first.base_offset, first.last_offset_delta), (2, 0));
        // The tombstone stays while young, goes once past the horizon.
        let (kept, _) = clean_segment(&newer, &map, |_, _| false, 500).expect("clean");
        assert_eq!(survivors(&kept).len(), 2);
        let (gone, _) = clean_segment(&newer, &map, |_, _| false, 2_000).expect("clean");
        assert_eq!(survivors(&gone), vec![(3, "b".into(), Some("2".into()))]);
    }

    #[test]
    fn compressed_batches_are_rewritten_in_their_codec() {
        let plain = segment(
            &[(0, vec![("k", Some("old")), ("j", Some("x")), ("k", Some("new"))])],
            1_000,
        );
        let zstd = compression::recompress_batch(&plain, Codec::Zstd, 1 << 20)
            .expect("zstd")
            .expect("changed");
        let mut map = OffsetMap::default();
        map.add_segment(&zstd, |_, _| false).expect("map");
        let (cleaned, _) = clean_segment(&zstd, &map, |_, _| false, 0).expect("clean");
        let header = validate_batch(&cleaned).expect("valid");
        assert_eq!(header.codec().expect("codec"), Codec::Zstd);
        assert_eq!(header.records_count, 2);
        assert_eq!(header.last_offset_delta, 2, "lastOffsetDelta kept");
        let plain_again = compression::recompress_batch(&cleaned, Codec::None, 1 << 20)
            .expect("plain")
            .expect("changed");
        let values: Vec<_> = survivors(&plain_again).into_iter().map(|(o, k, _)| (o, k)).collect();
        assert_eq!(values, vec![(1, "j".into()), (2, "k".into())]);
    }

    #[test]
    fn aborted_data_does_not_shadow_and_is_dropped() {
        let committed = segment(&[(0, vec![("k", Some("committed"))])], 1_000);
        let mut aborted_batch = BytesMut::from(&segment(&[(1, vec![("k", Some("aborted"))])], 1_000)[..]);
        batch::make_transactional(&mut aborted_batch, 9, 0);
        let mut bytes = committed.clone();
        bytes.extend_from_slice(&aborted_batch);
        let aborted = |producer_id: i64, offset: i64| producer_id == 9 && offset == 1;
        let mut map = OffsetMap::default();
        map.add_segment(&bytes, aborted).expect("map");
        let (cleaned, _) = clean_segment(&bytes, &map, aborted, 0).expect("clean");
        assert_eq!(survivors(&cleaned), vec![(0, "k".into(), Some("committed".into()))]);
    }
}
