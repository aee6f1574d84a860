//! The fuzz targets' inputs on stable Rust, in the test suite: every file of
//! the committed corpus (`tests/fuzz/corpus/<target>/`, grown by
//! `scripts/fuzz.sh`) and of past crashes (`tests/fuzz/regressions/`), plus
//! seeds built here and a few thousand mutations of
//! them, through the same entry points the targets call. None may panic.
//!
//! `RINGLOG_WRITE_SEED_CORPUS=1` writes the seeds into the corpus folders, to
//! start a fuzzing campaign from real requests and batches.

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use ringlog_engine::batch::{self, Codec};
use ringlog_engine::compression;
use ringlog_server::handlers::{decode_request, SUPPORTED_APIS};
use ringlog_tests::{idempotent_batch, workspace_root};

const MUTATIONS_PER_TARGET: usize = 20_000;

fn corpus_dir(target: &str) -> PathBuf {
    workspace_root().join("tests/fuzz/corpus").join(target)
}

fn header(api: ApiKey, version: i16) -> BytesMut {
    let mut frame = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")))
        .encode(&mut frame, api.request_header_version(version))
        .expect("header encodes");
    frame
}

fn frame_of<R: Encodable>(api: ApiKey, version: i16, request: &R) -> Vec<u8> {
    let mut frame = header(api, version);
    request.encode(&mut frame, version).expect("request encodes");
    frame.to_vec()
}

/// Real requests: every supported API and version with its default body, and
/// a Produce carrying a real batch.
fn request_seeds() -> Vec<Vec<u8>> {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::*;
    let mut seeds: Vec<Vec<u8>> = SUPPORTED_APIS
        .iter()
        .flat_map(|(api, range)| (range.min..=range.max).map(move |version| header(*api, version).to_vec()))
        .collect();
    seeds.push(frame_of(ApiKey::Metadata, 12, &MetadataRequest::default()));
    seeds.push(frame_of(ApiKey::Fetch, 12, &FetchRequest::default()));
    seeds.push(frame_of(ApiKey::JoinGroup, 9, &JoinGroupRequest::default()));
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(ringlog_tests::topic_name("t"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(idempotent_batch(1, 0, 0, &["value".to_string()])))])]);
    for version in [3, 9] {
        seeds.push(frame_of(ApiKey::Produce, version, &produce));
    }
    seeds
}

/// Real record sets: plain, keyed, every codec, control, several batches.
fn record_batch_seeds() -> Vec<Vec<u8>> {
    let plain = batch::build_batch(&[(Some(b"key"), Some(b"value")), (None, Some(b"second"))], 1);
    let mut seeds = vec![plain.to_vec()];
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let compressed = compression::recompress_batch(&plain, codec, 1 << 20)
            .expect("recompresses")
            .expect("a new codec");
        seeds.push(compressed.to_vec());
    }
    seeds.push(batch::build_control_batch(5, 0, true, 1, 1).to_vec());
    seeds.push([plain.to_vec(), seeds[1].clone()].concat());
    seeds
}

/// xorshift64: the same mutations on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// One to four edits of the kinds that break parsers: bytes flipped or set to
/// boundary values, truncation, a run duplicated, bytes inserted.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut input = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(input.len());
        match rng.below(5) {
            0 if !input.is_empty() => input[at] ^= 1 << rng.below(8),
            1 if !input.is_empty() => input[at] = [0x00, 0x7f, 0x80, 0xff][rng.below(4)],
            2 => input.truncate(at),
            3 if !input.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(input.len());
                let run = input[at..end].to_vec();
                input.splice(at..at, run);
            }
            _ => {
                let bytes = rng.next().to_be_bytes();
                input.splice(at..at, bytes[..1 + rng.below(8)].iter().copied());
            }
        }
    }
    input
}

/// The committed corpus and the inputs that once crashed a target
/// (`tests/fuzz/regressions/<target>/`, kept out of the corpus so `cmin`
/// never drops them).
fn committed_corpus(target: &str) -> Vec<Vec<u8>> {
    let regressions = workspace_root().join("tests/fuzz/regressions").join(target);
    [corpus_dir(target), regressions]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(|entry| std::fs::read(entry.ok()?.path()).ok())
        .collect()
}

fn replay(target: &str, seeds: Vec<Vec<u8>>, run: impl Fn(&[u8])) {
    if std::env::var_os("RINGLOG_WRITE_SEED_CORPUS").is_some() {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (index, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{index:03}")), seed).expect("writing seed");
        }
    }
    let corpus = committed_corpus(target);
    for input in corpus.iter().chain(&seeds) {
        run(input);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let all: Vec<&Vec<u8>> = corpus.iter().chain(&seeds).collect();
    for _ in 0..MUTATIONS_PER_TARGET {
        let seed = all[rng.below(all.len())];
        run(&mutate(seed, &mut rng));
    }
}

#[test]
fn request_decoding_survives_the_corpus_and_its_mutations() {
    replay("request", request_seeds(), |frame| {
        let _ = decode_request(Bytes::copy_from_slice(frame));
    });
}

#[test]
fn record_batch_parsing_survives_the_corpus_and_its_mutations() {
    replay("record_batch", record_batch_seeds(), |record_set| {
        ringlog_engine::fuzzing::record_set(record_set, true);
    });
}
