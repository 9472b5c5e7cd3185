//! Kafka interop: rill against librdkafka's in-process mock cluster (a real
//! Kafka-protocol broker on 127.0.0.1), fed and read by clients that are not
//! rill: Debian's `kcat` and rdkafka producers and consumers.
//!
//! What is checked is what a user would check with those tools: records
//! another producer wrote in each format rill supports (JSON, DELIMITED,
//! KAFKA, NONE) are read correctly; rill's output topics decode in that
//! format; malformed records go to `RILL_PROCESSING_LOG` and nothing else;
//! per-key order survives a multi-partition topic; and a broker that goes
//! away and comes back loses and duplicates nothing.
//!
//! The mock cluster has no admin API, so every topic rill reads or writes is
//! created in it first (`rill_processing_log` and the output topics of
//! `CREATE ... AS SELECT` included). The kcat tests print a line and return
//! when kcat is not installed; `.ci/run` installs it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use rill_tests::{exec, plain, query, sorted, try_query, Server};
use tokio_postgres::Client;

/// The mock cluster has no admin API for rill's command and state topics.
const NO_COMMAND_TOPIC: &str = "--kafka-command-topic=";

type Cluster = MockCluster<'static, DefaultProducerContext>;

/// A record's key and value bytes; `None` for none (a record without a key,
/// a tombstone).
type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// How long one kcat run may take before the test fails.
const KCAT_TIMEOUT: Duration = Duration::from_secs(30);

/// A mock cluster with topics, and a rill server connected to it.
///
/// # Invariants
/// Fields drop in order: the session, then rill (killed), then the cluster
/// it was talking to.
struct Rig {
    client: Client,
    /// Kept for its lifetime: dropping it kills rill.
    _server: Server,
    brokers: String,
    cluster: Cluster,
}

impl Rig {
    /// Starts a one-broker mock cluster with `topics` (name, partitions)
    /// plus `rill_processing_log`, and rill against it; the session reads
    /// from the earliest offset.
    async fn start(topics: &[(&str, i32)]) -> Rig {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster
            .create_topic("rill_processing_log", 1, 1)
            .expect("create topic rill_processing_log");
        for (name, partitions) in topics {
            cluster
                .create_topic(name, *partitions, 1)
                .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
        }
        let brokers = cluster.bootstrap_servers();
        let server = Server::start_with_args(&["--kafka-brokers", &brokers, NO_COMMAND_TOPIC])
            .await
            .expect("start rill against the mock cluster");
        let client = server.connect().await.expect("connect");
        exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
        Rig {
            client,
            _server: server,
            brokers,
            cluster,
        }
    }

    /// The SHOW QUERIES row of the query writing `sink`: (query id, status,
    /// errors).
    async fn query_of(&self, sink: &str) -> (String, String, i64) {
        let rows = query(&self.client, "SHOW QUERIES;").await;
        let row = plain(&rows)
            .into_iter()
            .find(|r| r[4] == sink)
            .map(|r| r.iter().map(|c| c.to_string()).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no query writes {sink} in SHOW QUERIES: {rows:?}"));
        let errors = row[8].parse().expect("errors is a number");
        (row[0].clone(), row[1].clone(), errors)
    }
}

// ---------------------------------------------------------------------------
// kcat

/// Whether `kcat` can be run; prints why a test is skipped when not.
fn kcat_available(test: &str) -> bool {
    let ok = Command::new("kcat")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("kcat is not installed: skipping {test} (apt-get install kcat; .ci/run does)");
    }
    ok
}

/// Runs kcat with `args` and `stdin`, returning its stdout; panics on a
/// failure exit, on an error message, or after [`KCAT_TIMEOUT`] (the child
/// is then killed).
fn kcat(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    tokio::task::block_in_place(|| {
        let mut child = Command::new("kcat")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kcat");
        let mut input = child.stdin.take().expect("kcat stdin");
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
            // Dropping `input` closes kcat's stdin: the producer then
            // flushes and exits.
        });
        let mut out = child.stdout.take().expect("kcat stdout");
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        });
        let mut err = child.stderr.take().expect("kcat stderr");
        let err_reader = std::thread::spawn(move || {
            let mut buf = String::new();
            let _ = err.read_to_string(&mut buf);
            buf
        });
        let deadline = Instant::now() + KCAT_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for kcat") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("kcat {args:?} did not finish within {KCAT_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = writer.join();
        let stdout = reader.join().expect("kcat stdout reader");
        let stderr = err_reader.join().expect("kcat stderr reader");
        assert!(
            status.success() && !stderr.contains("ERROR"),
            "kcat {args:?} failed with {status}:\n{stderr}"
        );
        stdout
    })
}

/// Separates a record's key from its value in kcat's producer input.
const KEY_DELIMITER: &str = "<<key>>";
/// Ends a record in kcat's producer input; neither delimiter occurs in the
/// test data, binary keys included.
const RECORD_DELIMITER: &str = "<<end>>";

/// Produces records with kcat, keys placed by Kafka's default (Java)
/// partitioner, murmur2. An empty key is sent as a NULL key (`-Z`), a
/// `None` key as no key at all.
fn kcat_produce(brokers: &str, topic: &str, records: &[(Option<&[u8]>, &[u8])]) {
    let mut input = Vec::new();
    for (key, value) in records {
        if let Some(key) = key {
            input.extend_from_slice(key);
            input.extend_from_slice(KEY_DELIMITER.as_bytes());
        }
        input.extend_from_slice(value);
        input.extend_from_slice(RECORD_DELIMITER.as_bytes());
    }
    kcat(
        &[
            "-P",
            "-b",
            brokers,
            "-t",
            topic,
            "-K",
            KEY_DELIMITER,
            "-D",
            RECORD_DELIMITER,
            "-Z",
            "-X",
            "partitioner=murmur2_random",
        ],
        &input,
    );
}

/// Produces text (key, value) pairs with kcat.
fn kcat_produce_text(brokers: &str, topic: &str, records: &[(&str, &str)]) {
    let records: Vec<(Option<&[u8]>, &[u8])> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.as_bytes()))
        .collect();
    kcat_produce(brokers, topic, &records);
}

/// One record as kcat's consumer printed it.
#[derive(Debug, Clone, PartialEq)]
struct KcatRecord {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

impl KcatRecord {
    fn key_text(&self) -> Option<String> {
        self.key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
    }

    fn value_text(&self) -> Option<String> {
        self.value
            .as_deref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// Every record of `topic`, all partitions, read with `kcat -C -e` and a
/// length-prefixed output format, so binary keys and values come out
/// exactly. Sorted by partition, then offset.
fn kcat_consume(brokers: &str, topic: &str) -> Vec<KcatRecord> {
    let out = kcat(
        &[
            "-C",
            "-b",
            brokers,
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%p %o %K %S\n%k%s\n",
        ],
        b"",
    );
    let mut records = Vec::new();
    let mut rest = &out[..];
    while !rest.is_empty() {
        let eol = rest
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or_else(|| panic!("kcat output ends mid-header: {rest:?}"));
        let header = String::from_utf8_lossy(&rest[..eol]).into_owned();
        rest = &rest[eol + 1..];
        let fields: Vec<i64> = header
            .split(' ')
            .map(|f| {
                f.parse()
                    .unwrap_or_else(|_| panic!("bad kcat header {header:?}"))
            })
            .collect();
        let [partition, offset, key_len, value_len] = fields[..] else {
            panic!("bad kcat header {header:?}");
        };
        let mut take = |len: i64| -> Option<Vec<u8>> {
            let len = usize::try_from(len).ok()?;
            let (bytes, tail) = rest.split_at(len);
            rest = tail;
            Some(bytes.to_vec())
        };
        let key = take(key_len);
        let value = take(value_len);
        assert_eq!(rest.first(), Some(&b'\n'), "kcat record not terminated");
        rest = &rest[1..];
        records.push(KcatRecord {
            partition: i32::try_from(partition).expect("partition"),
            offset,
            key,
            value,
        });
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// Lines `key<TAB>value` of `topic` printed by kcat itself, deserializing
/// keys and values with kcat's `-s` pack formats (e.g. `>i$`: a big-endian
/// 32-bit integer and nothing else); `None` leaves that side as raw text.
fn kcat_deserialized(
    brokers: &str,
    topic: &str,
    key: Option<&str>,
    value: Option<&str>,
) -> Vec<String> {
    let key_arg = key.map(|k| format!("key={k}"));
    let value_arg = value.map(|v| format!("value={v}"));
    let mut args = vec![
        "-C",
        "-b",
        brokers,
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-q",
        "-f",
        "%k\t%s\n",
    ];
    for a in [&key_arg, &value_arg].into_iter().flatten() {
        args.push("-s");
        args.push(a);
    }
    let out = kcat(&args, b"");
    String::from_utf8(out)
        .expect("kcat prints text")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The last record per key: a table's changelog read back, the current row
/// of each key.
fn latest_per_key(records: &[KcatRecord]) -> BTreeMap<Option<Vec<u8>>, Option<Vec<u8>>> {
    let mut latest = BTreeMap::new();
    for r in records {
        latest.insert(r.key.clone(), r.value.clone());
    }
    latest
}

// ---------------------------------------------------------------------------
// rdkafka clients

fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // Kafka's default (Java) partitioner, and no reordering on retries.
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer")
}

/// Produces `records` (key, value; `None` for none) and waits until every
/// one is acknowledged.
async fn produce(p: &FutureProducer, topic: &str, records: &[KeyValue<'_>]) {
    let mut pending = Vec::with_capacity(records.len());
    for (key, value) in records {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if let Some(key) = key {
            record = record.key(*key);
        }
        if let Some(value) = value {
            record = record.payload(*value);
        }
        pending.push(p.send(record, Duration::from_secs(60)));
    }
    for (i, outcome) in futures::future::join_all(pending)
        .await
        .into_iter()
        .enumerate()
    {
        if let Err((e, _)) = outcome {
            panic!("producing record {i} to {topic}: {e}");
        }
    }
}

/// Text key/value pairs for [`produce`].
fn text_records(pairs: &[(String, String)]) -> Vec<KeyValue<'_>> {
    pairs
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes())))
        .collect()
}

/// Every record of one partition of `topic` (key, value as text), read with
/// a plain consumer from the start up to the partition's high watermark.
fn consume_partition(
    brokers: &str,
    topic: &str,
    partition: i32,
) -> Vec<(Option<String>, Option<String>)> {
    tokio::task::block_in_place(|| {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "rill-interop-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("watermarks of {topic} partition {partition}: {e}"));
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Beginning)
            .expect("partition");
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let mut next = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while next < high {
            assert!(
                Instant::now() < deadline,
                "read {topic} partition {partition} up to {next} of {high} within 30 s"
            );
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let text =
                        |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
                    out.push((text(m.key()), text(m.payload())));
                    next = m.offset() + 1;
                }
                Some(Err(e)) => panic!("consuming {topic} partition {partition}: {e}"),
                None => {}
            }
        }
        out
    })
}

/// Polls a pull query until it returns `expected` (sorted) or `timeout`
/// passes; returns the last answer (or error) for the caller to assert on.
async fn eventually(
    client: &Client,
    sql: &str,
    expected: &[Vec<&str>],
    timeout: Duration,
) -> Result<Vec<Vec<String>>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match try_query(client, sql).await {
            Ok(rows) => {
                let rows: Vec<Vec<String>> = sorted(&rows)
                    .into_iter()
                    .map(|r| r.into_iter().map(str::to_string).collect())
                    .collect();
                if rows == expected {
                    return Ok(rows);
                }
                Ok(rows)
            }
            Err(e) => Err(format!("{e:#}")),
        };
        if Instant::now() > deadline {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------
// 1. Formats, through kcat

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_json_records_in_and_out() {
    if !kcat_available("kcat_json_records_in_and_out") {
        return;
    }
    let rig = Rig::start(&[("users", 2), ("USER_CITIES", 2), ("USER_STATS", 2)]).await;
    let c = &rig.client;

    // Field names in any case, a field rill does not know, nested values.
    kcat_produce_text(
        &rig.brokers,
        "users",
        &[
            (
                "u1",
                r#"{"Name":"alice","age":30,"ADDRESS":{"city":"Paris","Zip":"75001"},"Tags":["x","y"],"ignored":true}"#,
            ),
            (
                "u2",
                r#"{"name":"bob","AGE":41,"address":{"CITY":"Oslo","zip":"0150"},"tags":[]}"#,
            ),
        ],
    );
    exec(
        c,
        "CREATE STREAM users (id VARCHAR KEY, name VARCHAR, age INT, \
         address STRUCT<city VARCHAR, zip VARCHAR>, tags ARRAY<VARCHAR>) \
         WITH (kafka_topic='users', value_format='JSON');",
    )
    .await;
    exec(
        c,
        "CREATE STREAM user_cities AS SELECT id, UCASE(name) AS shout, age + 1 AS next_age, \
         address->city AS city, tags[1] AS first_tag, address, tags FROM users;",
    )
    .await;
    exec(
        c,
        "CREATE TABLE user_stats AS SELECT id, COUNT(*) AS n, MAX(age) AS max_age, \
         COLLECT_LIST(name) AS names FROM users GROUP BY id;",
    )
    .await;
    // One more record once the queries run: a NULL struct.
    kcat_produce_text(
        &rig.brokers,
        "users",
        &[(
            "u1",
            r#"{"NAME":"alice","Age":31,"address":null,"tags":["z"]}"#,
        )],
    );

    let rows = query(
        c,
        "SELECT id, shout, next_age, city, first_tag FROM user_cities;",
    )
    .await;
    assert_eq!(
        sorted(&rows),
        vec![
            vec!["u1", "ALICE", "31", "Paris", "x"],
            vec!["u1", "ALICE", "32", "NULL", "z"],
            vec!["u2", "BOB", "42", "Oslo", "NULL"],
        ]
    );
    let rows = query(
        c,
        "SELECT id, n, max_age, names FROM user_stats ORDER BY id;",
    )
    .await;
    assert_eq!(
        plain(&rows),
        vec![
            vec!["u1", "2", "31", r#"["alice","alice"]"#],
            vec!["u2", "1", "41", r#"["bob"]"#],
        ]
    );
    // The source stream itself, read after the derived relations (whose
    // pull queries wait for the queries to catch up); see
    // `a_pull_query_over_a_stream_sees_what_an_outside_producer_wrote` for
    // reading it at once.
    let rows = query(c, "SELECT id, name, age, address, tags FROM users;").await;
    assert_eq!(
        sorted(&rows),
        vec![
            vec![
                "u1",
                "alice",
                "30",
                r#"{"CITY":"Paris","ZIP":"75001"}"#,
                r#"["x","y"]"#
            ],
            vec!["u1", "alice", "31", "NULL", r#"["z"]"#],
            vec!["u2", "bob", "41", r#"{"CITY":"Oslo","ZIP":"0150"}"#, "[]"],
        ]
    );
    let rows = query(
        c,
        "SELECT id, address->zip AS zip FROM users EMIT CHANGES LIMIT 3;",
    )
    .await;
    assert_eq!(
        sorted(&rows),
        vec![vec!["u1", "75001"], vec!["u1", "NULL"], vec!["u2", "0150"]]
    );

    // kcat reads rill's output: the key as a plain string (KAFKA), the value
    // a JSON object with upper-case field names in column order.
    let out = kcat_consume(&rig.brokers, "USER_CITIES");
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &out {
        by_key
            .entry(r.key_text().expect("USER_CITIES records have keys"))
            .or_default()
            .push(r.value_text().expect("USER_CITIES records have values"));
    }
    assert_eq!(
        by_key,
        BTreeMap::from([
            (
                "u1".to_string(),
                vec![
                    r#"{"SHOUT":"ALICE","NEXT_AGE":31,"CITY":"Paris","FIRST_TAG":"x","ADDRESS":{"CITY":"Paris","ZIP":"75001"},"TAGS":["x","y"]}"#.to_string(),
                    r#"{"SHOUT":"ALICE","NEXT_AGE":32,"CITY":null,"FIRST_TAG":"z","ADDRESS":null,"TAGS":["z"]}"#.to_string(),
                ]
            ),
            (
                "u2".to_string(),
                vec![r#"{"SHOUT":"BOB","NEXT_AGE":42,"CITY":"Oslo","FIRST_TAG":null,"ADDRESS":{"CITY":"Oslo","ZIP":"0150"},"TAGS":[]}"#.to_string()]
            ),
        ])
    );
    let latest = latest_per_key(&kcat_consume(&rig.brokers, "USER_STATS"));
    let text = |s: &str| Some(s.as_bytes().to_vec());
    assert_eq!(
        latest,
        BTreeMap::from([
            (
                text("u1"),
                text(r#"{"N":2,"MAX_AGE":31,"NAMES":["alice","alice"]}"#)
            ),
            (text("u2"), text(r#"{"N":1,"MAX_AGE":41,"NAMES":["bob"]}"#)),
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_delimited_records_in_and_out() {
    if !kcat_available("kcat_delimited_records_in_and_out") {
        return;
    }
    let rig = Rig::start(&[("orders", 1), ("ORDER_TOTALS", 1), ("ITEM_QTY", 1)]).await;
    let c = &rig.client;
    exec(
        c,
        "CREATE STREAM orders (id VARCHAR KEY, item VARCHAR, qty INT, price DOUBLE) \
         WITH (kafka_topic='orders', value_format='DELIMITED');",
    )
    .await;
    exec(
        c,
        "CREATE STREAM order_totals AS SELECT id, item, qty, qty * price AS total FROM orders;",
    )
    .await;
    exec(
        c,
        "CREATE TABLE item_qty AS SELECT item, SUM(qty) AS qty, COUNT(*) AS n \
         FROM orders GROUP BY item;",
    )
    .await;
    // CSV as a console producer writes it: quoted fields hold the
    // delimiter and doubled quotes.
    kcat_produce_text(
        &rig.brokers,
        "orders",
        &[
            ("o1", "widget,3,2.5"),
            ("o2", r#""big, red widget",1,10"#),
            ("o3", r#""say ""hi""",2,1.25"#),
            ("o4", "widget,1,2.5"),
        ],
    );

    let rows = query(c, "SELECT id, item, qty, total FROM order_totals;").await;
    assert_eq!(
        sorted(&rows),
        vec![
            vec!["o1", "widget", "3", "7.5"],
            vec!["o2", "big, red widget", "1", "10"],
            vec!["o3", r#"say "hi""#, "2", "2.5"],
            vec!["o4", "widget", "1", "2.5"],
        ]
    );
    let rows = query(c, "SELECT item, qty, n FROM item_qty ORDER BY item;").await;
    assert_eq!(
        plain(&rows),
        vec![
            vec!["big, red widget", "1", "1"],
            vec![r#"say "hi""#, "2", "1"],
            vec!["widget", "4", "2"],
        ]
    );

    // rill's output reads back as DELIMITED lines, quoted where needed.
    let out: Vec<(Option<String>, Option<String>)> = kcat_consume(&rig.brokers, "ORDER_TOTALS")
        .iter()
        .map(|r| (r.key_text(), r.value_text()))
        .collect();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        out,
        vec![
            (some("o1"), some("widget,3,7.5")),
            (some("o2"), some(r#""big, red widget",1,10.0"#)),
            (some("o3"), some(r#""say ""hi""",2,2.5"#)),
            (some("o4"), some("widget,1,2.5")),
        ]
    );
    let latest = latest_per_key(&kcat_consume(&rig.brokers, "ITEM_QTY"));
    let bytes = |s: &str| Some(s.as_bytes().to_vec());
    assert_eq!(
        latest,
        BTreeMap::from([
            (bytes("big, red widget"), bytes("1,1")),
            (bytes(r#"say "hi""#), bytes("2,1")),
            (bytes("widget"), bytes("4,2")),
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_kafka_format_big_endian_primitives_in_and_out() {
    if !kcat_available("kcat_kafka_format_big_endian_primitives_in_and_out") {
        return;
    }
    let rig = Rig::start(&[
        ("readings", 3),
        ("SENSOR_MAX", 3),
        ("SENSOR_COUNTS", 3),
        ("events", 2),
        ("EVENTS_LOUD", 2),
    ])
    .await;
    let c = &rig.client;

    // INT keys and DOUBLE values as Kafka's IntegerSerializer and
    // DoubleSerializer write them.
    let readings: Vec<(i32, f64)> = vec![
        (1, 20.5),
        (2, -3.25),
        (1, 22.75),
        (70_000, 0.1),
        (-1, 1e10),
        (1, 21.0),
    ];
    let encoded: Vec<([u8; 4], [u8; 8])> = readings
        .iter()
        .map(|(k, v)| (k.to_be_bytes(), v.to_be_bytes()))
        .collect();
    let records: Vec<(Option<&[u8]>, &[u8])> = encoded
        .iter()
        .map(|(k, v)| (Some(&k[..]), &v[..]))
        .collect();
    kcat_produce(&rig.brokers, "readings", &records);
    // BIGINT keys (LongSerializer) and UTF-8 strings (StringSerializer).
    let events: Vec<(i64, &str)> = vec![(1_700_000_000_000, "héllo"), (-5, "wörld ✓")];
    let encoded: Vec<([u8; 8], &str)> = events.iter().map(|(k, v)| (k.to_be_bytes(), *v)).collect();
    let records: Vec<(Option<&[u8]>, &[u8])> = encoded
        .iter()
        .map(|(k, v)| (Some(&k[..]), v.as_bytes()))
        .collect();
    kcat_produce(&rig.brokers, "events", &records);

    exec(
        c,
        "CREATE STREAM readings (sensor INT KEY, reading DOUBLE) \
         WITH (kafka_topic='readings', format='KAFKA');",
    )
    .await;
    exec(
        c,
        "CREATE TABLE sensor_max AS SELECT sensor, MAX(reading) AS max_reading \
         FROM readings GROUP BY sensor;",
    )
    .await;
    exec(
        c,
        "CREATE TABLE sensor_counts AS SELECT sensor, COUNT(*) AS n FROM readings GROUP BY sensor;",
    )
    .await;
    exec(
        c,
        "CREATE STREAM events (id BIGINT KEY, msg STRING) WITH (kafka_topic='events', format='KAFKA');",
    )
    .await;
    exec(
        c,
        "CREATE STREAM events_loud AS SELECT id, UCASE(msg) AS msg FROM events;",
    )
    .await;

    let rows = query(
        c,
        "SELECT sensor, max_reading FROM sensor_max ORDER BY sensor;",
    )
    .await;
    assert_eq!(
        plain(&rows),
        vec![
            vec!["-1", "10000000000"],
            vec!["1", "22.75"],
            vec!["2", "-3.25"],
            vec!["70000", "0.1"],
        ]
    );
    let rows = query(c, "SELECT sensor, n FROM sensor_counts ORDER BY sensor;").await;
    assert_eq!(
        plain(&rows),
        vec![
            vec!["-1", "1"],
            vec!["1", "3"],
            vec!["2", "1"],
            vec!["70000", "1"]
        ]
    );
    let rows = query(c, "SELECT id, msg FROM events_loud ORDER BY id;").await;
    assert_eq!(
        plain(&rows),
        vec![vec!["-5", "WÖRLD ✓"], vec!["1700000000000", "HÉLLO"]]
    );

    // The output topics hold exactly the serializers' bytes: 4-byte INT
    // keys, 8-byte DOUBLE and BIGINT values, 8-byte BIGINT keys, UTF-8.
    let latest = latest_per_key(&kcat_consume(&rig.brokers, "SENSOR_MAX"));
    let decoded: BTreeMap<i32, f64> = latest
        .iter()
        .map(|(k, v)| {
            let k = k.as_deref().expect("SENSOR_MAX keys are present");
            let v = v.as_deref().expect("SENSOR_MAX values are present");
            (
                i32::from_be_bytes(k.try_into().expect("a 4-byte INT key")),
                f64::from_be_bytes(v.try_into().expect("an 8-byte DOUBLE value")),
            )
        })
        .collect();
    assert_eq!(
        decoded,
        BTreeMap::from([(-1, 1e10), (1, 22.75), (2, -3.25), (70_000, 0.1)])
    );
    // kcat's own big-endian deserializers agree.
    let mut lines = kcat_deserialized(&rig.brokers, "SENSOR_COUNTS", Some(">i$"), Some(">q$"));
    lines.sort();
    lines.dedup();
    let mut latest_counts: BTreeMap<String, String> = BTreeMap::new();
    for r in kcat_consume(&rig.brokers, "SENSOR_COUNTS") {
        let k = r.key.expect("key");
        let v = r.value.expect("value");
        latest_counts.insert(
            i32::from_be_bytes(k[..].try_into().expect("4-byte key")).to_string(),
            i64::from_be_bytes(v[..].try_into().expect("8-byte value")).to_string(),
        );
    }
    assert_eq!(
        latest_counts,
        BTreeMap::from([
            ("-1".to_string(), "1".to_string()),
            ("1".to_string(), "3".to_string()),
            ("2".to_string(), "1".to_string()),
            ("70000".to_string(), "1".to_string()),
        ])
    );
    for (k, n) in &latest_counts {
        assert!(
            lines.contains(&format!("{k}\t{n}")),
            "kcat -s key='>i$' -s value='>q$' printed {lines:?}, no line for {k} {n}"
        );
    }
    let mut loud: Vec<(i64, String)> = kcat_consume(&rig.brokers, "EVENTS_LOUD")
        .into_iter()
        .map(|r| {
            let k = r.key.expect("EVENTS_LOUD keys are present");
            (
                i64::from_be_bytes(k[..].try_into().expect("an 8-byte BIGINT key")),
                String::from_utf8(r.value.expect("a value")).expect("UTF-8 value"),
            )
        })
        .collect();
    loud.sort();
    assert_eq!(
        loud,
        vec![
            (-5, "WÖRLD ✓".to_string()),
            (1_700_000_000_000, "HÉLLO".to_string())
        ]
    );
    let mut lines = kcat_deserialized(&rig.brokers, "EVENTS_LOUD", Some(">q$"), None);
    lines.sort();
    assert_eq!(lines, vec!["-5\tWÖRLD ✓", "1700000000000\tHÉLLO"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_keyless_records_with_key_format_none() {
    if !kcat_available("kcat_keyless_records_with_key_format_none") {
        return;
    }
    let rig = Rig::start(&[("logs", 2), ("LOG_ERRORS", 2), ("LOG_LEVELS", 2)]).await;
    let c = &rig.client;
    exec(
        c,
        "CREATE STREAM logs (level VARCHAR, msg VARCHAR) \
         WITH (kafka_topic='logs', key_format='NONE', value_format='JSON');",
    )
    .await;
    exec(
        c,
        "CREATE STREAM log_errors AS SELECT level, msg FROM logs WHERE level = 'ERROR';",
    )
    .await;
    exec(
        c,
        "CREATE TABLE log_levels AS SELECT level, COUNT(*) AS n FROM logs GROUP BY level;",
    )
    .await;
    // No keys, and one record with a key the NONE format ignores.
    let records: Vec<(Option<&[u8]>, &[u8])> = vec![
        (None, br#"{"level":"INFO","msg":"started"}"#),
        (None, br#"{"level":"ERROR","msg":"disk full"}"#),
        (
            Some(b"ignored-key"),
            br#"{"level":"ERROR","msg":"disk still full"}"#,
        ),
        (None, br#"{"level":"INFO","msg":"stopping"}"#),
    ];
    kcat_produce(&rig.brokers, "logs", &records);
    let keyless = kcat_consume(&rig.brokers, "logs")
        .iter()
        .filter(|r| r.key.is_none())
        .count();
    assert_eq!(keyless, 3, "records kcat wrote without a key");

    let rows = query(c, "SELECT level, n FROM log_levels ORDER BY level;").await;
    assert_eq!(plain(&rows), vec![vec!["ERROR", "2"], vec!["INFO", "2"]]);
    let rows = query(c, "SELECT level, msg FROM log_errors;").await;
    assert_eq!(
        sorted(&rows),
        vec![vec!["ERROR", "disk full"], vec!["ERROR", "disk still full"]]
    );

    // The keyless output has no keys at all (kcat prints length -1).
    let out = kcat_consume(&rig.brokers, "LOG_ERRORS");
    let mut values: Vec<String> = out
        .iter()
        .map(|r| {
            assert_eq!(r.key, None, "LOG_ERRORS record {r:?} has a key");
            r.value_text().expect("a value")
        })
        .collect();
    values.sort();
    assert_eq!(
        values,
        vec![
            r#"{"LEVEL":"ERROR","MSG":"disk full"}"#,
            r#"{"LEVEL":"ERROR","MSG":"disk still full"}"#
        ]
    );
    // GROUP BY gives the table a key: KAFKA, a plain string.
    let latest = latest_per_key(&kcat_consume(&rig.brokers, "LOG_LEVELS"));
    let bytes = |s: &str| Some(s.as_bytes().to_vec());
    assert_eq!(
        latest,
        BTreeMap::from([
            (bytes("ERROR"), bytes(r#"{"N":2}"#)),
            (bytes("INFO"), bytes(r#"{"N":2}"#)),
        ])
    );
}

/// Windowed tables' changelog keys are laid out as Kafka Streams (and so
/// ksqlDB) write them: the key, then the window start for tumbling and
/// hopping windows, the window end and start for session windows (8 bytes
/// each, big-endian).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_windowed_keys_carry_the_window_as_kafka_streams_writes_it() {
    if !kcat_available("kcat_windowed_keys_carry_the_window_as_kafka_streams_writes_it") {
        return;
    }
    let rig = Rig::start(&[("w_in", 1), ("W_TUMBLE", 1), ("W_SESSION", 1)]).await;
    let c = &rig.client;
    exec(
        c,
        "CREATE STREAM w_in (id VARCHAR KEY, v INT) WITH (kafka_topic='w_in');",
    )
    .await;
    exec(
        c,
        "CREATE TABLE w_tumble AS SELECT id, COUNT(*) AS n FROM w_in \
         WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY id;",
    )
    .await;
    exec(
        c,
        "CREATE TABLE w_session AS SELECT id, COUNT(*) AS n FROM w_in \
         WINDOW SESSION (5 SECONDS) GROUP BY id;",
    )
    .await;
    exec(
        c,
        "INSERT INTO w_in (id, v, ROWTIME) VALUES ('a', 1, 1700000001000), ('a', 2, 1700000003000);",
    )
    .await;
    let rows = query(c, "SELECT n FROM w_session WHERE id = 'a';").await;
    assert_eq!(plain(&rows), vec![vec!["2"]]);
    let rows = query(c, "SELECT n FROM w_tumble WHERE id = 'a';").await;
    assert_eq!(plain(&rows), vec![vec!["2"]]);

    let key = |parts: &[i64]| {
        let mut k = b"a".to_vec();
        for p in parts {
            k.extend_from_slice(&p.to_be_bytes());
        }
        Some(k)
    };
    let latest = latest_per_key(&kcat_consume(&rig.brokers, "W_TUMBLE"));
    assert_eq!(
        latest.keys().cloned().collect::<Vec<_>>(),
        vec![key(&[1_700_000_000_000])],
        "tumbling: key, then the window start"
    );
    // A session's key changes as it grows: the old one is deleted
    // (tombstone), the latest holds the whole session.
    let latest = latest_per_key(&kcat_consume(&rig.brokers, "W_SESSION"));
    let live: Vec<_> = latest
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(
        live,
        vec![key(&[1_700_000_003_000, 1_700_000_001_000])],
        "session: key, then the window end and start"
    );
}

// ---------------------------------------------------------------------------
// 2. Malformed records

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_from_an_outside_producer_go_to_the_processing_log() {
    let rig = Rig::start(&[
        ("j_in", 1),
        ("k_in", 1),
        ("t_in", 1),
        ("d_in", 1),
        ("clean", 1),
        ("J_TOT", 1),
        ("K_TOT", 1),
        ("D_TOT", 1),
        ("CLEAN_TOT", 1),
    ])
    .await;
    let c = &rig.client;
    exec(
        c,
        "CREATE STREAM j_in (id VARCHAR KEY, v INT) WITH (kafka_topic='j_in', value_format='JSON');",
    )
    .await;
    exec(
        c,
        "CREATE STREAM k_in (id INT KEY, v VARCHAR) \
         WITH (kafka_topic='k_in', key_format='KAFKA', value_format='JSON');",
    )
    .await;
    exec(
        c,
        "CREATE STREAM d_in (id VARCHAR KEY, a INT, b VARCHAR) \
         WITH (kafka_topic='d_in', value_format='DELIMITED');",
    )
    .await;
    exec(
        c,
        "CREATE TABLE t_in (id VARCHAR PRIMARY KEY, v INT) WITH (kafka_topic='t_in');",
    )
    .await;
    exec(
        c,
        "CREATE STREAM clean (id VARCHAR KEY, v INT) WITH (kafka_topic='clean');",
    )
    .await;
    exec(
        c,
        "CREATE TABLE j_tot AS SELECT id, SUM(v) AS total, COUNT(*) AS n FROM j_in GROUP BY id;",
    )
    .await;
    exec(
        c,
        "CREATE TABLE k_tot AS SELECT id, COUNT(*) AS n, COLLECT_LIST(v) AS vs FROM k_in GROUP BY id;",
    )
    .await;
    exec(
        c,
        "CREATE TABLE d_tot WITH (value_format='JSON') AS \
         SELECT id, SUM(a) AS a_sum, COUNT(*) AS n, COLLECT_LIST(b) AS bs FROM d_in GROUP BY id;",
    )
    .await;
    exec(
        c,
        "CREATE TABLE clean_tot AS SELECT id, SUM(v) AS total FROM clean GROUP BY id;",
    )
    .await;

    // Good records first: no errors anywhere.
    let p = producer(&rig.brokers);
    let one = 1i32.to_be_bytes();
    produce(&p, "j_in", &[(Some(b"a"), Some(br#"{"V":1}"#))]).await;
    produce(&p, "k_in", &[(Some(&one), Some(br#"{"V":"one"}"#))]).await;
    produce(&p, "d_in", &[(Some(b"a"), Some(b"1,x"))]).await;
    produce(&p, "clean", &[(Some(b"a"), Some(br#"{"V":5}"#))]).await;
    let rows = query(c, "SELECT id, total, n FROM j_tot;").await;
    assert_eq!(plain(&rows), vec![vec!["a", "1", "1"]]);
    for sink in ["J_TOT", "K_TOT", "D_TOT", "CLEAN_TOT"] {
        let (id, status, errors) = rig.query_of(sink).await;
        assert_eq!((status.as_str(), errors), ("RUNNING", 0), "query {id}");
    }

    // Bad records (keyed "x" where the key decodes, so a record that was
    // wrongly processed would show as a row), each followed by a good one.
    let short_key = [0u8, 0, 1];
    produce(
        &p,
        "j_in",
        &[
            (Some(b"x"), Some(br#"{"V": 2"#)),
            (Some(b"x"), Some(br#"{"v": "two"}"#)),
            (Some(b"a"), Some(br#"{"v": 3}"#)),
        ],
    )
    .await;
    produce(
        &p,
        "k_in",
        &[
            (None, Some(br#"{"V":"no key"}"#)),
            (Some(&short_key), Some(br#"{"V":"short key"}"#)),
            (Some(&one), Some(br#"{"V":"two"}"#)),
        ],
    )
    .await;
    produce(
        &p,
        "d_in",
        &[
            (Some(b"x"), Some(b"1,x,extra")),
            (Some(b"x"), Some(b"7")),
            (Some(b"x"), Some(b"notint,y")),
            (Some(b"a"), Some(b"2,y")),
        ],
    )
    .await;
    produce(&p, "clean", &[(Some(b"a"), Some(br#"{"V":6}"#))]).await;
    // A table row needs its key.
    produce(
        &p,
        "t_in",
        &[
            (None, Some(br#"{"V":1}"#)),
            (Some(b"a"), Some(br#"{"V":2}"#)),
        ],
    )
    .await;

    // The good records around the bad ones are processed, nothing else.
    let rows = query(c, "SELECT id, total, n FROM j_tot;").await;
    assert_eq!(plain(&rows), vec![vec!["a", "4", "2"]]);
    let rows = query(c, "SELECT id, n, vs FROM k_tot;").await;
    assert_eq!(plain(&rows), vec![vec!["1", "2", r#"["one","two"]"#]]);
    // A stream record without a key is not malformed: its key columns are
    // NULL (as in ksqlDB), and GROUP BY drops NULL groups.
    let rows = query(c, "SELECT v FROM k_in WHERE id IS NULL;").await;
    assert_eq!(plain(&rows), vec![vec!["no key"]]);
    let rows = query(c, "SELECT id, a_sum, n, bs FROM d_tot;").await;
    assert_eq!(plain(&rows), vec![vec!["a", "3", "2", r#"["x","y"]"#]]);
    let rows = query(c, "SELECT id, total FROM clean_tot;").await;
    assert_eq!(plain(&rows), vec![vec!["a", "11"]]);
    let rows = query(c, "SELECT id, v FROM t_in;").await;
    assert_eq!(plain(&rows), vec![vec!["a", "2"]]);

    // Each bad record is in the processing log once, with where it was,
    // why it failed and the start of its value.
    let (j_id, _, _) = rig.query_of("J_TOT").await;
    let (k_id, _, _) = rig.query_of("K_TOT").await;
    let (d_id, _, _) = rig.query_of("D_TOT").await;
    let (t_id, _, _) = rig.query_of("T_IN").await;
    let rows = query(c, "SELECT * FROM RILL_PROCESSING_LOG;").await;
    let mut log: Vec<Vec<String>> = plain(&rows)
        .into_iter()
        .map(|r| r.into_iter().map(str::to_string).collect())
        .collect();
    log.sort_by(|a, b| (&a[1], a[3].parse::<i64>().ok()).cmp(&(&b[1], b[3].parse::<i64>().ok())));
    let expected: Vec<(&str, &str, &str, &[&str], &str)> = vec![
        (&d_id, "d_in", "1", &["3", "found"], "1,x,extra"),
        (&d_id, "d_in", "2", &["1", "found"], "7"),
        (&d_id, "d_in", "3", &["\"A\"", "notint"], "notint,y"),
        (&j_id, "j_in", "1", &["JSON"], r#"{"V": 2"#),
        (&j_id, "j_in", "2", &["\"V\"", "INTEGER"], r#"{"v": "two"}"#),
        (
            &k_id,
            "k_in",
            "2",
            &["key", "4 bytes", "found 3"],
            r#"{"V":"short key"}"#,
        ),
        (&t_id, "t_in", "0", &["no key"], r#"{"V":1}"#),
    ];
    assert_eq!(log.len(), expected.len(), "processing log: {log:#?}");
    for (row, (query_id, topic, offset, fragments, record)) in log.iter().zip(&expected) {
        assert_eq!(
            (
                &row[0][..],
                &row[1][..],
                &row[2][..],
                &row[3][..],
                &row[5][..]
            ),
            (*query_id, *topic, "0", *offset, *record),
            "processing log row {row:?}"
        );
        for f in *fragments {
            assert!(
                row[4].contains(f),
                "error of {topic} offset {offset} is {:?}, expected it to mention {f:?}",
                row[4]
            );
        }
    }
    // SHOW QUERIES counts them; every query still runs.
    for (sink, bad) in [("J_TOT", 2), ("K_TOT", 1), ("D_TOT", 3), ("CLEAN_TOT", 0)] {
        let (id, status, errors) = rig.query_of(sink).await;
        assert_eq!((status.as_str(), errors), ("RUNNING", bad), "query {id}");
    }
    // The processing log's topic holds one record per bad record.
    let records = consume_partition(&rig.brokers, "rill_processing_log", 0);
    assert_eq!(records.len(), expected.len(), "{records:#?}");
}

// ---------------------------------------------------------------------------
// 3. Order per key across partitions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_survives_a_four_partition_topic() {
    const KEYS: usize = 20;
    const PER_KEY: usize = 100;
    let rig = Rig::start(&[("seq_in", 4), ("SEQ_LAST", 4), ("SEQ_COPY", 4)]).await;
    let c = &rig.client;
    let p = producer(&rig.brokers);
    let batch = |seqs: std::ops::Range<usize>| -> Vec<(String, String)> {
        seqs.flat_map(|seq| {
            (0..KEYS).map(move |k| (format!("k{k}"), format!(r#"{{"SEQ":{seq}}}"#)))
        })
        .collect()
    };
    // Half before the queries exist, half while they run.
    let first = batch(0..PER_KEY / 2);
    produce(&p, "seq_in", &text_records(&first)).await;
    exec(
        c,
        "CREATE STREAM seq_in (id VARCHAR KEY, seq INT) WITH (kafka_topic='seq_in');",
    )
    .await;
    exec(
        c,
        "CREATE TABLE seq_last AS SELECT id, LATEST_BY_OFFSET(seq) AS last, COUNT(*) AS n \
         FROM seq_in GROUP BY id;",
    )
    .await;
    exec(c, "CREATE STREAM seq_copy AS SELECT id, seq FROM seq_in;").await;
    let second = batch(PER_KEY / 2..PER_KEY);
    produce(&p, "seq_in", &text_records(&second)).await;

    let rows = query(c, "SELECT id, last, n FROM seq_last;").await;
    let last = (PER_KEY - 1).to_string();
    let n = PER_KEY.to_string();
    let mut expected: Vec<Vec<String>> = (0..KEYS)
        .map(|k| vec![format!("k{k}"), last.clone(), n.clone()])
        .collect();
    expected.sort();
    let got: Vec<Vec<String>> = sorted(&rows)
        .into_iter()
        .map(|r| r.into_iter().map(str::to_string).collect())
        .collect();
    assert_eq!(got, expected);

    // Where the outside producer put each key (murmur2, as Java clients do).
    let mut input_partition: BTreeMap<String, i32> = BTreeMap::new();
    for partition in 0..4 {
        for (key, _) in consume_partition(&rig.brokers, "seq_in", partition) {
            let key = key.expect("seq_in records have keys");
            let before = input_partition.insert(key.clone(), partition);
            assert!(
                before.is_none_or(|b| b == partition),
                "key {key} in two partitions"
            );
        }
    }
    assert_eq!(input_partition.len(), KEYS);
    let used: std::collections::BTreeSet<_> = input_partition.values().collect();
    assert!(
        used.len() > 1,
        "all keys in one partition: {input_partition:?}"
    );

    // The copy is written by its own query: wait until it has every record.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = query(c, "SELECT id FROM seq_copy;").await;
        if rows.len() >= KEYS * PER_KEY {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SEQ_COPY holds {} of {} records after 30 s",
            rows.len(),
            KEYS * PER_KEY
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // rill's copy: each key in the same partition as in the input, every
    // sequence number once, in order.
    let mut output_partition: BTreeMap<String, i32> = BTreeMap::new();
    let mut seqs: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for partition in 0..4 {
        for (key, value) in consume_partition(&rig.brokers, "SEQ_COPY", partition) {
            let key = key.expect("SEQ_COPY records have keys");
            let value = value.expect("SEQ_COPY records have values");
            let seq = value
                .strip_prefix(r#"{"SEQ":"#)
                .and_then(|v| v.strip_suffix('}'))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("SEQ_COPY value {value:?} is not {{\"SEQ\":n}}"));
            let before = output_partition.insert(key.clone(), partition);
            assert!(
                before.is_none_or(|b| b == partition),
                "key {key} in two partitions"
            );
            seqs.entry(key).or_default().push(seq);
        }
    }
    assert_eq!(
        output_partition, input_partition,
        "rill and the producer place keys alike"
    );
    let in_order: Vec<usize> = (0..PER_KEY).collect();
    for (key, got) in &seqs {
        assert_eq!(got, &in_order, "sequence numbers of {key} in SEQ_COPY");
    }
    assert_eq!(seqs.len(), KEYS);
}

// ---------------------------------------------------------------------------
// 4. The broker goes away and comes back

/// The clicks topic, a counting table and a copy over it, for the broker
/// outage tests.
async fn clicks_rig() -> Rig {
    let rig = Rig::start(&[("clicks", 2), ("CLICK_COUNTS", 2), ("CLICK_COPY", 2)]).await;
    exec(
        &rig.client,
        "CREATE STREAM clicks (id VARCHAR KEY, n INT) WITH (kafka_topic='clicks');",
    )
    .await;
    rig
}

const CLICK_KEYS: usize = 10;

async fn create_click_queries(c: &Client) {
    exec(
        c,
        "CREATE TABLE click_counts AS SELECT id, COUNT(*) AS c, SUM(n) AS total \
         FROM clicks GROUP BY id;",
    )
    .await;
    exec(c, "CREATE STREAM click_copy AS SELECT id, n FROM clicks;").await;
}

/// Clicks `ns`: record n has key `u{n % 10}` and value `{"N":n}`.
fn clicks(ns: std::ops::Range<usize>) -> Vec<(String, String)> {
    ns.map(|n| (format!("u{}", n % CLICK_KEYS), format!(r#"{{"N":{n}}}"#)))
        .collect()
}

/// Checks that CLICK_COUNTS and CLICK_COPY hold exactly the clicks
/// `0..total`, each once (the copy in order per key), and that both queries
/// run without errors.
async fn check_clicks(rig: &Rig, total: usize) {
    let c = &rig.client;
    let mut expected: Vec<Vec<String>> = (0..CLICK_KEYS)
        .map(|k| {
            let ns: Vec<usize> = (0..total).filter(|n| n % CLICK_KEYS == k).collect();
            vec![
                format!("u{k}"),
                ns.len().to_string(),
                ns.iter().sum::<usize>().to_string(),
            ]
        })
        .collect();
    expected.sort();
    let expected_refs: Vec<Vec<&str>> = expected
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    let got = eventually(
        c,
        "SELECT id, c, total FROM click_counts;",
        &expected_refs,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(got, Ok(expected), "CLICK_COUNTS");
    for sink in ["CLICK_COUNTS", "CLICK_COPY"] {
        let (id, status, errors) = rig.query_of(sink).await;
        assert_eq!(
            (status.as_str(), errors),
            ("RUNNING", 0),
            "query {id} after the broker came back"
        );
    }
    let rows = query(c, "SELECT n FROM click_copy;").await;
    assert_eq!(rows.len(), total, "rows in CLICK_COPY");
    let mut per_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for partition in 0..2 {
        for (key, value) in consume_partition(&rig.brokers, "CLICK_COPY", partition) {
            let value = value.expect("CLICK_COPY records have values");
            let n = value
                .strip_prefix(r#"{"N":"#)
                .and_then(|v| v.strip_suffix('}'))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("CLICK_COPY value {value:?} is not {{\"N\":n}}"));
            per_key
                .entry(key.expect("CLICK_COPY records have keys"))
                .or_default()
                .push(n);
        }
    }
    for k in 0..CLICK_KEYS {
        let key = format!("u{k}");
        let want: Vec<usize> = (0..total).filter(|n| n % CLICK_KEYS == k).collect();
        assert_eq!(
            per_key.get(&key),
            Some(&want),
            "records of {key} in the CLICK_COPY topic"
        );
    }
}

/// Takes the broker down for `outage` while `held` is being produced (the
/// producer holds the records until the broker is back), checks the
/// queries keep running meanwhile, then brings it back and waits for the
/// held records to be acknowledged.
async fn outage(rig: &Rig, p: &FutureProducer, held: &[(String, String)], outage: Duration) {
    rig.cluster.broker_down(1).expect("broker down");
    let held_records = text_records(held);
    let delivered = produce(p, "clicks", &held_records);
    tokio::pin!(delivered);
    tokio::select! {
        () = &mut delivered => panic!("records were acknowledged while the broker was down"),
        () = tokio::time::sleep(outage) => {}
    }
    for sink in ["CLICK_COUNTS", "CLICK_COPY"] {
        let (id, status, _) = rig.query_of(sink).await;
        assert_eq!(status, "RUNNING", "query {id} while the broker is down");
    }
    rig.cluster.broker_up(1).expect("broker up");
    delivered.await;
}

/// The mock cluster can take its broker down (connections closed, new ones
/// refused) and bring it back, which is what this test does: while queries
/// work through a backlog, and while an outside producer holds more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_lose_and_duplicate_nothing_when_the_broker_goes_away() {
    let rig = clicks_rig().await;
    let c = &rig.client;
    create_click_queries(c).await;
    let p = producer(&rig.brokers);
    produce(&p, "clicks", &text_records(&clicks(0..1000))).await;
    let rows = query(c, "SELECT id, c FROM click_counts WHERE id = 'u0';").await;
    assert_eq!(plain(&rows), vec![vec!["u0", "100"]]);

    // A backlog, and the broker goes down as soon as it is acknowledged,
    // while the queries are still reading it and writing their outputs.
    produce(&p, "clicks", &text_records(&clicks(1000..6000))).await;
    outage(&rig, &p, &clicks(6000..6500), Duration::from_secs(6)).await;
    // After it is back: more from the outside, and an INSERT.
    produce(&p, "clicks", &text_records(&clicks(6500..7000))).await;
    let insert = try_query(c, "INSERT INTO clicks (id, n) VALUES ('u0', 7000);").await;
    assert!(
        insert.is_ok(),
        "INSERT after the broker came back: {insert:?}"
    );
    check_clicks(&rig, 7001).await;
}

/// The broker goes away just as persistent queries start, before they have
/// opened a reader for every partition of their source: a slow broker (every
/// answer delayed) keeps them on their first partition long enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_that_start_as_the_broker_goes_away_resume_when_it_is_back() {
    let rig = clicks_rig().await;
    let c = &rig.client;
    let p = producer(&rig.brokers);
    produce(&p, "clicks", &text_records(&clicks(0..1000))).await;
    rig.cluster
        .broker_round_trip_time(1, Duration::from_millis(300))
        .expect("slow broker");
    create_click_queries(c).await;
    rig.cluster.broker_down(1).expect("broker down");
    rig.cluster
        .broker_round_trip_time(1, Duration::ZERO)
        .expect("fast broker");
    outage(&rig, &p, &clicks(1000..1500), Duration::from_secs(7)).await;
    produce(&p, "clicks", &text_records(&clicks(1500..2000))).await;
    check_clicks(&rig, 2000).await;
}

// ---------------------------------------------------------------------------
// Read-your-writes over a source stream

/// A pull query over a stream reads its topic "up to now": every record an
/// outside producer had written (and the broker acknowledged) before the
/// query started must be in the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_query_over_a_stream_sees_what_an_outside_producer_wrote() {
    let rig = Rig::start(&[("feed", 1), ("FEED_COPY", 1)]).await;
    let c = &rig.client;
    exec(
        c,
        "CREATE STREAM feed (id VARCHAR KEY, seq INT) WITH (kafka_topic='feed');",
    )
    .await;
    // A persistent query reading the same topic, as in any real setup.
    exec(c, "CREATE STREAM feed_copy AS SELECT id, seq FROM feed;").await;
    let p = producer(&rig.brokers);
    let mut misses = Vec::new();
    for i in 0..20 {
        let value = format!(r#"{{"SEQ":{i}}}"#);
        produce(&p, "feed", &[(Some(b"k"), Some(value.as_bytes()))]).await;
        let rows = query(c, "SELECT seq FROM feed;").await;
        if rows.len() != i + 1 {
            misses.push(format!("after record {i}: {} rows", rows.len()));
        }
        // Let the persistent query reach the end again.
        let _ = query(c, "SELECT seq FROM feed_copy;").await;
    }
    assert!(
        misses.is_empty(),
        "SELECT seq FROM feed; missed acknowledged records: {misses:?}"
    );
}
