//! Fuzz target `retry_after`: see docs/fuzzing.md for the input format and what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tallyfy_bridge::fuzzing::retry_after(data));
