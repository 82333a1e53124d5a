//! Fuzz target `p2p_wire`: see [`starling_fuzz::p2p_wire`] for what it feeds the bytes to and
//! what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_fuzz::p2p_wire::run(data));
