//! Test harness shared by the integration tests (`tests/tests/*.rs`) and the
//! sqllogictest runner (`sqllogictest/tests/slt.rs`): it runs the real `rill`
//! binary as a child process on a free port of 127.0.0.1 with its own data
//! directory, and hands out tokio-postgres clients connected to it.
//!
//! The harness never links the server: what is tested is exactly what a user
//! runs. The binary is `<target>/<profile>/rill`, built once per test process
//! with `cargo build -p rill-server --bin rill` (a no-op when it is fresh), or
//! the file named by `RILL_BIN` (then nothing is built). With
//! `RILL_TEST_NO_BUILD=1` an existing binary is used as is.
//!
//! Every [`Server`] kills its process when dropped, so a failing test leaves
//! no orphan behind, and prints the server's log if the test is panicking.

pub mod formats;
pub mod nexmark;
pub mod registry;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tempfile::TempDir;
use tokio_postgres::{Client, NoTls};

/// How long a starting server may take to accept a Postgres connection.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a stopping server may take to exit after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `rill` process, owned by one test.
///
/// # Invariants
/// While `child` is `Some`, the process was started by this value and has not
/// been waited for; `Drop` kills and reaps it.
pub struct Server {
    child: Option<Child>,
    port: u16,
    data_dir: PathBuf,
    /// The data directory when the caller did not supply one; deleted on drop.
    _owned_data_dir: Option<TempDir>,
    /// Holds the log file; kept apart from the data dir so a test may hand
    /// in (and later inspect) a data dir of its own.
    _log_dir: TempDir,
    /// stdout and stderr of every process started, appended across restarts.
    log_path: PathBuf,
    /// How many processes this value started, for the log's separators.
    starts: u32,
    /// Extra command-line arguments for every start (e.g. `--kafka-brokers`).
    args: Vec<String>,
    /// Whether the last failed start was a process that exited by itself
    /// (e.g. its port was taken) rather than one that never became ready.
    exited_early: bool,
}

impl Server {
    /// Starts `rill` with a fresh data directory that is deleted on drop.
    pub async fn start() -> anyhow::Result<Server> {
        let dir = tempfile::Builder::new().prefix("rill-data-").tempdir()?;
        let path = dir.path().to_path_buf();
        Server::launch(path, Some(dir)).await
    }

    /// Starts `rill` on an existing data directory (which the caller keeps).
    pub async fn start_with(data_dir: &Path) -> anyhow::Result<Server> {
        Server::launch(data_dir.to_path_buf(), None).await
    }

    /// Starts `rill` with a fresh data directory and extra arguments.
    pub async fn start_with_args(args: &[&str]) -> anyhow::Result<Server> {
        let dir = tempfile::Builder::new().prefix("rill-data-").tempdir()?;
        let path = dir.path().to_path_buf();
        Server::launch_with(
            path,
            Some(dir),
            args.iter().map(|a| a.to_string()).collect(),
        )
        .await
    }

    async fn launch(data_dir: PathBuf, owned: Option<TempDir>) -> anyhow::Result<Server> {
        Server::launch_with(data_dir, owned, Vec::new()).await
    }

    async fn launch_with(
        data_dir: PathBuf,
        owned: Option<TempDir>,
        args: Vec<String>,
    ) -> anyhow::Result<Server> {
        let log_dir = tempfile::Builder::new().prefix("rill-log-").tempdir()?;
        let log_path = log_dir.path().join("rill.log");
        let mut server = Server {
            child: None,
            port: free_port()?,
            data_dir,
            _owned_data_dir: owned,
            _log_dir: log_dir,
            log_path,
            starts: 0,
            args,
            exited_early: false,
        };
        server.spawn_and_wait().await?;
        Ok(server)
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The server's `--data-dir`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The OS process id of the running server, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The libpq-style connection string: user `rill`, database `rill`, no
    /// password, no TLS.
    pub fn connection_string(&self) -> String {
        connection_string(self.port)
    }

    /// A tokio-postgres configuration for this server.
    pub fn pg_config(&self) -> tokio_postgres::Config {
        pg_config(self.port)
    }

    /// Connects a new session. The connection task is spawned on the current
    /// tokio runtime and ends when the client is dropped.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let (client, _task) = self.connect_with_task().await?;
        Ok(client)
    }

    /// Like [`Server::connect`], but also returns the connection task:
    /// aborting it closes the socket at once, like a client that vanishes.
    pub async fn connect_with_task(&self) -> anyhow::Result<(Client, tokio::task::JoinHandle<()>)> {
        let (client, connection) = self.pg_config().connect(NoTls).await.map_err(|e| {
            anyhow!(
                "connecting to rill on port {}: {}",
                self.port,
                describe_error(&e)
            )
        })?;
        let task = tokio::spawn(async move {
            // The connection ends with an error when the server goes away,
            // which crash tests do on purpose: nothing to report here.
            let _ = connection.await;
        });
        Ok((client, task))
    }

    /// Kills the server with SIGKILL and reaps it: a crash, nothing is
    /// flushed or committed on the way out.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit (a clean shutdown).
    /// Returns its exit status; if it does not exit within
    /// [`SHUTDOWN_TIMEOUT`] it is killed and this is an error.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        self.stop_with("TERM")
    }

    /// Sends SIGINT (what Ctrl-C in a terminal does) and waits, like
    /// [`Server::stop`].
    pub fn interrupt(&mut self) -> anyhow::Result<ExitStatus> {
        self.stop_with("INT")
    }

    fn stop_with(&mut self, signal: &str) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("rill is not running");
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .with_context(|| format!("running kill -{signal}"))?;
        if !status.success() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("kill -{signal} {} failed", child.id());
        }
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "rill did not exit within {SHUTDOWN_TIMEOUT:?} of SIG{signal}\n{}",
                    self.log_tail(16 * 1024)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same data directory, on the same port
    /// when it is still free (else on a new one). Kills the running process
    /// first if there is one.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        if port_is_free(self.port) {
            match self.spawn_and_wait().await {
                Ok(()) => return Ok(()),
                // The old port may have been taken between the check and
                // the bind; one more try on a fresh port tells the two apart.
                Err(e) if self.exited_early => {
                    eprintln!(
                        "rill restart on port {} failed ({e}); trying a new port",
                        self.port
                    )
                }
                Err(e) => return Err(e),
            }
        }
        self.port = free_port()?;
        self.spawn_and_wait().await
    }

    /// The whole log (stdout and stderr of every process started so far).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `max_bytes` of the log, for failure messages.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        let Ok(mut file) = File::open(&self.log_path) else {
            return String::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let start = len.saturating_sub(max_bytes);
        let _ = file.seek(SeekFrom::Start(start));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if start > 0 {
            format!("[... {start} bytes of log omitted ...]\n{text}")
        } else {
            text
        }
    }

    /// Spawns the process on `self.port` and waits until it accepts a
    /// Postgres session. On failure nothing is left running.
    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let bin = rill_binary()?;
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        writeln!(
            log,
            "===== rill start #{} on port {} (data dir {}) =====",
            self.starts,
            self.port,
            self.data_dir.display()
        )?;
        let stderr = log.try_clone()?;
        let child = Command::new(bin)
            .arg("--listen")
            .arg(self.addr().to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .env_remove("RILL_LISTEN")
            .env_remove("RILL_DATA_DIR")
            .env_remove("RILL_KAFKA_BROKERS")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        self.child = Some(child);
        if let Err(e) = self.wait_ready().await {
            let exited = self
                .child
                .as_mut()
                .map(|c| matches!(c.try_wait(), Ok(Some(_))))
                .unwrap_or(true);
            self.kill9();
            // Tells restart() the process died by itself (e.g. port taken).
            self.exited_early = exited;
            return Err(e);
        }
        Ok(())
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut last_error = String::from("no connection attempt yet");
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "rill exited with {status} before accepting connections\n--- rill log ---\n{}",
                        self.log_tail(16 * 1024)
                    );
                }
            }
            if tokio::net::TcpStream::connect(self.addr()).await.is_ok() {
                let attempt =
                    tokio::time::timeout(Duration::from_secs(5), self.pg_config().connect(NoTls))
                        .await;
                match attempt {
                    Ok(Ok((client, connection))) => {
                        drop(client);
                        let _ = connection.await;
                        return Ok(());
                    }
                    Ok(Err(e)) => last_error = describe_error(&e),
                    Err(_) => last_error = "postgres startup timed out".into(),
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "rill did not accept a Postgres session on port {} within {STARTUP_TIMEOUT:?} \
                     (last error: {last_error})\n--- rill log ---\n{}",
                    self.port,
                    self.log_tail(16 * 1024)
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "\n--- rill log ({}) ---\n{}\n--- end of rill log ---",
                self.log_path.display(),
                self.log_tail(64 * 1024)
            );
        }
    }
}

/// `host=127.0.0.1 port=PORT user=rill dbname=rill`.
pub fn connection_string(port: u16) -> String {
    format!("host=127.0.0.1 port={port} user=rill dbname=rill")
}

/// The tokio-postgres configuration for a rill server on `port`.
pub fn pg_config(port: u16) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("rill")
        .dbname("rill")
        .application_name("rill-tests")
        .connect_timeout(Duration::from_secs(10));
    config
}

/// The SQLSTATE of a server error, e.g. `Some("42P01")`.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.code().map(|c| c.code().to_string())
}

/// A one-line-per-field description of an error that shows what the server
/// said (`ERROR 42P01: stream "X" does not exist` plus detail and hint),
/// where tokio-postgres' own `Display` prints only "db error".
pub fn describe_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            s.push_str(&format!("\nDETAIL: {detail}"));
        }
        if let Some(hint) = db.hint() {
            s.push_str(&format!("\nHINT: {hint}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}

/// A port on 127.0.0.1 that was free a moment ago (bound to :0, then
/// released). Another process may grab it before rill binds it; the
/// startup error then says so.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// The root of the Cargo workspace (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The path of the `rill` binary, built on first use (see the crate docs).
pub fn rill_binary() -> anyhow::Result<&'static Path> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| locate_and_build().map_err(|e| format!("{e:#}")))
        .as_deref()
        .map_err(|e| anyhow!("{e}"))
}

/// The target directory and profile the test binary itself was built in,
/// so `cargo test --release` tests a release `rill`.
fn target_and_profile() -> (PathBuf, String) {
    // A test executable lives in <target>/<profile>/deps/, a binary of this
    // crate (the benchmark) in <target>/<profile>/.
    if let Ok(exe) = std::env::current_exe() {
        let profile_dir = exe.parent().and_then(|dir| {
            if dir.file_name().is_some_and(|n| n == "deps") {
                dir.parent()
            } else {
                Some(dir).filter(|d| d.join(".fingerprint").is_dir())
            }
        });
        if let Some(profile_dir) = profile_dir {
            if let (Some(target), Some(profile)) = (profile_dir.parent(), profile_dir.file_name()) {
                return (target.to_path_buf(), profile.to_string_lossy().into_owned());
            }
        }
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    };
    (target, "debug".to_string())
}

fn locate_and_build() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("RILL_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("RILL_BIN={} is not a file", bin.display());
        }
        return Ok(bin);
    }
    let (target, profile) = target_and_profile();
    let bin = target.join(&profile).join("rill");
    let skip_build = std::env::var_os("RILL_TEST_NO_BUILD").is_some_and(|v| v != "0");
    if skip_build && bin.is_file() {
        return Ok(bin);
    }
    // Always ask cargo: it is a no-op when the binary is fresh, and it keeps
    // `cargo test -p rill-tests` from testing a stale server.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--quiet", "-p", "rill-server", "--bin", "rill"])
        .env("CARGO_TARGET_DIR", &target);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    // Output is kept for failures only: the warnings of a build the test
    // did not ask for would drown the test's own output.
    let output = cmd
        .output()
        .context("running cargo build -p rill-server --bin rill")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // While the server is being edited in the same checkout the build
        // can fail half-way through a change; the last binary is then
        // better than no test at all, but say so loudly. (In CI the
        // workspace build fails first, so this never hides a broken build.)
        if bin.is_file() {
            eprintln!(
                "warning: cargo build -p rill-server --bin rill failed with {}; \
                 testing the existing (possibly stale) {}\n{}",
                output.status,
                bin.display(),
                stderr.lines().take(40).collect::<Vec<_>>().join("\n")
            );
            return Ok(bin);
        }
        bail!(
            "cargo build -p rill-server --bin rill failed with {}\n{stderr}",
            output.status
        );
    }
    if !bin.is_file() {
        bail!("cargo build succeeded but {} does not exist", bin.display());
    }
    Ok(bin)
}

/// A result row in Postgres text format; `None` is NULL.
pub type TextRow = Vec<Option<String>>;

/// The rows of the last result set among simple-query messages.
pub fn text_rows(messages: &[tokio_postgres::SimpleQueryMessage]) -> Vec<TextRow> {
    use tokio_postgres::SimpleQueryMessage;
    let mut rows = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(_) => rows.clear(),
            SimpleQueryMessage::Row(row) => rows.push(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => {}
        }
    }
    rows
}

/// The column names of the last result set among simple-query messages.
pub fn column_names(messages: &[tokio_postgres::SimpleQueryMessage]) -> Vec<String> {
    use tokio_postgres::SimpleQueryMessage;
    let mut names = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                names = columns.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(row) if names.is_empty() => {
                names = row.columns().iter().map(|c| c.name().to_string()).collect();
            }
            _ => {}
        }
    }
    names
}

/// Runs `sql` with the simple query protocol and returns the rows of its
/// (last) result set as text; an error carries the server's message.
pub async fn try_query(client: &Client, sql: &str) -> anyhow::Result<Vec<TextRow>> {
    match client.simple_query(sql).await {
        Ok(messages) => Ok(text_rows(&messages)),
        Err(e) => Err(anyhow!("{sql}\n  failed: {}", describe_error(&e))),
    }
}

/// [`try_query`], panicking with the statement and the server's message.
pub async fn query(client: &Client, sql: &str) -> Vec<TextRow> {
    match try_query(client, sql).await {
        Ok(rows) => rows,
        Err(e) => panic!("{e}"),
    }
}

/// Runs one or more statements, panicking with the server's message.
pub async fn exec(client: &Client, sql: &str) {
    if let Err(e) = client.simple_query(sql).await {
        panic!("{sql}\n  failed: {}", describe_error(&e));
    }
}

/// Runs `sql` and asserts it fails with SQLSTATE `code`; returns the error
/// for further checks on its message.
pub async fn expect_sqlstate(client: &Client, sql: &str, code: &str) -> tokio_postgres::Error {
    match client.simple_query(sql).await {
        Ok(messages) => panic!(
            "{sql}\n  succeeded (rows {:?}), expected SQLSTATE {code}",
            text_rows(&messages)
        ),
        Err(e) => {
            let actual = sqlstate(&e);
            assert_eq!(
                actual.as_deref(),
                Some(code),
                "{sql}\n  failed with {}, expected SQLSTATE {code}",
                describe_error(&e)
            );
            e
        }
    }
}

/// Text rows as `Vec<Vec<&str>>` with NULL as "NULL", for compact asserts.
pub fn plain(rows: &[TextRow]) -> Vec<Vec<&str>> {
    rows.iter()
        .map(|r| r.iter().map(|c| c.as_deref().unwrap_or("NULL")).collect())
        .collect()
}

/// [`plain`], sorted: for results whose order is not specified.
pub fn sorted(rows: &[TextRow]) -> Vec<Vec<&str>> {
    let mut rows = plain(rows);
    rows.sort();
    rows
}

/// Polls `done` until it holds, panicking with `what` after `within`.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The broker `.ci/run` starts (`RILL_TEST_KAFKA_BROKERS`) and a suffix
/// unique to this run for the names of topics the test creates there
/// (other tests share the broker); `None`, after saying so, without one.
pub fn external_broker() -> Option<(String, String)> {
    let Ok(brokers) = std::env::var("RILL_TEST_KAFKA_BROKERS") else {
        eprintln!("RILL_TEST_KAFKA_BROKERS is not set: skipping (.ci/run sets it)");
        return None;
    };
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Some((brokers, format!("{}_{millis}", std::process::id())))
}

/// The `v` column of `stream` as numbers, sorted.
pub async fn values_of(client: &Client, stream: &str) -> Vec<usize> {
    let rows = query(client, &format!("SELECT v FROM {stream};")).await;
    let mut v: Vec<usize> = plain(&rows)
        .iter()
        .map(|r| r[0].parse().expect("v"))
        .collect();
    v.sort_unstable();
    v
}
