// SPDX-License-Identifier: GPL-2.0

//! Every raw C interface the module uses, each behind a safe wrapper, one
//! file per concern:
//!
//! - `hooks`: nfsd's hook table (`include/linux/nfsd_nfsp.h`), the trait
//!   the module implements for it, and its registration;
//! - `fops`: the file operations of the meta-files the module takes over,
//!   through which nfsd does all I/O of every NFS version;
//! - `vfs`: dentries, inodes, the header attribute, size and times;
//! - `net`: kernel UDP sockets, addresses and network namespaces.
//!
//! Nothing outside these files touches `bindings::` or writes `unsafe`.

mod fops;
mod hooks;
mod net;
mod vfs;

pub(crate) use fops::FileOps;
pub(crate) use hooks::{
    module_get,
    module_put,
    DirectReply,
    Hooks,
    HooksRegistration, //
};
pub(crate) use net::{
    random_u64,
    NetExit,
    NetRef,
    PernetRegistration,
    UdpSocket, //
};
pub(crate) use vfs::{
    Dentry,
    InodeRef,
    MetaFile, //
};
