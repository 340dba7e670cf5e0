// SPDX-License-Identifier: GPL-2.0

//! nfsp meta-server module for the in-kernel NFS server.
//!
//! Exports carrying the `nfsp` option keep each regular file as a small
//! meta-file on the meta-server, while the file data is striped over
//! user-space storage daemons (iods).

use kernel::prelude::*;

mod proto;

module! {
    type: NfspKnfsd,
    name: "nfsp_knfsd",
    authors: ["nfsp developers"],
    description: "nfsp: parallel NFS meta-server for nfsd",
    license: "GPL",
}

/// Module version, logged at load time so a test can tell which build runs.
const VERSION: &str = "0.1.0";

struct NfspKnfsd;

impl kernel::Module for NfspKnfsd {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!(
            "nfsp_knfsd {} loaded (meta-file format {}, iod protocol {})\n",
            VERSION,
            proto::metafile::VERSION,
            proto::wire::VERSION
        );
        Ok(NfspKnfsd)
    }
}

impl Drop for NfspKnfsd {
    fn drop(&mut self) {
        pr_info!("nfsp_knfsd {} unloaded\n", VERSION);
    }
}
