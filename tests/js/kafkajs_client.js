// kafkajs 2.2 against ringlog: admin, producer (acks all, gzip), offsets.
// kafkajs consumers always use consumer groups, which arrive with issue 3.
const { Kafka, CompressionTypes, logLevel } = require("kafkajs");

async function main() {
  const [bootstrap, topic, countText] = process.argv.slice(2);
  const count = Number(countText);
  const kafka = new Kafka({ clientId: "ringlog-kafkajs", brokers: [bootstrap], logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
  const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
  if (metadata.topics[0].partitions.length !== 2) throw new Error("expected 2 partitions");

  const producer = kafka.producer();
  await producer.connect();
  const messages = [];
  for (let i = 0; i < count; i++) messages.push({ key: `k${i % 5}`, value: `v${i}` });
  for (const compression of [CompressionTypes.None, CompressionTypes.GZIP]) {
    const results = await producer.send({ topic, acks: -1, compression, messages });
    for (const r of results) if (r.errorCode !== 0) throw new Error(`produce error ${r.errorCode}`);
  }
  await producer.disconnect();

  const offsets = await admin.fetchTopicOffsets(topic);
  const total = offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  if (total !== 2 * count) throw new Error(`expected ${2 * count} records, offsets say ${total}`);
  await admin.deleteTopics({ topics: [topic] });
  await admin.disconnect();
  console.log(`ok ${total}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
