//! Fuzz target: see `netpol_guard::fuzzing::model`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netpol_guard::fuzzing::model(data));
