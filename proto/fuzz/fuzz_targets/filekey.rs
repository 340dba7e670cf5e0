// SPDX-License-Identifier: GPL-2.0
#![no_main]
use libfuzzer_sys::fuzz_target;
use nfsp_proto::filekey::{FileKey, LOCAL_PATH_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(k) = FileKey::parse_file_name(s) {
            let mut b = [0u8; LOCAL_PATH_LEN];
            let mut n = [0u8; 50];
            assert_eq!(k.write_file_name(&mut n).ok(), Some(s));
            let p = k.write_local_path(&mut b).expect("fits");
            assert_eq!(FileKey::parse_local_path(p), Ok(k));
        }
        let _ = FileKey::parse_local_path(s);
    }
    if let Ok(k) = FileKey::from_bytes(data) {
        assert_eq!(&k.to_bytes()[..], data);
    }
});
