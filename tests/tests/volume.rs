//! More records than fit in one batch or one commit: results must still be
//! exact (every record counted once, windows right), and pull and push
//! queries return everything.

use std::time::Duration;

use rill_tests::{exec, plain, query, Server};
use tokio::time::timeout;

const KEYS: usize = 50;
const RECORDS: usize = 10_000;
const CHUNK: usize = 2_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_records_in_big_inserts_are_counted_exactly() {
    let server = Server::start().await.expect("start rill");
    let client = server.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(
        &client,
        "CREATE STREAM s (id VARCHAR KEY, v INT, ts BIGINT) \
         WITH (kafka_topic='s', value_format='JSON', partitions=2, timestamp='ts');",
    )
    .await;
    exec(
        &client,
        "CREATE TABLE counts AS SELECT id, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY id EMIT CHANGES;",
    )
    .await;
    exec(
        &client,
        "CREATE TABLE w AS SELECT id, COUNT(*) AS n FROM s \
         WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 1 DAY) GROUP BY id EMIT CHANGES;",
    )
    .await;

    // Record i: key k(i % 50), v = i, event time i * 100 ms (so each
    // one-minute window holds 600 records, 12 per key).
    for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(CHUNK) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| format!("('k{}', {i}, {})", i % KEYS, i * 100))
            .collect();
        let sql = format!("INSERT INTO s (id, v, ts) VALUES {};", values.join(", "));
        timeout(Duration::from_secs(120), exec(&client, &sql))
            .await
            .expect("a big INSERT completes within 2 minutes");
    }

    let rows = timeout(
        Duration::from_secs(60),
        query(&client, "SELECT id, n, total FROM counts;"),
    )
    .await
    .expect("pull query completes");
    assert_eq!(rows.len(), KEYS);
    for row in plain(&rows) {
        let k: usize = row[0][1..].parse().expect("key kN");
        // Key k gets i = k, k+50, ...: n records summing to
        // n*k + 50*(0+1+...+(n-1)).
        let n = RECORDS / KEYS;
        let total = n * k + KEYS * (n * (n - 1) / 2);
        assert_eq!(
            row[1..],
            [n.to_string().as_str(), total.to_string().as_str()],
            "key k{k}"
        );
    }

    // Window m holds records 600m..600(m+1) (one minute at 100 ms each),
    // 12 of them per key; the last window may be partial.
    let windows = RECORDS.div_ceil(600);
    let rows = query(
        &client,
        "SELECT WINDOWSTART, n FROM w WHERE id = 'k7' ORDER BY WINDOWSTART;",
    )
    .await;
    assert_eq!(rows.len(), windows);
    for (m, row) in plain(&rows).iter().enumerate() {
        let in_window = (600 * (m + 1)).min(RECORDS) - 600 * m;
        let expected_n = (in_window / KEYS).to_string();
        assert_eq!(
            row[..],
            [(m * 60_000).to_string().as_str(), expected_n.as_str()],
            "window {m} of k7"
        );
    }

    // A push query returns every record of a key in order.
    let rows = timeout(
        Duration::from_secs(60),
        query(
            &client,
            &format!(
                "SELECT v FROM s WHERE id = 'k3' EMIT CHANGES LIMIT {};",
                RECORDS / KEYS
            ),
        ),
    )
    .await
    .expect("push query completes");
    let vs: Vec<usize> = plain(&rows)
        .iter()
        .map(|r| r[0].parse().expect("int"))
        .collect();
    assert_eq!(
        vs,
        (0..RECORDS / KEYS)
            .map(|j| 3 + KEYS * j)
            .collect::<Vec<_>>()
    );
}
