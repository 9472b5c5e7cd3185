//! `cargo run --release -p rill-tests --bin nexmark -- [--events N] [--kafka BROKERS]`:
//! the Nexmark benchmark against a release `rill` (see `rill_tests::nexmark`).
//! Prints a table and writes the figures as JSON.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rill_tests::nexmark::{run, Options};

#[derive(Parser)]
#[command(about = "The Nexmark benchmark: bids as JSON through rill's persistent and pull queries")]
struct Args {
    /// Bid events to load.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Partitions of the bids topic.
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// Run against these Kafka brokers instead of the embedded log.
    #[arg(long, env = "RILL_BENCH_KAFKA_BROKERS")]
    kafka: Option<String>,
    /// Only these queries (q0, q1, q2, tumble, hop, q7, join); repeatable.
    #[arg(long = "query")]
    queries: Vec<String>,
    /// Keys of the serving table (0 skips the serving figures).
    #[arg(long, default_value_t = 1_000_000)]
    serving_keys: u64,
    /// Seconds each serving measurement runs.
    #[arg(long, default_value_t = 5.0)]
    serving_secs: f64,
    /// An extra argument for `rill` (e.g. `--rill-arg=--commit-interval-ms=1000`); repeatable.
    #[arg(long = "rill-arg", allow_hyphen_values = true)]
    rill_args: Vec<String>,
    /// Where the JSON report goes.
    #[arg(long, default_value = "target/nexmark.json")]
    json: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let opts = Options {
        events: args.events,
        partitions: args.partitions,
        kafka: args.kafka,
        only: args.queries,
        serving_keys: args.serving_keys,
        serving_time: Duration::from_secs_f64(args.serving_secs),
        server_args: args.rill_args,
    };
    let report = run(&opts).await?;
    print!("{}", report.table());
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&report.json())?)
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!("JSON: {}", args.json.display());
    anyhow::ensure!(
        report.correct(),
        "some output was wrong (see the check column)"
    );
    Ok(())
}
