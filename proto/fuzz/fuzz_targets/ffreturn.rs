// SPDX-License-Identifier: GPL-2.0
//! The checks live in `nfsp_proto::fuzzing::ffreturn` (shared with the seed replay test).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nfsp_proto::fuzzing::ffreturn(data));
