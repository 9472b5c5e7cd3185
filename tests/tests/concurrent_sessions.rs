//! Many sessions at once: 20 clients inserting and reading their own
//! writes while others do the same, plus push queries running alongside.

use std::time::Duration;

use futures::future::join_all;
use rill_tests::{exec, plain, query, sorted, Server};
use tokio::time::timeout;

const SESSIONS: usize = 20;
const INSERTS_PER_SESSION: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_sessions_insert_and_read_their_writes() {
    let server = Server::start().await.expect("start rill");
    let admin = server.connect().await.expect("connect");
    exec(&admin, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(
        &admin,
        "CREATE STREAM s (id VARCHAR KEY, v INT, ts BIGINT) \
         WITH (kafka_topic='s', value_format='JSON', partitions=1, timestamp='ts');",
    )
    .await;
    exec(
        &admin,
        "CREATE TABLE counts AS SELECT id, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY id EMIT CHANGES;",
    )
    .await;
    exec(
        &admin,
        "CREATE TABLE per_window AS SELECT id, COUNT(*) AS n FROM s \
         WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 1 HOUR) GROUP BY id EMIT CHANGES;",
    )
    .await;

    // Push queries that complete only once every session has inserted:
    // they run concurrently with the writers.
    let mut pushes = Vec::new();
    for i in 0..3 {
        let client = server.connect().await.expect("connect");
        pushes.push(tokio::spawn(async move {
            exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
            let sql = format!(
                "SELECT id, v FROM s WHERE id = 'k{i}' EMIT CHANGES LIMIT {INSERTS_PER_SESSION};"
            );
            query(&client, &sql).await
        }));
    }

    let writers = (0..SESSIONS).map(|i| {
        let server = &server;
        async move {
            let client = server.connect().await.expect("connect");
            let key = format!("k{i}");
            for j in 1..=INSERTS_PER_SESSION {
                exec(
                    &client,
                    &format!(
                        "INSERT INTO s (id, v, ts) VALUES ('{key}', {j}, {});",
                        1000 * j
                    ),
                )
                .await;
                // Read-your-writes, under concurrency: this session's
                // insert is in the table as soon as INSERT returned.
                let rows = query(
                    &client,
                    &format!("SELECT n, total FROM counts WHERE id = '{key}';"),
                )
                .await;
                let total = j * (j + 1) / 2;
                assert_eq!(
                    plain(&rows),
                    vec![vec![j.to_string().as_str(), total.to_string().as_str()]],
                    "session {i} after its insert #{j}"
                );
            }
        }
    });
    timeout(Duration::from_secs(180), join_all(writers))
        .await
        .expect("20 sessions finish 10 inserts and reads each within 3 minutes");

    // Everything is there, exactly once.
    let rows = query(&admin, "SELECT id, n, total FROM counts;").await;
    assert_eq!(rows.len(), SESSIONS);
    for row in plain(&rows) {
        assert_eq!(row[1..], ["10", "55"], "row {row:?}");
    }
    // Event times 1000..=10000: [0,10000) has 9 records, [10000,20000) one.
    let rows = query(
        &admin,
        "SELECT WINDOWSTART, n FROM per_window WHERE id = 'k7';",
    )
    .await;
    assert_eq!(sorted(&rows), vec![vec!["0", "9"], vec!["10000", "1"]]);

    for (i, push) in pushes.into_iter().enumerate() {
        let rows = timeout(Duration::from_secs(30), push)
            .await
            .expect("push query completes")
            .expect("push task");
        let expected: Vec<Vec<String>> = (1..=INSERTS_PER_SESSION)
            .map(|j| vec![format!("k{i}"), j.to_string()])
            .collect();
        let got: Vec<Vec<String>> = plain(&rows)
            .into_iter()
            .map(|r| r.into_iter().map(str::to_string).collect())
            .collect();
        assert_eq!(
            got, expected,
            "push query of k{i}: one session's records in insert order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ddl_and_queries_from_many_sessions() {
    let server = Server::start().await.expect("start rill");
    // Each session creates its own stream and table, inserts, and reads.
    let sessions = (0..SESSIONS).map(|i| {
        let server = &server;
        async move {
            let client = server.connect().await.expect("connect");
            exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
            exec(
                &client,
                &format!(
                    "CREATE STREAM s{i} (id VARCHAR KEY, v INT) \
                     WITH (kafka_topic='s{i}', value_format='JSON', partitions=1);"
                ),
            )
            .await;
            exec(
                &client,
                &format!(
                    "CREATE TABLE t{i} AS SELECT id, SUM(v) AS total FROM s{i} GROUP BY id EMIT CHANGES;"
                ),
            )
            .await;
            exec(
                &client,
                &format!("INSERT INTO s{i} (id, v) VALUES ('a', {i}), ('a', 1), ('b', 2);"),
            )
            .await;
            let rows = query(&client, &format!("SELECT id, total FROM t{i};")).await;
            let a = (i + 1).to_string();
            assert_eq!(sorted(&rows), vec![vec!["a", a.as_str()], vec!["b", "2"]]);
        }
    });
    timeout(Duration::from_secs(180), join_all(sessions))
        .await
        .expect("20 sessions create, insert and read within 3 minutes");

    let admin = server.connect().await.expect("connect");
    let rows = query(&admin, "SHOW TABLES;").await;
    let names: Vec<&str> = plain(&rows).into_iter().map(|r| r[0]).collect();
    for i in 0..SESSIONS {
        let name = format!("T{i}");
        assert!(
            names.contains(&name.as_str()),
            "SHOW TABLES lists {name}: {names:?}"
        );
    }
}
