// SPDX-License-Identifier: GPL-2.0
#![no_main]
use libfuzzer_sys::fuzz_target;
use nfsp_proto::metafile::MetaHeader;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = MetaHeader::decode(data) {
        let mut b = [0u8; 48];
        h.encode(&mut b).expect("decoded header re-encodes");
        assert_eq!(MetaHeader::decode(&b), Ok(h));
        let l = h.layout().expect("valid layout");
        for p in l
            .pieces(h.real_size / 2, 300_000)
            .into_iter()
            .flatten()
            .take(64)
        {
            assert!(p.len > 0);
        }
        for v in 0..h.width.min(4) {
            let _ = l.local_len(v, h.real_size);
        }
    }
});
