// SPDX-License-Identifier: GPL-2.0
#![no_main]
use libfuzzer_sys::fuzz_target;
use nfsp_proto::journal::{Entries, Entry, ENTRY_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Entry::decode(data) {
        let mut b = [0u8; ENTRY_LEN];
        e.encode(&mut b).expect("re-encodes");
        assert_eq!(&b[..], data);
    }
    let it = Entries::new(data);
    assert!(it.complete_len() <= data.len() && it.tail() < ENTRY_LEN);
    for (at, e) in it {
        assert!(at + ENTRY_LEN <= data.len());
        let _ = e.map(|e| e.key());
    }
});
