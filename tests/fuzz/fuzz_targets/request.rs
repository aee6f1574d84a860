//! A request frame (without its size prefix) of any bytes: header and body
//! decoding for every API and version the broker serves.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let _ = ringlog_server::handlers::decode_request(bytes::Bytes::copy_from_slice(frame));
});
