//! Crash safety of the embedded mode under load: `RILL_CRASH_CYCLES` (default
//! 10) cycles of restart, concurrent writers and readers, and `kill -9` at a
//! random instant, then a check of everything against a reference model.
//!
//! rill promises that state, materialized rows, sink appends and source
//! offsets commit atomically, so a crash at any instant loses nothing that was
//! acknowledged and counts nothing twice. The model knows every row sent and
//! whether its `INSERT` was acknowledged (it returned OK) or is unknown (the
//! crash cut it off: it may be present, at most once). After the last cycle
//! the test restarts once more and checks:
//!
//! - the stream `ev` holds every acknowledged row exactly once, each unknown
//!   one at most once, nothing that was never sent, and each writer's rows in
//!   the order it sent them within a partition;
//! - `totals` and `per_win` equal the aggregates recomputed from exactly the
//!   rows `ev` holds, `per_region` the count recomputed from `users`, and
//!   `users` holds, per user, the last acknowledged upsert or an unknown one
//!   after it;
//! - `big` and `big2` hold exactly the qualifying rows, once each;
//! - no count a pull query showed during the load was taken back by a crash;
//! - no restart's log shows a panic, and every query is running.
//!
//! `RILL_CRASH_SEED` replays the random choices (delays, values, statement
//! mix) of a failed run; the timing of the kill relative to the load is not
//! reproducible, so a failure may need a few runs to recur.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rill_tests::{describe_error, exec, pg_config, query, try_query, Server, TextRow};
use tokio::time::timeout;
use tokio_postgres::{Client, NoTls};

/// Cycles when `RILL_CRASH_CYCLES` is not set: what CI runs.
const DEFAULT_CYCLES: usize = 10;
/// Concurrent writer sessions per cycle.
const WRITERS: u32 = 3;
/// The keys of `ev`: few, so every key and window gets many rows.
const KEYS: [&str; 6] = ["k0", "k1", "k2", "k3", "k4", "k5"];
/// Users per writer; writer `w` alone upserts users `u<w>_<j>`, so the order
/// of one user's upserts is the order its writer sent them.
const USERS_PER_WRITER: u32 = 3;
const REGIONS: [&str; 4] = ["north", "south", "east", "west"];
/// Event times start here (2023-11-14) and follow the wall clock since the
/// test started, minus a jitter, so they increase slowly, arrive somewhat out
/// of order, and stay far inside the windows' 24 h grace period.
const BASE_TS: i64 = 1_700_000_000_000;
const TS_JITTER_MS: u64 = 3_000;
const WINDOW_MS: i64 = 10_000;
/// The load runs this long (plus a seeded random part) before the kill.
const MIN_LOAD_MS: u64 = 200;
const MAX_EXTRA_LOAD_MS: u64 = 1_300;
/// How long the final check waits for the queries to converge after the
/// last restart (pull queries wait for read-your-writes only 10 s).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for any single statement of the final check.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(120);
/// Examples of each violation shown in a failure message.
const EXAMPLES: usize = 12;

/// xorshift64*: tiny, seeded, good enough to pick delays and values.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so nearby seeds give unrelated streams and
        // the state is never zero.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One row sent to `ev`; `(writer, seq)` identifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct EvRow {
    id: String,
    seq: i64,
    writer: i64,
    v: i64,
    ts: i64,
}

impl EvRow {
    fn ident(&self) -> (i64, i64) {
        (self.writer, self.seq)
    }
}

/// What a writer knows about a statement it sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The statement returned OK: its rows must be present exactly once.
    Acked,
    /// No answer arrived (the server was killed): present at most once.
    Unknown,
}

/// One writer session's identity and the state it keeps across cycles.
struct Writer {
    id: u32,
    rng: Rng,
    next_seq: i64,
}

/// What one writer did in one cycle.
#[derive(Default)]
struct CycleLog {
    ev: Vec<(EvRow, Outcome)>,
    /// `(user, region, outcome)` in the order sent.
    users: Vec<(String, String, Outcome)>,
    /// Errors the server answered with: none is expected for these
    /// well-formed statements.
    db_errors: Vec<String>,
}

/// The reference: everything sent, and what was acknowledged.
#[derive(Default)]
struct Model {
    ev: BTreeMap<(i64, i64), (EvRow, Outcome)>,
    /// Per user, its upserts in the order sent.
    users: BTreeMap<String, Vec<(String, Outcome)>>,
    db_errors: Vec<String>,
    /// The largest `n` of `totals` a pull query returned per key during the
    /// load, with the cycle it was read in.
    totals_seen: HashMap<String, (i64, usize)>,
}

impl Model {
    fn absorb(&mut self, log: CycleLog) {
        for (row, outcome) in log.ev {
            let previous = self.ev.insert(row.ident(), (row, outcome));
            assert!(previous.is_none(), "the test sent a (writer, seq) twice");
        }
        for (user, region, outcome) in log.users {
            self.users.entry(user).or_default().push((region, outcome));
        }
        self.db_errors.extend(log.db_errors);
    }

    fn count(&self, outcome: Outcome) -> usize {
        self.ev.values().filter(|(_, o)| *o == outcome).count()
    }
}

fn user_name(writer: u32, j: u64) -> String {
    format!("u{writer}_{j}")
}

/// Sends statements on its own session until the server goes away.
async fn run_writer(port: u16, mut w: Writer, started: Instant) -> (Writer, CycleLog) {
    let mut log = CycleLog::default();
    let Ok(Ok((client, connection))) =
        timeout(Duration::from_secs(10), pg_config(port).connect(NoTls)).await
    else {
        // The kill came before the session was up: nothing was sent.
        return (w, log);
    };
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    loop {
        let mut rows = Vec::new();
        let mut user = None;
        let sql = if w.rng.below(100) < 15 {
            let name = user_name(w.id, w.rng.below(u64::from(USERS_PER_WRITER)));
            let region = REGIONS[w.rng.below(REGIONS.len() as u64) as usize];
            let sql = format!("INSERT INTO users (id, region) VALUES ('{name}', '{region}');");
            user = Some((name, region.to_string()));
            sql
        } else {
            // Mostly one row per statement, sometimes a few (which may land
            // in both partitions).
            let n = if w.rng.below(100) < 75 {
                1
            } else {
                2 + w.rng.below(3)
            };
            let now = started.elapsed().as_millis() as i64;
            let mut values = Vec::new();
            for _ in 0..n {
                let row = EvRow {
                    id: KEYS[w.rng.below(KEYS.len() as u64) as usize].to_string(),
                    seq: w.next_seq,
                    writer: i64::from(w.id),
                    v: w.rng.below(50) as i64,
                    ts: BASE_TS + TS_JITTER_MS as i64 + now - w.rng.below(TS_JITTER_MS) as i64,
                };
                w.next_seq += 1;
                values.push(format!(
                    "('{}', {}, {}, {}, {})",
                    row.id, row.seq, row.writer, row.v, row.ts
                ));
                rows.push(row);
            }
            format!(
                "INSERT INTO ev (id, seq, writer, v, ts) VALUES {};",
                values.join(", ")
            )
        };
        let result = client.simple_query(&sql).await;
        let outcome = match &result {
            Ok(_) => Outcome::Acked,
            Err(_) => Outcome::Unknown,
        };
        log.ev.extend(rows.into_iter().map(|r| (r, outcome)));
        if let Some((name, region)) = user {
            log.users.push((name, region, outcome));
        }
        match result {
            Ok(_) => {}
            Err(e) if e.as_db_error().is_some() => {
                log.db_errors
                    .push(format!("writer {}: {sql}: {}", w.id, describe_error(&e)));
            }
            // The connection is gone: the server was killed.
            Err(_) => break,
        }
    }
    drop(client);
    let _ = connection.await;
    (w, log)
}

/// Reads `totals` with pull queries until the server goes away; returns the
/// largest `n` seen per key.
async fn run_reader(port: u16) -> HashMap<String, i64> {
    let mut seen = HashMap::new();
    let Ok(Ok((client, connection))) =
        timeout(Duration::from_secs(10), pg_config(port).connect(NoTls)).await
    else {
        return seen;
    };
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    while let Ok(rows) = try_query(&client, "SELECT id, n FROM totals;").await {
        for row in &rows {
            let (Some(id), Some(n)) = (cell(row, 0), cell(row, 1).and_then(|n| n.parse().ok()))
            else {
                continue;
            };
            let max = seen.entry(id.to_string()).or_insert(n);
            *max = (*max).max(n);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(client);
    let _ = connection.await;
    seen
}

fn cell(row: &TextRow, i: usize) -> Option<&str> {
    row.get(i).and_then(|c| c.as_deref())
}

fn int(row: &TextRow, i: usize, what: &str) -> i64 {
    match cell(row, i).map(str::parse::<i64>) {
        Some(Ok(v)) => v,
        _ => panic!("{what}: column {i} of {row:?} is not an integer"),
    }
}

fn text(row: &TextRow, i: usize, what: &str) -> String {
    match cell(row, i) {
        Some(v) => v.to_string(),
        None => panic!("{what}: column {i} of {row:?} is NULL"),
    }
}

async fn setup(client: &Client) {
    exec(client, "SET 'auto.offset.reset' = 'earliest';").await;
    for sql in [
        "CREATE STREAM ev (id VARCHAR KEY, seq BIGINT, writer INT, v INT, ts BIGINT) \
         WITH (kafka_topic='ev', value_format='JSON', partitions=2, timestamp='ts');",
        "CREATE TABLE users (id VARCHAR PRIMARY KEY, region VARCHAR) \
         WITH (kafka_topic='users', value_format='JSON', partitions=1);",
        "CREATE STREAM big AS SELECT id, seq, writer, v FROM ev WHERE v % 3 = 0;",
        "CREATE STREAM big2 AS SELECT id, seq, writer, v * 2 AS v2 FROM big WHERE v > 10;",
        "CREATE TABLE per_win AS SELECT id, COUNT(*) AS n, SUM(v) AS total FROM ev \
         WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY id;",
        "CREATE TABLE totals AS SELECT id, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY id;",
        "CREATE TABLE per_region AS SELECT region, COUNT(*) AS n FROM users GROUP BY region;",
    ] {
        exec(client, sql).await;
    }
}

/// Restarts rill (or, the first time, nothing: it runs) and returns the
/// milliseconds from process start until a pull query over a table fed by
/// `ev` answered, plus the `startup_ms` the server logged.
async fn recover(server: &mut Server, cycle: usize, seed: u64) -> (u64, Option<u64>) {
    let started = Instant::now();
    if let Err(e) = server.restart().await {
        panic!("crash test (seed {seed}): restart #{cycle} after kill -9 failed: {e:#}");
    }
    let client = server.connect().await.unwrap_or_else(|e| {
        panic!("crash test (seed {seed}): connect after restart #{cycle}: {e:#}")
    });
    match timeout(
        STATEMENT_TIMEOUT,
        try_query(&client, "SELECT n FROM totals WHERE id = 'k0';"),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            panic!("crash test (seed {seed}): first pull query after restart #{cycle}: {e:#}")
        }
        Err(_) => panic!(
            "crash test (seed {seed}): first pull query after restart #{cycle} did not answer \
             within {STATEMENT_TIMEOUT:?}"
        ),
    }
    let ms = started.elapsed().as_millis() as u64;
    (ms, last_startup_ms(&server.log()))
}

/// The `startup_ms=` of the last `rill is ready` line in the log.
fn last_startup_ms(log: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains("rill is ready"))?;
    let rest = &line[line.find("startup_ms=")? + "startup_ms=".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The value at quantile `q` (0..=1) of sorted `values`, nearest rank.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A list of violations of one invariant, with a cap on what is printed.
struct Violations {
    name: &'static str,
    items: Vec<String>,
}

impl Violations {
    fn new(name: &'static str) -> Violations {
        Violations {
            name,
            items: Vec::new(),
        }
    }

    fn push(&mut self, item: String) {
        self.items.push(item);
    }

    fn report(&self, out: &mut String) {
        if self.items.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\n* invariant violated: {} ({} cases)",
            self.name,
            self.items.len()
        );
        for item in self.items.iter().take(EXAMPLES) {
            let _ = writeln!(out, "    {item}");
        }
        if self.items.len() > EXAMPLES {
            let _ = writeln!(out, "    ... and {} more", self.items.len() - EXAMPLES);
        }
    }
}

/// What `ev` holds, compared with the model.
struct EvCheck {
    present: BTreeMap<(i64, i64), EvRow>,
    /// (ROWPARTITION, ROWOFFSET) of each present row.
    at: BTreeMap<(i64, i64), (i64, i64)>,
    lost: usize,
    duplicated: usize,
    unknown_present: usize,
    violations: Vec<Violations>,
}

/// Reads `ev` and checks it against what was sent.
async fn check_ev(client: &Client, model: &Model) -> EvCheck {
    let rows = query(
        client,
        "SELECT id, seq, writer, v, ts, ROWPARTITION, ROWOFFSET FROM ev;",
    )
    .await;
    let mut lost = Violations::new("every acknowledged INSERT into ev is present (lost rows)");
    let mut duplicated = Violations::new("no row of ev is present twice (duplicated rows)");
    let mut phantom = Violations::new("ev holds only rows that were sent, as sent");
    let mut order =
        Violations::new("each writer's rows are in the order it sent them within a partition");
    let mut present: BTreeMap<(i64, i64), EvRow> = BTreeMap::new();
    let mut at = BTreeMap::new();
    let mut copies: BTreeMap<(i64, i64), Vec<(i64, i64)>> = BTreeMap::new();
    // (partition, writer) -> (offset, seq) of the writer's last row read.
    let mut last: HashMap<(i64, i64), (i64, i64)> = HashMap::new();
    let mut by_position: Vec<(i64, i64, EvRow)> = Vec::new();
    for row in &rows {
        let r = EvRow {
            id: text(row, 0, "ev.id"),
            seq: int(row, 1, "ev.seq"),
            writer: int(row, 2, "ev.writer"),
            v: int(row, 3, "ev.v"),
            ts: int(row, 4, "ev.ts"),
        };
        let partition = int(row, 5, "ev.ROWPARTITION");
        let offset = int(row, 6, "ev.ROWOFFSET");
        copies
            .entry(r.ident())
            .or_default()
            .push((partition, offset));
        by_position.push((partition, offset, r));
    }
    by_position.sort_by_key(|(p, o, _)| (*p, *o));
    for (partition, offset, r) in by_position {
        match model.ev.get(&r.ident()) {
            None => phantom.push(format!(
                "partition {partition} offset {offset}: {r:?} was never sent"
            )),
            Some((sent, _)) if *sent != r => phantom.push(format!(
                "partition {partition} offset {offset}: read {r:?}, sent {sent:?}"
            )),
            Some(_) => {}
        }
        if let Some((prev_offset, prev_seq)) = last.get(&(partition, r.writer)) {
            if *prev_seq >= r.seq {
                order.push(format!(
                    "partition {partition}: writer {} seq {} at offset {offset} after seq {prev_seq} at offset {prev_offset}",
                    r.writer, r.seq
                ));
            }
        }
        last.insert((partition, r.writer), (offset, r.seq));
        at.insert(r.ident(), (partition, offset));
        present.insert(r.ident(), r);
    }
    for (ident, places) in &copies {
        if places.len() > 1 {
            let outcome = model.ev.get(ident).map(|(_, o)| *o);
            duplicated.push(format!(
                "(writer, seq) {ident:?} ({outcome:?}) present {} times at (partition, offset) {places:?}",
                places.len()
            ));
        }
    }
    let mut unknown_present = 0;
    for (ident, (sent, outcome)) in &model.ev {
        let here = present.contains_key(ident);
        match outcome {
            Outcome::Acked if !here => lost.push(format!("acknowledged {sent:?} is missing")),
            Outcome::Unknown if here => unknown_present += 1,
            _ => {}
        }
    }
    EvCheck {
        lost: lost.items.len(),
        duplicated: duplicated.items.len(),
        present,
        at,
        unknown_present,
        violations: vec![lost, duplicated, phantom, order],
    }
}

/// Compares what a relation holds with what it should, one violation per
/// differing key; `context` says what the model knows about the key.
fn compare<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    v: &mut Violations,
    expected: &BTreeMap<K, V>,
    actual: &BTreeMap<K, V>,
    context: impl Fn(&K) -> String,
) {
    let keys: BTreeSet<&K> = expected.keys().chain(actual.keys()).collect();
    for k in keys {
        let (e, a) = (expected.get(k), actual.get(k));
        if e != a {
            v.push(format!(
                "key {k:?}: expected {e:?}, found {a:?}{}",
                context(k)
            ));
        }
    }
}

/// What the model knows about one row of `ev`, for failure messages.
fn ev_status(model: &Model, ev: &EvCheck, ident: &(i64, i64)) -> String {
    let sent = match model.ev.get(ident) {
        None => "never sent".to_string(),
        Some((_, Outcome::Acked)) => "sent, acknowledged".to_string(),
        Some((_, Outcome::Unknown)) => {
            "sent, outcome unknown (the kill cut its INSERT off)".to_string()
        }
    };
    let here = match ev.at.get(ident) {
        Some((p, o)) => format!("present in ev at (partition, offset) ({p}, {o})"),
        None => "absent from ev".to_string(),
    };
    format!(" [ev row (writer, seq) {ident:?}: {sent}, {here}]")
}

/// For a key of `ev`, how many rows the model sent with an unknown outcome
/// that `ev` does not hold: a count off by that much suggests the query
/// counted records that recovery then truncated from `ev`.
fn unknown_absent(model: &Model, present: &BTreeMap<(i64, i64), EvRow>, id: &str) -> String {
    let absent: Vec<(i64, i64)> = model
        .ev
        .iter()
        .filter(|(k, (r, o))| *o == Outcome::Unknown && r.id == id && !present.contains_key(*k))
        .map(|(k, _)| *k)
        .collect();
    let shown = &absent[..absent.len().min(EXAMPLES)];
    let more = if absent.len() > shown.len() {
        ", ..."
    } else {
        ""
    };
    format!(
        " [{} unknown-outcome rows of id {id} are absent from ev: {shown:?}{more}]",
        absent.len()
    )
}

/// Reads a relation into a map, reporting keys that occur twice.
fn keyed<K: Ord + std::fmt::Debug, V: std::fmt::Debug>(
    v: &mut Violations,
    rows: impl IntoIterator<Item = (K, V)>,
) -> BTreeMap<K, V> {
    let mut map = BTreeMap::new();
    for (k, value) in rows {
        if let Some(old) = map.get(&k) {
            v.push(format!("key {k:?} appears twice: {old:?} and {value:?}"));
        }
        map.insert(k, value);
    }
    map
}

/// Checks everything derived from `ev` and `users` against the reference
/// recomputed from what they hold; returns the violations (empty when all
/// hold).
async fn check_derived(client: &Client, model: &Model, ev: &EvCheck) -> Vec<Violations> {
    let present = &ev.present;
    let mut out = Vec::new();

    // totals: count and sum per id over exactly the rows present.
    let mut v = Violations::new("totals = (COUNT, SUM(v)) per id over the rows ev holds");
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in present.values() {
        let e = expected.entry(r.id.clone()).or_default();
        e.0 += 1;
        e.1 += r.v;
    }
    let rows = query(client, "SELECT id, n, total FROM totals;").await;
    let actual = keyed(
        &mut v,
        rows.iter().map(|r| {
            (
                text(r, 0, "totals.id"),
                (int(r, 1, "totals.n"), int(r, 2, "totals.total")),
            )
        }),
    );
    compare(&mut v, &expected, &actual, |id| {
        unknown_absent(model, present, id)
    });
    out.push(v);

    // No count a reader saw during the load was taken back by a crash.
    let mut v = Violations::new(
        "a count a pull query on totals returned during the load is never taken back by a crash",
    );
    let mut seen: Vec<_> = model.totals_seen.iter().collect();
    seen.sort();
    for (id, (n, cycle)) in seen {
        let now = actual.get(id).map(|(n, _)| *n).unwrap_or(0);
        if now < *n {
            v.push(format!(
                "id {id}: a pull query in cycle {cycle} returned n = {n}, after the last restart n = {now}"
            ));
        }
    }
    out.push(v);

    // per_win: count and sum per (id, window start).
    let mut v = Violations::new(
        "per_win = (COUNT, SUM(v)) per (id, WINDOWSTART = ts - ts % 10000) over the rows ev holds",
    );
    let mut expected: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
    for r in present.values() {
        let e = expected
            .entry((r.id.clone(), r.ts - r.ts.rem_euclid(WINDOW_MS)))
            .or_default();
        e.0 += 1;
        e.1 += r.v;
    }
    let rows = query(
        client,
        "SELECT id, WINDOWSTART, WINDOWEND, n, total FROM per_win;",
    )
    .await;
    for r in &rows {
        let (start, end) = (
            int(r, 1, "per_win.WINDOWSTART"),
            int(r, 2, "per_win.WINDOWEND"),
        );
        if end != start + WINDOW_MS {
            v.push(format!(
                "window {r:?}: WINDOWEND is not WINDOWSTART + {WINDOW_MS}"
            ));
        }
    }
    let actual = keyed(
        &mut v,
        rows.iter().map(|r| {
            (
                (text(r, 0, "per_win.id"), int(r, 1, "per_win.WINDOWSTART")),
                (int(r, 3, "per_win.n"), int(r, 4, "per_win.total")),
            )
        }),
    );
    compare(&mut v, &expected, &actual, |(id, _)| {
        unknown_absent(model, present, id)
    });
    out.push(v);

    // big: exactly the rows of ev with v % 3 = 0, once each.
    let mut v = Violations::new("big = the rows of ev with v % 3 = 0, each exactly once");
    let expected: BTreeMap<(i64, i64), (String, i64)> = present
        .values()
        .filter(|r| r.v % 3 == 0)
        .map(|r| (r.ident(), (r.id.clone(), r.v)))
        .collect();
    let rows = query(
        client,
        "SELECT writer, seq, id, v, ROWPARTITION, ROWOFFSET FROM big;",
    )
    .await;
    let big_at = positions(&rows, "big");
    let big = keyed(
        &mut v,
        rows.iter().map(|r| {
            (
                (int(r, 0, "big.writer"), int(r, 1, "big.seq")),
                (text(r, 2, "big.id"), int(r, 3, "big.v")),
            )
        }),
    );
    compare(&mut v, &expected, &big, |k| {
        format!(
            "{}{}",
            ev_status(model, ev, k),
            locations(&big_at, k, "BIG")
        )
    });
    out.push(v);

    // big2: exactly the rows of big with v > 10, v2 = 2 v, once each.
    let mut v =
        Violations::new("big2 = the rows of big with v > 10 (v2 = v * 2), each exactly once");
    let expected: BTreeMap<(i64, i64), (String, i64)> = big
        .iter()
        .filter(|(_, (_, value))| *value > 10)
        .map(|(k, (id, value))| (*k, (id.clone(), value * 2)))
        .collect();
    let rows = query(
        client,
        "SELECT writer, seq, id, v2, ROWPARTITION, ROWOFFSET FROM big2;",
    )
    .await;
    let big2_at = positions(&rows, "big2");
    let actual = keyed(
        &mut v,
        rows.iter().map(|r| {
            (
                (int(r, 0, "big2.writer"), int(r, 1, "big2.seq")),
                (text(r, 2, "big2.id"), int(r, 3, "big2.v2")),
            )
        }),
    );
    compare(&mut v, &expected, &actual, |k| {
        format!(
            "{}{}",
            ev_status(model, ev, k),
            locations(&big2_at, k, "BIG2")
        )
    });
    out.push(v);

    // users: per user the last acknowledged upsert, or an unknown one sent
    // after it (or nothing, if nothing was acknowledged).
    let mut v = Violations::new(
        "users holds per user its last acknowledged upsert or an unknown one sent after it",
    );
    let rows = query(client, "SELECT id, region FROM users;").await;
    let users = keyed(
        &mut v,
        rows.iter()
            .map(|r| (text(r, 0, "users.id"), text(r, 1, "users.region"))),
    );
    let names: BTreeSet<&String> = model.users.keys().chain(users.keys()).collect();
    for name in names {
        let sent = model.users.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let last_acked = sent.iter().rposition(|(_, o)| *o == Outcome::Acked);
        let mut allowed: Vec<Option<&str>> = Vec::new();
        match last_acked {
            Some(i) => allowed.push(Some(sent[i].0.as_str())),
            None => allowed.push(None),
        }
        let after = last_acked.map_or(0, |i| i + 1);
        allowed.extend(
            sent[after..]
                .iter()
                .map(|(region, _)| Some(region.as_str())),
        );
        let found = users.get(name).map(String::as_str);
        if !allowed.contains(&found) {
            v.push(format!(
                "user {name}: found {found:?}, allowed {allowed:?} (upserts sent: {sent:?})"
            ));
        }
    }
    out.push(v);

    // per_region: users per region, recomputed from the users table.
    let mut v = Violations::new("per_region = COUNT(*) per region over the rows users holds");
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for region in users.values() {
        *expected.entry(region.clone()).or_default() += 1;
    }
    let rows = query(client, "SELECT region, n FROM per_region;").await;
    let actual = keyed(
        &mut v,
        rows.iter()
            .map(|r| (text(r, 0, "per_region.region"), int(r, 1, "per_region.n"))),
    );
    compare(&mut v, &expected, &actual, |_| String::new());
    out.push(v);

    out
}

/// Where the rows of a derived stream with this (writer, seq) are.
fn locations(at: &BTreeMap<(i64, i64), Vec<(i64, i64)>>, k: &(i64, i64), topic: &str) -> String {
    match at.get(k) {
        Some(places) => format!(" [{topic} (partition, offset): {places:?}]"),
        None => String::new(),
    }
}

/// `(writer, seq)` -> the (ROWPARTITION, ROWOFFSET) of each copy, from rows
/// whose first two columns are writer and seq and last two the position.
fn positions(rows: &[TextRow], what: &str) -> BTreeMap<(i64, i64), Vec<(i64, i64)>> {
    let mut at: BTreeMap<(i64, i64), Vec<(i64, i64)>> = BTreeMap::new();
    for r in rows {
        at.entry((int(r, 0, what), int(r, 1, what)))
            .or_default()
            .push((int(r, 4, what), int(r, 5, what)));
    }
    at
}

/// Lines of the log worth showing with a failure: recovery, truncation,
/// warnings and errors.
fn notable_log_lines(log: &str) -> String {
    let mut out = String::new();
    for line in log.lines().filter(|l| {
        l.starts_with("=====")
            || l.contains("WARN")
            || l.contains("ERROR")
            || l.contains("panicked")
            || l.contains("recovered")
            || l.contains("truncat")
    }) {
        out.push_str(line);
        out.push('\n');
    }
    // The separators alone for 200 cycles are long; keep the end.
    const MAX: usize = 48 * 1024;
    if out.len() > MAX {
        let mut cut = out.len() - MAX;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = format!("[... earlier lines omitted ...]\n{}", &out[cut..]);
    }
    out
}

/// Which starts (`===== rill start #n`) logged a panic, with the lines.
fn panics(log: &str) -> Vec<String> {
    let mut start = String::from("(before the first start)");
    let mut found = Vec::new();
    for line in log.lines() {
        if line.starts_with("===== rill start") {
            start = line.to_string();
        } else if line.contains("panicked") {
            found.push(format!("{start}: {line}"));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_cycles_under_load_lose_nothing_acknowledged_and_count_nothing_twice() {
    let cycles: usize = match std::env::var("RILL_CRASH_CYCLES") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("RILL_CRASH_CYCLES={v:?} is not a number")),
        Err(_) => DEFAULT_CYCLES,
    };
    let seed: u64 = match std::env::var("RILL_CRASH_SEED") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("RILL_CRASH_SEED={v:?} is not a number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    eprintln!("crash: {cycles} cycles, seed {seed} (replay with RILL_CRASH_SEED={seed})");
    let test_started = Instant::now();
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(dir.path()).await.expect("start rill");
    {
        let client = server.connect().await.expect("connect");
        setup(&client).await;
    }

    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|id| Writer {
            id,
            rng: Rng::new(seed ^ (u64::from(id) + 1).wrapping_mul(0x9e37_79b9)),
            next_seq: 0,
        })
        .collect();
    let mut model = Model::default();
    let mut recovery_ms: Vec<u64> = Vec::new();
    let mut startup_ms: Vec<u64> = Vec::new();
    for cycle in 0..cycles {
        if cycle > 0 {
            let (ms, logged) = recover(&mut server, cycle, seed).await;
            recovery_ms.push(ms);
            startup_ms.extend(logged);
        }
        let port = server.port();
        let load_started = Instant::now();
        let tasks: Vec<_> = writers
            .drain(..)
            .map(|w| tokio::spawn(run_writer(port, w, test_started)))
            .collect();
        let reader = tokio::spawn(run_reader(port));
        let delay = MIN_LOAD_MS + rng.below(MAX_EXTRA_LOAD_MS + 1);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill9();
        let killed_after = load_started.elapsed();
        let mut acked = 0;
        let mut unknown = 0;
        for task in tasks {
            let (w, log) = timeout(Duration::from_secs(30), task)
                .await
                .expect("a writer notices the kill within 30 s")
                .expect("writer task");
            acked += log.ev.iter().filter(|(_, o)| *o == Outcome::Acked).count();
            unknown += log
                .ev
                .iter()
                .filter(|(_, o)| *o == Outcome::Unknown)
                .count();
            model.absorb(log);
            writers.push(w);
        }
        let seen = timeout(Duration::from_secs(30), reader)
            .await
            .expect("the reader notices the kill within 30 s")
            .expect("reader task");
        for (id, n) in seen {
            let max = model.totals_seen.entry(id).or_insert((n, cycle));
            if n > max.0 {
                *max = (n, cycle);
            }
        }
        eprintln!(
            "crash: cycle {cycle}: killed after {} ms of load ({} ms planned); ev rows acknowledged {acked}, unknown {unknown}",
            killed_after.as_millis(),
            delay
        );
    }

    // The last restart: let the queries catch up, then check everything.
    let (ms, logged) = recover(&mut server, cycles, seed).await;
    recovery_ms.push(ms);
    startup_ms.extend(logged);
    let client = server.connect().await.expect("connect for the final check");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;

    let ev = timeout(STATEMENT_TIMEOUT, check_ev(&client, &model))
        .await
        .expect("reading ev answers");
    // Pull queries wait only 10 s for the queries to catch up; poll until
    // the derived relations match or CONVERGE_TIMEOUT passes.
    let converge_started = Instant::now();
    let mut attempts = 0;
    let derived = loop {
        attempts += 1;
        let derived = timeout(STATEMENT_TIMEOUT, check_derived(&client, &model, &ev))
            .await
            .expect("the final pull queries answer");
        if derived.iter().all(|v| v.items.is_empty())
            || converge_started.elapsed() > CONVERGE_TIMEOUT
        {
            break derived;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let converged = derived.iter().all(|v| v.items.is_empty());
    if attempts > 1 && converged {
        eprintln!(
            "crash: warning: the derived relations matched only after {attempts} attempts ({} ms): \
             pull queries right after the restart were not fresh",
            converge_started.elapsed().as_millis()
        );
    } else if !converged {
        eprintln!(
            "crash: the derived relations still differ after {attempts} attempts over {} ms",
            converge_started.elapsed().as_millis()
        );
    }
    let queries = query(&client, "SHOW QUERIES;").await;
    let mut not_running =
        Violations::new("every persistent query is RUNNING after the last restart");
    for q in &queries {
        if cell(q, 1) != Some("RUNNING") {
            not_running.push(format!("{q:?}"));
        }
    }
    let log = server.log();
    let mut panicked = Violations::new("no restart's log shows a panic");
    for p in panics(&log) {
        panicked.push(p);
    }
    let mut rejected = Violations::new("the server answers no INSERT of the load with an error");
    for e in &model.db_errors {
        rejected.push(e.clone());
    }
    let mut progress = Violations::new("the load made progress: INSERTs were acknowledged");
    if model.count(Outcome::Acked) == 0 {
        progress.push("no INSERT into ev was acknowledged in any cycle".into());
    }

    recovery_ms.sort_unstable();
    startup_ms.sort_unstable();
    let summary = format!(
        "crash summary: seed {seed}, cycles {cycles}, ev rows acknowledged {}, unknown {}, present {} \
         (unknown present {}), lost {}, duplicated {}; users upserts {}; recovery ms (start to \
         first fresh pull query) p50 {} p99 {} max {}; logged startup_ms p50 {} max {}; total {} s",
        model.count(Outcome::Acked),
        model.count(Outcome::Unknown),
        ev.present.len(),
        ev.unknown_present,
        ev.lost,
        ev.duplicated,
        model.users.values().map(Vec::len).sum::<usize>(),
        percentile(&recovery_ms, 0.5),
        percentile(&recovery_ms, 0.99),
        recovery_ms.last().copied().unwrap_or(0),
        percentile(&startup_ms, 0.5),
        startup_ms.last().copied().unwrap_or(0),
        test_started.elapsed().as_secs(),
    );
    eprintln!("{summary}");

    let mut failures = String::new();
    for v in
        ev.violations
            .iter()
            .chain(&derived)
            .chain([&not_running, &panicked, &rejected, &progress])
    {
        v.report(&mut failures);
    }
    if !failures.is_empty() {
        panic!(
            "crash safety violated after {cycles} kill -9 cycles (replay with \
             RILL_CRASH_SEED={seed} RILL_CRASH_CYCLES={cycles}; the kill timing is not \
             reproducible, so it may take a few runs)\n{summary}\n{failures}\n\
             --- notable rill log lines (all starts) ---\n{}",
            notable_log_lines(&log)
        );
    }
}
