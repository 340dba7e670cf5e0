// SPDX-License-Identifier: GPL-2.0
//! `iodctl set-state VIOD ADDR:PORT STATE`

use nfsp_proto::Command;

use crate::UsageError;

/// Arguments of `set-state`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Viod id.
    pub viod: u32,
    /// Iod address, e.g. 10.99.0.11:7000.
    #[arg(value_name = "ADDR:PORT")]
    pub addr: String,
    /// New state: up (serving), down (out of service) or resync (receives
    /// writes, serves no reads).
    pub state: String,
}

impl Args {
    /// The checked control command.
    pub fn command(&self) -> Result<Command, UsageError> {
        // Check in argument order: the address first.
        let addr = super::addr(&self.addr)?;
        super::validate(Command::SetState {
            viod: self.viod,
            addr,
            state: super::state(&self.state)?,
        })
    }
}
