//! Fuzz target `rest_body`: see [`starling_fuzz::rest_body`] for what it feeds the bytes to and
//! what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_fuzz::rest_body::run(data));
