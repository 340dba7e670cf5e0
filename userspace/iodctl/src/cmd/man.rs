// SPDX-License-Identifier: GPL-2.0
//! `iodctl man [--dir DIR]`: manual pages generated from the CLI
//! definition (clap_mangen), in section 8 (an administration tool in
//! /usr/sbin: the control file is root's).

use std::path::PathBuf;

use anyhow::Context;
use clap::CommandFactory;
use unlinkd::man::SECTION;

/// Arguments of `man`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write iodctl.8 and one page per subcommand (iodctl-list.8, …) into
    /// DIR instead of printing iodctl.8 on stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The roff source of iodctl(8).
pub fn page() -> std::io::Result<Vec<u8>> {
    unlinkd::man::page(crate::Cli::command(), SECTION)
}

impl Args {
    /// Print the page or write every page.
    pub fn run(&self) -> anyhow::Result<()> {
        match &self.dir {
            Some(dir) => unlinkd::man::write_pages(crate::Cli::command(), dir, SECTION)
                .map(|_| ())
                .with_context(|| format!("writing the pages into {}", dir.display())),
            None => {
                let v = page().context("rendering the page")?;
                crate::render::print(&String::from_utf8_lossy(&v))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_pages() {
        let p = String::from_utf8(page().unwrap()).unwrap();
        assert!(p.starts_with(".ie \\n(.g .ds Aq"), "{}", &p[..40]);
        assert!(p.contains(".TH iodctl 8"));
        assert!(p.contains("add\\-viod"));
        let d = tempfile::tempdir().unwrap();
        Args {
            dir: Some(d.path().join("man8")),
        }
        .run()
        .unwrap();
        for f in [
            "iodctl.8",
            "iodctl-list.8",
            "iodctl-set-state.8",
            "iodctl-man.8",
            "iodctl-genkey.8",
            "iodctl-load-key.8",
            "iodctl-rotate-key.8",
        ] {
            assert!(d.path().join("man8").join(f).exists(), "{f}");
        }
        assert!(!d.path().join("man8").join("iodctl.1").exists());
    }
}
