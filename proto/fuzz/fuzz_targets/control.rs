// SPDX-License-Identifier: GPL-2.0
#![no_main]
use libfuzzer_sys::fuzz_target;
use nfsp_proto::control::{Answer, Command};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(c) = Command::parse(s) {
            let printed = c.to_string();
            assert_eq!(Command::parse(&printed), Ok(c));
        }
        if let Ok(a) = Answer::parse(s) {
            let printed = a.to_string();
            assert_eq!(Answer::parse(&printed), Ok(a));
        }
    }
});
