// SPDX-License-Identifier: GPL-2.0

//! The formats shared with user space, compiled from the very sources of the
//! `nfsp_proto` crate (`proto/src/`), so the module and the daemons can
//! never disagree on a byte.

// The crate's `pub` API (public for user space) is crate-private here.
// What only user space uses is left out by `cfg(nfsp_kernel)` (set in
// `Kbuild`), so that nothing unused is compiled into the kernel: the
// compiler's dead-code lint stays on to prove it.
#![allow(unreachable_pub)]

#[path = "../proto/src/auth.rs"]
pub(crate) mod auth;
#[path = "../proto/src/codec.rs"]
pub(crate) mod codec;
#[path = "../proto/src/control.rs"]
pub(crate) mod control;
#[path = "../proto/src/crc32c.rs"]
pub(crate) mod crc32c;
#[path = "../proto/src/dsfh.rs"]
pub(crate) mod dsfh;
#[path = "../proto/src/error.rs"]
pub(crate) mod error;
#[path = "../proto/src/ffl.rs"]
pub(crate) mod ffl;
#[path = "../proto/src/filekey.rs"]
pub(crate) mod filekey;
#[path = "../proto/src/metafile.rs"]
pub(crate) mod metafile;
#[path = "../proto/src/nfs3_error.rs"]
pub(crate) mod nfs3_error;
#[path = "../proto/src/stripe.rs"]
pub(crate) mod stripe;
#[path = "../proto/src/unlink.rs"]
pub(crate) mod unlink;
#[path = "../proto/src/wire.rs"]
pub(crate) mod wire;
