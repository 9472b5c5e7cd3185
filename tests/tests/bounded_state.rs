//! A windowed table over event time that keeps advancing stays the same
//! size: its rows expire once their window end falls RETENTION behind the
//! latest event time, the query's window state is dropped when windows
//! close, its state log in the store is replaced by snapshots so it stays
//! near the size of that state, and a restart rebuilds the expiry index
//! from the stored rows and the window state from the log.
//!
//! Row counts and window sets are asserted (they follow from the input
//! alone). The server's RSS and the size of its sled directory are printed
//! per round, not asserted (allocator and sled behaviour vary); run with
//! `--nocapture` to see them.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use rill_tests::{exec, plain, query, Server};
use tokio::time::timeout;
use tokio_postgres::Client;

const KEYS: i64 = 300;
const ROUNDS: i64 = 40;
const ROWS_PER_ROUND: i64 = 1_000;
/// Event times start here (2023-11-14); round r covers the second
/// `BASE_TS + r * 1000 ..`, one tumbling window.
const BASE_TS: i64 = 1_700_000_000_000;
const WINDOW_MS: i64 = 1_000;
const RETENTION_MS: i64 = 2_000;
/// Upper bound for one statement (a 1,000-row INSERT or a pull query).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// `(k0, ts), (k1, ts), ...`: every key in every round, event times spread
/// over the round's second in order.
fn round_values(round: i64) -> String {
    (0..ROWS_PER_ROUND)
        .map(|j| {
            let ts = BASE_TS + round * WINDOW_MS + j * WINDOW_MS / ROWS_PER_ROUND;
            format!("('k{}', {ts})", j % KEYS)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The window starts a table must hold after `round`: a window ending at
/// or after the latest event time minus the retention stays.
fn live_windows(round: i64) -> BTreeSet<i64> {
    let latest = BASE_TS + round * WINDOW_MS + (ROWS_PER_ROUND - 1) * WINDOW_MS / ROWS_PER_ROUND;
    let horizon = latest - RETENTION_MS;
    (0..=round)
        .map(|r| BASE_TS + r * WINDOW_MS)
        .filter(|start| start + WINDOW_MS >= horizon)
        .collect()
}

/// `VmRSS` of process `pid` in KiB (0 when unreadable).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes of all files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Bytes the store holds under the state of `query` (the server stopped).
fn stored_state_bytes(data_dir: &Path, query: &str) -> u64 {
    let store = rill_storage::Store::open(data_dir).expect("open the stopped server's store");
    store
        .scan_prefix(&rill_storage::keys::state_prefix(query))
        .map(|entry| {
            let (k, v) = entry.expect("read the store");
            (k.len() + v.len()) as u64
        })
        .sum()
}

/// The `statistics` value `<query>.<name>` of `DESCRIBE <table> EXTENDED`,
/// or a `property` value when `name` has no dot.
async fn describe_value(client: &Client, table: &str, name: &str) -> Option<String> {
    let rows = query(client, &format!("DESCRIBE {table} EXTENDED;")).await;
    plain(&rows).into_iter().find_map(|r| match r.as_slice() {
        ["statistics", n, v] if n.rsplit('.').next() == Some(name) => Some(v.to_string()),
        ["property", n, v] if *n == name => Some(v.to_string()),
        _ => None,
    })
}

/// Inserts one round and returns the window starts `w` then holds.
async fn run_round(client: &Client, round: i64) -> Vec<i64> {
    let sql = format!("INSERT INTO ev (k, ts) VALUES {};", round_values(round));
    timeout(STATEMENT_TIMEOUT, exec(client, &sql))
        .await
        .expect("a 1,000-row INSERT completes within a minute");
    let rows = timeout(
        STATEMENT_TIMEOUT,
        query(client, "SELECT WINDOWSTART FROM w;"),
    )
    .await
    .expect("pull query completes");
    plain(&rows)
        .iter()
        .map(|r| r[0].parse().expect("WINDOWSTART is a number"))
        .collect()
}

/// Checks the rows a round left: every key in exactly the live windows.
fn check_rows(round: i64, starts: &[i64]) {
    let want = live_windows(round);
    let got: BTreeSet<i64> = starts.iter().copied().collect();
    assert_eq!(got, want, "windows held after round {round}");
    assert_eq!(
        starts.len() as i64,
        KEYS * want.len() as i64,
        "rows after round {round}: one per key and live window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_table_stays_bounded_as_event_time_advances() {
    let mut server = Server::start().await.expect("start rill");
    let client = server.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    exec(
        &client,
        "CREATE STREAM ev (k VARCHAR KEY, ts BIGINT) \
         WITH (kafka_topic='ev', value_format='JSON', partitions=1, timestamp='ts');",
    )
    .await;
    exec(
        &client,
        "CREATE TABLE w AS SELECT k, COUNT(*) AS n FROM ev \
         WINDOW TUMBLING (SIZE 1 SECOND, GRACE PERIOD 0 SECONDS, RETENTION 2 SECONDS) \
         GROUP BY k EMIT CHANGES;",
    )
    .await;
    assert_eq!(
        describe_value(&client, "w", "retention").await.as_deref(),
        Some("2 SECONDS")
    );

    let sled_dir = server.data_dir().join("state");
    let started = Instant::now();
    let mut series = Vec::new();
    let mut max_rows = 0;
    for round in 0..ROUNDS {
        let starts = run_round(&client, round).await;
        check_rows(round, &starts);
        max_rows = max_rows.max(starts.len());
        // With no grace only the window being filled is open.
        let entries: u64 = describe_value(&client, "w", "state_entries")
            .await
            .and_then(|v| v.parse().ok())
            .expect("DESCRIBE EXTENDED shows state_entries");
        assert!(
            entries <= KEYS as u64,
            "round {round}: {entries} window states held, one open window has {KEYS}"
        );
        let pid = server.pid().expect("rill runs");
        series.push((
            round,
            starts.len(),
            entries,
            rss_kib(pid),
            dir_bytes(&sled_dir),
        ));
    }
    // Without expiry the table would hold KEYS rows per round by now.
    assert!(
        max_rows as i64 <= KEYS * (RETENTION_MS / WINDOW_MS + 1),
        "{max_rows} rows at most"
    );

    // After a restart the expiry index is rebuilt from the stored rows: the
    // oldest window stored before it must still go.
    let queries = query(&client, "SHOW QUERIES;").await;
    let query_id = plain(&queries)[0][0].to_string();
    server.stop().expect("clean shutdown");
    let state_bytes = stored_state_bytes(server.data_dir(), &query_id);
    // The live state is at most one window of KEYS groups (~60 bytes each);
    // the commits of all rounds, logged without snapshots, take ~850 KB.
    assert!(
        state_bytes < 128 << 10,
        "the state log holds {state_bytes} bytes: snapshots keep it near the live state"
    );
    server.restart().await.expect("restart rill");
    let client = server.connect().await.expect("connect after restart");
    let starts = run_round(&client, ROUNDS).await;
    check_rows(ROUNDS, &starts);
    let pid = server.pid().expect("rill runs");
    series.push((ROUNDS, starts.len(), 0, rss_kib(pid), dir_bytes(&sled_dir)));

    println!(
        "bounded_state: {} rounds of {ROWS_PER_ROUND} rows, {KEYS} keys, in {:.1} s",
        ROUNDS + 1,
        started.elapsed().as_secs_f64()
    );
    println!("state log after {ROUNDS} rounds: {state_bytes} bytes");
    println!("round  rows  state_entries  rss_kib  sled_bytes");
    for (round, rows, entries, rss, sled) in series {
        let entries = if round == ROUNDS {
            "(restarted)".to_string()
        } else {
            entries.to_string()
        };
        println!("{round:>5}  {rows:>4}  {entries:>13}  {rss:>7}  {sled:>10}");
    }
}

/// A stream-stream join over event time that keeps advancing holds about
/// its window's worth of records, in memory and in the store: each record
/// is dropped once the watermark (stream time minus the grace period)
/// passes the end of its window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_join_state_stays_bounded_as_event_time_advances() {
    const JOIN_ROUNDS: i64 = 30;
    let mut server = Server::start().await.expect("start rill");
    let client = server.connect().await.expect("connect");
    for sql in [
        "SET 'auto.offset.reset' = 'earliest';",
        "CREATE STREAM l (k VARCHAR KEY, ts BIGINT) WITH (kafka_topic='l', value_format='JSON', partitions=1, timestamp='ts');",
        "CREATE STREAM r (k VARCHAR KEY, ts BIGINT) WITH (kafka_topic='r', value_format='JSON', partitions=1, timestamp='ts');",
        // A grace period of a round: one side's round may be read before
        // the other's is written.
        "CREATE STREAM pairs AS SELECT l.k AS k, l.ts AS lts, r.ts AS rts FROM l LEFT JOIN r \
         WITHIN 500 MILLISECONDS GRACE PERIOD 1 SECOND ON l.k = r.k;",
        "CREATE TABLE per_key AS SELECT k, COUNT(*) AS n FROM pairs GROUP BY k;",
    ] {
        exec(&client, sql).await;
    }
    let mut series = Vec::new();
    for round in 0..JOIN_ROUNDS {
        for side in ["l", "r"] {
            let sql = format!("INSERT INTO {side} (k, ts) VALUES {};", round_values(round));
            timeout(STATEMENT_TIMEOUT, exec(&client, &sql))
                .await
                .expect("a 1,000-row INSERT completes within a minute");
        }
        // Waits for the join to read both sides (read-your-writes).
        timeout(
            STATEMENT_TIMEOUT,
            query(&client, "SELECT n FROM per_key WHERE k = 'k0';"),
        )
        .await
        .expect("pull query completes");
        let state = describe_value(&client, "pairs", "R")
            .await
            .expect("DESCRIBE EXTENDED shows the join's state");
        let sides: Vec<u64> = state
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        // Records stay until stream time passes them by the window's 500
        // ms and the 1 s grace: about 1,500 ms of each side, 1,000 a second.
        assert!(
            sides.len() == 2 && sides.iter().all(|&n| n <= 2_000),
            "round {round}: the join holds {state}"
        );
        series.push((round, state));
    }
    let rows = query(&client, "SELECT k FROM per_key;").await;
    assert_eq!(rows.len() as i64, KEYS, "every key joined");
    let queries = query(&client, "SHOW QUERIES;").await;
    let query_id = plain(&queries)
        .into_iter()
        .find(|r| r[4] == "PAIRS")
        .map(|r| r[0].to_string())
        .expect("the join's query");
    server.stop().expect("clean shutdown");
    let state_bytes = stored_state_bytes(server.data_dir(), &query_id);
    // Some 3,000 live records of ~60 bytes; all rounds' 60,000 records
    // would be several MB.
    assert!(
        state_bytes < 1 << 20,
        "the join's state log holds {state_bytes} bytes"
    );
    println!("stream join: state log {state_bytes} bytes after {JOIN_ROUNDS} rounds");
    for (round, state) in series {
        println!("{round:>5}  {state}");
    }
}
