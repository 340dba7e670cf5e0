// SPDX-License-Identifier: GPL-2.0
//! `iodctl del-viod ID`

use nfsp_proto::Command;

use crate::UsageError;

/// Arguments of `del-viod`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Viod id.
    pub id: u32,
}

impl Args {
    /// The checked control command.
    pub fn command(&self) -> Result<Command, UsageError> {
        super::validate(Command::DelViod { id: self.id })
    }
}
