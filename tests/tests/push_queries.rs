//! Push queries through a real server: LIMIT, starting at the latest offset,
//! cancel (psql's Ctrl-C), and clients that vanish mid-query.

use std::time::Duration;

use futures::StreamExt;
use rill_tests::{describe_error, exec, plain, query, sqlstate, Server};
use tokio::time::timeout;
use tokio_postgres::{NoTls, SimpleQueryMessage};

const SETUP: &str = "CREATE STREAM s (id VARCHAR KEY, v INT, ts BIGINT) \
    WITH (kafka_topic='s', value_format='JSON', partitions=1, timestamp='ts');";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_query_with_limit_returns_the_first_rows_and_completes() {
    let server = Server::start().await.expect("start rill");
    let client = server.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(&client, SETUP).await;
    exec(
        &client,
        "INSERT INTO s (id, v, ts) VALUES ('a', 1, 1000), ('b', 2, 2000), ('c', 3, 3000), ('d', 4, 4000);",
    )
    .await;

    let rows = timeout(
        Duration::from_secs(20),
        query(&client, "SELECT * FROM s EMIT CHANGES LIMIT 3;"),
    )
    .await
    .expect("a push query with LIMIT 3 over 4 records completes");
    assert_eq!(
        plain(&rows),
        vec![
            vec!["a", "1", "1000"],
            vec!["b", "2", "2000"],
            vec!["c", "3", "3000"]
        ]
    );

    // The extended protocol (what most drivers use) gives the same rows,
    // typed, with upper-cased column names.
    let rows = timeout(
        Duration::from_secs(20),
        client.query("SELECT id, v FROM s WHERE v >= 2 EMIT CHANGES LIMIT 2", &[]),
    )
    .await
    .expect("completes")
    .unwrap_or_else(|e| panic!("extended push query failed: {}", describe_error(&e)));
    let names: Vec<&str> = rows[0].columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["ID", "V"]);
    let got: Vec<(String, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, [("b".to_string(), 2), ("c".to_string(), 3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_query_waits_for_rows_that_arrive_later() {
    let server = Server::start().await.expect("start rill");
    let reader = server.connect().await.expect("connect");
    let writer = server.connect().await.expect("connect");
    exec(&reader, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(&writer, SETUP).await;
    exec(&writer, "INSERT INTO s (id, v, ts) VALUES ('a', 1, 1000);").await;

    let push =
        tokio::spawn(
            async move { query(&reader, "SELECT id, v FROM s EMIT CHANGES LIMIT 3;").await },
        );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!push.is_finished(), "the push query must wait for 3 rows");
    exec(&writer, "INSERT INTO s (id, v, ts) VALUES ('b', 2, 2000);").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!push.is_finished(), "the push query must wait for 3 rows");
    exec(
        &writer,
        "INSERT INTO s (id, v, ts) VALUES ('c', 3, 3000), ('d', 4, 4000);",
    )
    .await;
    let rows = timeout(Duration::from_secs(20), push)
        .await
        .expect("the push query completes once 3 rows arrived")
        .expect("push task");
    assert_eq!(
        plain(&rows),
        vec![vec!["a", "1"], vec!["b", "2"], vec!["c", "3"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_query_without_earliest_starts_at_the_latest_offset() {
    let server = Server::start().await.expect("start rill");
    let writer = server.connect().await.expect("connect");
    let reader = server.connect().await.expect("connect");
    exec(&writer, SETUP).await;
    // Old records, before the push query starts: v < 100.
    exec(
        &writer,
        "INSERT INTO s (id, v, ts) VALUES ('old1', 1, 1000), ('old2', 2, 2000);",
    )
    .await;

    let push =
        tokio::spawn(
            async move { query(&reader, "SELECT id, v FROM s EMIT CHANGES LIMIT 1;").await },
        );
    // The push query subscribes at some point after it was sent; keep
    // inserting new records (v >= 100) until it returns one.
    let mut v = 100;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !push.is_finished() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "push query never returned a row"
        );
        exec(
            &writer,
            &format!(
                "INSERT INTO s (id, v, ts) VALUES ('new', {v}, {});",
                10_000 + v
            ),
        )
        .await;
        v += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = push.await.expect("push task");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0][0].as_deref(),
        Some("new"),
        "without SET 'auto.offset.reset' = 'earliest' a push query starts at the latest offset, got {rows:?}"
    );
}

/// Reads messages of a running statement until `rows` data rows arrived.
async fn read_rows(
    stream: &mut std::pin::Pin<Box<tokio_postgres::SimpleQueryStream>>,
    rows: usize,
) -> Vec<Option<String>> {
    let mut seen = Vec::new();
    while seen.len() < rows {
        let message = timeout(Duration::from_secs(20), stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "rows of an open push query arrive while it runs (got {} of {rows} in 20 s)",
                    seen.len()
                )
            })
            .expect("the push query does not end by itself")
            .unwrap_or_else(|e| panic!("push query failed: {}", describe_error(&e)));
        if let SimpleQueryMessage::Row(row) = message {
            seen.push(row.get(0).map(str::to_string));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_query_without_limit_streams_rows_while_it_runs() {
    let server = Server::start().await.expect("start rill");
    let client = server.connect().await.expect("connect");
    let writer = server.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(&client, SETUP).await;
    exec(
        &client,
        "INSERT INTO s (id, v, ts) VALUES ('a', 1, 1000), ('b', 2, 2000), ('c', 3, 3000);",
    )
    .await;

    // No LIMIT: runs until cancelled; existing rows arrive at once, new
    // ones as they are inserted.
    let stream = client
        .simple_query_raw("SELECT * FROM s EMIT CHANGES;")
        .await
        .unwrap_or_else(|e| panic!("push query failed: {}", describe_error(&e)));
    let mut stream = Box::pin(stream);
    assert_eq!(
        read_rows(&mut stream, 3).await,
        [Some("a".into()), Some("b".into()), Some("c".into())]
    );
    exec(&writer, "INSERT INTO s (id, v, ts) VALUES ('d', 4, 4000);").await;
    assert_eq!(read_rows(&mut stream, 1).await, [Some("d".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_push_query_ends_with_57014_and_the_session_stays_usable() {
    let server = Server::start().await.expect("start rill");
    let client = server.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(&client, SETUP).await;
    exec(
        &client,
        "INSERT INTO s (id, v, ts) VALUES ('a', 1, 1000), ('b', 2, 2000), ('c', 3, 3000);",
    )
    .await;

    // No LIMIT: runs until cancelled.
    let stream = client
        .simple_query_raw("SELECT * FROM s EMIT CHANGES;")
        .await
        .unwrap_or_else(|e| panic!("push query failed: {}", describe_error(&e)));
    let mut stream = Box::pin(stream);
    tokio::time::sleep(Duration::from_millis(500)).await;
    client
        .cancel_token()
        .cancel_query(NoTls)
        .await
        .unwrap_or_else(|e| panic!("sending the cancel request failed: {}", describe_error(&e)));

    // The statement ends with query_canceled (rows sent before may come
    // first).
    let end = timeout(Duration::from_secs(20), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Some(e),
                None => return None,
            }
        }
    })
    .await
    .expect("a cancelled push query ends within 20 s");
    let error = end.expect("a cancelled push query ends with an error, not a normal completion");
    assert_eq!(
        sqlstate(&error).as_deref(),
        Some("57014"),
        "cancel gives SQLSTATE 57014, got {}",
        describe_error(&error)
    );
    drop(stream);

    // Same connection, next statements work.
    exec(&client, "INSERT INTO s (id, v, ts) VALUES ('d', 4, 4000);").await;
    let rows = timeout(
        Duration::from_secs(20),
        query(&client, "SELECT id FROM s EMIT CHANGES LIMIT 4;"),
    )
    .await
    .expect("push query after cancel completes");
    assert_eq!(
        plain(&rows),
        vec![vec!["a"], vec!["b"], vec!["c"], vec!["d"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_idle_session_is_harmless() {
    let server = Server::start().await.expect("start rill");
    let client = server.connect().await.expect("connect");
    client
        .cancel_token()
        .cancel_query(NoTls)
        .await
        .expect("cancel request");
    tokio::time::sleep(Duration::from_millis(200)).await;
    exec(&client, SETUP).await;
    exec(&client, "SHOW STREAMS;").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_vanishing_mid_push_query_does_not_affect_other_sessions() {
    let server = Server::start().await.expect("start rill");
    let admin = server.connect().await.expect("connect");
    exec(&admin, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(&admin, SETUP).await;
    exec(
        &admin,
        "CREATE TABLE counts AS SELECT id, COUNT(*) AS n FROM s GROUP BY id EMIT CHANGES;",
    )
    .await;
    exec(&admin, "INSERT INTO s (id, v, ts) VALUES ('a', 1, 1000);").await;

    // Several clients start endless push queries and vanish (their sockets
    // close without a Terminate message).
    for i in 0..5 {
        let (client, connection) = server.connect_with_task().await.expect("connect");
        exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
        let stream = client
            .simple_query_raw("SELECT * FROM s EMIT CHANGES;")
            .await
            .unwrap_or_else(|e| panic!("push query failed: {}", describe_error(&e)));
        // Give the server time to start the query (and send rows, which
        // nobody reads), then vanish.
        tokio::time::sleep(Duration::from_millis(300)).await;
        connection.abort();
        drop(stream);
        drop(client);
        // Meanwhile the other session keeps working.
        exec(
            &admin,
            &format!("INSERT INTO s (id, v, ts) VALUES ('a', {i}, {});", 2000 + i),
        )
        .await;
    }

    // The persistent query saw every insert and the other session answers
    // pull and push queries.
    let rows = query(&admin, "SELECT n FROM counts WHERE id = 'a';").await;
    assert_eq!(plain(&rows), vec![vec!["6"]]);
    let rows = timeout(
        Duration::from_secs(20),
        query(&admin, "SELECT v FROM s EMIT CHANGES LIMIT 6;"),
    )
    .await
    .expect("push query completes");
    assert_eq!(rows.len(), 6);

    // A brand new session works too.
    let late = server.connect().await.expect("connect after disconnects");
    let rows = query(&late, "SELECT id, n FROM counts;").await;
    assert_eq!(plain(&rows), vec![vec!["a", "6"]]);
}
