//! rill-storage: durable state. A sled-backed store for the catalog, operator
//! state, materialized tables and offsets, committed atomically; and the
//! embedded topic log as append-only segment files.
//!
//! This crate works in bytes: it never interprets rows, never imports tokio.
