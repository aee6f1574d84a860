"""Scale probe for scripts/scale.sh: creates TOPICS topics of PARTITIONS
partitions with confluent-kafka's admin client, times it, times Metadata for
all topics, and produces one record to every partition (so each one has
written a segment). Prints one `key value` per line."""
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, topics, partitions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = [f"scale-{i:04d}" for i in range(topics)]
admin = AdminClient({"bootstrap.servers": bootstrap})
started = time.monotonic()
futures = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names],
                              request_timeout=600)
for future in futures.values():
    future.result()
print(f"create_s {time.monotonic() - started:.2f}")

samples = []
for _ in range(5):
    started = time.monotonic()
    metadata = admin.list_topics(timeout=60)
    samples.append(time.monotonic() - started)
    total = sum(len(t.partitions) for n, t in metadata.topics.items() if n.startswith("scale-"))
print(f"metadata_partitions {total}")
print(f"metadata_all_topics_ms_median {sorted(samples)[2] * 1000:.1f}")

producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": 1})
started = time.monotonic()
for name in names:
    for partition in range(partitions):
        producer.produce(name, value=b"x" * 100, partition=partition)
        producer.poll(0)
remaining = producer.flush(120)
print(f"produce_one_per_partition_s {time.monotonic() - started:.2f} undelivered {remaining}")
