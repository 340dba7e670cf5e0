// SPDX-License-Identifier: GPL-2.0
//! `iodctl save [--file F]`: write the module's viod table to its
//! configuration file (atomically: a new file, fsynced, renamed over).

use std::path::PathBuf;

use anyhow::Context;
use iodctl::viods_conf::{self, DEFAULT_VIODS_FILE};
use nfsp_proto::{Answer, Command};

use crate::control::Control;

/// Arguments of `save`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration file.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_VIODS_FILE)]
    pub file: PathBuf,
}

/// The module's table, from `list`.
pub fn current(ctl: &Control) -> anyhow::Result<viods_conf::Table> {
    let mut lines = Vec::new();
    for a in ctl.transact(&Command::List)? {
        match Answer::parse(&a) {
            Ok(Answer::Member(l)) => lines.push(l),
            Ok(Answer::Ok) => {}
            _ => anyhow::bail!("unexpected answer to 'list' from the kernel: '{a}'"),
        }
    }
    Ok(viods_conf::from_list(&lines))
}

impl Args {
    /// Read the table, write the file.
    pub fn run(&self, ctl: &Control) -> anyhow::Result<()> {
        let table = current(ctl)?;
        viods_conf::write_atomically(&self.file, &viods_conf::format(&table))
            .with_context(|| format!("write {}", self.file.display()))?;
        for (id, members) in &table.viods {
            for m in members
                .iter()
                .filter(|m| !table.identities.contains_key(&(*id, **m)))
            {
                log::warn!(
                    "viod {id} member {m}: identity not known yet (it never answered): saved \
                     without; save again once it has (iodctl list shows it)"
                );
            }
        }
        println!(
            "saved {} viod(s) to {}",
            table.viods.len(),
            self.file.display()
        );
        Ok(())
    }
}
