"""What avro_interop.py and protobuf_interop.py share: producing to and
reading from partition 0 of a topic with confluent_kafka, and printing one
JSON line per result for the Rust test that runs the script.

Both scripts import it from their own directory; neither knows the other's
format, and this module knows none.
"""

import json
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.serialization import StringSerializer


def schema_id(payload):
    """The schema id in the Confluent header of a framed record (bytes 1-4,
    big-endian)."""
    return int.from_bytes(payload[1:5], "big")


def produce(brokers, topic, records):
    """Produces `records`, (text key, serialized value) pairs, to partition 0
    of `topic`; exits with a message unless every one is delivered within
    15 s."""
    keys = StringSerializer("utf_8")
    producer = Producer({"bootstrap.servers": brokers, "message.timeout.ms": 10000})
    errors = []

    def delivered(err, _msg):
        if err is not None:
            errors.append(str(err))

    for key, payload in records:
        producer.produce(topic, key=keys(key), value=payload, partition=0, on_delivery=delivered)
    remaining = producer.flush(15)
    if remaining or errors:
        raise SystemExit(f"producing failed: {remaining} undelivered, errors {errors}")


def consume(brokers, topic, count, group, decode):
    """Reads partition 0 of `topic` from the beginning until `count` records
    have arrived and then none for a second, or 30 s have passed. Returns a
    {"key", "schema_id", "value"} dict per record: the key as text, the
    schema id and value as `decode(the value's bytes)` returns them."""
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out = []
    deadline = time.monotonic() + 30
    last = time.monotonic()
    while time.monotonic() < deadline and (len(out) < count or time.monotonic() - last < 1):
        msg = consumer.poll(0.1)
        if msg is None:
            continue
        if msg.error():
            raise SystemExit(f"consuming {topic}: {msg.error()}")
        schema, value = decode(msg.value())
        key = msg.key().decode("utf-8") if msg.key() is not None else None
        out.append({"key": key, "schema_id": schema, "value": value})
        last = time.monotonic()
    consumer.close()
    return out


def print_lines(records):
    """Prints each record as one line of JSON, what the Rust side parses."""
    for record in records:
        print(json.dumps(record))
