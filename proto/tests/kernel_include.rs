// SPDX-License-Identifier: GPL-2.0
//! Checks that the source files can be included the way the kernel module
//! does it: `#[path]` modules inside a `mod proto { }`, each file one
//! module, siblings reached through `super::`.

#[allow(dead_code, missing_docs, clippy::all)]
#[path = "common/proto_mod.rs"]
mod proto;

#[test]
fn included_modules_work() {
    assert_eq!(proto::crc32c::crc32c(b"123456789"), 0xE306_9283);
    let h = proto::metafile::MetaHeader::new(5, 2, 1);
    let mut b = [0u8; proto::metafile::HEADER_LEN];
    h.encode(&mut b).unwrap();
    assert_eq!(proto::metafile::MetaHeader::decode(&b), Ok(h));
}
