// SPDX-License-Identifier: GPL-2.0
#![no_main]
use libfuzzer_sys::fuzz_target;
use nfsp_proto::unlink::{UnlinkAck, UnlinkRecord, RECORD_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = UnlinkRecord::decode(data) {
        let mut b = [0u8; RECORD_LEN];
        r.encode(&mut b).expect("re-encodes");
        assert_eq!(&b[..], data);
    }
    if let Ok(a) = UnlinkAck::decode(data) {
        let mut b = [0u8; 24];
        a.encode(&mut b).expect("re-encodes");
        assert_eq!(&b[..], data);
    }
});
