// SPDX-License-Identifier: GPL-2.0
//! Manual pages generated from a clap command tree (clap_mangen), in a
//! given section: the daemons and iodctl are administration tools
//! installed in /usr/sbin, section 8, while clap_mangen's own
//! `generate_to` always writes section 1.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The section of every nfsp page (system administration, daemons).
pub const SECTION: &str = "8";

/// The roff source of the top page of `cmd`, in `section`.
pub fn page(cmd: clap::Command, section: &str) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    clap_mangen::Man::new(cmd).section(section).render(&mut v)?;
    Ok(v)
}

/// Write `NAME.SECTION` and one page per visible subcommand
/// (`NAME-SUB.SECTION`, recursively) into `dir`, creating it; returns the
/// files written.
pub fn write_pages(cmd: clap::Command, dir: &Path, section: &str) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(
        cmd: clap::Command,
        dir: &Path,
        section: &str,
        source: &str,
        out: &mut Vec<PathBuf>,
    ) -> anyhow::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, dir, section, source, out)?;
        }
        let man = clap_mangen::Man::new(cmd).section(section).source(source);
        let path = dir.join(man.get_filename());
        man.generate_to(dir)
            .with_context(|| format!("writing {}", path.display()))?;
        out.push(path);
        Ok(())
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // As clap_mangen::generate_to: no page for clap's `help` subcommand,
    // and a built tree, so that subcommands carry their full names.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    // Every page's footer names the program and its version ("iodctl
    // 0.1.0"), subcommand pages too (theirs would read "list ").
    let source = format!(
        "{} {}",
        cmd.get_name(),
        cmd.get_version().unwrap_or_default()
    );
    let mut out = Vec::new();
    walk(cmd, dir, section, source.trim_end(), &mut out)?;
    Ok(out)
}

/// Arguments of a hidden `man` subcommand (`unlinkd man --dir DIR`,
/// `iodmgr man --dir DIR`), for packaging.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write the pages (NAME.8, NAME-SUB.8, …) into DIR instead of printing
    /// NAME.8 on stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl Args {
    /// Print the top page of `cmd` or write every page.
    pub fn run(&self, cmd: clap::Command) -> anyhow::Result<()> {
        use std::io::Write;
        match &self.dir {
            Some(dir) => write_pages(cmd, dir, SECTION).map(|_| ()),
            None => {
                let v = page(cmd, SECTION).context("rendering the page")?;
                let mut o = std::io::stdout().lock();
                o.write_all(&v).and_then(|()| o.flush()).context("stdout")
            }
        }
    }
}

/// The file names of the pages [`write_pages`] writes for `cmd` into
/// `dir`, sorted (for the binaries' tests).
pub fn page_names(cmd: clap::Command, dir: &Path, section: &str) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = write_pages(cmd, dir, section)?
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon-like tree: visible and hidden subcommands.
    #[derive(clap::Parser, Debug)]
    #[command(name = "demo", version = "1.0", about = "a demo daemon")]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Cmd {
        /// Run it.
        Run,
        /// Hidden.
        #[command(hide = true)]
        Man(Args),
    }

    #[test]
    fn pages_in_section_8() {
        use clap::CommandFactory;
        let p = String::from_utf8(page(Cli::command(), SECTION).unwrap()).unwrap();
        assert!(p.contains(".TH demo 8"), "{p}");
        let d = tempfile::tempdir().unwrap();
        let mut files = write_pages(Cli::command(), &d.path().join("man8"), SECTION).unwrap();
        files.sort();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["demo-run.8", "demo.8"]);
        let sub = std::fs::read_to_string(&files[0]).unwrap();
        assert!(sub.contains(".TH demo-run 8  \"demo 1.0\""), "{sub}");
    }
}
