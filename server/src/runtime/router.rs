//! Which core owns which partition: a pure function of the topic name, the
//! partition and the core count, so every core computes the same answer
//! without asking anyone. A topic's partitions spread round-robin over cores.

/// FNV-1a: stable across runs and platforms (std's hasher is seeded).
pub fn stable_hash(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

pub fn owner_core(topic: &str, partition: i32, core_count: usize) -> usize {
    assert!(core_count > 0, "at least one core");
    assert!(partition >= 0, "partition indexes are non-negative");
    (stable_hash(topic).wrapping_add(partition as u64) % core_count as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_of_a_topic_spread_over_cores() {
        let mut counts = [0usize; 4];
        for partition in 0..8 {
            counts[owner_core("orders", partition, 4)] += 1;
        }
        assert_eq!(counts, [2, 2, 2, 2]);
        assert_eq!(owner_core("orders", 3, 4), owner_core("orders", 3, 4));
    }
}
