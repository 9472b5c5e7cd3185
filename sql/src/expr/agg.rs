//! The aggregate function registry and accumulators.
