//! Command line and environment: `--listen`/`--data-dir` and their
//! environment variables RILL_LISTEN/RILL_DATA_DIR.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rill_tests::{free_port, pg_config, plain, query, rill_binary};
use tokio_postgres::NoTls;

/// Kills the child on drop, so a failing test leaves no process behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for_session(port: u16, child: &mut Child) -> tokio_postgres::Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("rill exited with {status}");
        }
        if let Ok((client, connection)) = pg_config(port).connect(NoTls).await {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            return client;
        }
        assert!(
            Instant::now() < deadline,
            "rill did not listen on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variables_set_address_and_data_dir() {
    let bin = rill_binary().expect("rill binary");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("from-env");
    let port = free_port().expect("port");
    let mut guard = Guard(
        Command::new(bin)
            .env("RILL_LISTEN", format!("127.0.0.1:{port}"))
            .env("RILL_DATA_DIR", &data)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rill"),
    );
    let client = wait_for_session(port, &mut guard.0).await;
    rill_tests::exec(
        &client,
        "CREATE TABLE t (id VARCHAR PRIMARY KEY, v INT) WITH (kafka_topic='t', value_format='JSON', partitions=1);",
    )
    .await;
    rill_tests::exec(&client, "INSERT INTO t (id, v) VALUES ('a', 1);").await;
    assert!(
        data.is_dir() && std::fs::read_dir(&data).expect("data dir").next().is_some(),
        "RILL_DATA_DIR={} holds the data",
        data.display()
    );
    assert!(
        !dir.path().join("rill-data").exists(),
        "the default ./rill-data is not used when RILL_DATA_DIR is set"
    );
    drop(client);
    drop(guard);

    // Flags win over the environment: same data through --data-dir, on
    // another port than RILL_LISTEN says.
    let port2 = free_port().expect("port");
    let mut guard = Guard(
        Command::new(bin)
            .env("RILL_LISTEN", "127.0.0.1:1")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port2}"))
            .arg("--data-dir")
            .arg(&data)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rill"),
    );
    let client = wait_for_session(port2, &mut guard.0).await;
    let rows = query(&client, "SELECT * FROM t;").await;
    assert_eq!(plain(&rows), vec![vec!["a", "1"]]);
}
