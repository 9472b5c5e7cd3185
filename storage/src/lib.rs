//! rill-storage: durable state. A sled-backed store for the catalog, operator
//! state, materialized tables and offsets, committed atomically; and the
//! embedded topic log as append-only segment files.
//!
//! This crate works in bytes: it never interprets rows, never imports tokio.

pub mod error;
pub mod keys;
pub mod log;
pub mod state_log;
pub mod store;

pub use error::{Result, StorageError};
pub use log::{Log, LogOptions, Record, RecordRef, Retention};
pub use state_log::StateLog;
pub use store::{Store, WriteBatch};
