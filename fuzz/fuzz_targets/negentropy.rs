//! Fuzz target `negentropy`: see [`starling_fuzz::negentropy`] for what it feeds the bytes to and
//! what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_fuzz::negentropy::run(data));
