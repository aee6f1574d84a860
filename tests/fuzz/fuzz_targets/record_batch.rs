//! A Produce record set of any bytes (CRCs fixed up so the fuzzer gets past
//! them): batch framing, records, and every codec's decompression.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|record_set: &[u8]| {
    ringlog_engine::fuzzing::record_set(record_set, true);
});
