//! Byte encodings of values for the state store.
