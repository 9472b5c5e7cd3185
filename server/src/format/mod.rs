//! Record formats: bytes <-> rows.
