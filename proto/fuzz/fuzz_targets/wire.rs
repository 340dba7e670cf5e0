// SPDX-License-Identifier: GPL-2.0
#![no_main]
use libfuzzer_sys::fuzz_target;
use nfsp_proto::wire::{Body, Message, MAX_DATAGRAM};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        let mut b = vec![0u8; MAX_DATAGRAM];
        let n = m.encode(&mut b).expect("decoded message re-encodes");
        assert_eq!(&b[..n], data, "encode(decode(x)) == x");
        if let Body::Read(r) = m.body {
            let _ = r.total_len();
            let mut f = vec![0u8; MAX_DATAGRAM];
            let _ = r.encode_forward_prefix(m.request_id, &m.auth_tag, r.len as usize, &mut f);
            for h in r.routes.iter() {
                let _ = h;
            }
        }
        if let Body::ListReply(l) = m.body {
            // decoded entries are strictly increasing in listing order
            let keys: Vec<_> = l.entries.iter().map(|e| e.key).collect();
            assert!(keys.windows(2).all(|w| w[0].list_cmp(&w[1]).is_lt()));
        }
    }
});
