"""confluent-kafka (librdkafka's Python binding) against ringlog."""
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

admin = AdminClient({"bootstrap.servers": bootstrap})
for future in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
    future.result(timeout=30)

placed = {}
errors = []


def on_delivery(error, message):
    if error is not None:
        errors.append(error)
    else:
        placed[(message.partition(), message.offset())] = message.value().decode()


producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "compression.codec": "zstd", "linger.ms": 5})
for i in range(count):
    producer.produce(topic, key=f"k{i % 7}", value=f"v{i:06d}", on_delivery=on_delivery)
    producer.poll(0)
producer.flush(30)
assert not errors, errors
assert len(placed) == count, f"{len(placed)} delivered of {count}"

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "confluent-test", "enable.auto.commit": False})
consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
seen = {}
deadline = time.time() + 60
while len(seen) < count and time.time() < deadline:
    message = consumer.poll(1.0)
    if message is None:
        continue
    assert message.error() is None, message.error()
    key = (message.partition(), message.offset())
    assert key not in seen, f"duplicate {key}"
    seen[key] = message.value().decode()
consumer.close()
assert seen == placed, f"consumed {len(seen)} of {count}"
print(f"ok {len(seen)}")
