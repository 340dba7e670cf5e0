// SPDX-License-Identifier: GPL-2.0
//! `unlinkd` as a library: the journal (`nfsp_proto::journal` entries in a
//! file), the iod client (authenticated UNLINK, LIST, PING, READ, WRITE,
//! TRUNCATE with request ids, iod instances, timeouts and retries), the
//! cluster key options, the viod membership read from the control
//! file, the manual pages (section 8); the daemon loop is the `run`
//! subcommand. `iodctl fsck` and `iodmgr` use them too.

pub mod client;
pub mod journal;
pub mod keys;
pub mod man;
pub mod members;

/// Start `env_logger` (`RUST_LOG`, `info` by default, millisecond
/// timestamps) for a daemon.
pub fn init_log() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
}

/// The exit status of a daemon's `main`: failure with `prog: error` on
/// stderr (the whole context chain).
pub fn exit(prog: &str, res: anyhow::Result<()>) -> std::process::ExitCode {
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{prog}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Default journal path.
pub const DEFAULT_JOURNAL: &str = "/var/lib/nfsp/unlinkd.journal";
/// Default deletion device.
pub const DEFAULT_DEVICE: &str = "/dev/nfsp_unlink";
/// Default control file of the meta-server module.
pub const DEFAULT_CONTROL: &str = "/proc/fs/nfsd/nfsp";
