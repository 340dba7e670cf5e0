// SPDX-License-Identifier: GPL-2.0
//! `iodctl list [--json]`

use anyhow::Context;
use nfsp_proto::{Answer, Command};

use crate::control::Control;
use crate::{render, UsageError};

/// Arguments of `list`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print a JSON array of members instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// The checked control command.
    pub fn command(&self) -> Result<Command, UsageError> {
        Ok(Command::List)
    }

    /// Send `list`, print the members.
    pub fn run(&self, ctl: &Control, cmd: &Command) -> anyhow::Result<()> {
        let answers = ctl.transact(cmd)?;
        let mut members = Vec::new();
        for a in &answers {
            match Answer::parse(a) {
                Ok(Answer::Member(l)) => members.push(l),
                Ok(Answer::Ok) => {}
                _ => anyhow::bail!("unexpected answer to 'list' from the kernel: '{a}'"),
            }
        }
        let text = if self.json {
            serde_json::to_string(&render::list_json(&members)).context("JSON")? + "\n"
        } else {
            render::list_table(&members)
        };
        render::print(&text)
    }
}
