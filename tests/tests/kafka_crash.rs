//! Crash safety in Kafka mode: an outside producer keeps writing to a Kafka
//! topic while rill is killed with `kill -9` and restarted
//! `RILL_KAFKA_CRASH_CYCLES` times (default 6). rill keeps its state and the
//! source offsets it read in its own store, committed together, so:
//!
//! - the tables (a per-key aggregate and a windowed one) equal the
//!   aggregates over exactly the records produced: exactly once;
//! - the output stream of `CREATE STREAM AS` holds every qualifying record
//!   at least once (Kafka cannot take back what a killed query had produced
//!   but not committed, so it may hold some twice; the count is reported).
//!
//! The broker is librdkafka's mock cluster in this process, so it outlives
//! every rill it serves.

mod common;

use common::NO_COMMAND_TOPIC;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rill_tests::{exec, plain, query, Server};
use tokio_postgres::Client;

const DEFAULT_CYCLES: usize = 6;
const KEYS: u64 = 6;
const BASE_TS: i64 = 1_700_000_000_000;
const WINDOW_MS: i64 = 10_000;

/// One produced record.
#[derive(Clone, Copy)]
struct Produced {
    seq: u64,
    key: u64,
    v: i64,
    ts: i64,
}

/// Produces records to `ev` until `stop`, each batch of ten acknowledged
/// before the next; returns what was acknowledged.
async fn produce(brokers: String, stop: Arc<AtomicBool>) -> Vec<Produced> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let mut acked = Vec::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let batch: Vec<Produced> = (seq..seq + 10)
            .map(|s| Produced {
                seq: s,
                key: s % KEYS,
                v: (s * 7919 % 101) as i64,
                ts: BASE_TS + (s as i64) * 37,
            })
            .collect();
        seq += 10;
        let sends = batch.iter().map(|r| {
            let key = format!("k{}", r.key);
            let value = format!(r#"{{"SEQ":{},"V":{},"TS":{}}}"#, r.seq, r.v, r.ts);
            let producer = producer.clone();
            async move {
                producer
                    .send(
                        FutureRecord::to("ev").key(&key).payload(&value),
                        Duration::from_secs(30),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| e)
            }
        });
        for (r, result) in batch.iter().zip(futures::future::join_all(sends).await) {
            result.expect("the outside producer's record is acknowledged");
            acked.push(*r);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    acked
}

async fn setup(client: &Client) {
    exec(client, "SET 'auto.offset.reset' = 'earliest';").await;
    for sql in [
        "CREATE STREAM ev (id VARCHAR KEY, seq BIGINT, v INT, ts BIGINT) \
         WITH (kafka_topic='ev', value_format='JSON', timestamp='ts');",
        "CREATE STREAM big AS SELECT id, seq, v FROM ev WHERE v % 3 = 0;",
        "CREATE TABLE totals AS SELECT id, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY id;",
        "CREATE TABLE per_win AS SELECT id, COUNT(*) AS n, SUM(v) AS total FROM ev \
         WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY id;",
    ] {
        exec(client, sql).await;
    }
}

type Totals = BTreeMap<String, (i64, i64)>;
type Windows = BTreeMap<(String, i64), (i64, i64)>;

fn reference(produced: &[Produced]) -> (Totals, Windows) {
    let mut totals = Totals::new();
    let mut windows = Windows::new();
    for r in produced {
        let id = format!("k{}", r.key);
        let t = totals.entry(id.clone()).or_default();
        *t = (t.0 + 1, t.1 + r.v);
        let start = r.ts - r.ts.rem_euclid(WINDOW_MS);
        let w = windows.entry((id, start)).or_default();
        *w = (w.0 + 1, w.1 + r.v);
    }
    (totals, windows)
}

fn num(s: &str) -> i64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s}"))
}

async fn tables(client: &Client) -> (Totals, Windows) {
    let totals = plain(&query(client, "SELECT id, n, total FROM totals;").await)
        .iter()
        .map(|r| (r[0].to_string(), (num(r[1]), num(r[2]))))
        .collect();
    let windows = plain(&query(client, "SELECT id, WINDOWSTART, n, total FROM per_win;").await)
        .iter()
        .map(|r| ((r[0].to_string(), num(r[1])), (num(r[2]), num(r[3]))))
        .collect();
    (totals, windows)
}

/// How often each `seq` occurs in `stream`.
async fn seq_counts(client: &Client, stream: &str) -> HashMap<u64, usize> {
    let mut counts = HashMap::new();
    for r in plain(&query(client, &format!("SELECT seq FROM {stream};")).await) {
        *counts.entry(num(r[0]) as u64).or_insert(0) += 1;
    }
    counts
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_cycles_with_an_outside_producer_keep_tables_exactly_once() {
    let cycles: usize = std::env::var("RILL_KAFKA_CRASH_CYCLES")
        .ok()
        .map_or(DEFAULT_CYCLES, |v| {
            v.parse().expect("RILL_KAFKA_CRASH_CYCLES")
        });
    let cluster = MockCluster::new(1).expect("mock cluster");
    // The mock cluster has no admin API: every topic exists up front, with
    // the source's two partitions.
    for topic in ["ev", "BIG", "TOTALS", "PER_WIN", "rill_processing_log"] {
        cluster.create_topic(topic, 2, 1).expect("create topic");
    }
    let brokers = cluster.bootstrap_servers();
    let mut server = Server::start_with_args(&["--kafka-brokers", &brokers, NO_COMMAND_TOPIC])
        .await
        .expect("start rill");
    setup(&server.connect().await.expect("connect")).await;

    let stop = Arc::new(AtomicBool::new(false));
    let producer = tokio::spawn(produce(brokers.clone(), stop.clone()));
    let started = Instant::now();
    let mut recovery_ms = Vec::new();
    let mut seed = started.elapsed().as_nanos() as u64 | 1;
    for cycle in 0..cycles {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(300 + seed % 1200)).await;
        server.kill9();
        let restarted = Instant::now();
        server
            .restart()
            .await
            .unwrap_or_else(|e| panic!("restart #{cycle}: {e:#}"));
        let client = server.connect().await.expect("connect after restart");
        query(&client, "SELECT n FROM totals WHERE id = 'k0';").await;
        recovery_ms.push(restarted.elapsed().as_millis() as u64);
    }
    stop.store(true, Ordering::SeqCst);
    let produced = producer.await.expect("producer task");
    let (want_totals, want_windows) = reference(&produced);

    let client = server.connect().await.expect("connect for the check");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (totals, windows) = tables(&client).await;
        if (totals == want_totals && windows == want_windows) || Instant::now() > deadline {
            assert_eq!(
                totals, want_totals,
                "totals: exactly once over what was produced"
            );
            assert_eq!(
                windows, want_windows,
                "per_win: exactly once over what was produced"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The source holds each produced record once (idempotent producer).
    let ev = seq_counts(&client, "ev").await;
    assert_eq!(ev.len(), produced.len(), "ev holds what was produced");
    assert!(ev.values().all(|&c| c == 1), "ev holds each record once");
    // The sink: everything that qualifies, at least once.
    let qualifying: Vec<u64> = produced
        .iter()
        .filter(|r| r.v % 3 == 0)
        .map(|r| r.seq)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let big = loop {
        let big = seq_counts(&client, "big").await;
        if qualifying.iter().all(|s| big.contains_key(s)) || Instant::now() > deadline {
            break big;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let lost = qualifying.iter().filter(|s| !big.contains_key(s)).count();
    let duplicated: usize = big.values().map(|c| c - 1).sum();
    let stray = big.keys().filter(|s| !qualifying.contains(s)).count();
    recovery_ms.sort_unstable();
    eprintln!(
        "kafka crash summary: cycles {cycles}, produced {}, big qualifying {}, lost {lost}, \
         duplicated {duplicated} (at-least-once), stray {stray}; recovery ms (restart to first \
         pull query) p50 {} max {}; total {} s",
        produced.len(),
        qualifying.len(),
        percentile(&recovery_ms, 0.5),
        recovery_ms.last().copied().unwrap_or(0),
        started.elapsed().as_secs()
    );
    assert_eq!(
        (lost, stray),
        (0, 0),
        "big: every qualifying record, nothing else"
    );
    drop(client);
    drop(server);
}
