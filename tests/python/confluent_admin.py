"""Every topic admin API through confluent-kafka's AdminClient."""
import sys

from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic, ResourceType)

bootstrap = sys.argv[1]
admin = AdminClient({"bootstrap.servers": bootstrap})


def wait(futures):
    return {key: future.result(timeout=30) for key, future in futures.items()}


def refused(futures, code_name, fragment):
    for future in futures.values():
        try:
            future.result(timeout=30)
        except KafkaException as error:
            kafka_error = error.args[0]
            assert kafka_error.name() == code_name, f"{kafka_error.name()} != {code_name}: {kafka_error}"
            assert fragment in str(kafka_error), f"{fragment!r} not in {kafka_error}"
            return
    raise AssertionError(f"expected {code_name}")


# CreateTopics: validate-only creates nothing; bad configs name the key.
wait(admin.create_topics([NewTopic("adm", 2, 1, config={"retention.ms": "3600000"})], validate_only=True))
assert "adm" not in admin.list_topics(timeout=10).topics
refused(admin.create_topics([NewTopic("bad", 1, 1, config={"retention.ms": "soon"})]), "INVALID_CONFIG", "retention.ms")
wait(admin.create_topics([NewTopic("adm", 2, 1, config={"retention.ms": "3600000", "cleanup.policy": "delete"})]))

# DescribeConfigs: the override and its source, defaults with theirs.
described = wait(admin.describe_configs([ConfigResource(ResourceType.TOPIC, "adm")]))
entries = list(described.values())[0]
assert entries["retention.ms"].value == "3600000"
assert entries["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
assert entries["segment.bytes"].value == "1073741824"
assert entries["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
assert "compression.type" in entries and "max.message.bytes" in entries

# IncrementalAlterConfigs: SET, APPEND to a list, DELETE back to the default.
resource = ConfigResource(ResourceType.TOPIC, "adm", incremental_configs=[
    ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
    ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
])
wait(admin.incremental_alter_configs([resource]))
entries = list(wait(admin.describe_configs([ConfigResource(ResourceType.TOPIC, "adm")])).values())[0]
assert entries["retention.ms"].value == "7200000"
assert entries["cleanup.policy"].value == "delete,compact"
bad = ConfigResource(ResourceType.TOPIC, "adm", incremental_configs=[
    ConfigEntry("segment.ms", "-5", incremental_operation=AlterConfigOpType.SET)])
refused(admin.incremental_alter_configs([bad]), "INVALID_CONFIG", "segment.ms")
wait(admin.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, "adm", incremental_configs=[
    ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])]))
entries = list(wait(admin.describe_configs([ConfigResource(ResourceType.TOPIC, "adm")])).values())[0]
assert entries["retention.ms"].value == "604800000", entries["retention.ms"].value

# AlterConfigs replaces the whole set.
wait(admin.alter_configs([ConfigResource(ResourceType.TOPIC, "adm", set_config={"segment.ms": "100000"})]))
entries = list(wait(admin.describe_configs([ConfigResource(ResourceType.TOPIC, "adm")])).values())[0]
assert entries["segment.ms"].value == "100000"
assert entries["cleanup.policy"].value == "delete", "left out: back to the default"

# Broker settings are described (read-only).
broker_entries = list(wait(admin.describe_configs([ConfigResource(ResourceType.BROKER, "0")])).values())[0]
assert broker_entries["log.retention.ms"].value == "604800000"

# CreatePartitions grows, never shrinks.
wait(admin.create_partitions([NewPartitions("adm", 4)]))
assert len(admin.list_topics(timeout=10).topics["adm"].partitions) == 4
refused(admin.create_partitions([NewPartitions("adm", 2)]), "INVALID_PARTITIONS", "only grow")

# DeleteRecords moves the log start.
producer = Producer({"bootstrap.servers": bootstrap})
for i in range(20):
    producer.produce("adm", value=f"v{i}", partition=0)
producer.flush(30)
result = admin.delete_records([TopicPartition("adm", 0, 7)])
deleted = list(result.values())[0].result(timeout=30)
assert deleted.low_watermark == 7, deleted

# DeleteTopics.
wait(admin.delete_topics(["adm"]))
assert "adm" not in admin.list_topics(timeout=10).topics
print("ok")
