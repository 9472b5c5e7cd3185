#!/usr/bin/env python3
"""Confluent's own Protobuf serializers against rill, for tests/tests/protobuf.rs.

Every PROTO_FILE is .proto source text; it is compiled with protoc (from
grpcio-tools, with the well-known types on the include path), so a schema
that protoc rejects fails here with protoc's message. The message used is
the first one of the file.

    protobuf_interop.py descriptor PROTO_FILE
        Prints one JSON line {"serialized": B64}: the base64
        FileDescriptorProto of the file, the form in which Confluent's
        serializers register a schema and ask for one (format=serialized).

    protobuf_interop.py produce BROKERS REGISTRY_URL TOPIC PROTO_FILE
        Produces three Payment records (the first message of PROTO_FILE,
        see PAYMENTS) to partition 0 of TOPIC with confluent_kafka's
        ProtobufSerializer, which registers the schema under TOPIC-value
        itself. Prints {"schema_id": N, "message_indexes": [...]}, read back
        from the records' Confluent header.

    protobuf_interop.py consume BROKERS REGISTRY_URL TOPIC COUNT PROTO_FILE
        Reads partition 0 of TOPIC from the beginning with
        ProtobufDeserializer (which fetches each writer schema by the id in
        the record and resolves the record's message indexes in it) until
        COUNT records have arrived and then none for a second, or 30 s have
        passed. Prints one JSON line per record: {"key", "schema_id",
        "value"}, the value with every field of the message: absent message
        and `optional` fields as null, scalars as their (default) value,
        enums as their symbol, bytes as \\x.. hex, Timestamps as ISO 8601 in
        UTC, wrappers as their value or null.

Exits non-zero with a message on stderr when anything fails.
"""

import base64
import datetime
import json
import os
import sys
import tempfile
from importlib import resources

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf import timestamp_pb2, wrappers_pb2  # noqa: F401 (fill the default pool)
from google.protobuf.descriptor import FieldDescriptor
from grpc_tools import protoc

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

# The Kafka clients, shared with avro_interop.py; interop_common sits beside
# this script, whatever the working directory.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_common  # noqa: E402

UTC = datetime.timezone.utc


def compile_proto(path):
    """The first message class of the .proto file at `path`."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        name = "schema.proto"
        with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
            f.write(text)
        out = os.path.join(tmp, "set.pb")
        include = str(resources.files("grpc_tools") / "_proto")
        code = protoc.main(["protoc", "-I", tmp, "-I", include, f"--descriptor_set_out={out}", name])
        if code != 0:
            raise SystemExit(f"protoc rejected the schema (exit {code}):\n{text}")
        files = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            files.ParseFromString(f.read())
    fdp = next(f for f in files.file if f.name == name)
    if not fdp.message_type:
        raise SystemExit(f"the schema has no message:\n{text}")
    pool = descriptor_pool.Default()
    file_desc = pool.Add(fdp)
    if not hasattr(file_desc, "message_types_by_name"):
        file_desc = pool.FindFileByName(name)
    first = fdp.message_type[0].name
    full = f"{fdp.package}.{first}" if fdp.package else first
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full))


def descriptor(path):
    cls = compile_proto(path)
    print(json.dumps({"serialized": base64.standard_b64encode(cls.DESCRIPTOR.file.serialized_pb).decode("ascii")}))


def at(ms):
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(ms)
    return ts


PAYMENTS = [
    ("alice", {"id": 1, "amount": 1.5, "currency": "EUR", "note": None, "paid_at": 1700000000000,
               "meta": {"source": "web", "retries": 0}, "tags": ["a"], "attrs": {"x": 1}}),
    ("bob", {"id": 2, "amount": 0.25, "currency": "USD", "note": "first", "paid_at": 1700000001500,
             "meta": None, "tags": [], "attrs": {}}),
    ("alice", {"id": 3, "amount": 10.0, "currency": "EUR", "note": "again", "paid_at": 1700000002000,
               "meta": {"source": "app", "retries": 2}, "tags": ["b", "c"], "attrs": {"y": -2}}),
]


def payment(cls, fields):
    msg = cls()
    msg.id = fields["id"]
    msg.amount = fields["amount"]
    msg.currency = cls.DESCRIPTOR.fields_by_name["currency"].enum_type.values_by_name[fields["currency"]].number
    if fields["note"] is not None:
        msg.note.value = fields["note"]
    msg.paid_at.CopyFrom(at(fields["paid_at"]))
    if fields["meta"] is not None:
        msg.meta.source = fields["meta"]["source"]
        msg.meta.retries = fields["meta"]["retries"]
    msg.tags.extend(fields["tags"])
    for k, v in fields["attrs"].items():
        msg.attrs[k] = v
    return msg


def header(payload):
    """(schema id, message indexes) of a Confluent-framed protobuf record."""
    if len(payload) < 6 or payload[0] != 0:
        raise SystemExit(f"not a Confluent-framed record: {payload!r}")
    schema_id = int.from_bytes(payload[1:5], "big")
    pos = 5

    def varint():
        nonlocal pos
        shift = result = 0
        while True:
            b = payload[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1)

    count = varint()
    indexes = [varint() for _ in range(count)] if count else [0]
    return schema_id, indexes


def produce(brokers, registry_url, topic, path):
    cls = compile_proto(path)
    registry = SchemaRegistryClient({"url": registry_url})
    serializer = ProtobufSerializer(cls, registry, {"auto.register.schemas": True})
    records = []
    headers = set()
    for key, fields in PAYMENTS:
        payload = serializer(payment(cls, fields), SerializationContext(topic, MessageField.VALUE))
        schema_id, indexes = header(payload)
        headers.add((schema_id, tuple(indexes)))
        records.append((key, payload))
    interop_common.produce(brokers, topic, records)
    if len(headers) != 1:
        raise SystemExit(f"records carry several headers: {headers}")
    schema_id, indexes = headers.pop()
    print(json.dumps({"schema_id": schema_id, "message_indexes": list(indexes)}))


def plain_field(msg, field):
    value = getattr(msg, field.name)
    # protobuf 7 dropped FieldDescriptor.label for is_repeated.
    repeated = getattr(field, "is_repeated", None)
    if repeated is None:
        repeated = field.label == FieldDescriptor.LABEL_REPEATED
    if repeated:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            return {k: plain_value(value[k], value_field) for k in sorted(value)}
        return [plain_value(v, field) for v in value]
    if field.has_presence and not msg.HasField(field.name):
        return None
    return plain_value(value, field)


def plain_value(value, field):
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        full = field.message_type.full_name
        if full == "google.protobuf.Timestamp":
            return value.ToDatetime(tzinfo=UTC).isoformat(timespec="milliseconds")
        if full.startswith("google.protobuf.") and full.endswith("Value"):
            return plain_value(value.value, value.DESCRIPTOR.fields_by_name["value"])
        return {f.name: plain_field(value, f) for f in value.DESCRIPTOR.fields}
    if field.type == FieldDescriptor.TYPE_ENUM:
        symbol = field.enum_type.values_by_number.get(value)
        return symbol.name if symbol is not None else value
    if field.type == FieldDescriptor.TYPE_BYTES:
        return "\\x" + value.hex()
    return value


def consume(brokers, registry_url, topic, count, path):
    cls = compile_proto(path)
    registry = SchemaRegistryClient({"url": registry_url})
    deserializer = ProtobufDeserializer(cls, {}, registry)

    def decode(raw):
        value = deserializer(raw, SerializationContext(topic, MessageField.VALUE))
        schema_id, _ = header(raw)
        return schema_id, {f.name: plain_field(value, f) for f in value.DESCRIPTOR.fields}

    interop_common.print_lines(interop_common.consume(brokers, topic, count, "rill-protobuf-interop", decode))


def main(argv):
    if len(argv) == 2 and argv[0] == "descriptor":
        descriptor(argv[1])
    elif len(argv) == 5 and argv[0] == "produce":
        produce(argv[1], argv[2], argv[3], argv[4])
    elif len(argv) == 6 and argv[0] == "consume":
        consume(argv[1], argv[2], argv[3], int(argv[4]), argv[5])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
