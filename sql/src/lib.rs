//! rill-sql: everything between statement text and running operators, with no
//! I/O. A statement is parsed ([`parser`]), bound against a catalog snapshot
//! ([`binder`]), planned into a dataflow ([`plan`]), and run by the pure
//! operators in [`dataflow`]. Expressions and the function registries live in
//! [`expr`]; [`codec`] turns rows into bytes for the state store.
//!
//! This crate never does I/O, never spawns threads and never imports tokio,
//! pgwire, sled or rdkafka: the server drives it.

pub mod binder;
pub mod catalog;
pub mod codec;
pub mod dataflow;
pub mod error;
pub mod expr;
pub mod parser;
pub mod plan;
pub mod types;
pub mod value;

pub use error::{BindError, EvalError, ParseError, PlanError, Position};
pub use types::DataType;
pub use value::{Row, Value};
