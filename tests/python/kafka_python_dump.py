"""Prints every record of a topic as key:value lines, sorted (kafka-python)."""
import sys

from kafka import KafkaConsumer, TopicPartition

bootstrap, topic = sys.argv[1], sys.argv[2]
consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, consumer_timeout_ms=3000)
partitions = consumer.partitions_for_topic(topic)
consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
consumer.seek_to_beginning()
lines = sorted(f"{m.key.decode()}:{m.value.decode()}" for m in consumer)
consumer.close()
print("\n".join(lines))
