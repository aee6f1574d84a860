"""kafka-python group consumer: subscribe, consume everything, commit; a second
consumer in the same group then finds nothing left, and OffsetFetch agrees."""
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
for i in range(count):
    producer.send(topic, value=f"g{i}".encode())
producer.flush()
producer.close()


def group_consumer():
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="kp-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=8000,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )


consumer = group_consumer()
seen = set()
for message in consumer:
    seen.add(message.value.decode())
    if len(seen) >= count:
        break
consumer.commit()
partitions = consumer.assignment()
committed = sum(consumer.committed(tp) or 0 for tp in partitions)
consumer.close()
assert len(seen) == count, f"group read {len(seen)} of {count}"
assert committed == count, f"committed offsets sum {committed}, expected {count}"

again = group_consumer()
leftover = [m for m in again]
again.close()
assert not leftover, f"{len(leftover)} messages read again after commit"
print(f"ok {len(seen)}")
