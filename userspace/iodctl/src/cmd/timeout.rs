// SPDX-License-Identifier: GPL-2.0
//! `iodctl timeout MS`

use nfsp_proto::Command;

use crate::UsageError;

/// Arguments of `timeout`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Iod request timeout in milliseconds (1 to 3600000).
    pub ms: u32,
}

impl Args {
    /// The checked control command.
    pub fn command(&self) -> Result<Command, UsageError> {
        super::validate(Command::Timeout { ms: self.ms })
    }
}
