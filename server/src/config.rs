//! Command-line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// rill: a streaming SQL server speaking the Postgres wire protocol.
#[derive(Debug, Clone, Parser)]
#[command(name = "rill", version, about)]
pub struct Config {
    /// Address to listen on for Postgres clients.
    #[arg(long, env = "RILL_LISTEN", default_value = "127.0.0.1:6874")]
    pub listen: SocketAddr,

    /// Directory for the embedded log, the state store and the catalog.
    #[arg(long, env = "RILL_DATA_DIR", default_value = "./rill-data")]
    pub data_dir: PathBuf,

    /// Kafka bootstrap servers (`host:port[,host:port]`). When set, every
    /// `kafka_topic` is a topic of this cluster instead of the embedded log.
    #[arg(long, env = "RILL_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Extra librdkafka settings for the Kafka clients, e.g.
    /// `--kafka-config security.protocol=SASL_SSL` (repeatable).
    #[arg(long = "kafka-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub kafka_config: Vec<(String, String)>,

    /// A Confluent-compatible schema registry (`http://host:port`) for the
    /// AVRO format: schemas are read from it and registered in it.
    #[arg(long, env = "RILL_SCHEMA_REGISTRY", value_name = "URL")]
    pub schema_registry: Option<String>,

    /// How often running queries commit their state and outputs, in ms
    /// (they also commit whenever their input is drained).
    #[arg(long, env = "RILL_COMMIT_INTERVAL_MS", default_value_t = 100)]
    pub commit_interval_ms: u64,

    /// Kafka mode: the topic that keeps every catalog statement, from which
    /// a rill with an empty data dir rebuilds its streams, tables and
    /// queries (each query also keeps a state topic `_rill-state-<id>`).
    /// Empty: neither is kept.
    #[arg(
        long,
        env = "RILL_KAFKA_COMMAND_TOPIC",
        default_value = "_rill_commands"
    )]
    pub kafka_command_topic: String,

    /// Embedded log: size at which a partition starts a new segment file
    /// (retention deletes whole segments), in bytes.
    #[arg(long, env = "RILL_LOG_SEGMENT_BYTES", default_value_t = 64 << 20)]
    pub log_segment_bytes: u64,

    /// Embedded log: how often topics' retention is applied, in ms.
    #[arg(long, env = "RILL_LOG_RETENTION_CHECK_MS", default_value_t = 60_000)]
    pub log_retention_check_ms: u64,
}

impl Config {
    pub fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.commit_interval_ms.max(1))
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, found \"{s}\"")),
    }
}
