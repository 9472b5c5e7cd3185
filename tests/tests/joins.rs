//! Joins against the real thing: in Kafka mode (librdkafka's mock cluster,
//! tables deleted by tombstones from an outside producer, inputs with
//! different partition counts), and across `kill -9` in embedded mode (the
//! join state a query restarts from gives each result exactly once).

mod common;

use std::time::Duration;

use common::{producer, NO_COMMAND_TOPIC};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rill_tests::{exec, plain, query, sorted, Server};

/// Produces one record (`None`: a tombstone) with an event time.
async fn send(p: &FutureProducer, topic: &str, key: &str, value: Option<&str>, ts: i64) {
    let mut record = FutureRecord::<str, str>::to(topic).key(key).timestamp(ts);
    if let Some(v) = value {
        record = record.payload(v);
    }
    p.send(record, Duration::from_secs(10))
        .await
        .expect("produce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_joins_follow_tombstones_across_partition_counts() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    // Inputs are not co-partitioned: a query reads every partition of
    // every input, so joins need no repartitioning.
    cluster.create_topic("customers", 2, 1).expect("topic");
    cluster.create_topic("tiers", 1, 1).expect("topic");
    cluster.create_topic("orders", 3, 1).expect("topic");
    // The mock cluster has no admin API: output topics must exist, with
    // the first source's partition count.
    for (t, partitions) in [("SPEND", 3), ("CT", 2), ("rill_processing_log", 1)] {
        cluster.create_topic(t, partitions, 1).expect("topic");
    }
    let brokers = cluster.bootstrap_servers();
    let server = Server::start_with_args(&["--kafka-brokers", &brokers, NO_COMMAND_TOPIC])
        .await
        .expect("start rill against the mock cluster");
    let client = server.connect().await.expect("connect");

    let p = producer(&brokers);
    const T: i64 = 1_700_000_000_000;
    send(&p, "customers", "c1", Some(r#"{"NAME":"alice"}"#), T).await;
    send(&p, "customers", "c2", Some(r#"{"NAME":"bob"}"#), T).await;
    send(&p, "tiers", "c1", Some(r#"{"TIER":"gold"}"#), T).await;
    send(&p, "tiers", "c2", Some(r#"{"TIER":"silver"}"#), T).await;
    for (i, (oid, cust, amount)) in [("o1", "c1", 10), ("o2", "c2", 5), ("o3", "c3", 7)]
        .into_iter()
        .enumerate()
    {
        let value = format!(r#"{{"CUST":"{cust}","AMOUNT":{amount}}}"#);
        send(&p, "orders", oid, Some(&value), T + 10 * (i as i64 + 1)).await;
    }

    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(&client, "CREATE TABLE customers (id VARCHAR PRIMARY KEY, name VARCHAR) WITH (kafka_topic='customers', value_format='JSON');").await;
    exec(&client, "CREATE TABLE tiers (id VARCHAR PRIMARY KEY, tier VARCHAR) WITH (kafka_topic='tiers', value_format='JSON');").await;
    exec(&client, "CREATE STREAM orders (oid VARCHAR KEY, cust VARCHAR, amount INT) WITH (kafka_topic='orders', value_format='JSON');").await;
    exec(&client, "CREATE TABLE spend AS SELECT c.name, SUM(o.amount) AS total FROM orders o JOIN customers c ON o.cust = c.id GROUP BY c.name;").await;
    exec(&client, "CREATE TABLE ct AS SELECT c.id, c.name, t.tier FROM customers c LEFT JOIN tiers t ON c.id = t.id;").await;

    // o3's customer does not exist: the inner join drops it.
    let rows = query(&client, "SELECT name, total FROM spend;").await;
    assert_eq!(sorted(&rows), vec![vec!["alice", "10"], vec!["bob", "5"]]);
    let rows = query(&client, "SELECT id, name, tier FROM ct;").await;
    assert_eq!(
        sorted(&rows),
        vec![vec!["c1", "alice", "gold"], vec!["c2", "bob", "silver"]]
    );

    // A tombstone on the right side keeps the left row with NULLs; one on
    // the left side retracts the joined row.
    send(&p, "tiers", "c2", None, T + 100).await;
    send(&p, "customers", "c1", None, T + 100).await;
    let rows = query(&client, "SELECT id, name, tier FROM ct;").await;
    assert_eq!(sorted(&rows), vec![vec!["c2", "bob", "NULL"]]);

    // An order for the deleted customer, after the delete, meets no row;
    // one for bob does.
    send(
        &p,
        "orders",
        "o4",
        Some(r#"{"CUST":"c1","AMOUNT":100}"#),
        T + 200,
    )
    .await;
    send(
        &p,
        "orders",
        "o5",
        Some(r#"{"CUST":"c2","AMOUNT":1}"#),
        T + 200,
    )
    .await;
    let rows = query(&client, "SELECT name, total FROM spend;").await;
    assert_eq!(sorted(&rows), vec![vec!["alice", "10"], vec!["bob", "6"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_state_survives_kill9() {
    let mut server = Server::start().await.expect("start rill");
    let client = server.connect().await.expect("connect");
    for sql in [
        "SET 'auto.offset.reset' = 'earliest';",
        "CREATE STREAM imp (iid VARCHAR KEY, ad VARCHAR, ts BIGINT) WITH (kafka_topic='imp', value_format='JSON', partitions=2, timestamp='ts');",
        "CREATE STREAM clk (cid VARCHAR KEY, ad VARCHAR, ts BIGINT) WITH (kafka_topic='clk', value_format='JSON', partitions=1, timestamp='ts');",
        "CREATE TABLE ads (ad VARCHAR PRIMARY KEY, owner VARCHAR, ts BIGINT) WITH (kafka_topic='ads', value_format='JSON', partitions=1, timestamp='ts');",
        "CREATE TABLE per_imp AS SELECT i.iid, COUNT(*) AS n, HISTOGRAM(COALESCE(c.cid, '-')) AS clicks FROM imp i LEFT JOIN clk c WITHIN 5 SECONDS GRACE PERIOD 0 SECONDS ON i.ad = c.ad GROUP BY i.iid;",
        "CREATE TABLE per_owner AS SELECT a.owner, COUNT(*) AS n FROM imp i JOIN ads a ON i.ad = a.ad GROUP BY a.owner;",
        "INSERT INTO ads (ad, owner, ts) VALUES ('ad1', 'ann', 0), ('ad2', 'ann', 0);",
        "INSERT INTO imp (iid, ad, ts) VALUES ('i1', 'ad1', 1000), ('i2', 'ad2', 2000);",
        "INSERT INTO clk (cid, ad, ts) VALUES ('k1', 'ad1', 3000);",
    ] {
        exec(&client, sql).await;
    }
    let rows = query(&client, "SELECT iid, n, clicks FROM per_imp;").await;
    assert_eq!(plain(&rows), vec![vec!["i1", "1", r#"{"k1":1}"#]]);
    let rows = query(&client, "SELECT owner, n FROM per_owner;").await;
    assert_eq!(plain(&rows), vec![vec!["ann", "2"]]);

    // i2 waits in the join's state for a click; ad2 changes owner at 5000.
    server.kill9();
    server.restart().await.expect("restart");
    let client = server.connect().await.expect("reconnect");
    exec(
        &client,
        "INSERT INTO ads (ad, owner, ts) VALUES ('ad2', 'bo', 5000);",
    )
    .await;
    exec(
        &client,
        "INSERT INTO clk (cid, ad, ts) VALUES ('k2', 'ad2', 6500);",
    )
    .await;
    exec(
        &client,
        "INSERT INTO imp (iid, ad, ts) VALUES ('i3', 'ad3', 15000), ('i4', 'ad2', 15000);",
    )
    .await;
    let rows = query(&client, "SELECT iid, n, clicks FROM per_imp;").await;
    assert_eq!(
        sorted(&rows),
        vec![
            vec!["i1", "1", r#"{"k1":1}"#],
            vec!["i2", "1", r#"{"k2":1}"#]
        ]
    );
    // i4 at 15000 meets ad2's version of 5000.
    let rows = query(&client, "SELECT owner, n FROM per_owner;").await;
    assert_eq!(sorted(&rows), vec![vec!["ann", "2"], vec!["bo", "1"]]);

    // i3 has no click; its window closes once the watermark passes 20000,
    // after another crash: it comes out once, with NULLs.
    server.kill9();
    server.restart().await.expect("restart");
    let client = server.connect().await.expect("reconnect");
    exec(
        &client,
        "INSERT INTO clk (cid, ad, ts) VALUES ('k9', 'zz', 30000);",
    )
    .await;
    let rows = query(&client, "SELECT iid, n, clicks FROM per_imp;").await;
    assert_eq!(
        sorted(&rows),
        vec![
            vec!["i1", "1", r#"{"k1":1}"#],
            vec!["i2", "1", r#"{"k2":1}"#],
            vec!["i3", "1", r#"{"-":1}"#],
            vec!["i4", "1", r#"{"-":1}"#]
        ]
    );
    // What the join keeps stays within the window: the clicks and
    // impressions the watermark passed are gone.
    let rows = query(&client, "DESCRIBE per_imp EXTENDED;").await;
    let state = plain(&rows)
        .into_iter()
        .find(|r| r[1].ends_with("join_state.CLK"))
        .map(|r| r[2].to_string())
        .expect("join state in DESCRIBE EXTENDED");
    assert_eq!(state, "left 0 entries, right 1 entries");
}
