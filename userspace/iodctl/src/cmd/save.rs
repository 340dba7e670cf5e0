// SPDX-License-Identifier: GPL-2.0
//! `iodctl save [--file F]`: write the module's viod table to its
//! configuration file (atomically: a new file, fsynced, renamed over).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

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

/// Writes `text` to `path` atomically (mode 0644: no secret in it).
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("viods.conf")
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync {}", dir.display()))
}

impl Args {
    /// Read the table, write the file.
    pub fn run(&self, ctl: &Control) -> anyhow::Result<()> {
        let table = current(ctl)?;
        write_atomically(&self.file, &viods_conf::format(&table))?;
        for (id, members) in &table.viods {
            for m in members.iter().filter(|m| !table.identities.contains_key(&(*id, **m))) {
                log::warn!(
                    "viod {id} member {m}: identity not known yet (it never answered): saved \
                     without; save again once it has (iodctl list shows it)"
                );
            }
        }
        println!("saved {} viod(s) to {}", table.viods.len(), self.file.display());
        Ok(())
    }
}
