//! Runs every `sqllogictest/*.slt` file against a real `rill` process over
//! pgwire, one fresh server (own data directory) per file, one libtest test
//! per file: `cargo test -p rill-sqllogictest --test slt -- tumbling` runs
//! `tumbling.slt` only.
//!
//! Results are compared as text, exactly as psql would print them (the
//! simple query protocol returns every value in Postgres text format): NULL
//! is written `NULL` and the empty string `(empty)`. Column types in
//! `query` headers are not checked. `statement error (42P01)` checks the
//! SQLSTATE; `statement error <regex>` matches the server's message.
//!
//! Unlike `Runner::run_file_async`, a failed record does not stop the file:
//! the test fails with every mismatch listed.
//!
//! Set `RILL_SLT_STATEMENT_TIMEOUT` (seconds, default 30) to bound each
//! statement: a push query that never gets its LIMIT rows fails the file
//! instead of hanging it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use libtest_mimic::{Arguments, Failed, Trial};
use rill_tests::{describe_error, Server};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Record, Runner};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

fn main() {
    let args = Arguments::from_args();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "slt"))
            .collect(),
        Err(e) => {
            eprintln!("cannot list {}: {e}", dir.display());
            std::process::exit(2);
        }
    };
    files.sort();
    // With RILL_TEST_TANSU (the Tansu broker binary), every file also runs
    // in Kafka mode, each against a broker of its own.
    let tansu = std::env::var_os("RILL_TEST_TANSU").map(PathBuf::from);
    let mut trials = Vec::new();
    for path in files {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(tansu) = tansu.clone() {
            // A file can opt out of Kafka mode with a `# kafka-mode: skip
            // <reason>` line; it then shows as ignored, not as passed.
            let skip = std::fs::read_to_string(&path)
                .map(|text| text.lines().any(|l| l.starts_with("# kafka-mode: skip")))
                .unwrap_or(false);
            let path = path.clone();
            trials.push(
                Trial::test(format!("kafka::{name}"), move || {
                    run_file(&path, Some(&tansu))
                })
                .with_ignored_flag(skip),
            );
        }
        trials.push(Trial::test(name, move || run_file(&path, None)));
    }
    libtest_mimic::run(&args, trials).exit();
}

fn statement_timeout() -> Duration {
    let secs = std::env::var("RILL_SLT_STATEMENT_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// Runs one file on a server of its own.
/// A Tansu broker on a free loopback port, stopped on drop.
struct Broker {
    child: std::process::Child,
    addr: String,
}

impl Broker {
    fn start(tansu: &Path) -> Result<Broker, String> {
        let port = rill_tests::free_port().map_err(|e| format!("free port: {e}"))?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = std::process::Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", tansu.display()))?;
        let broker = Broker {
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&broker.addr).is_err() {
            if std::time::Instant::now() > deadline {
                return Err("Tansu did not start listening within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(broker)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_file(path: &Path, tansu: Option<&Path>) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("building a tokio runtime: {e}"))?;
    runtime.block_on(async {
        let broker = match tansu {
            Some(t) => Some(Broker::start(t)?),
            None => None,
        };
        let server = match &broker {
            Some(b) => Server::start_with_args(&["--kafka-brokers", &b.addr]).await,
            None => Server::start().await,
        }
        .map_err(|e| format!("starting rill: {e:#}"))?;
        let config = server.pg_config();
        let mut runner = Runner::new(move || {
            let config = config.clone();
            async move { RillDb::connect(config).await }
        });
        let records = sqllogictest::parse_file(path).map_err(|e| format!("{e}"))?;
        // Every record runs even after a failure, so one run reports every
        // mismatch of the file (later ones may be consequences of earlier
        // ones; the first is the one to read first).
        let mut failures = Vec::new();
        let mut queries = 0;
        for record in records {
            if let Record::Halt { .. } = record {
                break;
            }
            if matches!(record, Record::Query { .. }) {
                queries += 1;
            }
            if let Err(e) = runner.run_async(record).await {
                failures.push(e.display(false).to_string());
            }
        }
        runner.shutdown_async().await;
        if failures.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{} of the file's records failed ({queries} queries in all):\n\n{}\n--- rill log (tail) ---\n{}",
            failures.len(),
            failures.join("\n"),
            server.log_tail(8 * 1024)
        )
        .into())
    })
}

/// One session with the server, as sqllogictest sees it.
struct RillDb {
    client: Client,
    connection: tokio::task::JoinHandle<()>,
}

impl RillDb {
    async fn connect(config: tokio_postgres::Config) -> Result<RillDb, PgError> {
        let (client, connection) = config.connect(NoTls).await.map_err(PgError::from)?;
        let connection = tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("slt connection ended: {}", describe_error(&e));
            }
        });
        Ok(RillDb { client, connection })
    }
}

impl Drop for RillDb {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// The server's error as the runner shows it: severity, SQLSTATE, message,
/// detail and hint, where tokio-postgres' own `Display` says "db error".
#[derive(Debug)]
struct PgError {
    code: Option<String>,
    text: String,
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for PgError {}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError {
            code: rill_tests::sqlstate(&e),
            text: describe_error(&e),
        }
    }
}

/// psql's text for a value, with sqllogictest's conventions for NULL and
/// the empty string.
fn cell(value: Option<&str>) -> String {
    match value {
        None => "NULL".to_string(),
        Some("") => "(empty)".to_string(),
        Some(s) => s.to_string(),
    }
}

#[async_trait]
impl AsyncDB for RillDb {
    type Error = PgError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, PgError> {
        let limit = statement_timeout();
        let messages = match tokio::time::timeout(limit, self.client.simple_query(sql)).await {
            Ok(result) => result?,
            Err(_) => {
                // Stop the statement so the session stays usable for the
                // records after this one.
                let _ = self.client.cancel_token().cancel_query(NoTls).await;
                return Err(PgError {
                    code: None,
                    text: format!("statement did not complete within {limit:?} (cancelled)"),
                });
            }
        };
        let mut columns: Option<usize> = None;
        let mut rows = Vec::new();
        let mut count = 0;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(desc) => {
                    // With several statements in one record, the last
                    // result set is the answer.
                    columns = Some(desc.len());
                    rows.clear();
                }
                SimpleQueryMessage::Row(row) => {
                    columns.get_or_insert(row.len());
                    rows.push((0..row.len()).map(|i| cell(row.get(i))).collect());
                }
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(count),
        })
    }

    async fn shutdown(&mut self) {
        self.connection.abort();
    }

    fn engine_name(&self) -> &str {
        "rill"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }

    fn error_sql_state(err: &PgError) -> Option<String> {
        err.code.clone()
    }
}
