//! The AVRO format with a Confluent-compatible schema registry
//! (`--schema-registry`), as ksqlDB users know it: value columns inferred
//! from the latest schema of subject `<topic>-value`, schemas registered for
//! declared columns and for the outputs of `CREATE ... AS SELECT`, records in
//! Confluent's wire format (byte 0, 4-byte big-endian schema id, Avro binary
//! datum), and records that are not valid skipped into
//! `RILL_PROCESSING_LOG`.
//!
//! The registry is [`rill_tests::registry::Registry`], served over real HTTP
//! on 127.0.0.1. The tests encode and decode Avro themselves with the
//! `apache-avro` crate, from the schemas the registry holds, so what rill
//! writes is checked against the registry by the id in each record; the
//! interop test does the same with Confluent's own Python serializers
//! (`confluent_kafka.schema_registry.avro`), and is skipped with a message
//! when they are not installed (`.ci/run` installs them).
//!
//! The Kafka tests run against librdkafka's in-process mock cluster, which
//! has no admin API: every topic rill reads or writes is created first.
//! What the protobuf tests share with these is in [`rill_tests::formats`]
//! and, for the rdkafka clients, `tests/tests/common`.

mod common;

use std::collections::BTreeMap;

use apache_avro::types::Value as Avro;
use apache_avro::{from_avro_datum, to_avro_datum, Schema};
use common::{consume_raw, mock_cluster, produce_keyed, producer, NO_COMMAND_TOPIC};
use rill_tests::formats::{
    aggregate_pageviews, assert_no_subject_is_a_clear_error, columns, create_all_types_streams,
    create_and_fill_pageviews, describe, hex, latest_of, normalized, processing_log, property,
    python_imports, query_of, raw_values, registry_flag_problems, run_python, start_with_registry,
    unhex,
};
use rill_tests::registry::Registry;
use rill_tests::{exec, plain, query, Server};
use serde_json::{json, Value as Json};

/// A Confluent-framed record: magic byte 0, the schema id big-endian, the
/// datum.
fn frame(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// Splits a Confluent-framed record into (schema id, datum), panicking with
/// the bytes when it is not one.
fn unframe(bytes: &[u8]) -> (u32, &[u8]) {
    assert!(
        bytes.len() >= 5 && bytes[0] == 0,
        "not a Confluent-framed record (magic byte 0 + 4-byte id): {bytes:02x?}"
    );
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    (id, &bytes[5..])
}

/// Decodes a framed record with the schema the registry holds for its id,
/// as a consumer with Confluent's deserializer does; returns the id and the
/// value as plain JSON (see [`plain_avro`]).
fn decode_framed(registry: &Registry, bytes: &[u8]) -> (u32, Json) {
    let (id, datum) = unframe(bytes);
    let text = registry.schema_by_id(id).unwrap_or_else(|| {
        panic!("record carries schema id {id}, which the registry does not have")
    });
    let schema = Schema::parse_str(&text).unwrap_or_else(|e| panic!("schema {id} ({text}): {e}"));
    let mut reader = datum;
    let value = from_avro_datum(&schema, &mut reader, None)
        .unwrap_or_else(|e| panic!("decoding {datum:02x?} with schema {id} ({text}): {e}"));
    assert!(
        reader.is_empty(),
        "{} bytes left after the datum decoded with schema {id}",
        reader.len()
    );
    (id, plain_avro(&value, &schema))
}

/// An Avro value as JSON, the way a user reads it: unions resolved to their
/// branch, enums as their symbol, decimals as exact strings with the
/// schema's scale, bytes as `\x..` hex, logical times as their numbers.
fn plain_avro(value: &Avro, schema: &Schema) -> Json {
    match (value, schema) {
        (Avro::Union(i, v), Schema::Union(u)) => match u.variants().get(*i as usize) {
            Some(s) => plain_avro(v, s),
            None => panic!("union branch {i} out of range in {schema:?}"),
        },
        (Avro::Union(_, v), s) => plain_avro(v, s),
        (Avro::Null, _) => Json::Null,
        (Avro::Boolean(b), _) => json!(b),
        (Avro::Int(n), _) | (Avro::Date(n), _) | (Avro::TimeMillis(n), _) => json!(n),
        (Avro::Long(n), _) | (Avro::TimestampMillis(n), _) => json!(n),
        (Avro::Float(x), _) => json!(f64::from(*x)),
        (Avro::Double(x), _) => json!(x),
        (Avro::String(s), _) | (Avro::Enum(_, s), _) => json!(s),
        (Avro::Bytes(b), _) => json!(hex(b)),
        (Avro::Decimal(d), Schema::Decimal(ds)) => {
            let bytes = <Vec<u8>>::try_from(d).expect("decimal bytes");
            json!(decimal_text(unscaled_of(&bytes), ds.scale))
        }
        (Avro::Array(items), Schema::Array(a)) => {
            Json::Array(items.iter().map(|v| plain_avro(v, &a.items)).collect())
        }
        (Avro::Map(m), Schema::Map(ms)) => {
            let sorted: BTreeMap<_, _> = m.iter().collect();
            Json::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), plain_avro(v, &ms.types)))
                    .collect(),
            )
        }
        (Avro::Record(fields), Schema::Record(rs)) => Json::Object(
            fields
                .iter()
                .map(|(name, v)| {
                    let field = rs
                        .fields
                        .iter()
                        .find(|f| &f.name == name)
                        .unwrap_or_else(|| panic!("field {name} not in {schema:?}"));
                    (name.clone(), plain_avro(v, &field.schema))
                })
                .collect(),
        ),
        (v, s) => panic!("unexpected Avro value {v:?} for schema {s:?}"),
    }
}

/// Big-endian two's complement, as Avro's decimal stores the unscaled value.
fn unscaled_of(bytes: &[u8]) -> i128 {
    let mut n: i128 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for b in bytes {
        n = (n << 8) | i128::from(*b);
    }
    n
}

/// The shortest big-endian two's complement bytes of `n`.
fn unscaled_bytes(n: i128) -> Vec<u8> {
    let all = n.to_be_bytes();
    let mut start = 0;
    while start < all.len() - 1 {
        let (b, next) = (all[start], all[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    all[start..].to_vec()
}

fn decimal_text(unscaled: i128, scale: usize) -> String {
    let negative = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    let sign = if negative { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// The names of the fields of a record schema text.
fn field_names(schema_text: &str) -> Vec<String> {
    let schema: Json = serde_json::from_str(schema_text).expect("schema JSON");
    assert_eq!(
        schema["type"],
        json!("record"),
        "not a record schema: {schema}"
    );
    schema["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["name"].as_str().expect("field name").to_string())
        .collect()
}

/// The type of field `field` of a record schema text, with a
/// `["null", T]` union unwrapped to `T`.
fn field_type(schema_text: &str, field: &str) -> Json {
    let schema: Json = serde_json::from_str(schema_text).expect("schema JSON");
    let t = schema["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == json!(field))
        .unwrap_or_else(|| panic!("no field {field} in {schema_text}"))["type"]
        .clone();
    match t {
        Json::Array(branches) => branches
            .into_iter()
            .find(|b| b != &json!("null"))
            .unwrap_or(Json::Null),
        t => t,
    }
}

/// Every Avro type the inference maps, one field each.
const ALL_TYPES: &str = r#"{
  "type": "record", "name": "AllTypes", "namespace": "rill.test",
  "fields": [
    {"name": "flag", "type": "boolean"},
    {"name": "small", "type": "int"},
    {"name": "big", "type": "long"},
    {"name": "ratio", "type": "float"},
    {"name": "score", "type": "double"},
    {"name": "name", "type": "string"},
    {"name": "suit", "type": {"type": "enum", "name": "Suit", "symbols": ["HEARTS", "SPADES"]}},
    {"name": "raw", "type": "bytes"},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "tod", "type": {"type": "int", "logicalType": "time-millis"}},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "attrs", "type": {"type": "map", "values": "long"}},
    {"name": "point", "type": {"type": "record", "name": "Point",
      "fields": [{"name": "x", "type": "int"}, {"name": "y", "type": "int"}]}},
    {"name": "maybe", "type": ["null", "long"], "default": null},
    {"name": "pairs", "type": {"type": "array", "items": {"type": "record", "name": "Pair",
      "fields": [{"name": "k", "type": "string"}, {"name": "v", "type": ["null", "double"]}]}}}
  ]
}"#;

/// The columns ALL_TYPES infers, as DESCRIBE shows them.
const ALL_TYPES_COLUMNS: &[(&str, &str, &str)] = &[
    ("FLAG", "BOOLEAN", "NULL"),
    ("SMALL", "INTEGER", "NULL"),
    ("BIG", "BIGINT", "NULL"),
    ("RATIO", "DOUBLE", "NULL"),
    ("SCORE", "DOUBLE", "NULL"),
    ("NAME", "STRING", "NULL"),
    ("SUIT", "STRING", "NULL"),
    ("RAW", "BYTES", "NULL"),
    ("PRICE", "DECIMAL(9, 2)", "NULL"),
    ("AT", "TIMESTAMP", "NULL"),
    ("DAY", "DATE", "NULL"),
    ("TOD", "TIME", "NULL"),
    ("TAGS", "ARRAY<STRING>", "NULL"),
    ("ATTRS", "MAP<STRING, BIGINT>", "NULL"),
    ("POINT", "STRUCT<X INTEGER, Y INTEGER>", "NULL"),
    ("MAYBE", "BIGINT", "NULL"),
    ("PAIRS", "ARRAY<STRUCT<K STRING, V DOUBLE>>", "NULL"),
];

/// `CREATE STREAM` without columns infers every Avro type's column from the
/// latest `<topic>-value` schema; with a declared key, the key comes first
/// and the value columns are still inferred; a topic without a subject is a
/// clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_columns_are_inferred_from_the_latest_registered_schema() {
    let registry = Registry::start();
    // An older version first: inference must use the latest.
    registry.register(
        "all_types-value",
        r#"{"type":"record","name":"AllTypes","namespace":"rill.test","fields":[{"name":"old","type":"string"}]}"#,
    );
    registry.register("all_types-value", ALL_TYPES);
    let (_server, client) = start_with_registry(&registry, &[]).await;

    create_all_types_streams(&client, "AVRO", ALL_TYPES_COLUMNS).await;
    assert_eq!(property(&client, "all_types", "value_format").await, "AVRO");

    // Inferring registered nothing new.
    assert_eq!(registry.subjects(), vec!["all_types-value"]);

    // No subject for the topic: the statement fails and says which subject.
    assert_no_subject_is_a_clear_error(&client, "AVRO").await;
}

/// The schema of the embedded-mode pipeline's source.
const PAGEVIEW: &str = r#"{
  "type": "record", "name": "Pageview",
  "fields": [
    {"name": "page", "type": "string"},
    {"name": "duration", "type": "int"},
    {"name": "premium", "type": "boolean"},
    {"name": "score", "type": "double"},
    {"name": "referrer", "type": ["null", "string"], "default": null},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "viewed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
  ]
}"#;

/// Embedded mode end to end: inferred columns, INSERT writing framed Avro
/// with the registered id, a CSAS whose output schema is registered under
/// `<TOPIC>-value` and whose records decode with it, pull and push queries,
/// and CTAS aggregates (one with an AVRO key, registered under `-key`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_pipeline_over_an_avro_stream() {
    let registry = Registry::start();
    let source_id = registry.register("pageviews-value", PAGEVIEW);
    let (_server, client) = start_with_registry(&registry, &[]).await;
    create_and_fill_pageviews(&client, "AVRO").await;

    // What INSERT wrote: framed with the id of the schema the stream was
    // inferred from, and the datum decodes with that schema.
    let raw = raw_values(&client, "pageviews_raw", "pageviews").await;
    assert_eq!(raw.len(), 3);
    let decoded: Vec<(u32, Json)> = raw.iter().map(|r| decode_framed(&registry, r)).collect();
    assert!(
        decoded.iter().all(|(id, _)| *id == source_id),
        "INSERT must write with schema id {source_id}: {decoded:?}"
    );
    assert_eq!(
        decoded[1].1,
        json!({
            "page": "/home", "duration": 30, "premium": false, "score": 1.5,
            "referrer": "google", "tags": ["a", "b"], "viewed_at": 1_704_164_646_250_i64
        })
    );
    assert_eq!(decoded[0].1["referrer"], Json::Null);

    // A CSAS writes AVRO (the source's format) and registers its schema
    // under the output topic's subject; the key is not in the value.
    exec(
        &client,
        "CREATE STREAM long_views AS SELECT viewer, page, duration * 2 AS d2, tags[1] AS first_tag
           FROM pageviews WHERE duration > 10 EMIT CHANGES;",
    )
    .await;
    assert_eq!(
        property(&client, "long_views", "value_format").await,
        "AVRO"
    );
    assert_eq!(
        property(&client, "long_views", "kafka_topic").await,
        "LONG_VIEWS"
    );
    let rows = query(
        &client,
        "SELECT viewer, page, d2, first_tag FROM long_views;",
    )
    .await;
    assert_eq!(
        plain(&rows),
        vec![
            vec!["u2", "/home", "60", "a"],
            vec!["u1", "/about", "24", "c"]
        ]
    );
    let (out_id, out_schema) = latest_of(&registry, "LONG_VIEWS-value");
    assert_eq!(field_names(&out_schema), vec!["PAGE", "D2", "FIRST_TAG"]);
    assert!(
        !registry.subjects().contains(&"LONG_VIEWS-key".to_string()),
        "a KAFKA key registers no schema: {:?}",
        registry.subjects()
    );
    let raw = raw_values(&client, "long_views_raw", "LONG_VIEWS").await;
    let decoded: Vec<(u32, Json)> = raw.iter().map(|r| decode_framed(&registry, r)).collect();
    assert_eq!(
        decoded,
        vec![
            (out_id, json!({"PAGE": "/home", "D2": 60, "FIRST_TAG": "a"})),
            (
                out_id,
                json!({"PAGE": "/about", "D2": 24, "FIRST_TAG": "c"})
            ),
        ]
    );

    // A push query over the output, and aggregates over the AVRO stream;
    // the value schema is registered, and with key_format='AVRO' the key
    // schema too.
    aggregate_pageviews(&client, "AVRO").await;
    let (_, per_page_schema) = latest_of(&registry, "PER_PAGE-value");
    assert_eq!(field_names(&per_page_schema), vec!["N", "TOTAL"]);
    latest_of(&registry, "PER_VIEWER-value");
    latest_of(&registry, "PER_VIEWER-key");
    assert!(
        !registry.subjects().contains(&"PER_PAGE-key".to_string()),
        "PER_PAGE has a KAFKA key: {:?}",
        registry.subjects()
    );
    // The AVRO keys of PER_VIEWER are framed with the id of its key schema
    // (a single key may be written bare or wrapped in a record).
    let (key_id, _) = latest_of(&registry, "PER_VIEWER-key");
    exec(
        &client,
        "CREATE STREAM per_viewer_raw (k BYTES KEY, raw BYTES) WITH (kafka_topic='PER_VIEWER', key_format='KAFKA', value_format='KAFKA');",
    )
    .await;
    let rows = query(&client, "SELECT k FROM per_viewer_raw;").await;
    let mut keys: Vec<Json> = plain(&rows)
        .into_iter()
        .map(|r| {
            let (id, key) = decode_framed(&registry, &unhex(r[0]));
            assert_eq!(id, key_id, "key framed with the PER_VIEWER-key id");
            match key {
                Json::Object(fields) if fields.len() == 1 => fields
                    .into_iter()
                    .next()
                    .map(|(_, v)| v)
                    .unwrap_or_default(),
                other => other,
            }
        })
        .collect();
    keys.sort_by_key(Json::to_string);
    keys.dedup();
    assert_eq!(keys, vec![json!("u1"), json!("u2"), json!("u3")]);
}

/// Declared value columns register a record schema for them under
/// `<topic>-value`; INSERT writes with its id; a second stream inferring
/// from that subject reads the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_columns_register_a_schema() {
    let registry = Registry::start();
    let (_server, client) = start_with_registry(&registry, &[]).await;
    exec(
        &client,
        "CREATE STREAM clicks (id VARCHAR KEY, x INT, label STRING, amount DECIMAL(6, 2), at TIMESTAMP)
           WITH (kafka_topic='clicks', value_format='AVRO', partitions=1);",
    )
    .await;
    let (id, schema) = latest_of(&registry, "clicks-value");
    assert_eq!(field_names(&schema), vec!["X", "LABEL", "AMOUNT", "AT"]);
    // What other clients decode with: the logical types must be there.
    assert_eq!(
        field_type(&schema, "AMOUNT"),
        json!({"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}),
        "{schema}"
    );
    assert_eq!(
        field_type(&schema, "AT"),
        json!({"type": "long", "logicalType": "timestamp-millis"}),
        "{schema}"
    );
    assert_eq!(registry.subjects(), vec!["clicks-value"]);

    exec(
        &client,
        "INSERT INTO clicks (id, x, label, amount, at) VALUES ('k', 7, 'hi', 12.5, '2024-01-02T03:04:05.123'), ('j', NULL, NULL, NULL, NULL);",
    )
    .await;
    let rows = query(&client, "SELECT id, x, label, amount, at FROM clicks;").await;
    assert_eq!(
        plain(&rows),
        vec![
            vec!["k", "7", "hi", "12.50", "2024-01-02 03:04:05.123"],
            vec!["j", "NULL", "NULL", "NULL", "NULL"],
        ]
    );
    let raw = raw_values(&client, "clicks_raw", "clicks").await;
    let decoded: Vec<(u32, Json)> = raw.iter().map(|r| decode_framed(&registry, r)).collect();
    assert_eq!(
        decoded[0],
        (
            id,
            json!({"X": 7, "LABEL": "hi", "AMOUNT": "12.50", "AT": 1_704_164_645_123_i64})
        )
    );
    assert_eq!(
        decoded[1],
        (
            id,
            json!({"X": null, "LABEL": null, "AMOUNT": null, "AT": null})
        )
    );

    exec(
        &client,
        "CREATE STREAM clicks_again WITH (kafka_topic='clicks', value_format='AVRO');",
    )
    .await;
    assert_eq!(
        describe(&client, "clicks_again").await,
        columns(&[
            ("X", "INTEGER", "NULL"),
            ("LABEL", "STRING", "NULL"),
            ("AMOUNT", "DECIMAL(6, 2)", "NULL"),
            ("AT", "TIMESTAMP", "NULL"),
        ])
    );
    let rows = query(&client, "SELECT x, label, amount FROM clicks_again;").await;
    assert_eq!(
        plain(&rows),
        vec![vec!["7", "hi", "12.50"], vec!["NULL", "NULL", "NULL"]]
    );
    // Re-declaring the same columns over the same topic registers nothing
    // new: the registry gives the same id back.
    exec(
        &client,
        "CREATE STREAM clicks_same (id VARCHAR KEY, x INT, label STRING, amount DECIMAL(6, 2), at TIMESTAMP)
           WITH (kafka_topic='clicks', value_format='AVRO');",
    )
    .await;
    assert_eq!(registry.versions("clicks-value"), vec![id]);
}

/// Without `--schema-registry` (and without RILL_SCHEMA_REGISTRY), a
/// statement using AVRO fails and says which flag is missing; nothing is
/// created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_without_a_registry_is_a_clear_error() {
    let server = Server::start().await.expect("start rill");
    let client = server.connect().await.expect("connect");
    let wrong = registry_flag_problems(&client, "AVRO").await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let rows = query(&client, "SHOW STREAMS;").await;
    assert!(
        !plain(&rows).iter().any(|r| r[0] == "S"),
        "a failed CREATE left a stream behind"
    );
    // JSON still works on this server.
    exec(
        &client,
        "CREATE STREAM s (id VARCHAR KEY, v INT) WITH (kafka_topic='t', value_format='JSON', partitions=1);",
    )
    .await;
}

// ---------------------------------------------------------------- Kafka ---

/// The source schema of the Kafka test: a nested record, an array, a
/// nullable field, a decimal and a timestamp-millis.
const ORDER: &str = r#"{
  "type": "record", "name": "Order", "namespace": "shop",
  "fields": [
    {"name": "order_id", "type": "long"},
    {"name": "customer", "type": {"type": "record", "name": "Customer",
      "fields": [{"name": "name", "type": "string"}, {"name": "tier", "type": "int"}]}},
    {"name": "items", "type": {"type": "array", "items": "string"}},
    {"name": "coupon", "type": ["null", "string"], "default": null},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "blob", "type": ["null", "bytes"]}
  ]
}"#;

/// An ORDER datum.
fn order_datum(
    schema: &Schema,
    order_id: i64,
    (name, tier): (&str, i32),
    items: &[&str],
    coupon: Option<&str>,
    amount_cents: i128,
    placed_at: i64,
) -> Vec<u8> {
    let value = Avro::Record(vec![
        ("order_id".into(), Avro::Long(order_id)),
        (
            "customer".into(),
            Avro::Record(vec![
                ("name".into(), Avro::String(name.into())),
                ("tier".into(), Avro::Int(tier)),
            ]),
        ),
        (
            "items".into(),
            Avro::Array(items.iter().map(|i| Avro::String(i.to_string())).collect()),
        ),
        (
            "coupon".into(),
            match coupon {
                None => Avro::Union(0, Box::new(Avro::Null)),
                Some(c) => Avro::Union(1, Box::new(Avro::String(c.into()))),
            },
        ),
        (
            "amount".into(),
            Avro::Decimal(apache_avro::Decimal::from(unscaled_bytes(amount_cents))),
        ),
        ("placed_at".into(), Avro::TimestampMillis(placed_at)),
        (
            "blob".into(),
            Avro::Union(1, Box::new(Avro::Bytes(vec![1, 2, 255]))),
        ),
    ]);
    to_avro_datum(schema, value).expect("encode an Order")
}

/// Kafka mode: an outside producer writes Confluent-framed Avro (encoded by
/// the test, with the registry's id) and malformed records; rill's stream,
/// CSAS and CTAS see the right values, the three bad records land in the
/// processing log and are counted while the queries keep running, INSERT
/// writes framed records with the source's id, and the CSAS output topic
/// decodes with the schema the registry holds for each record's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_avro_from_an_outside_producer() {
    let (_cluster, brokers) =
        mock_cluster(&["orders", "BIG_ORDERS", "SPEND", "rill_processing_log"]);
    let registry = Registry::start();
    let order_id = registry.register("orders-value", ORDER);
    let schema = Schema::parse_str(ORDER).expect("ORDER parses");

    let good1 = order_datum(
        &schema,
        1,
        ("Al", 2),
        &["pen", "ink"],
        None,
        1250,
        1_700_000_000_123,
    );
    let good2 = order_datum(
        &schema,
        2,
        ("Bo", 1),
        &[],
        Some("SAVE10"),
        500,
        1_700_000_001_000,
    );
    let good3 = order_datum(
        &schema,
        3,
        ("Al", 2),
        &["pad"],
        Some("VIP"),
        99_999,
        1_700_000_002_000,
    );
    let truncated = frame(order_id, &good1[..good1.len() - 4]);
    let records: Vec<(&str, Vec<u8>)> = vec![
        ("c1", frame(order_id, &good1)),
        ("c1", b"plain text, no magic byte".to_vec()),
        ("c2", frame(order_id, &good2)),
        ("c2", frame(9999, &good2)),
        ("c1", frame(order_id, &good3)),
        ("c1", truncated),
    ];
    produce_keyed(&producer(&brokers), "orders", &records).await;

    let (_server, client) =
        start_with_registry(&registry, &["--kafka-brokers", &brokers, NO_COMMAND_TOPIC]).await;
    exec(
        &client,
        "CREATE STREAM orders (customer_id VARCHAR KEY) WITH (kafka_topic='orders', value_format='AVRO');",
    )
    .await;
    assert_eq!(
        describe(&client, "orders").await,
        columns(&[
            ("CUSTOMER_ID", "STRING", "KEY"),
            ("ORDER_ID", "BIGINT", "NULL"),
            ("CUSTOMER", "STRUCT<NAME STRING, TIER INTEGER>", "NULL"),
            ("ITEMS", "ARRAY<STRING>", "NULL"),
            ("COUPON", "STRING", "NULL"),
            ("AMOUNT", "DECIMAL(10, 2)", "NULL"),
            ("PLACED_AT", "TIMESTAMP", "NULL"),
            ("BLOB", "BYTES", "NULL"),
        ])
    );
    exec(
        &client,
        "CREATE STREAM big_orders AS SELECT customer_id, order_id, customer->name AS name, items, coupon, amount, placed_at
           FROM orders WHERE amount > 10 EMIT CHANGES;",
    )
    .await;
    exec(
        &client,
        "CREATE TABLE spend AS SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY customer_id;",
    )
    .await;

    let rows = query(
        &client,
        "SELECT customer_id, n, total FROM spend ORDER BY customer_id;",
    )
    .await;
    assert_eq!(
        plain(&rows),
        vec![vec!["c1", "2", "1012.49"], vec!["c2", "1", "5.00"]]
    );
    let rows = query(
        &client,
        "SELECT customer_id, order_id, customer, customer->tier, items, coupon, amount, placed_at, blob FROM orders;",
    )
    .await;
    assert_eq!(
        normalized(plain(&rows)),
        normalized(vec![
            vec![
                "c1",
                "1",
                r#"{"NAME":"Al","TIER":2}"#,
                "2",
                r#"["pen","ink"]"#,
                "NULL",
                "12.50",
                "2023-11-14 22:13:20.123",
                "\\x0102ff"
            ],
            vec![
                "c2",
                "2",
                r#"{"NAME":"Bo","TIER":1}"#,
                "1",
                "[]",
                "SAVE10",
                "5.00",
                "2023-11-14 22:13:21",
                "\\x0102ff"
            ],
            vec![
                "c1",
                "3",
                r#"{"NAME":"Al","TIER":2}"#,
                "2",
                r#"["pad"]"#,
                "VIP",
                "999.99",
                "2023-11-14 22:13:22",
                "\\x0102ff"
            ],
        ])
    );

    // The three bad records, once per persistent query, and nothing else.
    let (csas, csas_status, _) = query_of(&client, "BIG_ORDERS").await;
    let (ctas, _, _) = query_of(&client, "SPEND").await;
    let log = processing_log(&client, &[&csas, &ctas], 3).await;
    for q in [&csas, &ctas] {
        let mut offsets: Vec<(&str, &str, &str)> = log
            .iter()
            .filter(|r| &r[0] == q)
            .map(|r| (r[1].as_str(), r[2].as_str(), r[3].as_str()))
            .collect();
        offsets.sort();
        assert_eq!(
            offsets,
            vec![
                ("orders", "0", "1"),
                ("orders", "0", "3"),
                ("orders", "0", "5")
            ],
            "processing log entries of {q}: {log:?}"
        );
        let error_at = |offset: &str| {
            log.iter()
                .find(|r| &r[0] == q && r[3] == offset)
                .map(|r| r[4].clone())
                .unwrap_or_default()
        };
        assert!(
            error_at("3").contains("9999"),
            "the error for the unknown schema id should name it: {:?}",
            error_at("3")
        );
        assert!(!error_at("1").is_empty() && !error_at("5").is_empty());
        for r in log.iter().filter(|r| &r[0] == q) {
            assert_ne!(r[5], "NULL", "the bad record itself is logged: {r:?}");
        }
    }
    assert!(
        log.iter()
            .all(|r| r[1] == "orders" && ["1", "3", "5"].contains(&r[3].as_str())),
        "only the three bad records are logged: {log:?}"
    );
    assert_eq!(csas_status, "RUNNING");
    for sink in ["BIG_ORDERS", "SPEND"] {
        let (id, status, errors) = query_of(&client, sink).await;
        assert_eq!((status.as_str(), errors.as_str()), ("RUNNING", "3"), "{id}");
    }

    // INSERT writes a framed record with the source's schema id, and the
    // queries (still running) pick it up.
    exec(
        &client,
        "INSERT INTO orders (customer_id, order_id, customer, items, coupon, amount, placed_at, blob)
           VALUES ('c3', 4, STRUCT(NAME := 'Cy', TIER := 3), ARRAY['x', 'y'], NULL, 20.05, '2024-01-02T03:04:05.123', NULL);",
    )
    .await;
    let rows = query(
        &client,
        "SELECT n, total FROM spend WHERE customer_id = 'c3';",
    )
    .await;
    assert_eq!(plain(&rows), vec![vec!["1", "20.05"]]);
    let source = consume_raw(&brokers, "orders", 0, 7);
    assert_eq!(source.len(), 7, "six produced records and one INSERT");
    let (key, value) = &source[6];
    assert_eq!(key.as_deref(), Some(&b"c3"[..]));
    let value = value.as_deref().expect("a value");
    let (id, inserted) = decode_framed(&registry, value);
    assert_eq!(id, order_id, "INSERT uses the id of the stream's schema");
    assert_eq!(
        inserted,
        json!({
            "order_id": 4, "customer": {"name": "Cy", "tier": 3}, "items": ["x", "y"],
            "coupon": null, "amount": "20.05", "placed_at": 1_704_164_645_123_i64, "blob": null
        })
    );

    // The CSAS output in Kafka: framed with the id of BIG_ORDERS-value.
    let (out_id, out_schema) = latest_of(&registry, "BIG_ORDERS-value");
    assert_eq!(
        field_names(&out_schema),
        vec!["ORDER_ID", "NAME", "ITEMS", "COUPON", "AMOUNT", "PLACED_AT"]
    );
    assert_eq!(
        field_type(&out_schema, "AMOUNT")["logicalType"],
        json!("decimal"),
        "{out_schema}"
    );
    assert_eq!(
        field_type(&out_schema, "PLACED_AT")["logicalType"],
        json!("timestamp-millis"),
        "{out_schema}"
    );
    let out = consume_raw(&brokers, "BIG_ORDERS", 0, 3);
    type Decoded = (Option<Vec<u8>>, (u32, Json));
    let decoded: Vec<Decoded> = out
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                decode_framed(&registry, v.as_deref().expect("a value")),
            )
        })
        .collect();
    assert_eq!(
        decoded,
        vec![
            (
                Some(b"c1".to_vec()),
                (
                    out_id,
                    json!({"ORDER_ID": 1, "NAME": "Al", "ITEMS": ["pen", "ink"], "COUPON": null,
                           "AMOUNT": "12.50", "PLACED_AT": 1_700_000_000_123_i64})
                )
            ),
            (
                Some(b"c1".to_vec()),
                (
                    out_id,
                    json!({"ORDER_ID": 3, "NAME": "Al", "ITEMS": ["pad"], "COUPON": "VIP",
                           "AMOUNT": "999.99", "PLACED_AT": 1_700_000_002_000_i64})
                )
            ),
            (
                Some(b"c3".to_vec()),
                (
                    out_id,
                    json!({"ORDER_ID": 4, "NAME": "Cy", "ITEMS": ["x", "y"], "COUPON": null,
                           "AMOUNT": "20.05", "PLACED_AT": 1_704_164_645_123_i64})
                )
            ),
        ]
    );
    latest_of(&registry, "SPEND-value");
}

/// Interop with Confluent's own Python serializers: records produced with
/// `AvroSerializer` (which registers its schema in the registry over HTTP)
/// are read by rill, and rill's output topic is read back with
/// `AvroDeserializer` (which fetches the writer schema by the id in each
/// record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_python_serializers_interoperate() {
    if !python_imports(
        &[],
        "from confluent_kafka.schema_registry.avro import AvroSerializer, AvroDeserializer",
        "confluent_kafka's Avro serializers",
    ) {
        return;
    }
    let (_cluster, brokers) = mock_cluster(&["payments", "PAYMENTS_OUT", "rill_processing_log"]);
    let registry = Registry::start();
    let python = |args: &[&str]| run_python(&[], "avro_interop.py", args);

    let url = registry.url();
    let produced = python(&["produce", &brokers, &url, "payments"]);
    assert_eq!(produced.len(), 1, "{produced:?}");
    let payments_id = produced[0]["schema_id"].as_u64().expect("schema_id") as u32;
    let (id, _) = latest_of(&registry, "payments-value");
    assert_eq!(
        id, payments_id,
        "AvroSerializer registered under payments-value"
    );

    let (_server, client) =
        start_with_registry(&registry, &["--kafka-brokers", &brokers, NO_COMMAND_TOPIC]).await;
    exec(
        &client,
        "CREATE STREAM payments (payer VARCHAR KEY) WITH (kafka_topic='payments', value_format='AVRO');",
    )
    .await;
    assert_eq!(
        describe(&client, "payments").await,
        columns(&[
            ("PAYER", "STRING", "KEY"),
            ("ID", "BIGINT", "NULL"),
            ("AMOUNT", "DOUBLE", "NULL"),
            ("CURRENCY", "STRING", "NULL"),
            ("NOTE", "STRING", "NULL"),
            ("PRICE", "DECIMAL(8, 3)", "NULL"),
            ("PAID_AT", "TIMESTAMP", "NULL"),
            ("META", "STRUCT<SOURCE STRING, RETRIES INTEGER>", "NULL"),
        ])
    );
    let rows = query(
        &client,
        "SELECT payer, id, amount, currency, note, price, paid_at, meta FROM payments;",
    )
    .await;
    assert_eq!(
        normalized(plain(&rows)),
        normalized(vec![
            vec![
                "alice",
                "1",
                "1.5",
                "EUR",
                "NULL",
                "1.250",
                "2023-11-14 22:13:20",
                r#"{"SOURCE":"web","RETRIES":0}"#
            ],
            vec![
                "bob",
                "2",
                "0.25",
                "USD",
                "first",
                "0.001",
                "2023-11-14 22:13:21.500",
                r#"{"SOURCE":"app","RETRIES":2}"#
            ],
            vec![
                "alice",
                "3",
                "10",
                "EUR",
                "again",
                "-3.000",
                "2023-11-14 22:13:22",
                r#"{"SOURCE":"web","RETRIES":1}"#
            ],
        ])
    );
    exec(
        &client,
        "CREATE STREAM payments_out AS SELECT payer, id, amount * 2 AS doubled, LCASE(currency) AS currency, note, price, paid_at, meta->retries AS retries
           FROM payments WHERE amount > 1 EMIT CHANGES;",
    )
    .await;
    let rows = query(&client, "SELECT id FROM payments_out;").await;
    assert_eq!(plain(&rows), vec![vec!["1"], vec!["3"]]);

    let consumed = python(&["consume", &brokers, &url, "PAYMENTS_OUT", "2"]);
    let (out_id, _) = latest_of(&registry, "PAYMENTS_OUT-value");
    assert_eq!(
        consumed,
        vec![
            json!({"key": "alice", "schema_id": out_id, "value": {
                "ID": 1, "DOUBLED": 3.0, "CURRENCY": "eur", "NOTE": null, "PRICE": "1.250",
                "PAID_AT": "2023-11-14T22:13:20.000+00:00", "RETRIES": 0}}),
            json!({"key": "alice", "schema_id": out_id, "value": {
                "ID": 3, "DOUBLED": 20.0, "CURRENCY": "eur", "NOTE": "again", "PRICE": "-3.000",
                "PAID_AT": "2023-11-14T22:13:22.000+00:00", "RETRIES": 1}}),
        ]
    );
}
