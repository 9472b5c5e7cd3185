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

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use apache_avro::types::Value as Avro;
use apache_avro::{from_avro_datum, to_avro_datum, Schema};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use rill_tests::registry::Registry;
use rill_tests::{describe_error, exec, plain, query, workspace_root, Server};
use serde_json::{json, Value as Json};
use tokio_postgres::Client;

/// How long the tests wait for records rill writes asynchronously.
const WAIT: Duration = Duration::from_secs(20);

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

/// `\x0102`, how rill (and Postgres) print BYTES.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::from("\\x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The inverse of [`hex`].
fn unhex(text: &str) -> Vec<u8> {
    let digits = text
        .strip_prefix("\\x")
        .unwrap_or_else(|| panic!("not a \\x.. bytes value: {text:?}"));
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digit"))
        .collect()
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

/// Rows as strings, with every JSON object cell (a STRUCT or MAP) re-printed
/// with sorted keys, so two spellings of one value compare equal. (Field
/// order in printed structs is not what these tests check.)
fn normalized(rows: Vec<Vec<&str>>) -> Vec<Vec<String>> {
    rows.into_iter()
        .map(|r| {
            r.into_iter()
                .map(|c| match serde_json::from_str::<Json>(c) {
                    Ok(v @ Json::Object(_)) => v.to_string(),
                    _ => c.to_string(),
                })
                .collect()
        })
        .collect()
}

/// The (field, type, key) rows of `DESCRIBE name`.
async fn describe(client: &Client, name: &str) -> Vec<Vec<String>> {
    let rows = query(client, &format!("DESCRIBE {name};")).await;
    plain(&rows)
        .into_iter()
        .map(|r| r.into_iter().map(str::to_string).collect())
        .collect()
}

fn columns(expected: &[(&str, &str, &str)]) -> Vec<Vec<String>> {
    expected
        .iter()
        .map(|(f, t, k)| vec![f.to_string(), t.to_string(), k.to_string()])
        .collect()
}

/// The `value` of a `DESCRIBE name EXTENDED` property row.
async fn property(client: &Client, name: &str, prop: &str) -> String {
    let rows = query(client, &format!("DESCRIBE {name} EXTENDED;")).await;
    plain(&rows)
        .into_iter()
        .find(|r| r[0] == "property" && r[1] == prop)
        .map(|r| r[2].to_string())
        .unwrap_or_else(|| panic!("no property {prop} in DESCRIBE {name} EXTENDED"))
}

/// The raw values of `topic` through a KAFKA-format BYTES stream over it
/// (named `stream`), so the embedded log's bytes can be checked.
async fn raw_values(client: &Client, stream: &str, topic: &str) -> Vec<Vec<u8>> {
    exec(
        client,
        &format!("CREATE STREAM {stream} (raw BYTES) WITH (kafka_topic='{topic}', value_format='KAFKA');"),
    )
    .await;
    let rows = query(client, &format!("SELECT raw FROM {stream};")).await;
    plain(&rows).into_iter().map(|r| unhex(r[0])).collect()
}

/// The latest (id, schema) of `subject`; a failure names the subjects the
/// registry has instead of a bare `None`.
fn latest_of(registry: &Registry, subject: &str) -> (u32, String) {
    registry.latest(subject).unwrap_or_else(|| {
        panic!(
            "the registry has no subject {subject:?}; it has {:?}",
            registry.subjects()
        )
    })
}

async fn start_with_registry(registry: &Registry, extra: &[&str]) -> (Server, Client) {
    let url = registry.url();
    let mut args = vec!["--schema-registry", url.as_str()];
    args.extend_from_slice(extra);
    let server = Server::start_with_args(&args)
        .await
        .expect("start rill with --schema-registry");
    let client = server.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    (server, client)
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

    // A declared key, value columns inferred.
    exec(
        &client,
        "CREATE STREAM keyed (id VARCHAR KEY) WITH (kafka_topic='all_types', value_format='AVRO', partitions=1);",
    )
    .await;
    let mut expected = vec![("ID", "STRING", "KEY")];
    expected.extend_from_slice(ALL_TYPES_COLUMNS);
    assert_eq!(describe(&client, "keyed").await, columns(&expected));
    assert_eq!(property(&client, "keyed", "key_format").await, "KAFKA");
    assert_eq!(property(&client, "keyed", "value_format").await, "AVRO");

    // No columns at all: every column is inferred.
    exec(
        &client,
        "CREATE STREAM all_types WITH (kafka_topic='all_types', value_format='AVRO');",
    )
    .await;
    assert_eq!(
        describe(&client, "all_types").await,
        columns(ALL_TYPES_COLUMNS)
    );
    assert_eq!(property(&client, "all_types", "value_format").await, "AVRO");

    // Inferring registered nothing new.
    assert_eq!(registry.subjects(), vec!["all_types-value"]);

    // No subject for the topic: the statement fails and says which subject.
    let err = client
        .simple_query(
            "CREATE STREAM nothing WITH (kafka_topic='nothing', value_format='AVRO', partitions=1);",
        )
        .await
        .expect_err("CREATE STREAM over a topic with no registered schema must fail");
    let message = describe_error(&err);
    assert!(
        message.contains("nothing-value"),
        "the error should name the missing subject: {message}"
    );
    let rows = query(&client, "SHOW STREAMS;").await;
    assert!(
        !plain(&rows).iter().any(|r| r[0] == "NOTHING"),
        "a failed CREATE left a stream behind"
    );
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

    exec(
        &client,
        "CREATE STREAM pageviews (viewer VARCHAR KEY) WITH (kafka_topic='pageviews', value_format='AVRO', partitions=1);",
    )
    .await;
    assert_eq!(
        describe(&client, "pageviews").await,
        columns(&[
            ("VIEWER", "STRING", "KEY"),
            ("PAGE", "STRING", "NULL"),
            ("DURATION", "INTEGER", "NULL"),
            ("PREMIUM", "BOOLEAN", "NULL"),
            ("SCORE", "DOUBLE", "NULL"),
            ("REFERRER", "STRING", "NULL"),
            ("TAGS", "ARRAY<STRING>", "NULL"),
            ("VIEWED_AT", "TIMESTAMP", "NULL"),
        ])
    );

    exec(
        &client,
        "INSERT INTO pageviews (viewer, page, duration, premium, score, referrer, tags, viewed_at) VALUES
           ('u1', '/home', 5, true, 0.5, NULL, ARRAY['a'], '2024-01-02T03:04:05'),
           ('u2', '/home', 30, false, 1.5, 'google', ARRAY['a', 'b'], '2024-01-02T03:04:06.250'),
           ('u1', '/about', 12, true, 2, 'bing', ARRAY['c'], '2024-01-02T03:04:07');",
    )
    .await;
    let rows = query(
        &client,
        "SELECT viewer, page, duration, premium, score, referrer, tags, viewed_at FROM pageviews;",
    )
    .await;
    assert_eq!(
        plain(&rows),
        vec![
            vec![
                "u1",
                "/home",
                "5",
                "t",
                "0.5",
                "NULL",
                r#"["a"]"#,
                "2024-01-02 03:04:05"
            ],
            vec![
                "u2",
                "/home",
                "30",
                "f",
                "1.5",
                "google",
                r#"["a","b"]"#,
                "2024-01-02 03:04:06.250"
            ],
            vec![
                "u1",
                "/about",
                "12",
                "t",
                "2",
                "bing",
                r#"["c"]"#,
                "2024-01-02 03:04:07"
            ],
        ]
    );

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

    // A push query over the output (from the earliest offset).
    let rows = query(
        &client,
        "SELECT page, d2 FROM long_views EMIT CHANGES LIMIT 2;",
    )
    .await;
    assert_eq!(
        plain(&rows),
        vec![vec!["/home", "60"], vec!["/about", "24"]]
    );

    // Aggregates over the AVRO stream; the value schema is registered, and
    // with key_format='AVRO' the key schema too.
    exec(
        &client,
        "CREATE TABLE per_page AS SELECT page, COUNT(*) AS n, SUM(duration) AS total FROM pageviews GROUP BY page;",
    )
    .await;
    exec(
        &client,
        "CREATE TABLE per_viewer WITH (key_format='AVRO') AS SELECT viewer, COUNT(*) AS n, MAX(score) AS best
           FROM pageviews GROUP BY viewer;",
    )
    .await;
    exec(
        &client,
        "INSERT INTO pageviews (viewer, page, duration, premium, score, referrer, tags, viewed_at) VALUES
           ('u3', '/home', 40, false, 9.5, NULL, ARRAY['d'], '2024-01-02T03:05:00');",
    )
    .await;
    let rows = query(
        &client,
        "SELECT page, n, total FROM per_page ORDER BY page;",
    )
    .await;
    assert_eq!(
        plain(&rows),
        vec![vec!["/about", "1", "12"], vec!["/home", "3", "75"]]
    );
    let rows = query(
        &client,
        "SELECT viewer, n, best FROM per_viewer WHERE viewer = 'u1';",
    )
    .await;
    assert_eq!(plain(&rows), vec![vec!["u1", "2", "2"]]);
    let rows = query(&client, "SELECT viewer, page, d2 FROM long_views;").await;
    assert_eq!(
        rows.len(),
        3,
        "the new row reached the CSAS output: {rows:?}"
    );
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
    let mut wrong = Vec::new();
    for sql in [
        "CREATE STREAM s WITH (kafka_topic='t', value_format='AVRO', partitions=1);",
        "CREATE STREAM s (id VARCHAR KEY, v INT) WITH (kafka_topic='t', value_format='AVRO', partitions=1);",
        "CREATE STREAM s (id VARCHAR KEY, v INT) WITH (kafka_topic='t', value_format='JSON', key_format='AVRO', partitions=1);",
    ] {
        // Every statement is tried before failing, so one report shows all.
        match client.simple_query(sql).await {
            Ok(_) => wrong.push(format!("{sql}\n  succeeded")),
            Err(err) => {
                let message = describe_error(&err);
                if err.code().is_none() || !message.contains("--schema-registry") {
                    wrong.push(format!(
                        "{sql}\n  the error should name --schema-registry: {message}"
                    ));
                }
            }
        }
    }
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

fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer")
}

/// A Kafka record's (key, value) bytes.
type RawRecord = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Every record of partition 0 of `topic` from the start, as raw
/// (key, value): waits up to [`WAIT`] for at least `min`, then until none
/// arrives for a second.
fn consume_raw(brokers: &str, topic: &str, min: usize) -> Vec<RawRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "rill-avro-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut idle_since = Instant::now();
    while Instant::now() < deadline
        && (out.len() < min || idle_since.elapsed() < Duration::from_secs(1))
    {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec)));
            idle_since = Instant::now();
        }
    }
    out
}

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

/// The (query id, status, errors) of the query writing `sink`.
async fn query_of(client: &Client, sink: &str) -> (String, String, String) {
    let rows = query(client, "SHOW QUERIES;").await;
    plain(&rows)
        .into_iter()
        .find(|r| r[4] == sink)
        .map(|r| (r[0].to_string(), r[1].to_string(), r[8].to_string()))
        .unwrap_or_else(|| panic!("no query writes {sink}: {rows:?}"))
}

/// Kafka mode: an outside producer writes Confluent-framed Avro (encoded by
/// the test, with the registry's id) and malformed records; rill's stream,
/// CSAS and CTAS see the right values, the three bad records land in the
/// processing log and are counted while the queries keep running, INSERT
/// writes framed records with the source's id, and the CSAS output topic
/// decodes with the schema the registry holds for each record's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_avro_from_an_outside_producer() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    for topic in ["orders", "BIG_ORDERS", "SPEND", "rill_processing_log"] {
        cluster.create_topic(topic, 1, 1).expect("create topic");
    }
    let brokers = cluster.bootstrap_servers();
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
    let p = producer(&brokers);
    for (key, value) in &records {
        p.send(
            FutureRecord::to("orders")
                .key(*key)
                .payload(value)
                .partition(0),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    }

    let (_server, client) = start_with_registry(&registry, &["--kafka-brokers", &brokers]).await;
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
    let deadline = Instant::now() + WAIT;
    let log = loop {
        let rows = query(
            &client,
            "SELECT query_id, topic, partition, offset, error, record FROM RILL_PROCESSING_LOG;",
        )
        .await;
        let log: Vec<Vec<String>> = plain(&rows)
            .into_iter()
            .map(|r| r.into_iter().map(str::to_string).collect())
            .collect();
        let of = |q: &str| log.iter().filter(|r| r[0] == q).count();
        if (of(&csas) >= 3 && of(&ctas) >= 3) || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
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
    let source = consume_raw(&brokers, "orders", 7);
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
    let out = consume_raw(&brokers, "BIG_ORDERS", 3);
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
    let probe = Command::new("python3")
        .args([
            "-c",
            "from confluent_kafka.schema_registry.avro import AvroSerializer, AvroDeserializer",
        ])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "skipping: confluent_kafka's Avro serializers do not import (.ci/run installs them): {}",
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipping: python3 cannot run: {e}");
            return;
        }
    }
    let script = workspace_root().join("tests/scripts/avro_interop.py");
    let cluster = MockCluster::new(1).expect("mock cluster");
    for topic in ["payments", "PAYMENTS_OUT", "rill_processing_log"] {
        cluster.create_topic(topic, 1, 1).expect("create topic");
    }
    let brokers = cluster.bootstrap_servers();
    let registry = Registry::start();
    let python = |args: &[&str]| -> Vec<Json> {
        let out = Command::new("python3")
            .arg(&script)
            .args(args)
            .output()
            .expect("run avro_interop.py");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "avro_interop.py {args:?} failed with {}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {l:?}: {e}")))
            .collect()
    };

    let url = registry.url();
    let produced = python(&["produce", &brokers, &url, "payments"]);
    assert_eq!(produced.len(), 1, "{produced:?}");
    let payments_id = produced[0]["schema_id"].as_u64().expect("schema_id") as u32;
    let (id, _) = latest_of(&registry, "payments-value");
    assert_eq!(
        id, payments_id,
        "AvroSerializer registered under payments-value"
    );

    let (_server, client) = start_with_registry(&registry, &["--kafka-brokers", &brokers]).await;
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
