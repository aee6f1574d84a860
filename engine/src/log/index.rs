//! Sparse offset and time indexes of one segment.
//!
//! Kept in memory while the segment lives; written to `.index` / `.timeindex`
//! when the segment is sealed or at clean shutdown; rebuilt by scanning the
//! segment when missing or damaged.
//!
//! Invariants (checked on load, asserted on append):
//! - offset index: relative offsets and positions strictly increase.
//! - time index: timestamps and relative offsets strictly increase.

use bytes::{Buf, BufMut};

pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

/// `relative_offset` is the batch base offset minus the segment base offset;
/// `position` the batch's byte position in the segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

const _: () = assert!(OFFSET_INDEX_ENTRY_BYTES == 2 * std::mem::size_of::<u32>());

#[derive(Debug, Default)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    pub fn append(&mut self, entry: OffsetEntry) {
        if let Some(last) = self.entries.last() {
            assert!(
                entry.relative_offset > last.relative_offset,
                "offset index out of order"
            );
            assert!(entry.position > last.position, "offset index positions out of order");
        }
        self.entries.push(entry);
    }

    /// The entry with the largest relative offset `<= relative_offset`.
    pub fn lookup(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let after = self.entries.partition_point(|e| e.relative_offset <= relative_offset);
        after.checked_sub(1).map(|i| self.entries[i])
    }

    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }

    /// Drops the entries at or after `position` (they are about to be rescanned).
    pub fn truncate_from_position(&mut self, position: u32) {
        self.entries.retain(|e| e.position < position);
    }

    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_INDEX_ENTRY_BYTES);
        for entry in &self.entries {
            out.put_u32(entry.relative_offset);
            out.put_u32(entry.position);
        }
        out
    }

    /// Decodes an index file; `None` when it is damaged (wrong size, disorder,
    /// or a position at or past `segment_bytes`).
    pub fn decode(mut bytes: &[u8], segment_bytes: u64) -> Option<Self> {
        if !bytes.len().is_multiple_of(OFFSET_INDEX_ENTRY_BYTES) {
            return None;
        }
        let mut index = Self::default();
        while bytes.has_remaining() {
            let entry = OffsetEntry {
                relative_offset: bytes.get_u32(),
                position: bytes.get_u32(),
            };
            let ordered = index
                .entries
                .last()
                .is_none_or(|last| entry.relative_offset > last.relative_offset && entry.position > last.position);
            if !ordered || u64::from(entry.position) >= segment_bytes {
                return None;
            }
            index.entries.push(entry);
        }
        Some(index)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp seen in the segment up to and including this batch.
    pub timestamp_ms: i64,
    /// Base offset of the batch, relative to the segment base.
    pub relative_offset: u32,
}

#[derive(Debug, Default)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Records `entry` if it raises the largest timestamp seen.
    pub fn maybe_append(&mut self, entry: TimeEntry) {
        match self.entries.last() {
            Some(last) if entry.timestamp_ms <= last.timestamp_ms => {}
            Some(last) => {
                assert!(entry.relative_offset > last.relative_offset, "time index out of order");
                self.entries.push(entry);
            }
            None => self.entries.push(entry),
        }
    }

    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }

    /// Drops the entries at or after `relative_offset`.
    pub fn truncate_from_offset(&mut self, relative_offset: u32) {
        self.entries.retain(|e| e.relative_offset < relative_offset);
    }

    /// The last entry whose timestamp is below `target_ms`: every batch before
    /// its offset has only timestamps below the target, so a search may start there.
    pub fn last_below(&self, target_ms: i64) -> Option<TimeEntry> {
        let after = self.entries.partition_point(|e| e.timestamp_ms < target_ms);
        after.checked_sub(1).map(|i| self.entries[i])
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_INDEX_ENTRY_BYTES);
        for entry in &self.entries {
            out.put_i64(entry.timestamp_ms);
            out.put_u32(entry.relative_offset);
        }
        out
    }

    pub fn decode(mut bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(TIME_INDEX_ENTRY_BYTES) {
            return None;
        }
        let mut index = Self::default();
        while bytes.has_remaining() {
            let entry = TimeEntry {
                timestamp_ms: bytes.get_i64(),
                relative_offset: bytes.get_u32(),
            };
            let ordered = index.entries.last().is_none_or(|last| {
                entry.timestamp_ms > last.timestamp_ms && entry.relative_offset > last.relative_offset
            });
            if !ordered {
                return None;
            }
            index.entries.push(entry);
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_and_round_trip() {
        let mut index = OffsetIndex::default();
        index.append(OffsetEntry {
            relative_offset: 0,
            position: 0,
        });
        index.append(OffsetEntry {
            relative_offset: 10,
            position: 4100,
        });
        index.append(OffsetEntry {
            relative_offset: 20,
            position: 8200,
        });
        assert_eq!(index.lookup(15).map(|e| e.position), Some(4100));
        assert_eq!(index.lookup(20).map(|e| e.position), Some(8200));
        let decoded = OffsetIndex::decode(&index.encode(), 10_000).expect("decodes");
        assert_eq!(decoded.lookup(9).map(|e| e.position), Some(0));
    }

    #[test]
    fn damaged_offset_index_is_rejected() {
        let mut index = OffsetIndex::default();
        index.append(OffsetEntry {
            relative_offset: 0,
            position: 0,
        });
        index.append(OffsetEntry {
            relative_offset: 5,
            position: 500,
        });
        let bytes = index.encode();
        assert!(OffsetIndex::decode(&bytes[..bytes.len() - 1], 10_000).is_none());
        assert!(OffsetIndex::decode(&bytes, 400).is_none(), "position past segment end");
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert!(OffsetIndex::decode(&swapped, 10_000).is_none());
    }

    #[test]
    fn time_index_keeps_only_rising_timestamps() {
        let mut index = TimeIndex::default();
        index.maybe_append(TimeEntry {
            timestamp_ms: 100,
            relative_offset: 0,
        });
        index.maybe_append(TimeEntry {
            timestamp_ms: 90,
            relative_offset: 5,
        });
        index.maybe_append(TimeEntry {
            timestamp_ms: 200,
            relative_offset: 9,
        });
        assert_eq!(index.last_below(150).map(|e| e.relative_offset), Some(0));
        assert_eq!(index.last_below(100), None);
        let decoded = TimeIndex::decode(&index.encode()).expect("decodes");
        assert_eq!(decoded.last_below(1_000).map(|e| e.relative_offset), Some(9));
    }
}
