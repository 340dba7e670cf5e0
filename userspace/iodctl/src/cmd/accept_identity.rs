// SPDX-License-Identifier: GPL-2.0
//! `iodctl accept-identity VIOD ADDR:PORT [IDENTITY]`

use std::path::PathBuf;

use anyhow::Context;
use iodctl::viods_conf::{self, DEFAULT_VIODS_FILE};
use nfsp_proto::control::parse_identity;
use nfsp_proto::{Answer, Command};

use crate::control::Control;
use crate::UsageError;

/// Arguments of `accept-identity`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Viod id.
    pub viod: u32,
    /// Iod address, e.g. 10.99.0.11:7000.
    #[arg(value_name = "ADDR:PORT")]
    pub addr: String,
    /// The identity to accept (8 hex digits); by default the one it
    /// answered with (the FOREIGN column of `iodctl list`).
    pub identity: Option<String>,
    /// The viod table's configuration file, saved again when it exists
    /// (so that the next boot loads the accepted identity).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_VIODS_FILE)]
    pub file: PathBuf,
}

impl Args {
    /// The identity to record: given, or read from the module.
    fn identity(&self, ctl: &Control) -> anyhow::Result<u32> {
        if let Some(given) = &self.identity {
            return parse_identity(given).map_err(|_| {
                UsageError(format!("malformed identity '{given}' (8 hex digits)")).into()
            });
        }
        let addr = super::addr(&self.addr)?;
        for a in ctl.transact(&Command::List)? {
            if let Ok(Answer::Member(l)) = Answer::parse(&a) {
                if (l.viod, l.addr) != (self.viod, addr) {
                    continue;
                }
                if l.foreign == 0 {
                    anyhow::bail!(
                        "viod {} member {addr} answered with no other identity than {:08x}: \
                         nothing to accept",
                        self.viod,
                        l.identity
                    );
                }
                return Ok(l.foreign);
            }
        }
        anyhow::bail!("viod {} has no member {addr}", self.viod)
    }

    /// Records the identity. The member stays down: set it up (or let
    /// iodmgr re-sync it) once its data is what the viod needs.
    pub fn run(&self, ctl: &Control) -> anyhow::Result<()> {
        let addr = super::addr(&self.addr)?;
        let identity = self.identity(ctl)?;
        let cmd = super::validate(Command::Identity {
            viod: self.viod,
            addr,
            identity,
        })?;
        ctl.transact(&cmd).with_context(|| cmd.to_string())?;
        if self.file.exists() {
            let table = super::save::current(ctl)?;
            viods_conf::write_atomically(&self.file, &viods_conf::format(&table))
                .with_context(|| format!("save {}", self.file.display()))?;
        }
        println!(
            "viod {} member {addr}: data directory {identity:08x} accepted; what it did not \
             hold is lost unless it is re-synced (iodmgr does with replicas; else \
             iodctl set-state {} {addr} up)",
            self.viod, self.viod
        );
        Ok(())
    }
}
