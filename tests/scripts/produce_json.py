# Produces N JSON records (keys k0..k999) to a topic on a Kafka-protocol broker.
import sys, json, time
from confluent_kafka import Producer
brokers, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "batch.num.messages": 10000, "queue.buffering.max.messages": 1000000})
t0 = time.time()
for i in range(n):
    p.produce(topic, key=f"k{i % 1000}", value=json.dumps({"AUCTION": i % 1000, "PRICE": i % 97, "TS": 1700000000000 + i}))
    if i % 100000 == 0:
        p.poll(0)
p.flush(60)
print(f"produced {n} in {time.time()-t0:.1f}s", file=sys.stderr)
