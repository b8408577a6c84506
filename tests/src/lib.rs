//! Integration tests for the host live in tests/it; this crate has no library code.
