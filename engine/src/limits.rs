//! Every bound the engine keeps, in one place, so backpressure follows from them.

/// O_DIRECT requires offsets, lengths and buffer addresses aligned to this.
pub const DIRECT_IO_ALIGNMENT_BYTES: usize = 4096;
/// One io_uring write coalesces at most this many bytes of appended batches.
pub const WRITE_JOB_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Kafka's `segment.bytes` is an int; index positions are u32.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// Smallest segment size accepted (Kafka: 14 bytes; we need room for a header).
pub const SEGMENT_BYTES_MIN: u64 = 1024;
/// Bound on the fetch waiters parked on one partition; older ones are dropped
/// once their fetch has gone away.
pub const DATA_WAITERS_MAX: usize = 65_536;

const _: () = assert!(DIRECT_IO_ALIGNMENT_BYTES.is_power_of_two());
const _: () = assert!(WRITE_JOB_BYTES_MAX.is_multiple_of(DIRECT_IO_ALIGNMENT_BYTES));
const _: () = assert!(SEGMENT_BYTES_MAX <= u32::MAX as u64);
