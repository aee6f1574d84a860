//! A first throughput measurement with librdkafka, until ringlog-bench (issue 6)
//! exists: produce COUNT records of SIZE bytes, then consume them all back.
//! Usage: rdkafka_throughput BOOTSTRAP TOPIC PARTITIONS COUNT SIZE

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::Message;
use ringlog_tests::assign_from_beginning;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, bootstrap, topic, partitions, count, size] = &args[..] else {
        eprintln!("usage: rdkafka_throughput BOOTSTRAP TOPIC PARTITIONS COUNT SIZE");
        std::process::exit(2);
    };
    let partitions: i32 = partitions.parse().expect("partitions");
    let count: usize = count.parse().expect("count");
    let size: usize = size.parse().expect("size");
    let payload = vec![b'x'; size];

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "1")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let started = Instant::now();
    for i in 0..count {
        let partition = (i % partitions as usize) as i32;
        let mut record = BaseRecord::<(), [u8]>::to(topic).payload(&payload).partition(partition);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    report("produce", count, size, started.elapsed());

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "throughput")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()
        .expect("consumer");
    assign_from_beginning(&consumer, topic, partitions);
    let started = Instant::now();
    let mut received = 0usize;
    while received < count {
        if let Some(message) = consumer.poll(Duration::from_secs(5)) {
            let message = message.expect("consume");
            assert_eq!(message.payload().map_or(0, <[u8]>::len), size);
            received += 1;
        }
    }
    report("consume", count, size, started.elapsed());
}

fn report(workload: &str, count: usize, size: usize, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    println!(
        "{workload}: {count} records of {size} B in {seconds:.2} s = {:.0} records/s, {:.1} MB/s",
        count as f64 / seconds,
        (count * size) as f64 / seconds / 1e6
    );
}
