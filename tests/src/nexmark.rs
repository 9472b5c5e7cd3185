//! The Nexmark benchmark: bids from the `nexmark` generator (fixed base
//! time, so every run sees the same events) loaded as JSON into a topic of
//! the embedded log or of a Kafka broker (and the auctions they bid on
//! into a table, for the join), then one persistent query at a
//! time over the pre-loaded topic, from its earliest offset, timed until it
//! has caught up and committed. Each query's output is checked against
//! answers computed here, from the same events, so a fast wrong answer
//! fails. Then the serving figures: pull queries, insert-to-visible,
//! start and recovery.
//!
//! CPU time and peak RSS are the server process's own (`/proc/<pid>`), so
//! the generator and the clients in this process do not count.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nexmark::config::NexmarkConfig;
use nexmark::event::{Auction, Bid, Event, EventType};
use nexmark::EventGenerator;
use serde_json::json;
use tokio_postgres::Client;

use crate::{plain, try_query, Server};

/// The generator's clock starts here (2023-11-14), not at "now".
pub const BASE_TIME_MS: u64 = 1_700_000_000_000;
/// Rows per INSERT statement when loading through rill, and the sessions
/// sending them.
const INSERT_BATCH: usize = 1000;
const LOAD_SESSIONS: usize = 2;
/// How long the Kafka loader waits for room in its producer's queue.
const LOAD_STALL: Duration = Duration::from_secs(60);
/// Window sizes of the windowed queries.
const WINDOW_MS: i64 = 10_000;
const HOP_MS: i64 = 2_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bid events to load.
    pub events: u64,
    /// Partitions of the bids topic.
    pub partitions: u32,
    /// Kafka mode: the brokers (rill gets `--kafka-brokers`, the loader
    /// produces to them directly); embedded log otherwise.
    pub kafka: Option<String>,
    /// Names of the queries to run (all when empty).
    pub only: Vec<String>,
    /// Keys of the serving table; 0 skips the serving figures.
    pub serving_keys: u64,
    /// How long each serving measurement runs.
    pub serving_time: Duration,
    /// Extra command-line arguments for `rill`.
    pub server_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            events: 1_000_000,
            partitions: 1,
            kafka: None,
            only: Vec::new(),
            serving_keys: 1_000_000,
            serving_time: Duration::from_secs(5),
            server_args: Vec::new(),
        }
    }
}

/// The bids of a run, always the same ones for the same `n`.
pub fn bids(n: u64) -> impl Iterator<Item = Bid> {
    let config = NexmarkConfig {
        base_time: BASE_TIME_MS,
        ..NexmarkConfig::default()
    };
    EventGenerator::new(config)
        .with_type_filter(EventType::Bid)
        .filter_map(|e| match e {
            Event::Bid(b) => Some(b),
            _ => None,
        })
        .take(n as usize)
}

/// The auctions of a run up to `until` (event time), the same every run.
pub fn auctions(until: u64) -> impl Iterator<Item = Auction> {
    let config = NexmarkConfig {
        base_time: BASE_TIME_MS,
        ..NexmarkConfig::default()
    };
    EventGenerator::new(config)
        .with_type_filter(EventType::Auction)
        .filter_map(|e| match e {
            Event::Auction(a) => Some(a),
            _ => None,
        })
        .take_while(move |a| a.date_time <= until)
}

/// A bid as the JSON object the topic holds.
pub fn bid_json(b: &Bid) -> String {
    json!({
        "auction": b.auction,
        "bidder": b.bidder,
        "price": b.price,
        "channel": b.channel,
        "url": b.url,
        "date_time": b.date_time,
        "extra": b.extra,
    })
    .to_string()
}

/// What each query must produce, computed from the events directly.
#[derive(Debug, Default)]
struct Expected {
    events: u64,
    /// Bids whose auction is divisible by 123 (q2).
    q2: u64,
    /// (auction, window start) -> bids, 10 s tumbling windows.
    tumble: HashMap<(i64, i64), i64>,
    /// (auction, window start) -> bids, 10 s windows every 2 s.
    hop: HashMap<(i64, i64), i64>,
    /// window start -> highest price, 10 s tumbling windows.
    max_price: HashMap<i64, i64>,
    /// auction -> its event time.
    auction_times: HashMap<usize, u64>,
    /// Bids whose auction exists at the bid's time (the join).
    joined: u64,
}

impl Expected {
    fn add(&mut self, b: &Bid) {
        let auction = b.auction as i64;
        let price = b.price as i64;
        let t = b.date_time as i64;
        self.events += 1;
        if auction % 123 == 0 {
            self.q2 += 1;
        }
        if self
            .auction_times
            .get(&b.auction)
            .is_some_and(|&at| at <= b.date_time)
        {
            self.joined += 1;
        }
        let start = t - t.rem_euclid(WINDOW_MS);
        *self.tumble.entry((auction, start)).or_default() += 1;
        let best = self.max_price.entry(start).or_insert(price);
        *best = (*best).max(price);
        // Every hopping window [s, s + size) holding t, s a multiple of the
        // advance.
        let mut s = t - t.rem_euclid(HOP_MS);
        while s > t - WINDOW_MS {
            *self.hop.entry((auction, s)).or_default() += 1;
            s -= HOP_MS;
        }
    }
}

/// How a query's result is checked.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Check {
    /// A stream of every bid: the number of records in its topic.
    Records,
    /// The same, for a stream of the bids whose auction is divisible by 123.
    Q2Records,
    /// A table of (auction, WINDOWSTART, count).
    Tumble,
    Hop,
    /// A table of (WINDOWSTART, max).
    MaxPrice,
    /// A stream of the bids that met their auction.
    Joined,
}

struct QuerySpec {
    name: &'static str,
    sql: &'static str,
    check: Check,
}

const QUERIES: &[QuerySpec] = &[
    QuerySpec {
        name: "q0",
        sql: "CREATE STREAM q0 AS SELECT * FROM bids",
        check: Check::Records,
    },
    QuerySpec {
        name: "q1",
        sql: "CREATE STREAM q1 AS SELECT auction, bidder, price * 0.908 AS price, date_time, extra FROM bids",
        check: Check::Records,
    },
    QuerySpec {
        name: "q2",
        sql: "CREATE STREAM q2 AS SELECT auction, price FROM bids WHERE auction % 123 = 0",
        check: Check::Q2Records,
    },
    QuerySpec {
        name: "tumble",
        sql: "CREATE TABLE tumble AS SELECT auction, COUNT(*) AS bids FROM bids \
              WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 30 SECONDS) GROUP BY auction",
        check: Check::Tumble,
    },
    QuerySpec {
        name: "hop",
        sql: "CREATE TABLE hop AS SELECT auction, COUNT(*) AS bids FROM bids \
              WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 2 SECONDS, GRACE PERIOD 30 SECONDS) GROUP BY auction",
        check: Check::Hop,
    },
    QuerySpec {
        name: "q7",
        sql: "CREATE TABLE q7 AS SELECT 1 AS one, MAX(price) AS maxprice FROM bids \
              WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 30 SECONDS) GROUP BY 1",
        check: Check::MaxPrice,
    },
    QuerySpec {
        name: "join",
        sql: "CREATE STREAM join AS SELECT b.auction, b.price, b.date_time AS bid_time, \
              a.date_time AS auction_time, a.seller, a.category \
              FROM bids b JOIN auctions a ON b.auction = a.id",
        check: Check::Joined,
    },
];

/// One query's figures.
#[derive(Debug, Clone)]
pub struct QueryFigures {
    pub name: String,
    pub events: u64,
    pub wall: Duration,
    /// The server's user + system time while the query ran.
    pub cpu: Duration,
    /// The server's peak resident set while the query ran.
    pub peak_rss_bytes: u64,
    pub rows: u64,
    pub expected_rows: u64,
    /// Empty when the output matched the expected answer.
    pub mismatch: Option<String>,
}

impl QueryFigures {
    /// The figures as a row of [`Report::table`].
    pub fn line(&self) -> String {
        format!(
            "{:<8} {:>10.0} {:>12.0} {:>9.2} {:>9.2} {:>7.0} MB {:>10}  {}",
            self.name,
            self.events_per_sec(),
            self.events_per_cpu_sec(),
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64(),
            self.peak_rss_bytes as f64 / 1e6,
            self.rows,
            self.mismatch.as_deref().unwrap_or("ok"),
        )
    }

    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn events_per_cpu_sec(&self) -> f64 {
        self.events as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
}

/// Latency and throughput of a run of pull queries.
#[derive(Debug, Clone)]
pub struct PullFigures {
    pub clients: usize,
    /// Queries per second asked for (None: as fast as they come back).
    pub target_qps: Option<f64>,
    pub qps: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub wrong: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ServingFigures {
    pub keys: u64,
    pub pull: Vec<PullFigures>,
    pub insert_rate: f64,
    pub insert_visible_p50: Duration,
    pub insert_visible_p99: Duration,
    /// Spawn to the first accepted session, on an empty data dir.
    pub start: Duration,
    /// The server's own figure (`startup_ms` in its log).
    pub start_logged_ms: Option<u64>,
    /// kill -9, then spawn to the first correct pull query.
    pub recovery: Duration,
    pub recovery_logged_ms: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub mode: String,
    pub events: u64,
    pub partitions: u32,
    pub load: Duration,
    pub queries: Vec<QueryFigures>,
    pub serving: Option<ServingFigures>,
}

impl Report {
    /// Whether every output matched and every pull query was right.
    pub fn correct(&self) -> bool {
        self.queries.iter().all(|q| q.mismatch.is_none())
            && self
                .serving
                .as_ref()
                .is_none_or(|s| s.pull.iter().all(|p| p.wrong == 0))
    }

    /// The figures as a text table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Nexmark, {} bids as JSON, {} partition(s), {} mode (load {:.1} s)",
            self.events,
            self.partitions,
            self.mode,
            self.load.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "{:<8} {:>10} {:>12} {:>9} {:>9} {:>10} {:>10}  check",
            "query", "events/s", "events/CPU-s", "wall s", "CPU s", "peak RSS", "rows"
        );
        for q in &self.queries {
            let _ = writeln!(s, "{}", q.line());
        }
        if let Some(sv) = &self.serving {
            let _ = writeln!(s, "\nServing, a table of {} keys", sv.keys);
            let _ = writeln!(
                s,
                "{:<26} {:>10} {:>9} {:>9}  wrong",
                "pull `WHERE k = $1`", "queries/s", "p50 ms", "p99 ms"
            );
            for p in &sv.pull {
                let label = match p.target_qps {
                    Some(t) => format!("{} clients at {t:.0}/s", p.clients),
                    None => format!("{} client(s)", p.clients),
                };
                let _ = writeln!(
                    s,
                    "{label:<26} {:>10.0} {:>9.3} {:>9.3}  {}",
                    p.qps,
                    ms(p.p50),
                    ms(p.p99),
                    p.wrong
                );
            }
            let _ = writeln!(
                s,
                "insert-to-visible at {:.0} inserts/s: p50 {:.2} ms, p99 {:.2} ms",
                sv.insert_rate,
                ms(sv.insert_visible_p50),
                ms(sv.insert_visible_p99)
            );
            let _ = writeln!(
                s,
                "start (empty data dir): {:.0} ms to the first session (server log: {} ms)",
                ms(sv.start),
                logged(sv.start_logged_ms)
            );
            let _ = writeln!(
                s,
                "recovery after kill -9 with {} keys: {:.0} ms to the first correct pull (server log: {} ms)",
                sv.keys,
                ms(sv.recovery),
                logged(sv.recovery_logged_ms)
            );
        }
        s
    }

    pub fn json(&self) -> serde_json::Value {
        let queries: Vec<_> = self
            .queries
            .iter()
            .map(|q| {
                json!({
                    "query": q.name,
                    "events": q.events,
                    "wall_s": q.wall.as_secs_f64(),
                    "cpu_s": q.cpu.as_secs_f64(),
                    "events_per_s": q.events_per_sec(),
                    "events_per_cpu_s": q.events_per_cpu_sec(),
                    "peak_rss_bytes": q.peak_rss_bytes,
                    "rows": q.rows,
                    "expected_rows": q.expected_rows,
                    "correct": q.mismatch.is_none(),
                    "mismatch": q.mismatch,
                })
            })
            .collect();
        let serving = self.serving.as_ref().map(|sv| {
            json!({
                "keys": sv.keys,
                "pull": sv.pull.iter().map(|p| json!({
                    "clients": p.clients,
                    "target_qps": p.target_qps,
                    "qps": p.qps,
                    "p50_ms": ms(p.p50),
                    "p99_ms": ms(p.p99),
                    "wrong": p.wrong,
                })).collect::<Vec<_>>(),
                "insert_rate": sv.insert_rate,
                "insert_visible_p50_ms": ms(sv.insert_visible_p50),
                "insert_visible_p99_ms": ms(sv.insert_visible_p99),
                "start_ms": ms(sv.start),
                "start_logged_ms": sv.start_logged_ms,
                "recovery_ms": ms(sv.recovery),
                "recovery_logged_ms": sv.recovery_logged_ms,
            })
        });
        json!({
            "mode": self.mode,
            "events": self.events,
            "partitions": self.partitions,
            "load_s": self.load.as_secs_f64(),
            "queries": queries,
            "serving": serving,
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn logged(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// Runs the whole benchmark.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let args = server_args(opts, "queries");
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start_with_args(&arg_refs).await?;
    let client = server.connect().await?;
    let topic = |name: &str| topic_name(opts, name);

    run_sql(
        &client,
        &format!(
            "CREATE STREAM bids (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, \
             url VARCHAR, date_time BIGINT, extra VARCHAR) WITH (kafka_topic='{}', \
             value_format='JSON', partitions={}, timestamp='date_time')",
            topic("bids"),
            opts.partitions
        ),
    )
    .await?;
    run_sql(
        &client,
        &format!(
            "CREATE TABLE auctions (id BIGINT PRIMARY KEY, seller BIGINT, category BIGINT, \
             date_time BIGINT) WITH (kafka_topic='{}', value_format='JSON', partitions=1, \
             timestamp='date_time')",
            topic("auctions"),
        ),
    )
    .await?;
    let started = Instant::now();
    let mut expected = Expected {
        auction_times: load_auctions(&client, opts.events).await?,
        ..Expected::default()
    };
    match &opts.kafka {
        Some(brokers) => load_kafka(brokers, &topic("bids"), opts.events, &mut expected)?,
        None => load_insert(&server, opts.events, &mut expected).await?,
    };
    let load = started.elapsed();
    run_sql(&client, "SET 'auto.offset.reset' = 'earliest'").await?;

    let pid = server.pid().ok_or_else(|| anyhow!("rill is not running"))?;
    let mut queries = Vec::new();
    for spec in QUERIES {
        if !opts.only.is_empty() && !opts.only.iter().any(|o| o == spec.name) {
            continue;
        }
        let figures = run_query(&client, pid, spec, &expected, &topic(spec.name))
            .await
            .with_context(|| format!("query {}", spec.name))?;
        // As it goes, so a run that fails later still shows these.
        eprintln!("{}", figures.line());
        queries.push(figures);
    }
    drop(client);
    drop(server);

    let serving = if opts.serving_keys > 0 {
        Some(serving(opts).await.context("serving figures")?)
    } else {
        None
    };
    Ok(Report {
        mode: if opts.kafka.is_some() {
            "Kafka"
        } else {
            "embedded"
        }
        .into(),
        events: opts.events,
        partitions: opts.partitions,
        load,
        queries,
        serving,
    })
}

/// rill's arguments for one phase of a run. With Kafka each phase's server
/// gets a command topic of its own: one with an empty data dir replays the
/// command topic it is given.
fn server_args(opts: &Options, phase: &str) -> Vec<String> {
    let mut args = opts.server_args.clone();
    if let Some(brokers) = &opts.kafka {
        args.extend(["--kafka-brokers".into(), brokers.clone()]);
        args.push(format!(
            "--kafka-command-topic=_rill_nexmark_{phase}_{}",
            std::process::id()
        ));
    }
    args
}

/// A topic's name: with Kafka unique to this run, as the broker may be
/// shared.
fn topic_name(opts: &Options, name: &str) -> String {
    match opts.kafka {
        Some(_) => format!("nexmark_{name}_{}", std::process::id()),
        None => name.to_string(),
    }
}

async fn run_sql(client: &Client, sql: &str) -> anyhow::Result<()> {
    try_query(client, sql).await.map(drop)
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Loads the bids through rill with multi-row INSERTs from
/// [`LOAD_SESSIONS`] sessions (the embedded log has no other writer). Their
/// batches interleave by less than the windows' grace period, so no bid is
/// late.
async fn load_insert(server: &Server, n: u64, expected: &mut Expected) -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(2 * LOAD_SESSIONS);
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    let mut writers = Vec::new();
    for _ in 0..LOAD_SESSIONS {
        let client = server.connect().await?;
        let rx = rx.clone();
        writers.push(tokio::spawn(async move {
            loop {
                let Some(sql) = rx.lock().await.recv().await else {
                    return anyhow::Ok(());
                };
                run_sql(&client, &sql).await?;
            }
        }));
    }
    let mut sql = String::new();
    let mut rows = 0;
    for b in bids(n) {
        expected.add(&b);
        if rows == 0 {
            sql.push_str(
                "INSERT INTO bids (auction, bidder, price, channel, url, date_time, extra) VALUES ",
            );
        } else {
            sql.push(',');
        }
        let _ = write!(
            sql,
            "({},{},{},{},{},{},{})",
            b.auction,
            b.bidder,
            b.price,
            sql_string(&b.channel),
            sql_string(&b.url),
            b.date_time,
            sql_string(&b.extra)
        );
        rows += 1;
        if rows == INSERT_BATCH {
            // A writer that failed has dropped its end: its error follows.
            if tx.send(std::mem::take(&mut sql)).await.is_err() {
                break;
            }
            rows = 0;
        }
    }
    if rows > 0 {
        let _ = tx.send(sql).await;
    }
    drop(tx);
    for w in writers {
        w.await??;
    }
    Ok(())
}

/// Loads, through rill, the auctions generated up to the last of `n`
/// bids' time into the `auctions` table; returns each one's event time.
async fn load_auctions(client: &Client, n: u64) -> anyhow::Result<HashMap<usize, u64>> {
    let last = bids(n).last().map_or(0, |b| b.date_time);
    let mut times = HashMap::new();
    let mut batch = Vec::new();
    let mut auctions = auctions(last).peekable();
    while let Some(a) = auctions.next() {
        times.insert(a.id, a.date_time);
        batch.push(format!(
            "({},{},{},{})",
            a.id, a.seller, a.category, a.date_time
        ));
        if batch.len() == INSERT_BATCH || auctions.peek().is_none() {
            run_sql(
                client,
                &format!(
                    "INSERT INTO auctions (id, seller, category, date_time) VALUES {}",
                    batch.join(",")
                ),
            )
            .await?;
            batch.clear();
        }
    }
    Ok(times)
}

/// Produces the bids straight to Kafka, as another client of the topic
/// would (no key; the record timestamp is the bid's time).
fn load_kafka(brokers: &str, topic: &str, n: u64, expected: &mut Expected) -> anyhow::Result<()> {
    use rdkafka::config::ClientConfig;
    use rdkafka::error::KafkaError;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::types::RDKafkaErrorCode;

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "none")
        .create()
        .context("creating the Kafka producer")?;
    for b in bids(n) {
        expected.add(&b);
        let value = bid_json(&b);
        let mut record = BaseRecord::<(), String>::to(topic)
            .payload(&value)
            .timestamp(b.date_time as i64);
        let stuck_at = Instant::now() + LOAD_STALL;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    if Instant::now() > stuck_at {
                        bail!("producing to {topic}: the broker took nothing for {LOAD_STALL:?}");
                    }
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => bail!("producing to {topic}: {e}"),
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .context("flushing the Kafka producer")?;
    Ok(())
}

/// User + system CPU time of process `pid`.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parens.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("odd /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 here.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux), asked once so
/// no process is spawned around a measurement.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Peak resident set of `pid` since the last [`reset_peak_rss`].
fn peak_rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or_else(|| anyhow!("no VmHWM for {pid}"))?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("odd VmHWM line"))?
        .parse()?;
    Ok(kb * 1024)
}

/// Resets the peak resident set (proc(5), clear_refs "5").
fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// SHOW QUERIES' row for the query writing `sink`: (id, rows_in).
async fn query_progress(client: &Client, sink: &str) -> anyhow::Result<Option<(String, u64)>> {
    let rows = try_query(client, "SHOW QUERIES").await?;
    Ok(plain(&rows)
        .iter()
        .find(|r| r[4].eq_ignore_ascii_case(sink))
        .map(|r| (r[0].to_string(), r[5].parse().unwrap_or(0))))
}

/// Records in a topic, as SHOW TOPICS EXTENDED counts them.
async fn topic_records(client: &Client, topic: &str) -> anyhow::Result<u64> {
    let rows = try_query(client, "SHOW TOPICS EXTENDED").await?;
    Ok(plain(&rows)
        .iter()
        .find(|r| r[0] == topic)
        .map_or(0, |r| r[2].parse().unwrap_or(0)))
}

async fn run_query(
    client: &Client,
    pid: u32,
    spec: &QuerySpec,
    expected: &Expected,
    topic: &str,
) -> anyhow::Result<QueryFigures> {
    let n = expected.events;
    let expected_rows = match spec.check {
        Check::Records => n,
        Check::Q2Records => expected.q2,
        Check::Tumble => expected.tumble.len() as u64,
        Check::Hop => expected.hop.len() as u64,
        Check::MaxPrice => expected.max_price.len() as u64,
        Check::Joined => expected.joined,
    };
    let sql = with_topic(spec.sql, topic);
    reset_peak_rss(pid);
    let cpu0 = cpu_time(pid)?;
    let t0 = Instant::now();
    run_sql(client, &sql).await?;
    let id = loop {
        if let Some((id, rows_in)) = query_progress(client, spec.name).await? {
            if rows_in >= n {
                break id;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Caught up; now until its output is committed.
    match spec.check {
        Check::Records | Check::Q2Records | Check::Joined => {
            let mut last = (0, Instant::now());
            loop {
                let got = topic_records(client, topic).await?;
                if got >= expected_rows {
                    break;
                }
                if got != last.0 {
                    last = (got, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(5) {
                    break; // It will not come: the check below says so.
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        // A pull query waits until the query committed its source's end;
        // a key that does not exist keeps it cheap.
        _ => {
            let key = if spec.check == Check::MaxPrice {
                "one"
            } else {
                "auction"
            };
            run_sql(
                client,
                &format!("SELECT * FROM {} WHERE {key} = -1", spec.name),
            )
            .await?;
        }
    }
    let wall = t0.elapsed();
    let cpu = cpu_time(pid)? - cpu0;
    let peak_rss_bytes = peak_rss(pid)?;

    let (rows, mismatch) = check(client, spec, expected, expected_rows, topic).await?;
    run_sql(client, &format!("TERMINATE {id}")).await?;
    let kind = match spec.check {
        Check::Records | Check::Q2Records | Check::Joined => "STREAM",
        Check::Tumble | Check::Hop | Check::MaxPrice => "TABLE",
    };
    run_sql(client, &format!("DROP {kind} {} DELETE TOPIC", spec.name)).await?;
    Ok(QueryFigures {
        name: spec.name.into(),
        events: n,
        wall,
        cpu,
        peak_rss_bytes,
        rows,
        expected_rows,
        mismatch,
    })
}

/// `CREATE X name AS SELECT ...` writing `topic` (WITH goes after the name).
fn with_topic(sql: &str, topic: &str) -> String {
    match sql.split_once(" AS SELECT ") {
        Some((head, rest)) => format!("{head} WITH (kafka_topic='{topic}') AS SELECT {rest}"),
        None => sql.to_string(),
    }
}

/// Compares a query's output with the expected answer: the row count, and
/// for the tables every row.
async fn check(
    client: &Client,
    spec: &QuerySpec,
    expected: &Expected,
    expected_rows: u64,
    topic: &str,
) -> anyhow::Result<(u64, Option<String>)> {
    let windowed = |want: &HashMap<(i64, i64), i64>, rows: Vec<Vec<i64>>| {
        let mut wrong = 0;
        for r in &rows {
            if want.get(&(r[0], r[1])) != Some(&r[2]) {
                wrong += 1;
            }
        }
        (rows.len() as u64, wrong)
    };
    let (rows, wrong) = match spec.check {
        Check::Records | Check::Q2Records | Check::Joined => {
            (topic_records(client, topic).await?, 0)
        }
        Check::Tumble | Check::Hop => {
            let want = if spec.check == Check::Tumble {
                &expected.tumble
            } else {
                &expected.hop
            };
            let rows = int_rows(
                client,
                &format!("SELECT auction, WINDOWSTART, bids FROM {}", spec.name),
            )
            .await?;
            windowed(want, rows)
        }
        Check::MaxPrice => {
            let rows = int_rows(client, "SELECT WINDOWSTART, maxprice FROM q7").await?;
            let wrong = rows
                .iter()
                .filter(|r| expected.max_price.get(&r[0]) != Some(&r[1]))
                .count() as u64;
            (rows.len() as u64, wrong)
        }
    };
    let mismatch = if rows != expected_rows && spec.check == Check::Joined {
        let early = int_rows(
            client,
            "SELECT bid_time, auction_time, auction, ROWTIME, ROWOFFSET FROM join WHERE auction_time > bid_time",
        )
        .await?;
        Some(format!(
            "WRONG: {rows} rows, expected {expected_rows} ({} met a later auction, e.g. {:?})",
            early.len(),
            early.first()
        ))
    } else if rows != expected_rows {
        Some(format!("WRONG: {rows} rows, expected {expected_rows}"))
    } else if wrong > 0 {
        Some(format!("WRONG: {wrong} rows differ"))
    } else {
        None
    };
    Ok((rows, mismatch))
}

/// A result of BIGINT columns.
async fn int_rows(client: &Client, sql: &str) -> anyhow::Result<Vec<Vec<i64>>> {
    let rows = try_query(client, sql).await?;
    plain(&rows)
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| c.parse::<i64>().with_context(|| format!("{sql}: {c}")))
                .collect()
        })
        .collect()
}

/// The serving table's value for key `k`.
fn value_of(k: i64) -> i64 {
    k.wrapping_mul(7919) % 1_000_003
}

async fn serving(opts: &Options) -> anyhow::Result<ServingFigures> {
    let mut figures = ServingFigures {
        keys: opts.serving_keys,
        ..ServingFigures::default()
    };
    let args = server_args(opts, "serving");
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let t0 = Instant::now();
    let mut server = Server::start_with_args(&arg_refs).await?;
    figures.start = t0.elapsed();
    figures.start_logged_ms = logged_ms(&server.log(), "startup_ms");
    let client = server.connect().await?;
    let topic = |name: &str| topic_name(opts, name);

    run_sql(
        &client,
        &format!(
            "CREATE TABLE kv (k BIGINT PRIMARY KEY, v BIGINT) WITH (kafka_topic='{}', \
             value_format='JSON', partitions=1)",
            topic("kv")
        ),
    )
    .await?;
    let mut sql = String::new();
    for start in (0..opts.serving_keys).step_by(INSERT_BATCH) {
        sql.clear();
        sql.push_str("INSERT INTO kv (k, v) VALUES ");
        let end = (start + INSERT_BATCH as u64).min(opts.serving_keys);
        for k in start..end {
            if k > start {
                sql.push(',');
            }
            let _ = write!(sql, "({k},{})", value_of(k as i64));
        }
        run_sql(&client, &sql).await?;
    }
    // The pull waits until the table has taken in every insert.
    let last = opts.serving_keys as i64 - 1;
    let rows = int_rows(&client, &format!("SELECT v FROM kv WHERE k = {last}")).await?;
    if rows != vec![vec![value_of(last)]] {
        bail!("kv holds {rows:?} for key {last}");
    }

    for clients in [1, 8, 64] {
        figures
            .pull
            .push(pull_load(&server, opts, clients, None).await?);
    }
    figures
        .pull
        .push(pull_load(&server, opts, 16, Some(10_000.0)).await?);

    let (rate, p50, p99) = insert_to_visible(&server, &client, opts).await?;
    figures.insert_rate = rate;
    figures.insert_visible_p50 = p50;
    figures.insert_visible_p99 = p99;

    // Recovery: kill -9 with the table's keys in the store.
    drop(client);
    let before = server.log().len();
    let t0 = Instant::now();
    server.restart().await?;
    let client = server.connect().await?;
    let rows = int_rows(&client, "SELECT v FROM kv WHERE k = 0").await?;
    figures.recovery = t0.elapsed();
    if rows != vec![vec![value_of(0)]] {
        bail!("after recovery kv holds {rows:?} for key 0");
    }
    figures.recovery_logged_ms = logged_ms(&server.log()[before..], "startup_ms");
    Ok(figures)
}

/// The number after `name=` in the last log line that has it.
fn logged_ms(log: &str, name: &str) -> Option<u64> {
    let pat = format!("{name}=");
    log.lines().rev().find_map(|l| {
        let at = l.find(&pat)? + pat.len();
        let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// Point pull queries from `clients` sessions for `opts.serving_time`, as
/// fast as they return or, with `target_qps`, paced to that total rate.
async fn pull_load(
    server: &Server,
    opts: &Options,
    clients: usize,
    target_qps: Option<f64>,
) -> anyhow::Result<PullFigures> {
    let keys = opts.serving_keys;
    let duration = opts.serving_time;
    let mut tasks = Vec::new();
    let start = tokio::time::Instant::now();
    let deadline = start + duration;
    for c in 0..clients {
        let client = server.connect().await?;
        let interval = target_qps.map(|q| Duration::from_secs_f64(clients as f64 / q));
        tasks.push(tokio::spawn(async move {
            let stmt = client.prepare("SELECT v FROM kv WHERE k = $1").await?;
            let mut latencies = Vec::new();
            let mut wrong = 0u64;
            // A cheap deterministic key sequence, different per client.
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1);
            let mut next = tokio::time::Instant::now();
            while tokio::time::Instant::now() < deadline {
                if let Some(i) = interval {
                    tokio::time::sleep_until(next).await;
                    next += i;
                }
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let k = (x % keys) as i64;
                let t = Instant::now();
                let rows = client.query(&stmt, &[&k]).await?;
                latencies.push(t.elapsed());
                if rows.len() != 1 || rows[0].get::<_, i64>(0) != value_of(k) {
                    wrong += 1;
                }
            }
            anyhow::Ok((latencies, wrong))
        }));
    }
    let mut all = Vec::new();
    let mut wrong = 0;
    for t in tasks {
        let (l, w) = t.await??;
        all.extend(l);
        wrong += w;
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    Ok(PullFigures {
        clients,
        target_qps,
        qps: all.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        wrong,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// INSERTs at a steady rate into a stream feeding a COUNT per key; for each,
/// the time from the INSERT's return to a pull query seeing its count.
async fn insert_to_visible(
    server: &Server,
    client: &Client,
    opts: &Options,
) -> anyhow::Result<(f64, Duration, Duration)> {
    const RATE: f64 = 200.0;
    let topic = |name: &str| topic_name(opts, name);
    run_sql(
        client,
        &format!(
            "CREATE STREAM ins (k BIGINT KEY, v BIGINT) WITH (kafka_topic='{}', \
             value_format='JSON', partitions=1)",
            topic("ins")
        ),
    )
    .await?;
    run_sql(
        client,
        &format!(
            "CREATE TABLE ins_count WITH (kafka_topic='{}') AS \
             SELECT k, COUNT(*) AS n FROM ins GROUP BY k",
            topic("ins_count")
        ),
    )
    .await?;
    let reader = server.connect().await?;
    let stmt = reader
        .prepare("SELECT n FROM ins_count WHERE k = $1")
        .await?;
    let mut latencies = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / RATE);
    let start = tokio::time::Instant::now();
    let mut next = start;
    let mut k: i64 = 0;
    while start.elapsed() < opts.serving_time {
        tokio::time::sleep_until(next).await;
        next += interval;
        run_sql(client, &format!("INSERT INTO ins (k, v) VALUES ({k}, 1)")).await?;
        let acked = Instant::now();
        loop {
            let rows = reader.query(&stmt, &[&k]).await?;
            if rows.len() == 1 {
                break;
            }
            if acked.elapsed() > Duration::from_secs(10) {
                bail!("insert {k} not visible after 10 s");
            }
        }
        latencies.push(acked.elapsed());
        k += 1;
    }
    let rate = k as f64 / start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Ok((
        rate,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bids_are_the_same_every_run() {
        let a: Vec<String> = bids(50).map(|b| bid_json(&b)).collect();
        let b: Vec<String> = bids(50).map(|b| bid_json(&b)).collect();
        assert_eq!(a.len(), 50);
        assert_eq!(a, b);
    }

    #[test]
    fn a_bid_is_in_every_hopping_window_that_holds_its_time() {
        let mut e = Expected::default();
        let mut b = bids(1).next().expect("a bid");
        b.date_time = 1_000_003_500;
        e.add(&b);
        let mut starts: Vec<i64> = e.hop.keys().map(|k| k.1).collect();
        starts.sort_unstable();
        let t = 1_000_003_500;
        assert_eq!(starts.len(), 5);
        assert!(starts.iter().all(|s| *s <= t && t < s + WINDOW_MS));
        assert_eq!(e.tumble.keys().next().map(|k| k.1), Some(1_000_000_000));
    }

    #[test]
    fn logged_figures_are_read_from_the_last_line() {
        let log = "x startup_ms=12 y\nz startup_ms=340\n";
        assert_eq!(logged_ms(log, "startup_ms"), Some(340));
        assert_eq!(logged_ms(log, "recovered"), None);
    }
}
