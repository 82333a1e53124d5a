//! Fuzz target `client_message`: see [`starling_fuzz::client_message`] for what it feeds the bytes to and
//! what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_fuzz::client_message::run(data));
