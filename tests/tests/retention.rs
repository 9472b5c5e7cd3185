//! Embedded-log retention: `RETENTION_BYTES` and `RETENTION_MS` in WITH
//! delete a topic's oldest segments; what remains reads correctly, queries
//! that kept up lose nothing, and all of it survives a restart.

use std::time::Duration;

use rill_tests::{exec, plain, query, try_query, values_of, wait_until, Server};
use tokio_postgres::Client;

/// Small segments and frequent checks, so a test sees retention act.
/// How long a test waits for rill to get somewhere.
const WAIT: Duration = Duration::from_secs(20);

const ARGS: [&str; 4] = [
    "--log-segment-bytes",
    "2048",
    "--log-retention-check-ms",
    "100",
];

/// Records of `topic` still in the log, from SHOW TOPICS EXTENDED.
async fn records_in(client: &Client, topic: &str) -> u64 {
    let rows = query(client, "SHOW TOPICS EXTENDED;").await;
    plain(&rows)
        .iter()
        .find(|r| r[0] == topic)
        .map(|r| r[2].parse().expect("record count"))
        .unwrap_or_else(|| panic!("topic {topic} not listed"))
}

async fn insert_range(client: &Client, from: usize, to: usize) {
    let values: Vec<String> = (from..to).map(|i| format!("('k{}', {i})", i % 7)).collect();
    exec(
        client,
        &format!("INSERT INTO s (id, v) VALUES {};", values.join(", ")),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_bytes_keeps_the_newest_records_and_a_query_that_kept_up_loses_nothing() {
    let mut server = Server::start_with_args(&ARGS).await.expect("start rill");
    let client = server.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(
        &client,
        "CREATE STREAM s (id VARCHAR KEY, v INT) \
         WITH (kafka_topic='s', value_format='JSON', partitions=1, retention_bytes=8192);",
    )
    .await;
    exec(&client, "CREATE STREAM copy AS SELECT * FROM s;").await;

    const TOTAL: usize = 2_000;
    for from in (0..TOTAL).step_by(100) {
        insert_range(&client, from, from + 100).await;
        // Let the copy catch up before retention can delete what it has
        // not read: a query that keeps up loses nothing.
        wait_until("the copy to catch up", WAIT, || async {
            values_of(&client, "copy").await.len() == from + 100
        })
        .await;
    }
    wait_until("retention to delete old segments of s", WAIT, || async {
        records_in(&client, "s").await < TOTAL as u64 / 2
    })
    .await;

    // Retention may still be catching up with the last INSERTs: wait until
    // several checks in a row leave the topic alone.
    let mut kept = records_in(&client, "s").await as usize;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = records_in(&client, "s").await as usize;
        if now == kept {
            break;
        }
        kept = now;
    }
    assert!(kept > 0, "the newest records stay");
    // What remains is the newest records, in one piece.
    let expected: Vec<usize> = (TOTAL - kept..TOTAL).collect();
    assert_eq!(values_of(&client, "s").await, expected);
    // The copy's own topic has no size limit: everything is there.
    assert_eq!(
        values_of(&client, "copy").await,
        (0..TOTAL).collect::<Vec<_>>()
    );

    // A query started now reads from the new start.
    exec(&client, "CREATE STREAM late_copy AS SELECT * FROM s;").await;
    wait_until("the late copy to read what remains", WAIT, || async {
        values_of(&client, "late_copy").await.len() >= kept
    })
    .await;
    assert_eq!(
        &values_of(&client, "late_copy").await[..kept],
        &expected[..]
    );

    // The start and the retention survive a restart; appends go on.
    server.restart().await.expect("restart");
    let client = server.connect().await.expect("connect after restart");
    let after = records_in(&client, "s").await as usize;
    assert!(after <= kept, "no deleted record comes back");
    insert_range(&client, TOTAL, TOTAL + 50).await;
    let v = values_of(&client, "s").await;
    assert_eq!(v.last(), Some(&(TOTAL + 49)));
    assert_eq!(v, (TOTAL + 50 - v.len()..TOTAL + 50).collect::<Vec<_>>());
    wait_until("the copy to see the new records", WAIT, || async {
        values_of(&client, "copy").await.len() == TOTAL + 50
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_ms_deletes_segments_once_they_are_old_and_bad_values_are_refused() {
    let server = Server::start_with_args(&ARGS).await.expect("start rill");
    let client = server.connect().await.expect("connect");
    exec(
        &client,
        "CREATE STREAM s (id VARCHAR KEY, v INT) \
         WITH (kafka_topic='s', value_format='JSON', partitions=1, retention_ms=1000);",
    )
    .await;
    exec(
        &client,
        "CREATE STREAM keep (id VARCHAR KEY, v INT) \
         WITH (kafka_topic='keep', value_format='JSON', partitions=1);",
    )
    .await;
    // Ten INSERTs, so ten segments (a batch is never split).
    for from in (0..500).step_by(50) {
        insert_range(&client, from, from + 50).await;
    }
    exec(
        &client,
        &format!(
            "INSERT INTO keep (id, v) VALUES {};",
            (0..500)
                .map(|i| format!("('k', {i})"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .await;
    assert_eq!(records_in(&client, "s").await, 500);
    // Once a second has passed, every segment but the one being written
    // goes; the default retention (7 days) keeps `keep` whole.
    wait_until("old segments of s to go", WAIT, || async {
        records_in(&client, "s").await < 100
    })
    .await;
    assert_eq!(records_in(&client, "keep").await, 500);

    for bad in ["0", "-2", "'soon'"] {
        let sql = format!(
            "CREATE STREAM bad (v INT) WITH (kafka_topic='bad', value_format='JSON', \
             partitions=1, retention_ms={bad});"
        );
        let err = try_query(&client, &sql).await.expect_err("refused");
        assert!(
            err.to_string()
                .contains("RETENTION_MS must be a positive integer or -1"),
            "{err}"
        );
    }
    // -1: no limit.
    exec(
        &client,
        "CREATE STREAM forever (v INT) WITH (kafka_topic='forever', value_format='JSON', \
         partitions=1, retention_ms=-1, retention_bytes=-1);",
    )
    .await;
}
