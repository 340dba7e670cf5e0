// SPDX-License-Identifier: GPL-2.0
//! `iodmgr`: the nfsp iod monitor on the meta-server. It PINGs every member
//! of every viod, takes dead and slow iods out of service through the
//! module's control file, re-syncs a returning replica from a healthy one
//! before it serves again, and reports status (state file, OpenMetrics).

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// nfsp iod monitor: heartbeats, failover of dead or slow iods, re-sync of
/// returning replicas, status and an OpenMetrics endpoint.
#[derive(Parser, Debug)]
#[command(name = "iodmgr", version, about)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the monitor (until SIGTERM or SIGINT).
    Run(cmd::run::Args),
    /// Show the members as the running monitor last saw them (state file).
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
    unlinkd::exit("iodmgr", res)
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
        let c = Cli::try_parse_from(["iodmgr", "man", "--dir", "/x"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Man(_)));
        let d = tempfile::tempdir().unwrap();
        let names = unlinkd::man::page_names(Cli::command(), d.path(), "8").unwrap();
        // The hidden man subcommand gets no page.
        assert_eq!(names, ["iodmgr-run.8", "iodmgr-status.8", "iodmgr.8"]);
    }

    #[test]
    fn defaults() {
        let c = Cli::try_parse_from(["iodmgr", "run"]).unwrap();
        let Cmd::Run(a) = c.cmd else { panic!() };
        assert_eq!(a.control.to_str(), Some(unlinkd::DEFAULT_CONTROL));
        assert_eq!(a.interval_ms, 500);
        assert_eq!(a.misses, 3);
        assert_eq!(a.slow_factor, 10.0);
        assert!(a.metrics.is_none());
        assert_eq!(a.state.to_str(), Some(iodmgr::DEFAULT_STATE));
        assert_eq!(a.max_file_size, 1 << 40);
        assert_eq!(a.keys.key_file.to_str(), Some("/etc/nfsp/cluster.key"));
        assert!(!a.keys.insecure);
        let c = Cli::try_parse_from(["iodmgr", "run", "--insecure", "--max-file-size", "4096"])
            .unwrap();
        let Cmd::Run(a) = c.cmd else { panic!() };
        assert!(a.keys.insecure);
        assert_eq!(a.max_file_size, 4096);
        let c = Cli::try_parse_from(["iodmgr", "run", "--metrics", "0.0.0.0:9477"]).unwrap();
        let Cmd::Run(a) = c.cmd else { panic!() };
        assert_eq!(a.metrics, Some("0.0.0.0:9477".parse().unwrap()));
        assert!(Cli::try_parse_from(["iodmgr", "run", "--misses", "0"]).is_err());
        assert!(Cli::try_parse_from(["iodmgr", "status", "--json"]).is_ok());
    }
}
