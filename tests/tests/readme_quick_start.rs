//! The README's quick start works as written: the first ```sql block under
//! `## Quick start` is fed to psql against a fresh server, and the pull
//! query it ends with prints at least one row.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rill_tests::{workspace_root, Server};

/// The first ```sql fenced block after the `## Quick start` heading.
fn quick_start_sql(readme: &str) -> Option<String> {
    let mut lines = readme.lines();
    lines.by_ref().find(|l| {
        let l = l.trim();
        l.starts_with("## ") && l[3..].trim().eq_ignore_ascii_case("quick start")
    })?;
    let mut in_block = false;
    let mut sql = String::new();
    for line in lines {
        let trimmed = line.trim();
        if !in_block {
            if trimmed.starts_with("## ") {
                // The next section started: no sql block in this one.
                return None;
            }
            if trimmed.eq_ignore_ascii_case("```sql") {
                in_block = true;
            }
        } else if trimmed.starts_with("```") {
            return Some(sql);
        } else {
            sql.push_str(line);
            sql.push('\n');
        }
    }
    None
}

/// Rows the README promises right after the quick start block, written as
/// inline code with psql's `|` separators (`` `/home | 1 | 2` ``), as cells.
fn promised_rows(readme: &str, sql: &str) -> Vec<Vec<String>> {
    let Some(at) = readme.find(sql) else {
        return Vec::new();
    };
    let rest = &readme[at + sql.len()..];
    // Skip the closing fence, stop at the next block or section.
    let rest = rest.split_once("```").map(|(_, r)| r).unwrap_or("");
    let prose = rest.split("```").next().unwrap_or("");
    let prose = prose.split("\n## ").next().unwrap_or("");
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|code| code.contains('|'))
        .map(cells)
        .collect()
}

fn cells(line: &str) -> Vec<String> {
    line.split('|').map(|c| c.trim().to_string()).collect()
}

/// The row count in the last `(N rows)` / `(1 row)` footer psql printed.
fn last_row_count(output: &str) -> Option<u64> {
    output.lines().rev().find_map(|line| {
        let line = line.trim();
        let inner = line.strip_prefix('(')?.strip_suffix(')')?;
        let (n, word) = inner.split_once(' ')?;
        if word == "row" || word == "rows" {
            n.parse().ok()
        } else {
            None
        }
    })
}

#[test]
fn quick_start_sql_is_extracted() {
    let readme = "# x\n## Quick start\n```sh\nrill\n```\n```sql\nSELECT 1;\nSELECT 2;\n```\n```sql\nno\n```\n";
    assert_eq!(
        quick_start_sql(readme).as_deref(),
        Some("SELECT 1;\nSELECT 2;\n")
    );
    assert_eq!(
        quick_start_sql("## Quick start\ntext\n## Next\n```sql\nx\n```\n"),
        None
    );
    assert_eq!(last_row_count(" a \n---\n x\n(1 row)\n\n"), Some(1));
    let readme =
        "## Quick start\n```sql\nSELECT 1;\n```\n\nPrints `a | 1` and `x`.\n```sql\n`b | 2`\n```\n";
    assert_eq!(
        promised_rows(readme, "SELECT 1;\n"),
        vec![vec!["a".to_string(), "1".to_string()]]
    );
    assert_eq!(cells(" /home | 16 |  2"), ["/home", "16", "2"]);
    assert_eq!(last_row_count("(3 rows)\n x\n(0 rows)\n"), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_quick_start_runs_in_psql() {
    let readme_path = workspace_root().join("README.md");
    let readme = std::fs::read_to_string(&readme_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", readme_path.display()));
    let sql = quick_start_sql(&readme).unwrap_or_else(|| {
        panic!(
            "{} has no ```sql block under a '## Quick start' heading",
            readme_path.display()
        )
    });

    let server = Server::start().await.expect("start rill");
    let mut file = tempfile::Builder::new()
        .suffix(".sql")
        .tempfile()
        .expect("temp file");
    file.write_all(sql.as_bytes()).expect("write sql");

    let mut child = Command::new("psql")
        .args(["-X", "-w", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
        .arg(server.port().to_string())
        .args(["-U", "rill", "-f"])
        .arg(file.path())
        .env_remove("PGDATABASE")
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE")
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql is installed (Debian package postgresql-client)");

    // psql's pipes are read in threads so a large output cannot block it.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for psql") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "psql -f <quick start> did not finish within 2 minutes\n--- sql ---\n{sql}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let report = format!("--- sql ---\n{sql}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");

    assert!(status.success(), "psql exited with {status}\n{report}");
    assert!(!stderr.contains("ERROR"), "psql printed an error\n{report}");
    let rows =
        last_row_count(&stdout).unwrap_or_else(|| panic!("psql printed no result table\n{report}"));
    assert!(
        rows >= 1,
        "the quick start's last query printed {rows} rows, expected at least one\n{report}"
    );
    // Rows the README says the quick start prints are printed.
    for row in promised_rows(&readme, &sql) {
        assert!(
            stdout.lines().any(|line| cells(line) == row),
            "the README promises the row {row:?}\n{report}"
        );
    }
}
