//! Kafka mode against a real Kafka-protocol broker: librdkafka's in-process
//! mock cluster. Records produced by an outside producer are processed by
//! rill's queries, and what rill writes is readable by an outside consumer.

mod common;

use std::time::Duration;

use common::{consume_raw, producer, NO_COMMAND_TOPIC};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use rill_tests::{describe_error, exec, expect_sqlstate, external_broker, plain, query, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_over_a_multi_partition_topic_written_by_another_producer() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("bids", 3, 1).expect("topic");
    // The mock cluster has no admin API: rill's output topic must exist.
    cluster.create_topic("TOTALS", 3, 1).expect("topic");
    cluster
        .create_topic("rill_processing_log", 1, 1)
        .expect("topic");
    let brokers = cluster.bootstrap_servers();
    let server = Server::start_with_args(&["--kafka-brokers", &brokers, NO_COMMAND_TOPIC])
        .await
        .expect("start rill against the mock cluster");
    let client = server.connect().await.expect("connect");

    // An outside producer writes JSON bids to all three partitions.
    let p = producer(&brokers);
    for (i, (id, price)) in [("a", 10), ("b", 5), ("a", 7), ("c", 1), ("b", 2), ("a", 3)]
        .into_iter()
        .enumerate()
    {
        let value = format!(r#"{{"PRICE": {price}, "note": "extra fields are ignored"}}"#);
        p.send(
            FutureRecord::to("bids")
                .key(id)
                .payload(&value)
                .partition((i % 3) as i32)
                .timestamp(1_700_000_000_000 + i as i64),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    }

    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(
        &client,
        "CREATE STREAM bids (id VARCHAR KEY, price INT) WITH (kafka_topic='bids', value_format='JSON', key_format='KAFKA');",
    )
    .await;
    // Exactly once keeps state topics, which this rill (no command topic:
    // the mock cluster cannot create topics) does not: refused, not quietly
    // given at least once.
    exec(&client, "SET 'processing.guarantee' = 'exactly_once';").await;
    let err = expect_sqlstate(
        &client,
        "CREATE TABLE totals AS SELECT id, SUM(price) AS total, COUNT(*) AS n FROM bids GROUP BY id;",
        "0A000",
    )
    .await;
    assert!(
        describe_error(&err).contains("--kafka-command-topic"),
        "{}",
        describe_error(&err)
    );
    exec(&client, "SET 'processing.guarantee' = 'at_least_once';").await;
    exec(
        &client,
        "CREATE TABLE totals AS SELECT id, SUM(price) AS total, COUNT(*) AS n FROM bids GROUP BY id;",
    )
    .await;
    let rows = query(&client, "SELECT id, total, n FROM totals ORDER BY id;").await;
    assert_eq!(
        plain(&rows),
        vec![
            vec!["a", "20", "3"],
            vec!["b", "7", "2"],
            vec!["c", "1", "1"]
        ]
    );

    // INSERT goes to Kafka and shows up in the derived table.
    exec(&client, "INSERT INTO bids (id, price) VALUES ('c', 100);").await;
    let rows = query(&client, "SELECT total FROM totals WHERE id = 'c';").await;
    assert_eq!(plain(&rows), vec![vec!["101"]]);

    // A malformed record from the outside producer is skipped and lands in
    // the processing log; the totals do not change.
    p.send(
        FutureRecord::to("bids")
            .key("a")
            .payload("{not json")
            .partition(0),
        Duration::from_secs(10),
    )
    .await
    .expect("produce");
    let rows = query(
        &client,
        "SELECT topic, partition, record FROM RILL_PROCESSING_LOG;",
    )
    .await;
    assert_eq!(plain(&rows), vec![vec!["bids", "0", "{not json"]]);
    let rows = query(&client, "SELECT total FROM totals WHERE id = 'a';").await;
    assert_eq!(plain(&rows), vec![vec!["20"]]);

    // The query's progress is visible to lag tools as consumer group
    // rill-<query id>: all 8 records of BIDS consumed.
    let queries = query(&client, "SHOW QUERIES;").await;
    let id = plain(&queries)
        .into_iter()
        .find(|r| r.contains(&"TOTALS"))
        .map(|r| r[0].to_string())
        .expect("the CTAS query in SHOW QUERIES");
    let group: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("rill-{id}"))
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition("bids", p);
    }
    let mut committed = 0;
    for _ in 0..50 {
        let offsets = group
            .committed_offsets(tpl.clone(), Duration::from_secs(5))
            .expect("committed offsets");
        committed = offsets
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum::<i64>();
        if committed == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(committed, 8, "offsets committed for group rill-{id}");

    // rill's own output topic reads back with a plain consumer: the
    // changelog of TOTALS keyed by ID, JSON values.
    let mut all = Vec::new();
    for partition in 0..3 {
        all.extend(consume_raw(&brokers, "TOTALS", partition, 0));
    }
    let latest_c = all
        .iter()
        .rfind(|(k, _)| k.as_deref() == Some(&b"c"[..]))
        .and_then(|(_, v)| v.as_deref())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("a record for key c in TOTALS");
    assert!(latest_c.contains("\"TOTAL\":101"), "got {latest_c}");
}

/// The same flow against a separately running broker (Tansu in CI:
/// `.ci/run` starts it and sets `RILL_TEST_KAFKA_BROKERS`). Here rill
/// creates its topics itself through the admin API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_against_an_external_broker() {
    let Some((brokers, suffix)) = external_broker() else {
        return;
    };
    let topic = format!("orders_{suffix}");
    // Its own command topic: other tests share the broker.
    let commands = format!("--kafka-command-topic=_rill_commands_{suffix}");
    let server = Server::start_with_args(&["--kafka-brokers", &brokers, &commands])
        .await
        .expect("start rill against the external broker");
    let client = server.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(
        &client,
        &format!(
            "CREATE STREAM orders (id VARCHAR KEY, amount INT) WITH (kafka_topic='{topic}', partitions=3);"
        ),
    )
    .await;
    exec(
        &client,
        &format!(
            "CREATE TABLE spend WITH (kafka_topic='spend_{suffix}') AS SELECT id, SUM(amount) AS total FROM orders GROUP BY id;"
        ),
    )
    .await;
    // An outside producer and rill's own INSERT feed the same stream.
    let p = producer(&brokers);
    for (id, amount) in [("a", 1), ("b", 2), ("a", 3)] {
        p.send(
            FutureRecord::to(&topic)
                .key(id)
                .payload(&format!(r#"{{"AMOUNT": {amount}}}"#)),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    }
    exec(
        &client,
        "INSERT INTO orders (id, amount) VALUES ('b', 10), ('c', 5);",
    )
    .await;
    let rows = query(&client, "SELECT id, total FROM spend ORDER BY id;").await;
    assert_eq!(
        plain(&rows),
        vec![vec!["a", "4"], vec!["b", "12"], vec!["c", "5"]]
    );
    // A pull query over the stream sees all five records.
    let rows = query(&client, "SELECT id FROM orders;").await;
    assert_eq!(rows.len(), 5);
}
