// SPDX-License-Identifier: GPL-2.0
//! `iodctl`: configure the viods and iods of the nfsp meta-server and read
//! its counters, through the module's control file `/proc/fs/nfsd/nfsp`.
//!
//! Every subcommand builds one line of the control grammar with
//! `nfsp_proto::Command` (checked locally before anything is written),
//! writes it, and reads the answer back from the same open file.

mod cmd;
mod render;

use iodctl::control;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use control::Control;

/// Default control file of the nfsp meta-server module.
pub const DEFAULT_CONTROL: &str = "/proc/fs/nfsd/nfsp";

/// Configure the nfsp meta-server: viods (stripe columns), their iods
/// (replicas), iod states, the iod timeout; list members and counters.
#[derive(Parser, Debug)]
#[command(name = "iodctl", version, about)]
pub struct Cli {
    /// Control file of the nfsp_knfsd module.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_CONTROL)]
    control: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

/// The subcommands, one control command each.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create viod ID with its member iods (1 to 8 replicas).
    AddViod(cmd::add_viod::Args),
    /// Remove viod ID.
    DelViod(cmd::del_viod::Args),
    /// Add an iod (replica) to a viod.
    AddIod(cmd::add_iod::Args),
    /// Remove an iod from a viod.
    DelIod(cmd::del_iod::Args),
    /// Set the state of an iod in its viod: up, down or resync.
    SetState(cmd::set_state::Args),
    /// Accept that an iod serves another data directory (wiped, replaced):
    /// record the identity it answered with, which the module refused.
    AcceptIdentity(cmd::accept_identity::Args),
    /// List the viods, their iods, states and counters.
    List(cmd::list::Args),
    /// Show the module's global counters.
    Stats(cmd::stats::Args),
    /// Set the iod request timeout in milliseconds (1 to 3600000).
    Timeout(cmd::timeout::Args),
    /// Which NFSv4.2 clients get pNFS layouts (exports with nfsp,pnfs):
    /// auto, striped, single or off.
    Layouts(cmd::layouts::Args),
    /// Cross-check an export's meta-files with the iods' data: orphans and
    /// missing data (dry run unless --delete).
    Fsck(cmd::fsck::Args),
    /// Write a new cluster key file (mode 0600); refuses to replace one
    /// unless --force.
    Genkey(cmd::genkey::Args),
    /// Install the key file's keys in the module (never shown back).
    LoadKey(cmd::load_key::Args),
    /// Replace the cluster key without downtime: prepare, commit, finish.
    RotateKey(cmd::rotate_key::Args),
    /// Write the viod table to its configuration file
    /// (/etc/nfsp/viods.conf), to survive reboots.
    Save(cmd::save::Args),
    /// Put the configuration file's viods into the module (at boot).
    Load(cmd::load::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::completions::Args),
    /// Print the manual page (roff), or write one page per subcommand.
    Man(cmd::man::Args),
}

/// A mistake in the arguments, found before anything was written (exit 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl Cmd {
    /// The validated control command of this invocation.
    pub fn command(&self) -> Result<nfsp_proto::Command, UsageError> {
        match self {
            Cmd::AddViod(a) => a.command(),
            Cmd::DelViod(a) => a.command(),
            Cmd::AddIod(a) => a.command(),
            Cmd::DelIod(a) => a.command(),
            Cmd::SetState(a) => a.command(),
            Cmd::List(a) => a.command(),
            Cmd::Stats(a) => a.command(),
            Cmd::Timeout(a) => a.command(),
            Cmd::Layouts(a) => a.command(),
            Cmd::Fsck(a) => a.command(),
            Cmd::Completions(_) | Cmd::Man(_) => Err(UsageError(
                "completions and man do not use the control file".into(),
            )),
            Cmd::Genkey(_) | Cmd::LoadKey(_) | Cmd::RotateKey(_) => Err(UsageError(
                "the key commands build their lines from the key file".into(),
            )),
            Cmd::Save(_) | Cmd::Load(_) | Cmd::AcceptIdentity(_) => Err(UsageError(
                "save, load and accept-identity run several commands".into(),
            )),
        }
    }

    fn run(&self, ctl: &Control) -> anyhow::Result<()> {
        match self {
            Cmd::Completions(a) => return a.run(),
            Cmd::Man(a) => return a.run(),
            Cmd::Genkey(a) => return a.run(),
            Cmd::LoadKey(a) => return a.run(ctl),
            Cmd::RotateKey(a) => return a.run(ctl),
            Cmd::Save(a) => return a.run(ctl),
            Cmd::Load(a) => return a.run(ctl),
            Cmd::AcceptIdentity(a) => return a.run(ctl),
            _ => {}
        }
        let command = self.command()?;
        match self {
            Cmd::List(a) => a.run(ctl, &command),
            Cmd::Stats(a) => a.run(ctl, &command),
            Cmd::Fsck(a) => a.run(ctl, &command),
            _ => cmd::run_simple(ctl, &command),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let ctl = Control::new(cli.control.clone());
    match cli.cmd.run(&ctl) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iodctl: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The control line built from a command line, or the usage error.
    fn line(args: &[&str]) -> Result<String, String> {
        let mut argv = vec!["iodctl"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.kind().to_string())?;
        cli.cmd
            .command()
            .map(|c| c.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn builds_lines() {
        assert_eq!(
            line(&["add-viod", "0", "10.99.0.11:7000"]).unwrap(),
            "add-viod 0 10.99.0.11:7000"
        );
        assert_eq!(
            line(&["add-viod", "3", "10.0.0.1:1", "[::1]:7000"]).unwrap(),
            "add-viod 3 10.0.0.1:1 [::1]:7000"
        );
        assert_eq!(line(&["del-viod", "9"]).unwrap(), "del-viod 9");
        assert_eq!(
            line(&["add-iod", "1", "10.99.0.12:7000"]).unwrap(),
            "add-iod 1 10.99.0.12:7000"
        );
        assert_eq!(
            line(&["del-iod", "1", "[fe80::1%2]:7000"]).unwrap(),
            "del-iod 1 [fe80::1%2]:7000"
        );
        assert_eq!(
            line(&["set-state", "2", "10.99.0.13:7000", "resync"]).unwrap(),
            "set-state 2 10.99.0.13:7000 resync"
        );
        assert_eq!(line(&["list"]).unwrap(), "list");
        assert_eq!(line(&["list", "--json"]).unwrap(), "list");
        assert_eq!(line(&["stats", "--json"]).unwrap(), "stats");
        assert_eq!(line(&["timeout", "1500"]).unwrap(), "timeout 1500");
        assert_eq!(line(&["fsck", "/srv/nfsp", "--json"]).unwrap(), "list");
        assert!(line(&["fsck"]).is_err(), "EXPORT_DIR is required");
        assert_eq!(
            line(&["--control", "/tmp/x", "list"]).unwrap(),
            "list",
            "--control before the subcommand"
        );
        assert_eq!(line(&["list", "--control", "/tmp/x"]).unwrap(), "list");
    }

    #[test]
    fn rejects_bad_arguments() {
        let e = line(&["add-iod", "0", "10.99.0.300:7000"]).unwrap_err();
        assert!(e.contains("malformed address '10.99.0.300:7000'"), "{e}");
        let e = line(&["add-viod", "0", "10.99.0.1"]).unwrap_err();
        assert!(e.contains("malformed address '10.99.0.1'"), "{e}");
        let e = line(&["set-state", "0", "10.99.0.11:7000", "sideways"]).unwrap_err();
        assert!(e.contains("unknown state 'sideways'"), "{e}");
        let e = line(&["timeout", "0"]).unwrap_err();
        assert!(e.contains("1 to 3600000"), "{e}");
        assert!(line(&["timeout", "3600000"]).is_ok());
        assert!(line(&["timeout", "3600001"]).is_err());
        let nine: Vec<String> = (1..=9).map(|i| format!("10.0.0.{i}:7000")).collect();
        let mut args = vec!["add-viod", "1"];
        args.extend(nine.iter().map(String::as_str));
        let e = line(&args).unwrap_err();
        assert!(e.contains("at most 8"), "{e}");
        // clap itself: missing or non-numeric arguments, unknown commands.
        assert!(line(&["add-viod", "1"]).is_err());
        assert!(line(&["del-viod", "x"]).is_err());
        assert!(line(&["del-viod", "-1"]).is_err());
        assert!(line(&["del-viod", "4294967296"]).is_err());
        assert!(line(&["bogus"]).is_err());
        assert!(line(&["completions", "bash"]).is_err(), "no control line");
        assert!(line(&["completions", "tcsh"]).is_err());
        assert!(
            line(&["man", "--dir", "/tmp/x"]).is_err(),
            "no control line"
        );
    }

    #[test]
    fn key_commands() {
        let cli = |args: &[&str]| {
            let mut argv = vec!["iodctl"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).map(|c| c.cmd)
        };
        let Ok(Cmd::Genkey(a)) = cli(&["genkey"]) else {
            panic!()
        };
        assert_eq!(a.key_file.to_str(), Some(nfsp_keys::DEFAULT_KEY_FILE));
        assert!(!a.force);
        let Ok(Cmd::Genkey(a)) = cli(&["genkey", "--key-file", "/k", "--force", "--json"]) else {
            panic!()
        };
        assert!(a.force && a.json && a.key_file.to_str() == Some("/k"));
        assert!(matches!(cli(&["load-key"]), Ok(Cmd::LoadKey(_))));
        assert!(cli(&["load-key", "--insecure", "--key-file", "/k"]).is_err());
        for (s, want) in [
            ("prepare", cmd::rotate_key::Step::Prepare),
            ("commit", cmd::rotate_key::Step::Commit),
            ("finish", cmd::rotate_key::Step::Finish),
        ] {
            let Ok(Cmd::RotateKey(a)) = cli(&["rotate-key", s, "--key-file", "/k"]) else {
                panic!("{s}")
            };
            assert_eq!(a.step, want);
        }
        assert!(cli(&["rotate-key"]).is_err());
        assert!(cli(&["rotate-key", "sideways"]).is_err());
        assert!(line(&["genkey"]).is_err(), "no control line of its own");
        let Ok(Cmd::Fsck(a)) = cli(&["fsck", "/srv/x", "--insecure"]) else {
            panic!()
        };
        assert!(a.keys.insecure);
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
