//! A full disk, for real: the data directory is a small tmpfs, filled up
//! while rill runs. The query that cannot write stops with ERROR and the
//! cause in SHOW QUERIES, other queries and pull queries keep working, an
//! INSERT fails with SQLSTATE 53100 (disk_full), and once space is freed
//! `RESTART QUERY` resumes the query with nothing lost or repeated.
//!
//! Mounting needs root; elsewhere the test says it is skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rill_tests::{
    describe_error, exec, expect_sqlstate, plain, query, values_of, wait_until, Server,
};
use tokio_postgres::Client;

/// How long the test waits for rill to get somewhere.
const WAIT: Duration = Duration::from_secs(60);

const RECORDS: usize = 4_000;
/// Bytes of padding per record: the source holds about 8 MB, more than
/// the space left once the disk is filled.
const PAD: usize = 2_000;
/// Space left free for the statements that must still work (the catalog
/// entry of a new query, its topic directory).
const HEADROOM: u64 = 256 << 10;

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::Builder::new()
            .prefix("rill-full-")
            .tempdir()
            .ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .ok()?;
        status.success().then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes a file until the file system is full, then gives back `headroom`
/// bytes.
fn fill(dir: &Path, headroom: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("create filler");
    let chunk = vec![0xAB_u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    // A failed write_all may leave part of the chunk written.
    let len = f.metadata().expect("filler size").len();
    f.set_len(len.saturating_sub(headroom))
        .expect("shrink filler");
    f.sync_all().expect("sync filler");
    path
}

/// Asserts `values` are `0..n` exactly once each, saying what is off.
fn assert_exactly_once(values: &[usize], n: usize) {
    let mut seen = vec![0usize; n];
    let mut stray = 0;
    for &v in values {
        match seen.get_mut(v) {
            Some(c) => *c += 1,
            None => stray += 1,
        }
    }
    let missing = seen.iter().filter(|&&c| c == 0).count();
    let duplicated = seen.iter().filter(|&&c| c > 1).count();
    assert_eq!(
        (missing, duplicated, stray),
        (0, 0, 0),
        "(missing, duplicated, unexpected) values of 0..{n}"
    );
}

/// (status, last_error) of the query writing `sink`.
async fn query_status(client: &Client, sink: &str) -> (String, String, String) {
    let rows = query(client, "SHOW QUERIES;").await;
    plain(&rows)
        .iter()
        .find(|r| r[4] == sink)
        .map(|r| (r[0].to_string(), r[1].to_string(), r[9].to_string()))
        .unwrap_or_else(|| panic!("no query writes {sink}"))
}

async fn total_count(client: &Client) -> usize {
    let rows = query(client, "SELECT n FROM counts;").await;
    plain(&rows)
        .iter()
        .map(|r| r[0].parse::<usize>().expect("n"))
        .sum()
}

/// Two keys, one hashed to each of two partitions (found with a probe
/// stream, since the partitioner is Kafka's murmur2).
async fn keys_per_partition(client: &Client) -> [String; 2] {
    exec(
        client,
        "CREATE STREAM probe (id VARCHAR KEY, v INT) \
         WITH (kafka_topic='probe', value_format='JSON', partitions=2);",
    )
    .await;
    let values: Vec<String> = (0..10).map(|i| format!("('k{i}', {i})")).collect();
    exec(
        client,
        &format!("INSERT INTO probe (id, v) VALUES {};", values.join(", ")),
    )
    .await;
    let rows = query(client, "SELECT id, ROWPARTITION FROM probe;").await;
    let rows = plain(&rows);
    let key = |p: &str| {
        rows.iter()
            .find(|r| r[1] == p)
            .map(|r| r[0].to_string())
            .expect("a key per partition")
    };
    [key("0"), key("1")]
}

/// Records `from..to`: every 200th small and keyed to partition 0, the
/// rest padded and keyed to partition 1. A commit of the copy then
/// appends to partition 0 (which fits in the headroom) before partition 1
/// (which does not), so the failed commit leaves records to take back.
async fn insert(client: &Client, keys: &[String; 2], from: usize, to: usize) {
    let pad = "x".repeat(PAD);
    for start in (from..to).step_by(500) {
        let values: Vec<String> = (start..to.min(start + 500))
            .map(|i| match i % 200 {
                0 => format!("('{}', {i}, '')", keys[0]),
                _ => format!("('{}', {i}, '{pad}')", keys[1]),
            })
            .collect();
        exec(
            client,
            &format!("INSERT INTO s (id, v, pad) VALUES {};", values.join(", ")),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_query_that_cannot_write_and_restart_query_resumes_it() {
    let Some(fs) = Tmpfs::mount("64m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    let data_dir = fs.path().join("data");
    let mut server = Server::start_with(&data_dir).await.expect("start rill");
    let client = server.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    let keys = keys_per_partition(&client).await;
    exec(
        &client,
        "CREATE STREAM s (id VARCHAR KEY, v INT, pad VARCHAR) \
         WITH (kafka_topic='s', value_format='JSON', partitions=2);",
    )
    .await;
    exec(
        &client,
        "CREATE TABLE counts AS SELECT id, COUNT(*) AS n FROM s GROUP BY id;",
    )
    .await;
    insert(&client, &keys, 0, RECORDS).await;
    wait_until("counts to see every record", WAIT, || async {
        total_count(&client).await == RECORDS
    })
    .await;

    let filler = fill(fs.path(), HEADROOM);
    // The copy needs ~8 MB for its output: its first commit cannot land,
    // though its small partition-0 records fit.
    exec(&client, "CREATE STREAM copy AS SELECT * FROM s;").await;
    wait_until("the copy query to stop with ERROR", WAIT, || async {
        query_status(&client, "COPY").await.1.starts_with("ERROR")
    })
    .await;
    let (id, status, _) = query_status(&client, "COPY").await;
    assert!(
        status.contains("No space left on device"),
        "the cause is shown: {status}"
    );
    // The other query and pull queries keep working.
    assert_eq!(query_status(&client, "COUNTS").await.1, "RUNNING");
    assert_eq!(total_count(&client).await, RECORDS);
    assert!(
        values_of(&client, "copy").await.is_empty(),
        "nothing half-committed shows"
    );
    let pad = "y".repeat(HEADROOM as usize);
    let err = expect_sqlstate(
        &client,
        &format!("INSERT INTO s (id, v, pad) VALUES ('k0', -1, '{pad}');"),
        "53100",
    )
    .await;
    let message = describe_error(&err);
    assert!(message.contains("No space left"), "{message}");

    // Free the space: the query resumes where its state says.
    std::fs::remove_file(&filler).expect("remove filler");
    exec(&client, &format!("RESTART QUERY {id};")).await;
    wait_until("the copy to catch up", WAIT, || async {
        values_of(&client, "copy").await.len() >= RECORDS
    })
    .await;
    assert_exactly_once(&values_of(&client, "copy").await, RECORDS);
    assert_eq!(query_status(&client, "COPY").await.1, "RUNNING");
    insert(&client, &keys, RECORDS, RECORDS + 10).await;
    wait_until("both queries to see new records", WAIT, || async {
        total_count(&client).await == RECORDS + 10
            && values_of(&client, "copy").await.len() == RECORDS + 10
    })
    .await;

    // And nothing is off after a restart either.
    server.restart().await.expect("restart");
    let client = server.connect().await.expect("connect after restart");
    assert_eq!(total_count(&client).await, RECORDS + 10);
    assert_exactly_once(&values_of(&client, "copy").await, RECORDS + 10);
    drop(client);
    drop(server);
}
