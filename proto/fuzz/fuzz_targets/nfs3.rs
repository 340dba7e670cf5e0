// SPDX-License-Identifier: GPL-2.0
#![no_main]
use libfuzzer_sys::fuzz_target;
use nfsp_proto::nfs3::{ReadCall, ReadReplyPrefix};

fuzz_target!(|data: &[u8]| {
    if let Ok((p, _)) = ReadReplyPrefix::decode(data, true) {
        let mut b = [0u8; 128];
        p.encode(&mut b).expect("re-encodes");
        assert_eq!(ReadReplyPrefix::decode(&b, false).map(|x| x.0), Ok(p));
    }
    let _ = ReadReplyPrefix::decode(data, false);
    if let Ok(c) = ReadCall::decode(data) {
        let mut b = [0u8; 256];
        let n = c.encode(&mut b).expect("re-encodes");
        assert_eq!(
            ReadCall::decode(&b[..n]).map(|x| (x.xid, x.offset, x.count)),
            Ok((c.xid, c.offset, c.count))
        );
    }
});
