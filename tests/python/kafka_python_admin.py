"""Topic admin APIs through kafka-python's KafkaAdminClient."""
import sys

from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
from kafka.structs import TopicPartition

bootstrap = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=bootstrap)

admin.create_topics([NewTopic("kpadm", 1, 1, topic_configs={"retention.bytes": "1048576"})], validate_only=True)
assert "kpadm" not in admin.list_topics()
admin.create_topics([NewTopic("kpadm", 1, 1, topic_configs={"retention.bytes": "1048576"})])

def topic_configs():
    response = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kpadm")])
    if isinstance(response, dict):  # kafka-python 3: {"topic": {name: {key: {"value": ...}}}}
        return {key: entry["value"] for key, entry in response["topic"]["kpadm"].items()}
    _, _, _, _, entries = response[0].resources[0][:5]  # kafka-python 2: raw responses
    return {entry[0]: entry[1] for entry in entries}

assert topic_configs()["retention.bytes"] == "1048576"
admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "kpadm", configs={"retention.ms": "123456"})])
configs = topic_configs()
assert configs["retention.ms"] == "123456", configs
if "segment.bytes" in configs:
    # kafka-python 2 lists every config and AlterConfigs replaces the set;
    # kafka-python 3 lists only overrides and changes only the keys given.
    assert configs["retention.bytes"] == "-1", configs

admin.create_partitions({"kpadm": NewPartitions(total_count=3)})
producer = KafkaProducer(bootstrap_servers=bootstrap)
for i in range(10):
    producer.send("kpadm", value=b"x", partition=0)
producer.flush()
if hasattr(admin, "delete_records"):
    admin.delete_records({TopicPartition("kpadm", 0): 4})
if hasattr(admin, "describe_log_dirs"):
    log_dirs = admin.describe_log_dirs()
    assert "kpadm" in repr(log_dirs), log_dirs
admin.delete_topics(["kpadm"])
print("ok")
