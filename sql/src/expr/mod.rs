//! Expressions: the bound expression tree, its evaluation over a row, and the
//! registries of scalar ([`func`]) and aggregate ([`agg`]) functions.

pub mod agg;
pub mod func;
