//! Kafka mode: a rill whose data dir is lost comes back from Kafka alone.
//! A new rill with an empty data dir, pointed at the same cluster and
//! command topic, replays the command topic (every stream, table and
//! query), restores each query's state, rows and offsets from its state
//! topic, and goes on from there: nothing is recomputed, and new records
//! are counted once on top of the old ones.
//!
//! Needs a broker with an admin API: the one `.ci/run` starts
//! (`RILL_TEST_KAFKA_BROKERS`); skipped without it.

use std::time::{Duration, Instant};

use rill_tests::{exec, external_broker, plain, query, sorted, Server};
use tokio_postgres::Client;

async fn insert(client: &Client, from: i64, to: i64) {
    let values: Vec<String> = (from..to)
        .map(|i| {
            format!(
                "('c{}', {}, {})",
                i % 4,
                i % 97,
                1_700_000_000_000 + i * 1_000
            )
        })
        .collect();
    exec(
        client,
        &format!(
            "INSERT INTO orders (id, amount, ts) VALUES {};",
            values.join(", ")
        ),
    )
    .await;
}

/// (id, total, n) and (id, window start, average) expected over records
/// `0..to`.
fn expected(to: i64) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let mut totals = std::collections::BTreeMap::<String, (i64, i64)>::new();
    let mut windows = std::collections::BTreeMap::<(String, i64), (i64, i64)>::new();
    for i in 0..to {
        let id = format!("c{}", i % 4);
        let amount = i % 97;
        let t = totals.entry(id.clone()).or_default();
        *t = (t.0 + amount, t.1 + 1);
        let ts = 1_700_000_000_000 + i * 1_000;
        let w = windows.entry((id, ts - ts % 10_000)).or_default();
        *w = (w.0 + amount, w.1 + 1);
    }
    let totals = totals
        .into_iter()
        .map(|(id, (total, n))| vec![id, total.to_string(), n.to_string()])
        .collect();
    let windows = windows
        .into_iter()
        .map(|((id, start), (sum, n))| {
            vec![id, start.to_string(), format!("{}", sum as f64 / n as f64)]
        })
        .collect();
    (totals, windows)
}

async fn tables(client: &Client) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let owned = |rows: Vec<Vec<&str>>| -> Vec<Vec<String>> {
        rows.into_iter()
            .map(|r| r.into_iter().map(str::to_string).collect())
            .collect()
    };
    let totals = owned(sorted(
        &query(client, "SELECT id, total, n FROM spend;").await,
    ));
    let windows = owned(sorted(
        &query(client, "SELECT id, WINDOWSTART, a FROM avg_w;").await,
    ));
    (totals, windows)
}

async fn wait_for_tables(client: &Client, to: i64) {
    let want = expected(to);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = tables(client).await;
        if got == want || Instant::now() > deadline {
            assert_eq!(got, want, "tables over records 0..{to}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_data_dir_is_rebuilt_from_the_command_and_state_topics() {
    let Some((brokers, suffix)) = external_broker() else {
        return;
    };
    let commands = format!("--kafka-command-topic=_rill_commands_{suffix}");
    let args = ["--kafka-brokers", brokers.as_str(), commands.as_str()];

    let mut first = Server::start_with_args(&args).await.expect("start rill");
    let client = first.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    for sql in [
        format!(
            "CREATE STREAM orders (id VARCHAR KEY, amount INT, ts BIGINT) \
             WITH (kafka_topic='orders_{suffix}', partitions=2, timestamp='ts');"
        ),
        format!(
            "CREATE TABLE spend WITH (kafka_topic='spend_{suffix}') AS \
             SELECT id, SUM(amount) AS total, COUNT(*) AS n FROM orders GROUP BY id;"
        ),
        // AVG keeps a sum and a count the output row does not show.
        format!(
            "CREATE TABLE avg_w WITH (kafka_topic='avgw_{suffix}') AS \
             SELECT id, AVG(amount) AS a FROM orders WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY id;"
        ),
        format!(
            "CREATE STREAM big WITH (kafka_topic='big_{suffix}') AS \
             SELECT id, amount FROM orders WHERE amount > 80;"
        ),
        // Dropped again: the rebuilt catalog must not have it.
        format!("CREATE STREAM gone WITH (kafka_topic='gone_{suffix}') AS SELECT id FROM orders;"),
        "DROP STREAM gone;".to_string(),
    ] {
        exec(&client, &sql).await;
    }
    insert(&client, 0, 200).await;
    wait_for_tables(&client, 200).await;
    let queries_before = sorted(&query(&client, "SHOW QUERIES;").await)
        .iter()
        .map(|r| r[0].to_string())
        .collect::<Vec<_>>();
    drop(client);
    first.stop().expect("stop the first rill");
    drop(first); // its data dir is deleted

    let second = Server::start_with_args(&args)
        .await
        .expect("start a fresh rill");
    let client = second.connect().await.expect("connect");
    let names = |rows: Vec<Vec<&str>>| rows.iter().map(|r| r[0].to_string()).collect::<Vec<_>>();
    let streams = names(sorted(&query(&client, "SHOW STREAMS;").await));
    assert!(streams.contains(&"ORDERS".to_string()) && streams.contains(&"BIG".to_string()));
    assert!(
        !streams.contains(&"GONE".to_string()),
        "a dropped stream stays dropped"
    );
    let rows = query(&client, "SHOW QUERIES;").await;
    let queries = sorted(&rows);
    assert_eq!(
        queries.iter().map(|r| r[0].to_string()).collect::<Vec<_>>(),
        queries_before,
        "the same queries, under the same ids"
    );
    wait_for_tables(&client, 200).await;
    // Right, and restored rather than recomputed: no query read a record
    // again.
    let rows = query(&client, "SHOW QUERIES;").await;
    for q in plain(&rows) {
        assert_eq!(q[1], "RUNNING", "{q:?}");
        assert_eq!(q[5], "0", "rows_in of {} after the rebuild", q[0]);
    }

    // New records count once on top of the restored state.
    insert(&client, 200, 260).await;
    wait_for_tables(&client, 260).await;
    let big: Vec<i64> = plain(&query(&client, "SELECT amount FROM big;").await)
        .iter()
        .map(|r| r[0].parse().expect("amount"))
        .collect();
    let want = (0..260).filter(|i| i % 97 > 80).count();
    assert_eq!(big.len(), want, "big holds each qualifying record once");
}
