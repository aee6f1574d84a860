"""kafka-python against ringlog: produce, then read every partition back."""
import sys
from collections import defaultdict

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
compression = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "none" else None

# Default settings: kafka-python 3 turns idempotence on (InitProducerId,
# sequence numbers); 2.0 has none.
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=compression, linger_ms=5)
futures = [producer.send(topic, key=f"k{i % 10}".encode(), value=f"v{i:06d}".encode()) for i in range(count)]
producer.flush()
placed = {}
for index, future in enumerate(futures):
    metadata = future.get(timeout=30)
    placed[(metadata.partition, metadata.offset)] = f"v{index:06d}"
producer.close()
assert len(placed) == count, f"{len(placed)} distinct offsets for {count} messages"

consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, consumer_timeout_ms=15000)
partitions = consumer.partitions_for_topic(topic)
assert partitions, "topic has partitions"
consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
consumer.seek_to_beginning()
seen = {}
for message in consumer:
    key = (message.partition, message.offset)
    assert key not in seen, f"duplicate {key}"
    seen[key] = message.value.decode()
    if len(seen) >= count:
        break
consumer.close()
assert seen == placed, f"consumed {len(seen)} of {count}; mismatch"
last = defaultdict(lambda: -1)
for partition, offset in sorted(seen):
    assert offset == last[partition] + 1, f"gap in partition {partition} at {offset}"
    last[partition] = offset
print(f"ok {len(seen)}")
