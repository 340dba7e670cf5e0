// SPDX-License-Identifier: GPL-2.0
//! `unlinkd`: carries out the deletions of nfsp files. The module queues a
//! record on `/dev/nfsp_unlink` when the last link of a file goes; unlinkd
//! makes it durable in its journal, acknowledges it to the kernel, and
//! removes the file's data on every member of every viod of the file.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// nfsp deletion daemon: drains /dev/nfsp_unlink into a durable journal and
/// removes the deleted files' data on the iods.
#[derive(Parser, Debug)]
#[command(name = "unlinkd", version, about)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the daemon (until SIGTERM or SIGINT).
    Run(cmd::run::Args),
    /// Show the deletions pending in the journal (daemon running or not).
    Status(cmd::status::Args),
    /// Print the manual page (roff), or write one page per subcommand
    /// (packaging; hidden).
    #[command(hide = true)]
    Man(unlinkd::man::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    unlinkd::init_log();
    let res = match &cli.cmd {
        Cmd::Run(a) => a.run(),
        Cmd::Status(a) => a.run(),
        Cmd::Man(a) => a.run(<Cli as clap::CommandFactory>::command()),
    };
    unlinkd::exit("unlinkd", res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn man_pages() {
        use clap::CommandFactory;
        let c = Cli::try_parse_from(["unlinkd", "man", "--dir", "/x"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Man(_)));
        let d = tempfile::tempdir().unwrap();
        let names = unlinkd::man::page_names(Cli::command(), d.path(), "8").unwrap();
        // The hidden man subcommand gets no page.
        assert_eq!(names, ["unlinkd-run.8", "unlinkd-status.8", "unlinkd.8"]);
    }

    #[test]
    fn defaults() {
        let c = Cli::try_parse_from(["unlinkd", "run"]).unwrap();
        let Cmd::Run(a) = c.cmd else { panic!() };
        assert_eq!(a.device.to_str(), Some(unlinkd::DEFAULT_DEVICE));
        assert_eq!(a.journal.to_str(), Some(unlinkd::DEFAULT_JOURNAL));
        assert_eq!(a.keys.key_file.to_str(), Some(nfsp_keys::DEFAULT_KEY_FILE));
        assert!(!a.keys.insecure);
        assert!(Cli::try_parse_from(["unlinkd", "status", "--json"]).is_ok());
    }

    #[test]
    fn key_options() {
        let c = Cli::try_parse_from(["unlinkd", "run", "--key-file", "/k"]).unwrap();
        let Cmd::Run(a) = c.cmd else { panic!() };
        assert_eq!(a.keys.key_file.to_str(), Some("/k"));
        let c = Cli::try_parse_from(["unlinkd", "run", "--insecure"]).unwrap();
        let Cmd::Run(a) = c.cmd else { panic!() };
        assert!(a.keys.insecure);
        assert!(Cli::try_parse_from(["unlinkd", "run", "--insecure", "--key-file", "/k"]).is_err());
        assert!(Cli::try_parse_from(["unlinkd", "status", "--insecure"]).is_err());
    }
}
