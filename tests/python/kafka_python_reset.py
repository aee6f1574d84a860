"""kafka-python reads from offset 0 of a partition whose start was deleted by
retention: OffsetOutOfRange is answered by auto_offset_reset=earliest."""
import sys

from kafka import KafkaConsumer, TopicPartition

bootstrap, topic, expected_start, expected_end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=10000)
partition = TopicPartition(topic, 0)
consumer.assign([partition])
consumer.seek(partition, 0)
offsets = [message.offset for message in consumer]
consumer.close()
assert offsets, "nothing read"
assert offsets[0] == expected_start, f"reset to {offsets[0]}, log start is {expected_start}"
assert offsets[-1] == expected_end - 1, f"read up to {offsets[-1]}, expected {expected_end - 1}"
print(f"ok {len(offsets)}")
