//! Restarts, clean (SIGTERM) and not (SIGKILL): the catalog, the persistent
//! queries and their tables come back, and the queries continue from where
//! their state says: nothing acknowledged is lost, nothing is counted twice.

use std::time::Duration;

use rill_tests::{exec, plain, query, sorted, Server};
use tokio::time::timeout;
use tokio_postgres::Client;

async fn create_everything(client: &Client) {
    exec(client, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(
        client,
        "CREATE STREAM s (id VARCHAR KEY, v INT, ts BIGINT) \
         WITH (kafka_topic='s', value_format='JSON', partitions=1, timestamp='ts');",
    )
    .await;
    exec(
        client,
        "CREATE TABLE users (id VARCHAR PRIMARY KEY, region VARCHAR) \
         WITH (kafka_topic='users', value_format='JSON', partitions=1);",
    )
    .await;
    exec(
        client,
        "CREATE STREAM big AS SELECT id, v * 2 AS v2 FROM s WHERE v > 1 EMIT CHANGES;",
    )
    .await;
    exec(
        client,
        "CREATE TABLE counts AS SELECT id, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY id EMIT CHANGES;",
    )
    .await;
    exec(
        client,
        "CREATE TABLE w AS SELECT id, COUNT(*) AS n FROM s \
         WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 0 SECONDS) GROUP BY id EMIT CHANGES;",
    )
    .await;
    exec(
        client,
        "CREATE TABLE per_region AS SELECT region, COUNT(*) AS n FROM users GROUP BY region EMIT CHANGES;",
    )
    .await;
}

fn names(rows: &[rill_tests::TextRow]) -> Vec<String> {
    let mut names: Vec<String> = rows
        .iter()
        .filter_map(|r| r.first().cloned().flatten())
        .collect();
    names.sort();
    names
}

/// Checks the state after the first batch of inserts.
async fn check_first_batch(client: &Client) {
    let rows = query(client, "SELECT id, n, total FROM counts;").await;
    assert_eq!(
        sorted(&rows),
        vec![vec!["a", "2", "4"], vec!["b", "1", "2"]]
    );
    let rows = query(client, "SELECT id, WINDOWSTART, n FROM w;").await;
    assert_eq!(
        sorted(&rows),
        vec![vec!["a", "0", "2"], vec!["b", "10000", "1"]]
    );
    let rows = query(client, "SELECT * FROM per_region;").await;
    assert_eq!(sorted(&rows), vec![vec!["A", "1"], vec!["B", "1"]]);
    let rows = query(client, "SELECT region FROM users WHERE id = 'u1';").await;
    assert_eq!(plain(&rows), vec![vec!["A"]]);
}

async fn insert_first_batch(client: &Client) {
    exec(
        client,
        "INSERT INTO s (id, v, ts) VALUES ('a', 1, 1000), ('a', 3, 2000), ('b', 2, 12000);",
    )
    .await;
    exec(
        client,
        "INSERT INTO users (id, region) VALUES ('u1', 'A'), ('u2', 'B');",
    )
    .await;
}

/// Inserts after the restart and checks that the queries continued: no
/// record lost, none counted twice, window state and stream time kept.
async fn continue_after_restart(client: &Client) {
    // a@5000 is late for w: stream time was 12000 before the restart and
    // [0,10000) closed (grace 0). If the restart forgot stream time, it
    // would count.
    exec(
        client,
        "INSERT INTO s (id, v, ts) VALUES ('a', 10, 5000), ('c', 7, 13000);",
    )
    .await;
    let rows = query(client, "SELECT id, n, total FROM counts;").await;
    assert_eq!(
        sorted(&rows),
        vec![
            vec!["a", "3", "14"],
            vec!["b", "1", "2"],
            vec!["c", "1", "7"]
        ]
    );
    let rows = query(client, "SELECT id, WINDOWSTART, n FROM w;").await;
    assert_eq!(
        sorted(&rows),
        vec![
            vec!["a", "0", "2"],
            vec!["b", "10000", "1"],
            vec!["c", "10000", "1"]
        ]
    );
    // A table source continues too: u1 moves from A to B.
    exec(client, "INSERT INTO users (id, region) VALUES ('u1', 'B');").await;
    let rows = query(client, "SELECT * FROM per_region;").await;
    assert_eq!(sorted(&rows), vec![vec!["B", "2"]]);

    // The CSAS output kept its old records and appended new ones once:
    // b 2*2 (before), a 10*2 and c 7*2 (after); a's 1 is filtered out,
    // a's 3 gives 6.
    exec(client, "SET 'auto.offset.reset' = 'earliest';").await;
    let rows = timeout(
        Duration::from_secs(20),
        query(client, "SELECT id, v2 FROM big EMIT CHANGES LIMIT 4;"),
    )
    .await
    .expect("push query over the CSAS output completes");
    assert_eq!(
        plain(&rows),
        vec![
            vec!["a", "6"],
            vec!["b", "4"],
            vec!["a", "20"],
            vec!["c", "14"]
        ]
    );
}

async fn check_catalog(client: &Client) {
    let streams = names(&query(client, "SHOW STREAMS;").await);
    for name in ["BIG", "S"] {
        assert!(
            streams.iter().any(|n| n == name),
            "SHOW STREAMS has {name}: {streams:?}"
        );
    }
    let tables = names(&query(client, "SHOW TABLES;").await);
    for name in ["COUNTS", "PER_REGION", "USERS", "W"] {
        assert!(
            tables.iter().any(|n| n == name),
            "SHOW TABLES has {name}: {tables:?}"
        );
    }
    exec(client, "DESCRIBE counts;").await;
    exec(client, "SHOW QUERIES;").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_restart_keeps_catalog_queries_and_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(dir.path()).await.expect("start rill");
    {
        let client = server.connect().await.expect("connect");
        create_everything(&client).await;
        insert_first_batch(&client).await;
        check_first_batch(&client).await;
    }
    let status = server.stop().expect("rill stops on SIGTERM");
    assert!(status.success(), "a clean shutdown exits 0, got {status}");

    server.restart().await.expect("restart rill");
    let client = server.connect().await.expect("connect after restart");
    check_catalog(&client).await;
    check_first_batch(&client).await;
    continue_after_restart(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_restart_keeps_catalog_queries_and_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(dir.path()).await.expect("start rill");
    {
        let client = server.connect().await.expect("connect");
        create_everything(&client).await;
        insert_first_batch(&client).await;
        check_first_batch(&client).await;
    }
    server.kill9();

    server.restart().await.expect("restart rill after kill -9");
    let client = server.connect().await.expect("connect after restart");
    check_catalog(&client).await;
    check_first_batch(&client).await;
    continue_after_restart(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_inserts_survive_repeated_crashes_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(dir.path()).await.expect("start rill");
    {
        let client = server.connect().await.expect("connect");
        exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
        exec(
            &client,
            "CREATE STREAM s (id VARCHAR KEY, v INT) \
             WITH (kafka_topic='s', value_format='JSON', partitions=1);",
        )
        .await;
        exec(
            &client,
            "CREATE TABLE counts AS SELECT id, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY id EMIT CHANGES;",
        )
        .await;
    }
    let mut expected_n = 0;
    let mut expected_total = 0;
    for round in 0..4 {
        let client = server.connect().await.expect("connect");
        // Inserts in many small statements, then a crash right after the
        // last one is acknowledged, without reading first.
        for i in 0..25 {
            exec(
                &client,
                &format!("INSERT INTO s (id, v) VALUES ('k', {i});"),
            )
            .await;
            expected_n += 1;
            expected_total += i;
        }
        drop(client);
        server.kill9();
        server.restart().await.expect("restart after kill -9");
        let client = server.connect().await.expect("connect");
        let rows = query(&client, "SELECT n, total FROM counts WHERE id = 'k';").await;
        assert_eq!(
            plain(&rows),
            vec![vec![
                expected_n.to_string().as_str(),
                expected_total.to_string().as_str()
            ]],
            "after crash #{round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_while_a_push_query_and_inserts_are_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(dir.path()).await.expect("start rill");
    let client = server.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(
        &client,
        "CREATE STREAM s (id VARCHAR KEY, v INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);",
    )
    .await;
    exec(
        &client,
        "CREATE TABLE counts AS SELECT id, COUNT(*) AS n FROM s GROUP BY id EMIT CHANGES;",
    )
    .await;
    let reader = server.connect().await.expect("connect");
    exec(&reader, "SET 'auto.offset.reset' = 'earliest';").await;
    let push = tokio::spawn(async move {
        let _ = reader.simple_query("SELECT * FROM s EMIT CHANGES;").await;
    });

    // Inserts run in a task; those acknowledged before the crash must
    // survive, the one in flight may or may not.
    let writer = tokio::spawn(async move {
        let mut acknowledged = 0u64;
        for i in 0..10_000 {
            match client
                .simple_query(&format!("INSERT INTO s (id, v) VALUES ('k', {i});"))
                .await
            {
                Ok(_) => acknowledged += 1,
                Err(_) => break,
            }
        }
        acknowledged
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    let acknowledged = timeout(Duration::from_secs(20), writer)
        .await
        .expect("writer notices the crash")
        .expect("writer task");
    let _ = timeout(Duration::from_secs(20), push).await;
    assert!(
        acknowledged > 0,
        "some inserts were acknowledged before the crash"
    );

    server.restart().await.expect("restart after kill -9");
    let client = server.connect().await.expect("connect");
    let rows = query(&client, "SELECT n FROM counts WHERE id = 'k';").await;
    let n: u64 = plain(&rows)[0][0].parse().expect("a count");
    assert!(
        n == acknowledged || n == acknowledged + 1,
        "{acknowledged} inserts were acknowledged (one more may have been in flight), the table counts {n}"
    );
    // And the stream holds exactly as many records as the table counted.
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    let rows = timeout(
        Duration::from_secs(30),
        query(&client, &format!("SELECT v FROM s EMIT CHANGES LIMIT {n};")),
    )
    .await
    .expect("push query over the recovered stream completes");
    let vs: Vec<u64> = plain(&rows)
        .iter()
        .map(|r| r[0].parse().expect("int"))
        .collect();
    assert_eq!(
        vs,
        (0..n).collect::<Vec<_>>(),
        "records in order, none lost or repeated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_shuts_down_cleanly_and_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(dir.path()).await.expect("start rill");
    {
        let client = server.connect().await.expect("connect");
        create_everything(&client).await;
        insert_first_batch(&client).await;
    }
    let status = server.interrupt().expect("rill stops on SIGINT");
    assert!(status.success(), "SIGINT exits 0, got {status}");
    server.restart().await.expect("restart rill");
    let client = server.connect().await.expect("connect after restart");
    check_first_batch(&client).await;
    continue_after_restart(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_sessions_and_push_queries_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(dir.path()).await.expect("start rill");
    let client = server.connect().await.expect("connect");
    create_everything(&client).await;
    insert_first_batch(&client).await;
    // An endless push query and an idle session must not hold the
    // shutdown up.
    let reader = server.connect().await.expect("connect");
    exec(&reader, "SET 'auto.offset.reset' = 'earliest';").await;
    let push = tokio::spawn(async move {
        let _ = reader.simple_query("SELECT * FROM s EMIT CHANGES;").await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let status = server.stop().expect("rill stops on SIGTERM");
    assert!(status.success(), "a clean shutdown exits 0, got {status}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?} with a push query open",
        started.elapsed()
    );
    let _ = timeout(Duration::from_secs(10), push).await;
    drop(client);
    server.restart().await.expect("restart rill");
    let client = server.connect().await.expect("connect after restart");
    check_first_batch(&client).await;
}
