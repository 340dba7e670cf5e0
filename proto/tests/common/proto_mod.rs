// SPDX-License-Identifier: GPL-2.0
//! The proto sources included as the kernel module does.

#[path = "../../src/auth.rs"]
pub mod auth;
#[path = "../../src/codec.rs"]
pub mod codec;
#[path = "../../src/control.rs"]
pub mod control;
#[path = "../../src/crc32c.rs"]
pub mod crc32c;
#[path = "../../src/dsfh.rs"]
pub mod dsfh;
#[path = "../../src/error.rs"]
pub mod error;
#[path = "../../src/ffl.rs"]
pub mod ffl;
#[path = "../../src/filekey.rs"]
pub mod filekey;
#[path = "../../src/metafile.rs"]
pub mod metafile;
#[path = "../../src/stripe.rs"]
pub mod stripe;
#[path = "../../src/unlink.rs"]
pub mod unlink;
#[path = "../../src/wire.rs"]
pub mod wire;
