//! Fuzz target: see `netpol_guard::fuzzing::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netpol_guard::fuzzing::manifest(data));
