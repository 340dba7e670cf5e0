// SPDX-License-Identifier: GPL-2.0
//! One module per subcommand; shared argument checks.

pub mod add_iod;
pub mod add_viod;
pub mod completions;
pub mod del_iod;
pub mod del_viod;
pub mod fsck;
pub mod list;
pub mod man;
pub mod set_state;
pub mod stats;
pub mod timeout;

use std::net::SocketAddr;

use nfsp_proto::control::{parse_addr, MAX_MEMBERS, MAX_TIMEOUT_MS};
use nfsp_proto::{Command, IodState, ProtoError};

use crate::control::Control;
use crate::UsageError;

/// An iod address, checked with proto's grammar.
pub fn addr(s: &str) -> Result<SocketAddr, UsageError> {
    parse_addr(s).map_err(|_| {
        UsageError(format!(
            "malformed address '{s}' (expected A.B.C.D:PORT or [IPv6]:PORT)"
        ))
    })
}

/// An iod state keyword, checked with proto's grammar.
pub fn state(s: &str) -> Result<IodState, UsageError> {
    IodState::parse(s)
        .map_err(|_| UsageError(format!("unknown state '{s}' (expected up, down or resync)")))
}

/// Final local check: the printed line must parse back to the same command
/// (catches out-of-range numbers and over-long lines before writing).
pub fn validate(cmd: Command) -> Result<Command, UsageError> {
    let line = cmd.to_string();
    match Command::parse(&line) {
        Ok(c) if c == cmd => Ok(cmd),
        Ok(_) => Err(UsageError(format!("'{line}' does not read back the same"))),
        Err(e) => Err(UsageError(explain(&line, e))),
    }
}

/// A readable reason for a command proto's grammar refuses.
fn explain(line: &str, e: ProtoError) -> String {
    match e {
        ProtoError::BadNumber("MS") => {
            format!("'{line}': the timeout must be 1 to {MAX_TIMEOUT_MS} ms")
        }
        ProtoError::TooMany(_) => format!("'{line}': a viod has at most {MAX_MEMBERS} iods"),
        e => format!("'{line}': {e}"),
    }
}

/// Run a command whose answer is a plain `ok` (the configuration changes).
pub fn run_simple(ctl: &Control, cmd: &Command) -> anyhow::Result<()> {
    let answers = ctl.transact(cmd)?;
    log::info!("{cmd}: {} answer line(s)", answers.len());
    Ok(())
}
