//! What the tests of the formats that use a schema registry (AVRO in
//! `tests/tests/avro.rs`, PROTOBUF in `tests/tests/protobuf.rs`) share: rill
//! started with `--schema-registry`, the catalog as DESCRIBE and SHOW
//! QUERIES show it, a topic's raw bytes as rill prints BYTES, the Python
//! interop scripts, and the statements that behave alike in every registry
//! format (the functions taking a `format`, which check what they run).
//!
//! Nothing here knows a wire format: each test file encodes and decodes its
//! records itself, so a bug in rill's codec cannot hide behind a shared one.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tokio_postgres::Client;

use crate::registry::Registry;
use crate::{describe_error, exec, plain, query, workspace_root, Server};

/// How long the tests wait for what rill does asynchronously (records it
/// writes, the processing log filling).
pub const WAIT: Duration = Duration::from_secs(20);

/// Starts rill with `--schema-registry` pointing at `registry` (plus
/// `extra` arguments) and connects a session that reads from the earliest
/// offset.
pub async fn start_with_registry(registry: &Registry, extra: &[&str]) -> (Server, Client) {
    let url = registry.url();
    let mut args = vec!["--schema-registry", url.as_str()];
    args.extend_from_slice(extra);
    let server = Server::start_with_args(&args)
        .await
        .expect("start rill with --schema-registry");
    let client = server.connect().await.expect("connect");
    exec(&client, "SET 'auto.offset.reset' = 'earliest';").await;
    (server, client)
}

/// The latest (id, schema) of `subject`; a failure names the subjects the
/// registry has instead of a bare `None`.
pub fn latest_of(registry: &Registry, subject: &str) -> (u32, String) {
    registry.latest(subject).unwrap_or_else(|| {
        panic!(
            "the registry has no subject {subject:?}; it has {:?}",
            registry.subjects()
        )
    })
}

/// `\x0102`, how rill (and Postgres) print BYTES.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::from("\\x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The inverse of [`hex`].
pub fn unhex(text: &str) -> Vec<u8> {
    let digits = text
        .strip_prefix("\\x")
        .unwrap_or_else(|| panic!("not a \\x.. bytes value: {text:?}"));
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Rows as strings, with every JSON object cell (a STRUCT or MAP) re-printed
/// with sorted keys, so two spellings of one value compare equal. (Field
/// order in printed structs is not what these tests check.)
pub fn normalized(rows: Vec<Vec<&str>>) -> Vec<Vec<String>> {
    reprinted(rows, |v| v.is_object().then_some(v))
}

/// Rows as strings, every cell that is JSON handed to `canon`: where it
/// returns a value, that value is printed instead of the cell. [`normalized`]
/// is this for objects; a test that forgives more (number spelling, say)
/// passes a `canon` of its own.
pub fn reprinted(rows: Vec<Vec<&str>>, canon: impl Fn(Json) -> Option<Json>) -> Vec<Vec<String>> {
    let reprint = |c: &str| match serde_json::from_str::<Json>(c).ok().and_then(&canon) {
        Some(v) => v.to_string(),
        None => c.to_string(),
    };
    rows.into_iter()
        .map(|r| r.into_iter().map(reprint).collect())
        .collect()
}

/// The (field, type, key) rows of `DESCRIBE name`.
pub async fn describe(client: &Client, name: &str) -> Vec<Vec<String>> {
    let rows = query(client, &format!("DESCRIBE {name};")).await;
    plain(&rows)
        .into_iter()
        .map(|r| r.into_iter().map(str::to_string).collect())
        .collect()
}

/// (field, type, key) triples as [`describe`] returns them.
pub fn columns(expected: &[(&str, &str, &str)]) -> Vec<Vec<String>> {
    expected
        .iter()
        .map(|(f, t, k)| vec![f.to_string(), t.to_string(), k.to_string()])
        .collect()
}

/// The `value` of a `DESCRIBE name EXTENDED` property row.
pub async fn property(client: &Client, name: &str, prop: &str) -> String {
    let rows = query(client, &format!("DESCRIBE {name} EXTENDED;")).await;
    plain(&rows)
        .into_iter()
        .find(|r| r[0] == "property" && r[1] == prop)
        .map(|r| r[2].to_string())
        .unwrap_or_else(|| panic!("no property {prop} in DESCRIBE {name} EXTENDED"))
}

/// The (query id, status, errors) of the query writing `sink`.
pub async fn query_of(client: &Client, sink: &str) -> (String, String, String) {
    let rows = query(client, "SHOW QUERIES;").await;
    plain(&rows)
        .into_iter()
        .find(|r| r[4] == sink)
        .map(|r| (r[0].to_string(), r[1].to_string(), r[8].to_string()))
        .unwrap_or_else(|| panic!("no query writes {sink}: {rows:?}"))
}

/// The raw values of `topic` through a KAFKA-format BYTES stream over it
/// (named `stream`), so the embedded log's bytes can be checked.
pub async fn raw_values(client: &Client, stream: &str, topic: &str) -> Vec<Vec<u8>> {
    exec(
        client,
        &format!("CREATE STREAM {stream} (raw BYTES) WITH (kafka_topic='{topic}', value_format='KAFKA');"),
    )
    .await;
    let rows = query(client, &format!("SELECT raw FROM {stream};")).await;
    plain(&rows).into_iter().map(|r| unhex(r[0])).collect()
}

/// The rows (query id, topic, partition, offset, error, record) of
/// `RILL_PROCESSING_LOG` once each of `queries` has at least `at_least`
/// entries, or as they are after [`WAIT`]: the caller asserts on them.
pub async fn processing_log(
    client: &Client,
    queries: &[&str],
    at_least: usize,
) -> Vec<Vec<String>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = query(
            client,
            "SELECT query_id, topic, partition, offset, error, record FROM RILL_PROCESSING_LOG;",
        )
        .await;
        let log: Vec<Vec<String>> = plain(&rows)
            .into_iter()
            .map(|r| r.into_iter().map(str::to_string).collect())
            .collect();
        let of = |q: &str| log.iter().filter(|r| r[0] == q).count();
        if queries.iter().all(|q| of(q) >= at_least) || Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ------------------------------------------------- alike in every format ---

/// Creates stream `keyed` (a declared VARCHAR key `ID`) and stream
/// `all_types` (nothing declared) over topic `all_types` in `format`, and
/// checks that DESCRIBE shows `value_columns` inferred from the latest
/// `all_types-value` schema for both (after the key for `keyed`), and that
/// `keyed` has a KAFKA key.
pub async fn create_all_types_streams(
    client: &Client,
    format: &str,
    value_columns: &[(&str, &str, &str)],
) {
    // A declared key, value columns inferred.
    exec(
        client,
        &format!("CREATE STREAM keyed (id VARCHAR KEY) WITH (kafka_topic='all_types', value_format='{format}', partitions=1);"),
    )
    .await;
    let mut expected = vec![("ID", "STRING", "KEY")];
    expected.extend_from_slice(value_columns);
    assert_eq!(describe(client, "keyed").await, columns(&expected));
    assert_eq!(property(client, "keyed", "key_format").await, "KAFKA");
    assert_eq!(property(client, "keyed", "value_format").await, format);

    // No columns at all: every column is inferred.
    exec(
        client,
        &format!(
            "CREATE STREAM all_types WITH (kafka_topic='all_types', value_format='{format}');"
        ),
    )
    .await;
    assert_eq!(describe(client, "all_types").await, columns(value_columns));
}

/// `CREATE STREAM nothing` in `format` over a topic no schema is registered
/// for fails, names the subject it looked for (`nothing-value`), and leaves
/// no stream behind.
pub async fn assert_no_subject_is_a_clear_error(client: &Client, format: &str) {
    let err = client
        .simple_query(&format!(
            "CREATE STREAM nothing WITH (kafka_topic='nothing', value_format='{format}', partitions=1);"
        ))
        .await
        .expect_err("CREATE STREAM over a topic with no registered schema must fail");
    let message = describe_error(&err);
    assert!(
        message.contains("nothing-value"),
        "the error should name the missing subject: {message}"
    );
    let rows = query(client, "SHOW STREAMS;").await;
    assert!(
        !plain(&rows).iter().any(|r| r[0] == "NOTHING"),
        "a failed CREATE left a stream behind"
    );
}

/// On a server started without `--schema-registry`, runs a `CREATE STREAM`
/// with inferred values in `format`, one with declared values in `format`,
/// and one with JSON values and a key in `format`; returns a report for
/// each that did not fail with an error naming that flag (none when all
/// did). Every statement is tried, so one report shows them all.
pub async fn registry_flag_problems(client: &Client, format: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    for sql in [
        format!("CREATE STREAM s WITH (kafka_topic='t', value_format='{format}', partitions=1);"),
        format!("CREATE STREAM s (id VARCHAR KEY, v INT) WITH (kafka_topic='t', value_format='{format}', partitions=1);"),
        format!("CREATE STREAM s (id VARCHAR KEY, v INT) WITH (kafka_topic='t', value_format='JSON', key_format='{format}', partitions=1);"),
    ] {
        match client.simple_query(&sql).await {
            Ok(_) => wrong.push(format!("{sql}\n  succeeded")),
            Err(err) => {
                let message = describe_error(&err);
                if err.code().is_none() || !message.contains("--schema-registry") {
                    wrong.push(format!(
                        "{sql}\n  the error should name --schema-registry: {message}"
                    ));
                }
            }
        }
    }
    wrong
}

/// The start of the embedded pipeline tests: creates stream `pageviews`
/// (a declared VARCHAR key `VIEWER`) over topic `pageviews` in `format`,
/// its value columns inferred from the schema the test registered under
/// `pageviews-value` (PAGE, DURATION, PREMIUM, SCORE, REFERRER, TAGS,
/// VIEWED_AT), checks DESCRIBE, inserts three rows and checks they read
/// back.
pub async fn create_and_fill_pageviews(client: &Client, format: &str) {
    exec(
        client,
        &format!("CREATE STREAM pageviews (viewer VARCHAR KEY) WITH (kafka_topic='pageviews', value_format='{format}', partitions=1);"),
    )
    .await;
    assert_eq!(
        describe(client, "pageviews").await,
        columns(&[
            ("VIEWER", "STRING", "KEY"),
            ("PAGE", "STRING", "NULL"),
            ("DURATION", "INTEGER", "NULL"),
            ("PREMIUM", "BOOLEAN", "NULL"),
            ("SCORE", "DOUBLE", "NULL"),
            ("REFERRER", "STRING", "NULL"),
            ("TAGS", "ARRAY<STRING>", "NULL"),
            ("VIEWED_AT", "TIMESTAMP", "NULL"),
        ])
    );

    exec(
        client,
        "INSERT INTO pageviews (viewer, page, duration, premium, score, referrer, tags, viewed_at) VALUES
           ('u1', '/home', 5, true, 0.5, NULL, ARRAY['a'], '2024-01-02T03:04:05'),
           ('u2', '/home', 30, false, 1.5, 'google', ARRAY['a', 'b'], '2024-01-02T03:04:06.250'),
           ('u1', '/about', 12, true, 2, 'bing', ARRAY['c'], '2024-01-02T03:04:07');",
    )
    .await;
    let rows = query(
        client,
        "SELECT viewer, page, duration, premium, score, referrer, tags, viewed_at FROM pageviews;",
    )
    .await;
    assert_eq!(
        plain(&rows),
        vec![
            vec![
                "u1",
                "/home",
                "5",
                "t",
                "0.5",
                "NULL",
                r#"["a"]"#,
                "2024-01-02 03:04:05"
            ],
            vec![
                "u2",
                "/home",
                "30",
                "f",
                "1.5",
                "google",
                r#"["a","b"]"#,
                "2024-01-02 03:04:06.250"
            ],
            vec![
                "u1",
                "/about",
                "12",
                "t",
                "2",
                "bing",
                r#"["c"]"#,
                "2024-01-02 03:04:07"
            ],
        ]
    );
}

/// The middle of the embedded pipeline tests, after
/// [`create_and_fill_pageviews`] and a CSAS `long_views` (PAGE, D2 =
/// DURATION * 2, ... of the pageviews longer than 10): a push query over
/// LONG_VIEWS from the earliest offset; then tables `per_page` (COUNT and
/// SUM(duration) by page, KAFKA key) and `per_viewer` (COUNT and MAX(score)
/// by viewer, its key in `format`); a fourth pageview (`u3`, `/home`, 40),
/// and checks that both tables and LONG_VIEWS took it in.
pub async fn aggregate_pageviews(client: &Client, format: &str) {
    // A push query over the output (from the earliest offset).
    let rows = query(
        client,
        "SELECT page, d2 FROM long_views EMIT CHANGES LIMIT 2;",
    )
    .await;
    assert_eq!(
        plain(&rows),
        vec![vec!["/home", "60"], vec!["/about", "24"]]
    );

    exec(
        client,
        "CREATE TABLE per_page AS SELECT page, COUNT(*) AS n, SUM(duration) AS total FROM pageviews GROUP BY page;",
    )
    .await;
    exec(
        client,
        &format!(
            "CREATE TABLE per_viewer WITH (key_format='{format}') AS SELECT viewer, COUNT(*) AS n, MAX(score) AS best
           FROM pageviews GROUP BY viewer;"
        ),
    )
    .await;
    exec(
        client,
        "INSERT INTO pageviews (viewer, page, duration, premium, score, referrer, tags, viewed_at) VALUES
           ('u3', '/home', 40, false, 9.5, NULL, ARRAY['d'], '2024-01-02T03:05:00');",
    )
    .await;
    let rows = query(client, "SELECT page, n, total FROM per_page ORDER BY page;").await;
    assert_eq!(
        plain(&rows),
        vec![vec!["/about", "1", "12"], vec!["/home", "3", "75"]]
    );
    let rows = query(
        client,
        "SELECT viewer, n, best FROM per_viewer WHERE viewer = 'u1';",
    )
    .await;
    assert_eq!(plain(&rows), vec![vec!["u1", "2", "2"]]);
    let rows = query(client, "SELECT viewer, page, d2 FROM long_views;").await;
    assert_eq!(
        rows.len(),
        3,
        "the new row reached the CSAS output: {rows:?}"
    );
}

// -------------------------------------------------------------- Python ---

/// Whether `python3 <flags> -c <imports>` succeeds, i.e. the Python
/// packages an interop test needs are installed. When not, prints why the
/// test is skipped (`what` names the packages, `.ci/run` installs them).
pub fn python_imports(flags: &[&str], imports: &str, what: &str) -> bool {
    let probe = Command::new("python3")
        .args(flags)
        .args(["-c", imports])
        .output();
    match probe {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "skipping: {what} do not import (.ci/run installs them): {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            );
            false
        }
        Err(e) => {
            eprintln!("skipping: python3 cannot run: {e}");
            false
        }
    }
}

/// Runs `python3 <flags> tests/scripts/<script> <args>` and returns the
/// JSON value of each non-empty line it prints; panics with its stdout and
/// stderr when it fails.
pub fn run_python(flags: &[&str], script: &str, args: &[&str]) -> Vec<Json> {
    let path = workspace_root().join("tests/scripts").join(script);
    let out = Command::new("python3")
        .args(flags)
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} {args:?} failed with {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {l:?}: {e}")))
        .collect()
}
