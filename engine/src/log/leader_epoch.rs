//! Leader-epoch checkpoint of one partition (`leader-epoch-checkpoint`, Kafka's
//! text format: version, count, then `epoch start_offset` lines).
//!
//! Invariant: epochs and start offsets both strictly increase.
//! With one node the epoch stays at the one in metadata; replication will add
//! entries when leadership changes.

use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};
use crate::io;

pub const CHECKPOINT_FILE_NAME: &str = "leader-epoch-checkpoint";

#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    /// (epoch, start offset), ordered.
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint, adding `current_epoch` when it is new. A first
    /// checkpoint (a single epoch, derived the same way at every start) is
    /// written without fsyncs, so new partitions (thousands at once for a
    /// large topic) cost none; once there is history to keep (a second
    /// epoch) it is written durably.
    pub fn load_or_create(dir: &Path, current_epoch: i32, log_start_offset: i64) -> Result<Self> {
        let path = dir.join(CHECKPOINT_FILE_NAME);
        let entries = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| parse_checkpoint(&text))
            .unwrap_or_default();
        let derivable = entries.is_empty();
        let mut cache = Self { path, entries };
        if cache.entries.last().is_none_or(|&(epoch, _)| epoch < current_epoch) {
            let start = cache
                .entries
                .last()
                .map_or(log_start_offset, |&(_, s)| s.max(log_start_offset));
            cache.entries.push((current_epoch, start));
            cache.persist(!derivable)?;
        }
        Ok(cache)
    }

    fn persist(&self, durable: bool) -> Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        let written = if durable {
            io::write_file_atomically(&self.path, text.as_bytes())
        } else {
            io::write_file_lazily(&self.path, text.as_bytes())
        };
        written.map_err(|e| LogError::io("writing leader epoch checkpoint", &self.path, e))
    }

    /// Kafka's OffsetForLeaderEpoch answer: the largest epoch `<= requested` and
    /// the offset where it ended (the next epoch's start, or the log end).
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        let after = self.entries.partition_point(|&(epoch, _)| epoch <= requested);
        let Some(found) = after.checked_sub(1) else {
            return (-1, -1);
        };
        let end = self.entries.get(after).map_or(log_end_offset, |&(_, start)| start);
        (self.entries[found].0, end)
    }
}

fn parse_checkpoint(text: &str) -> Option<Vec<(i32, i64)>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries = Vec::with_capacity(count.min(1024));
    for line in lines.take(count) {
        let mut parts = line.split_whitespace();
        let epoch = parts.next()?.parse().ok()?;
        let start = parts.next()?.parse().ok()?;
        entries.push((epoch, start));
    }
    (entries.len() == count).then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first epoch's checkpoint is written lazily, the second durably;
    /// both are read back.
    #[test]
    fn creates_and_reloads_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = LeaderEpochCache::load_or_create(dir.path(), 0, 0).expect("create");
        assert_eq!(cache.end_offset_for(0, 50), (0, 50));
        assert_eq!(cache.end_offset_for(3, 50), (0, 50));
        let reloaded = LeaderEpochCache::load_or_create(dir.path(), 2, 0).expect("reload");
        assert_eq!(reloaded.entries, vec![(0, 0), (2, 0)]);
        assert_eq!(reloaded.end_offset_for(-1, 50), (-1, -1));
    }
}
