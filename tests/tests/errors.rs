//! Errors as a client sees them: the SQLSTATE of each kind of mistake,
//! messages that say what to change, and mistakes (or garbage bytes) that
//! never hurt the session, other sessions, or the server.

use std::time::Duration;

use rill_tests::{describe_error, exec, expect_sqlstate, plain, query, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::Client;

async fn setup(server: &Server) -> Client {
    let client = server.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(
        &client,
        "CREATE STREAM pageviews (user_id VARCHAR KEY, page VARCHAR, ts BIGINT) \
         WITH (kafka_topic='pageviews', value_format='JSON', partitions=1, timestamp='ts');",
    )
    .await;
    exec(
        &client,
        "CREATE TABLE users (id VARCHAR PRIMARY KEY, region VARCHAR) \
         WITH (kafka_topic='users', value_format='JSON', partitions=1);",
    )
    .await;
    exec(
        &client,
        "CREATE TABLE views AS SELECT page, COUNT(*) AS n FROM pageviews GROUP BY page EMIT CHANGES;",
    )
    .await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_error_has_its_sqlstate() {
    let server = Server::start().await.expect("start rill");
    let client = setup(&server).await;

    // 42601 syntax error
    for sql in [
        "SELEC * FROM users;",
        "CREATE STREM x (id VARCHAR KEY) WITH (kafka_topic='x', value_format='JSON');",
        "SELECT * FROM pageviews EMIT CHANGES LIMIT;",
        "CREATE TABLE t2 AS SELECT page, COUNT(*) FROM pageviews WINDOW TUMBLING (SIZE 10 PARSECS) GROUP BY page EMIT CHANGES;",
        "INSERT INTO users (id, region) VALUES ('a', 'b'",
    ] {
        expect_sqlstate(&client, sql, "42601").await;
    }
    // 42P01 unknown stream or table
    for sql in [
        "SELECT * FROM nope;",
        "SELECT * FROM nope EMIT CHANGES;",
        "INSERT INTO nope (id) VALUES ('a');",
        "DESCRIBE nope;",
        "DROP TABLE nope;",
        "CREATE TABLE t2 AS SELECT id, COUNT(*) AS n FROM nope GROUP BY id EMIT CHANGES;",
    ] {
        expect_sqlstate(&client, sql, "42P01").await;
    }
    // 42703 unknown column
    for sql in [
        "SELECT nope FROM users;",
        "SELECT * FROM users WHERE nope = 1;",
        "SELECT nope FROM pageviews EMIT CHANGES;",
        "INSERT INTO users (id, nope) VALUES ('a', 'b');",
        "CREATE STREAM x AS SELECT nope FROM pageviews EMIT CHANGES;",
    ] {
        expect_sqlstate(&client, sql, "42703").await;
    }
    // 42P07 duplicate
    for sql in [
        "CREATE TABLE users (id VARCHAR PRIMARY KEY, region VARCHAR) WITH (kafka_topic='users2', value_format='JSON', partitions=1);",
        "CREATE STREAM users (id VARCHAR KEY, region VARCHAR) WITH (kafka_topic='users3', value_format='JSON', partitions=1);",
        "CREATE TABLE views AS SELECT page, COUNT(*) AS n FROM pageviews GROUP BY page EMIT CHANGES;",
    ] {
        expect_sqlstate(&client, sql, "42P07").await;
    }
    // 42804 type mismatch
    for sql in [
        "INSERT INTO pageviews (user_id, page, ts) VALUES ('u', '/', true);",
        "SELECT * FROM users WHERE region = 3;",
        "SELECT page FROM pageviews WHERE ts = 'x' EMIT CHANGES;",
    ] {
        expect_sqlstate(&client, sql, "42804").await;
    }
    // 0A000 unsupported
    for sql in [
        "DELETE FROM users WHERE id = 'a';",
        "UPDATE users SET region = 'x';",
    ] {
        expect_sqlstate(&client, sql, "0A000").await;
    }
    // 2BP01 in use
    for sql in [
        "DROP STREAM pageviews;",
        "DROP STREAM pageviews DELETE TOPIC;",
    ] {
        expect_sqlstate(&client, sql, "2BP01").await;
    }

    // After all that, the session works and nothing changed.
    exec(
        &client,
        "INSERT INTO pageviews (user_id, page, ts) VALUES ('u1', '/home', 1000);",
    )
    .await;
    let rows = query(&client, "SELECT * FROM views;").await;
    assert_eq!(plain(&rows), vec![vec!["/home", "1"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_say_what_to_change() {
    let server = Server::start().await.expect("start rill");
    let client = setup(&server).await;

    // Unknown column: names it, and suggests the near miss.
    let e = expect_sqlstate(&client, "SELECT pgae FROM views;", "42703").await;
    let db = e.as_db_error().expect("a server error");
    assert!(
        db.message().to_lowercase().contains("pgae"),
        "the message names the column: {}",
        describe_error(&e)
    );
    let text = format!("{} {}", db.message(), db.hint().unwrap_or("")).to_lowercase();
    assert!(
        text.contains("did you mean") && text.contains("page"),
        "a near miss gets a hint: {}",
        describe_error(&e)
    );

    // Unknown relation: names it, and suggests the near miss.
    let e = expect_sqlstate(&client, "SELECT * FROM veiws;", "42P01").await;
    let db = e.as_db_error().expect("a server error");
    let text = format!("{} {}", db.message(), db.hint().unwrap_or("")).to_lowercase();
    assert!(text.contains("veiws"), "{}", describe_error(&e));
    assert!(
        text.contains("did you mean") && text.contains("views"),
        "{}",
        describe_error(&e)
    );

    // Syntax error: says where.
    let e = expect_sqlstate(&client, "SELECT * FROM views WHERE page = ;", "42601").await;
    let db = e.as_db_error().expect("a server error");
    assert!(
        db.position().is_some() || db.message().to_lowercase().contains("line"),
        "a syntax error gives its position: {}",
        describe_error(&e)
    );

    // In use: says what uses it.
    let e = expect_sqlstate(&client, "DROP STREAM pageviews;", "2BP01").await;
    let db = e.as_db_error().expect("a server error");
    let text = format!("{} {}", db.message(), db.detail().unwrap_or("")).to_uppercase();
    assert!(
        text.contains("VIEWS") || text.contains("QUERY") || text.contains("CTAS"),
        "the refusal names the query or table that reads the stream: {}",
        describe_error(&e)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_then_drop() {
    let server = Server::start().await.expect("start rill");
    let client = setup(&server).await;

    let e = client
        .simple_query("TERMINATE NO_SUCH_QUERY_42;")
        .await
        .expect_err("terminating an unknown query fails");
    assert!(e.as_db_error().is_some(), "{}", describe_error(&e));

    // Find the query that maintains VIEWS in SHOW QUERIES: its id (the
    // first column) mentions the table, like CTAS_VIEWS_1.
    let rows = query(&client, "SHOW QUERIES;").await;
    let id = rows
        .iter()
        .filter_map(|r| r.first().cloned().flatten())
        .find(|id| id.to_uppercase().contains("VIEWS"))
        .unwrap_or_else(|| panic!("SHOW QUERIES lists the query of VIEWS: {rows:?}"));
    exec(&client, &format!("TERMINATE {id};")).await;
    let rows = query(&client, "SHOW QUERIES;").await;
    assert!(
        !rows
            .iter()
            .any(|r| r.first().cloned().flatten().as_deref() == Some(id.as_str())),
        "{id} is gone from SHOW QUERIES: {rows:?}"
    );
    // Nothing reads the stream any more: it can be dropped, and so can the
    // table the query maintained.
    exec(&client, "DROP TABLE views;").await;
    exec(&client, "DROP STREAM pageviews DELETE TOPIC;").await;
    expect_sqlstate(&client, "SELECT * FROM views;", "42P01").await;
    expect_sqlstate(&client, "SELECT * FROM pageviews EMIT CHANGES;", "42P01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_records_are_counted_in_show_queries() {
    let server = Server::start().await.expect("start rill");
    let client = server.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(
        &client,
        "CREATE STREAM ev (id VARCHAR KEY, ts BIGINT) \
         WITH (kafka_topic='ev', value_format='JSON', partitions=1, timestamp='ts');",
    )
    .await;
    exec(
        &client,
        "CREATE TABLE w AS SELECT id, COUNT(*) AS n FROM ev \
         WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 0 SECONDS) GROUP BY id EMIT CHANGES;",
    )
    .await;
    // Stream time 25000 closes [0,10000) and [10000,20000): 3000 and 15000
    // are late.
    exec(
        &client,
        "INSERT INTO ev (id, ts) VALUES ('k', 1000), ('k', 25000), ('k', 3000), ('k', 15000);",
    )
    .await;
    let rows = query(
        &client,
        "SELECT WINDOWSTART, n FROM w ORDER BY WINDOWSTART;",
    )
    .await;
    assert_eq!(plain(&rows), vec![vec!["0", "1"], vec!["20000", "1"]]);

    let messages = client
        .simple_query("SHOW QUERIES;")
        .await
        .expect("SHOW QUERIES");
    let columns = rill_tests::column_names(&messages);
    let rows = rill_tests::text_rows(&messages);
    let late = columns
        .iter()
        .position(|c| c.to_lowercase().contains("late"))
        .unwrap_or_else(|| panic!("SHOW QUERIES has a column for late records: {columns:?}"));
    // The only persistent query; its id looks like CTAS_W_1.
    let row = rows
        .iter()
        .find(|r| {
            r.iter().any(|c| {
                c.as_deref().is_some_and(|c| {
                    c.to_uppercase().contains("_W_") || c.eq_ignore_ascii_case("w")
                })
            })
        })
        .unwrap_or_else(|| panic!("a row for the query of W: {rows:?}"));
    assert_eq!(
        row[late].as_deref(),
        Some("2"),
        "two records were late; SHOW QUERIES columns {columns:?}, row {row:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_headers_are_upper_case_unless_quoted() {
    let server = Server::start().await.expect("start rill");
    let client = setup(&server).await;
    exec(
        &client,
        "INSERT INTO users (id, region) VALUES ('u1', 'A');",
    )
    .await;
    let messages = client
        .simple_query("SELECT id, region AS r, region AS \"quotedName\" FROM users;")
        .await
        .expect("pull query");
    assert_eq!(
        rill_tests::column_names(&messages),
        ["ID", "R", "quotedName"]
    );
    let messages = client
        .simple_query("SELECT * FROM views;")
        .await
        .expect("pull query");
    assert_eq!(rill_tests::column_names(&messages), ["PAGE", "N"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_statements_from_drivers_are_answered() {
    let server = Server::start().await.expect("start rill");
    let client = setup(&server).await;
    exec(&client, "BEGIN;").await;
    exec(
        &client,
        "INSERT INTO users (id, region) VALUES ('u1', 'A');",
    )
    .await;
    exec(&client, "COMMIT;").await;
    let rows = query(&client, "SELECT region FROM users WHERE id = 'u1';").await;
    assert_eq!(plain(&rows), vec![vec!["A"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_close_only_that_connection() {
    let server = Server::start().await.expect("start rill");
    let client = setup(&server).await;

    for garbage in [
        &b"\x00\x00\x00\x08\x04\xd2\x16\x2fGET / HTTP/1.1\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0xffu8; 4096][..],
        &b"\x00\x00\x00\x09\x00\x03\x00\x00\x00"[..],
    ] {
        let mut socket = tokio::net::TcpStream::connect(server.addr())
            .await
            .expect("tcp connect");
        let _ = socket.write_all(garbage).await;
        // The server answers with an error or just closes; it must not
        // hang on to the socket forever nor crash.
        let mut buf = vec![0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
        })
        .await;
    }

    // A session that started the protocol and then vanished mid-message.
    {
        let mut socket = tokio::net::TcpStream::connect(server.addr())
            .await
            .expect("tcp connect");
        let _ = socket.write_all(b"\x00\x00\x01\x00\x00\x03").await;
    }

    // The open session and new sessions still work.
    exec(
        &client,
        "INSERT INTO pageviews (user_id, page, ts) VALUES ('u1', '/x', 1000);",
    )
    .await;
    let rows = query(&client, "SELECT n FROM views WHERE page = '/x';").await;
    assert_eq!(plain(&rows), vec![vec!["1"]]);
    let other = server.connect().await.expect("a new session after garbage");
    let rows = query(&other, "SELECT n FROM views WHERE page = '/x';").await;
    assert_eq!(plain(&rows), vec![vec!["1"]]);
}

/// Embedded mode is exactly once already: the setting is accepted; a
/// value that is neither guarantee is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_guarantee_is_checked() {
    let server = Server::start().await.expect("start rill");
    let client = setup(&server).await;
    exec(&client, "SET 'processing.guarantee' = 'exactly_once';").await;
    exec(&client, "CREATE STREAM eo AS SELECT * FROM pageviews;").await;
    exec(&client, "SET 'processing.guarantee' = 'sometimes';").await;
    let err = expect_sqlstate(
        &client,
        "CREATE STREAM eo2 AS SELECT * FROM pageviews;",
        "42601",
    )
    .await;
    assert!(describe_error(&err).contains("processing.guarantee must be"));
}
