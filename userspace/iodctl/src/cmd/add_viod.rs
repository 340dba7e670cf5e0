// SPDX-License-Identifier: GPL-2.0
//! `iodctl add-viod ID ADDR:PORT...`

use nfsp_proto::control::MAX_MEMBERS;
use nfsp_proto::{Command, Members};

use crate::UsageError;

/// Arguments of `add-viod`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Viod id (viods 0..W-1 form the stripe of new files).
    pub id: u32,
    /// Member iods, e.g. 10.99.0.11:7000 or [2001:db8::1]:7000.
    #[arg(value_name = "ADDR:PORT", required = true, num_args = 1..)]
    pub members: Vec<String>,
}

impl Args {
    /// The checked control command.
    pub fn command(&self) -> Result<Command, UsageError> {
        let addrs = self
            .members
            .iter()
            .map(|s| super::addr(s))
            .collect::<Result<Vec<_>, _>>()?;
        if addrs.len() > MAX_MEMBERS {
            return Err(UsageError(format!(
                "a viod has at most {MAX_MEMBERS} iods ({} given)",
                addrs.len()
            )));
        }
        let members =
            Members::from_slice(&addrs).map_err(|e| UsageError(format!("member list: {e}")))?;
        super::validate(Command::AddViod {
            id: self.id,
            members,
        })
    }
}
