//! The extended query protocol (Parse/Bind/Describe/Execute), as
//! tokio-postgres, JDBC and psycopg use it: prepared statements with typed
//! `$n` parameters in pull queries, INSERT VALUES and push queries, and
//! typed (binary) results.

use std::time::Duration;

use rill_tests::{describe_error, exec, Server};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

/// Asserts that `e` is a server error with SQLSTATE `code`.
fn assert_sqlstate(e: &tokio_postgres::Error, code: &str) {
    assert_eq!(
        rill_tests::sqlstate(e).as_deref(),
        Some(code),
        "{}",
        describe_error(e)
    );
}

async fn setup(server: &Server) -> Client {
    let client = server.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(
        &client,
        "CREATE STREAM s (id VARCHAR KEY, v INT, ts BIGINT) \
         WITH (kafka_topic='s', value_format='JSON', partitions=1, timestamp='ts');",
    )
    .await;
    exec(
        &client,
        "CREATE TABLE counts AS SELECT id, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY id EMIT CHANGES;",
    )
    .await;
    client
}

/// An integer parameter of the type the server described for it.
fn int_param(ty: &Type, v: i64) -> Box<dyn ToSql + Sync + Send> {
    match ty {
        &Type::INT8 => Box::new(v),
        &Type::INT4 => Box::new(i32::try_from(v).expect("fits in INT")),
        &Type::INT2 => Box::new(i16::try_from(v).expect("fits in SMALLINT")),
        &Type::FLOAT8 => Box::new(v as f64),
        other => panic!("parameter described as {other}, expected a number"),
    }
}

/// An integer column as i64, whether the server types it INT or BIGINT.
fn int(row: &Row, idx: usize) -> i64 {
    match row.columns()[idx].type_() {
        &Type::INT8 => row.get::<_, i64>(idx),
        &Type::INT4 => i64::from(row.get::<_, i32>(idx)),
        &Type::INT2 => i64::from(row.get::<_, i16>(idx)),
        other => panic!("column {idx} has type {other}, expected an integer"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_with_parameters_then_pull_with_a_parameter() {
    let server = Server::start().await.expect("start rill");
    let client = setup(&server).await;

    let insert = client
        .prepare("INSERT INTO s (id, v, ts) VALUES ($1, $2, $3)")
        .await
        .unwrap_or_else(|e| panic!("prepare INSERT: {}", describe_error(&e)));
    // The parameter types come from the columns they are assigned to.
    assert!(
        matches!(insert.params()[0], Type::VARCHAR | Type::TEXT),
        "$1 is a VARCHAR column, described as {}",
        insert.params()[0]
    );
    assert_eq!(insert.params()[1], Type::INT4, "$2 is an INT column");
    assert_eq!(insert.params()[2], Type::INT8, "$3 is a BIGINT column");

    for (id, v, ts) in [("a", 1i32, 1000i64), ("b", 2, 2000), ("a", 3, 3000)] {
        client
            .execute(&insert, &[&id, &v, &ts])
            .await
            .unwrap_or_else(|e| panic!("execute INSERT: {}", describe_error(&e)));
    }

    let pull = client
        .prepare("SELECT id, n, total FROM counts WHERE id = $1")
        .await
        .unwrap_or_else(|e| panic!("prepare pull query: {}", describe_error(&e)));
    assert!(matches!(pull.params()[0], Type::VARCHAR | Type::TEXT));
    let names: Vec<&str> = pull.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["ID", "N", "TOTAL"]);

    let rows = client
        .query(&pull, &[&"a"])
        .await
        .unwrap_or_else(|e| panic!("pull query: {}", describe_error(&e)));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "a");
    assert_eq!(int(&rows[0], 1), 2);
    assert_eq!(int(&rows[0], 2), 4);

    // The same prepared statement, other parameters.
    let rows = client.query(&pull, &[&"b"]).await.expect("pull b");
    assert_eq!((int(&rows[0], 1), int(&rows[0], 2)), (1, 2));
    let rows = client
        .query(&pull, &[&"nobody"])
        .await
        .expect("pull nobody");
    assert!(rows.is_empty());

    // Read-your-writes holds for inserts over the extended protocol too.
    client
        .execute(&insert, &[&"b", &40i32, &4000i64])
        .await
        .expect("insert");
    let rows = client.query(&pull, &[&"b"]).await.expect("pull b");
    assert_eq!((int(&rows[0], 1), int(&rows[0], 2)), (2, 42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_in_any_predicate_and_unprepared_one_shot_queries() {
    let server = Server::start().await.expect("start rill");
    let client = setup(&server).await;
    exec(
        &client,
        "INSERT INTO s (id, v, ts) VALUES ('a', 1, 1000), ('b', 5, 2000), ('c', 10, 3000), ('c', 1, 4000);",
    )
    .await;

    // Parameters compared with aggregate columns take those columns' types
    // (INT or BIGINT, whichever the server chose for SUM and COUNT).
    let stmt = client
        .prepare("SELECT id FROM counts WHERE total >= $1 AND n <= $2 ORDER BY id")
        .await
        .unwrap_or_else(|e| panic!("prepare pull query: {}", describe_error(&e)));
    let p1 = int_param(&stmt.params()[0], 5);
    let p2 = int_param(&stmt.params()[1], 2);
    let rows = client
        .query(&stmt, &[p1.as_ref(), p2.as_ref()])
        .await
        .unwrap_or_else(|e| panic!("pull query: {}", describe_error(&e)));
    let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, ["b", "c"]);

    // Typed parameters given explicitly by the client.
    let stmt = client
        .prepare_typed("SELECT total FROM counts WHERE id = $1", &[Type::VARCHAR])
        .await
        .unwrap_or_else(|e| panic!("prepare_typed: {}", describe_error(&e)));
    let rows = client.query(&stmt, &[&"c"]).await.expect("query");
    assert_eq!(int(&rows[0], 0), 11);

    // A push query with a parameter and LIMIT.
    let rows = tokio::time::timeout(
        Duration::from_secs(20),
        client.query(
            "SELECT v FROM s WHERE id = $1 EMIT CHANGES LIMIT 2",
            &[&"c"],
        ),
    )
    .await
    .expect("push query completes")
    .unwrap_or_else(|e| panic!("push query: {}", describe_error(&e)));
    let vs: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(vs, [10, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_insert_into_a_table_with_every_column_a_parameter() {
    let server = Server::start().await.expect("start rill");
    let client = server.connect().await.expect("connect");
    exec(
        &client,
        "CREATE TABLE t (id VARCHAR PRIMARY KEY, b BOOLEAN, i INT, bi BIGINT, d DOUBLE, s STRING) \
         WITH (kafka_topic='t', value_format='JSON', partitions=1);",
    )
    .await;
    // The key is a parameter too: preparing must not evaluate it.
    let insert = client
        .prepare("INSERT INTO t (id, b, i, bi, d, s) VALUES ($1, $2, $3, $4, $5, $6)")
        .await
        .unwrap_or_else(|e| panic!("prepare INSERT: {}", describe_error(&e)));
    client
        .execute(
            &insert,
            &[&"k", &true, &-7i32, &10_000_000_000i64, &0.5f64, &"héllo"],
        )
        .await
        .unwrap_or_else(|e| panic!("INSERT: {}", describe_error(&e)));
    client
        .execute(
            &insert,
            &[
                &"n",
                &None::<bool>,
                &None::<i32>,
                &None::<i64>,
                &None::<f64>,
                &None::<String>,
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("INSERT NULLs: {}", describe_error(&e)));
    let rows = rill_tests::query(&client, "SELECT * FROM t;").await;
    assert_eq!(
        rill_tests::sorted(&rows),
        vec![
            vec!["k", "t", "-7", "10000000000", "0.5", "héllo"],
            vec!["n", "NULL", "NULL", "NULL", "NULL", "NULL"]
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_results_for_common_types() {
    let server = Server::start().await.expect("start rill");
    let client = server.connect().await.expect("connect");
    exec(
        &client,
        "CREATE TABLE t (id VARCHAR PRIMARY KEY, b BOOLEAN, i INT, bi BIGINT, d DOUBLE, s STRING) \
         WITH (kafka_topic='t', value_format='JSON', partitions=1);",
    )
    .await;
    exec(
        &client,
        "INSERT INTO t (id, b, i, bi, d, s) VALUES ('k', true, -7, 10000000000, 0.5, 'héllo'), ('n', NULL, NULL, NULL, NULL, NULL);",
    )
    .await;

    let rows = client
        .query("SELECT b, i, bi, d, s FROM t WHERE id = $1", &[&"k"])
        .await
        .unwrap_or_else(|e| panic!("pull: {}", describe_error(&e)));
    let types: Vec<&Type> = rows[0].columns().iter().map(|c| c.type_()).collect();
    assert_eq!(
        types[..4],
        [&Type::BOOL, &Type::INT4, &Type::INT8, &Type::FLOAT8]
    );
    assert!(
        matches!(types[4], &Type::VARCHAR | &Type::TEXT),
        "STRING is {}",
        types[4]
    );
    assert!(rows[0].get::<_, bool>(0));
    assert_eq!(rows[0].get::<_, i32>(1), -7);
    assert_eq!(rows[0].get::<_, i64>(2), 10_000_000_000);
    assert_eq!(rows[0].get::<_, f64>(3), 0.5);
    assert_eq!(rows[0].get::<_, String>(4), "héllo");

    let rows = client
        .query("SELECT b, i, bi, d, s FROM t WHERE id = $1", &[&"n"])
        .await
        .expect("pull NULLs");
    assert_eq!(rows[0].get::<_, Option<bool>>(0), None);
    assert_eq!(rows[0].get::<_, Option<i32>>(1), None);
    assert_eq!(rows[0].get::<_, Option<i64>>(2), None);
    assert_eq!(rows[0].get::<_, Option<f64>>(3), None);
    assert_eq!(rows[0].get::<_, Option<String>>(4), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_over_the_extended_protocol_carry_sqlstates() {
    let server = Server::start().await.expect("start rill");
    let client = setup(&server).await;

    let e = client
        .prepare("SELEC id FROM counts")
        .await
        .expect_err("a syntax error fails at prepare");
    assert_sqlstate(&e, "42601");

    let e = client
        .prepare("SELECT * FROM nope WHERE id = $1")
        .await
        .expect_err("an unknown table fails at prepare");
    assert_sqlstate(&e, "42P01");

    let e = client
        .query("SELECT nope FROM counts WHERE id = $1", &[&"a"])
        .await
        .expect_err("an unknown column fails");
    assert_sqlstate(&e, "42703");

    // A persistent query runs its text again after a restart: it takes no
    // parameters (Postgres's DDL does not either), and nothing is created.
    let e = client
        .execute(
            "CREATE TABLE big AS SELECT id, COUNT(*) AS n FROM s WHERE v > $1 GROUP BY id",
            &[&5i32],
        )
        .await
        .expect_err("a parameter in CREATE ... AS SELECT is refused");
    assert_sqlstate(&e, "0A000");
    let e = client
        .query("SELECT * FROM big", &[])
        .await
        .expect_err("the refused table does not exist");
    assert_sqlstate(&e, "42P01");

    // The session is still usable.
    let rows = client
        .query("SELECT id FROM counts WHERE id = $1", &[&"a"])
        .await
        .expect("query after errors");
    assert!(rows.is_empty());
}
