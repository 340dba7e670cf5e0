// SPDX-License-Identifier: GPL-2.0
//! `iodctl layouts RULE`

use nfsp_proto::ffl::LayoutRule;
use nfsp_proto::Command;

use crate::UsageError;

/// Arguments of `layouts`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// auto: striped layouts to Linux 7.3.3 and later, layouts of files
    /// of width 1 to every client (the default); striped: every layout to
    /// every client; single: layouts of files of width 1 only; off: no
    /// layouts, all I/O through the meta-server.
    #[arg(value_parser = ["auto", "striped", "single", "off"])]
    pub rule: String,
}

impl Args {
    /// The checked control command.
    pub fn command(&self) -> Result<Command, UsageError> {
        let rule = LayoutRule::parse(&self.rule)
            .map_err(|_| UsageError(format!("unknown rule '{}'", self.rule)))?;
        super::validate(Command::Layouts(rule))
    }
}
