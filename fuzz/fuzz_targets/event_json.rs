//! Fuzz target `event_json`: see [`starling_fuzz::event_json`] for what it feeds the bytes to and
//! what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_fuzz::event_json::run(data));
