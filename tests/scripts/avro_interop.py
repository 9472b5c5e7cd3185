#!/usr/bin/env python3
"""Confluent's own Avro serializers against rill, for tests/tests/avro.rs.

    avro_interop.py produce BROKERS REGISTRY_URL TOPIC
        Produces three Payment records to partition 0 of TOPIC with
        confluent_kafka's AvroSerializer, which registers the schema under
        TOPIC-value in the registry at REGISTRY_URL. Prints one JSON line:
        {"schema_id": N}, the id in the records' Confluent header.

    avro_interop.py consume BROKERS REGISTRY_URL TOPIC COUNT
        Reads partition 0 of TOPIC from the beginning with AvroDeserializer
        (which fetches each writer schema by the id in the record) until
        COUNT records have arrived and then none for a second, or 30 s have
        passed. Prints one JSON line per record:
        {"key", "schema_id", "value"}, with decimals as exact strings and
        timestamp-millis values as ISO 8601 strings in UTC.

Exits non-zero with a message on stderr when anything fails.
"""

import datetime
import decimal
import json
import os
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

# The Kafka clients, shared with protobuf_interop.py; interop_common sits beside
# this script, whatever the working directory.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_common  # noqa: E402

PAYMENT = json.dumps(
    {
        "type": "record",
        "name": "Payment",
        "namespace": "pay",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "amount", "type": "double"},
            {"name": "currency", "type": {"type": "enum", "name": "Currency", "symbols": ["EUR", "USD"]}},
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 3}},
            {"name": "paid_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {
                "name": "meta",
                "type": {
                    "type": "record",
                    "name": "Meta",
                    "fields": [{"name": "source", "type": "string"}, {"name": "retries", "type": "int"}],
                },
            },
        ],
    }
)

UTC = datetime.timezone.utc


def at(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, tz=UTC)


PAYMENTS = [
    ("alice", {"id": 1, "amount": 1.5, "currency": "EUR", "note": None, "price": decimal.Decimal("1.250"),
               "paid_at": at(1700000000000), "meta": {"source": "web", "retries": 0}}),
    ("bob", {"id": 2, "amount": 0.25, "currency": "USD", "note": "first", "price": decimal.Decimal("0.001"),
             "paid_at": at(1700000001500), "meta": {"source": "app", "retries": 2}}),
    ("alice", {"id": 3, "amount": 10.0, "currency": "EUR", "note": "again", "price": decimal.Decimal("-3.000"),
               "paid_at": at(1700000002000), "meta": {"source": "web", "retries": 1}}),
]


def produce(brokers, registry_url, topic):
    registry = SchemaRegistryClient({"url": registry_url})
    serializer = AvroSerializer(registry, PAYMENT, conf={"auto.register.schemas": True})
    records = []
    ids = set()
    for key, value in PAYMENTS:
        payload = serializer(value, SerializationContext(topic, MessageField.VALUE))
        if payload[0] != 0:
            raise SystemExit(f"AvroSerializer wrote no magic byte: {payload!r}")
        ids.add(interop_common.schema_id(payload))
        records.append((key, payload))
    interop_common.produce(brokers, topic, records)
    if len(ids) != 1:
        raise SystemExit(f"records carry several schema ids: {ids}")
    print(json.dumps({"schema_id": ids.pop()}))


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        # A timestamp-millis field decodes to a datetime; a plain long (a
        # schema that lost its logical type) stays an int.
        return value.astimezone(UTC).isoformat(timespec="milliseconds")
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return value


def consume(brokers, registry_url, topic, count):
    registry = SchemaRegistryClient({"url": registry_url})
    deserializer = AvroDeserializer(registry)

    def decode(raw):
        value = deserializer(raw, SerializationContext(topic, MessageField.VALUE))
        return interop_common.schema_id(raw), plain(value)

    interop_common.print_lines(interop_common.consume(brokers, topic, count, "rill-avro-interop", decode))


def main(argv):
    if len(argv) == 4 and argv[0] == "produce":
        produce(argv[1], argv[2], argv[3])
    elif len(argv) == 5 and argv[0] == "consume":
        consume(argv[1], argv[2], argv[3], int(argv[4]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
