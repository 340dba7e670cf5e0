// SPDX-License-Identifier: GPL-2.0
//! `iodctl man [--dir DIR]`: manual pages generated from the CLI
//! definition (clap_mangen).

use std::path::PathBuf;

use anyhow::Context;
use clap::CommandFactory;

/// Arguments of `man`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write iodctl.1 and one page per subcommand (iodctl-list.1, …) into
    /// DIR instead of printing iodctl.1 on stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The roff source of iodctl(1).
pub fn page() -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    clap_mangen::Man::new(crate::Cli::command()).render(&mut v)?;
    Ok(v)
}

impl Args {
    /// Print the page or write every page.
    pub fn run(&self) -> anyhow::Result<()> {
        match &self.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                clap_mangen::generate_to(crate::Cli::command(), dir)
                    .with_context(|| format!("writing the pages into {}", dir.display()))
            }
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
        assert!(p.contains(".TH iodctl 1"));
        assert!(p.contains("add\\-viod"));
        let d = tempfile::tempdir().unwrap();
        Args {
            dir: Some(d.path().join("man1")),
        }
        .run()
        .unwrap();
        for f in [
            "iodctl.1",
            "iodctl-list.1",
            "iodctl-set-state.1",
            "iodctl-man.1",
            "iodctl-genkey.1",
            "iodctl-load-key.1",
            "iodctl-rotate-key.1",
        ] {
            assert!(d.path().join("man1").join(f).exists(), "{f}");
        }
    }
}
