// SPDX-License-Identifier: GPL-2.0
//! `iodctl load [--file F]`: put the viods of the configuration file into
//! the module (after a reboot or a module reload, before nfsd serves the
//! nfsp exports; until then they answer NFS3ERR_JUKEBOX, never data from
//! the wrong iods). Viods already there with the same members are kept;
//! a viod there with other members stops the load before anything is
//! changed. The identities of the members' data directories are set as
//! the file has them: an iod answering as another directory then serves
//! nothing.

use std::path::PathBuf;

use anyhow::Context;
use iodctl::viods_conf::{self, DEFAULT_VIODS_FILE};
use nfsp_proto::control::Members;
use nfsp_proto::Command;

use crate::control::Control;

/// Arguments of `load`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration file.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_VIODS_FILE)]
    pub file: PathBuf,
}

impl Args {
    /// Compare, then add what is missing.
    pub fn run(&self, ctl: &Control) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(&self.file)
            .with_context(|| format!("read {}", self.file.display()))?;
        let wanted =
            viods_conf::parse(&text).with_context(|| format!("{}", self.file.display()))?;
        let current = super::save::current(ctl)?;
        let plan = viods_conf::plan(&wanted.viods, &current.viods);
        if !plan.conflicts.is_empty() {
            anyhow::bail!(
                "{}: viod(s) {:?} are in the module with other iods; nothing loaded \
                 (del-viod them first if the file is right)",
                self.file.display(),
                plan.conflicts
            );
        }
        for (id, members) in &plan.add {
            let members =
                Members::from_slice(members).map_err(|e| anyhow::anyhow!("viod {id}: {e}"))?;
            let cmd = super::validate(Command::AddViod { id: *id, members })?;
            ctl.transact(&cmd)
                .with_context(|| format!("add-viod {id}"))?;
        }
        for (&(viod, addr), &identity) in &wanted.identities {
            match current.identities.get(&(viod, addr)) {
                Some(&now) if now == identity => continue,
                Some(&now) => log::warn!(
                    "viod {viod} member {addr}: the module holds identity {now:08x}, the file \
                     {identity:08x}: the file's is set (an iod answering as another data \
                     directory serves nothing)"
                ),
                None => {}
            }
            let cmd = super::validate(Command::Identity {
                viod,
                addr,
                identity,
            })?;
            ctl.transact(&cmd)
                .with_context(|| format!("identity {viod} {addr}"))?;
        }
        if !plan.extra.is_empty() {
            log::warn!(
                "viod(s) {:?} are in the module but not in the file: kept",
                plan.extra
            );
        }
        println!(
            "loaded {} viod(s) from {} ({} added, {} already there)",
            plan.add.len() + plan.present.len(),
            self.file.display(),
            plan.add.len(),
            plan.present.len()
        );
        Ok(())
    }
}
