//! rill-server: the `rill` binary's library. The Postgres-wire front end
//! ([`pgwire`]) hands statements to sessions, which [`exec`]ute them
//! against the [`engine`] (catalog, store, log backend, running queries);
//! [`runtime`] runs continuous queries on their own threads; [`record`] and
//! [`format`] turn topic records into rows and back.

pub mod backend;
pub mod config;
pub mod engine;
pub mod error;
pub mod exec;
pub mod format;
pub mod pgwire;
pub mod record;
pub mod runtime;
pub mod server;
pub mod session;
