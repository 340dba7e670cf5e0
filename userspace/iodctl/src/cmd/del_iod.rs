// SPDX-License-Identifier: GPL-2.0
//! `iodctl del-iod VIOD ADDR:PORT`

use nfsp_proto::Command;

use crate::UsageError;

/// Arguments of `del-iod`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Viod id.
    pub viod: u32,
    /// Iod address, e.g. 10.99.0.11:7000 or [2001:db8::1]:7000.
    #[arg(value_name = "ADDR:PORT")]
    pub addr: String,
}

impl Args {
    /// The checked control command.
    pub fn command(&self) -> Result<Command, UsageError> {
        super::validate(Command::DelIod {
            viod: self.viod,
            addr: super::addr(&self.addr)?,
        })
    }
}
