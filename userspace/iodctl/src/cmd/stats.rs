// SPDX-License-Identifier: GPL-2.0
//! `iodctl stats [--json]`

use anyhow::Context;
use nfsp_proto::{Answer, Command};

use crate::control::Control;
use crate::{render, UsageError};

/// Arguments of `stats`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print a JSON object {"NAME": VALUE, ...} instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// The checked control command.
    pub fn command(&self) -> Result<Command, UsageError> {
        Ok(Command::Stats)
    }

    /// Send `stats`, print the counters.
    pub fn run(&self, ctl: &Control, cmd: &Command) -> anyhow::Result<()> {
        let answers = ctl.transact(cmd)?;
        let mut stats = Vec::new();
        for a in &answers {
            match Answer::parse(a) {
                Ok(Answer::Stat { name, value }) => stats.push((name.to_string(), value)),
                Ok(Answer::Ok) => {}
                _ => anyhow::bail!("unexpected answer to 'stats' from the kernel: '{a}'"),
            }
        }
        let text = if self.json {
            serde_json::to_string(&render::stats_json(&stats)).context("JSON")? + "\n"
        } else {
            render::stats_table(&stats)
        };
        render::print(&text)
    }
}
