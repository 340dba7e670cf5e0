// SPDX-License-Identifier: GPL-2.0
//! One module per subcommand; shared argument checks.

pub mod accept_identity;
pub mod add_iod;
pub mod add_viod;
pub mod completions;
pub mod del_iod;
pub mod del_viod;
pub mod fsck;
pub mod genkey;
pub mod layouts;
pub mod list;
pub mod liveness;
pub mod load;
pub mod load_key;
pub mod man;
pub mod rotate_key;
pub mod save;
pub mod set_state;
pub mod stats;
pub mod timeout;

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use nfsp_proto::auth::{Key, Keys};
use nfsp_proto::control::{parse_addr, MAX_MEMBERS, MAX_TIMEOUT_MS};
use nfsp_proto::{Command, IodState, ProtoError};
use serde::Serialize;

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
    log::info!(
        "{}: {} answer line(s)",
        crate::control::shown(cmd),
        answers.len()
    );
    Ok(())
}

/// What a key command did, for the admin: key ids only, never a secret.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct KeyReport {
    /// The command (`genkey`, `load-key`, `rotate-key prepare`, ...).
    pub step: String,
    /// The key file.
    pub key_file: String,
    /// Id of the signing key (8 hex digits), `null` in the insecure mode.
    pub sign: Option<String>,
    /// Id of the accepted-only key, if any.
    pub accept: Option<String>,
    /// Loaded into the module.
    pub loaded: bool,
    /// Iods found ready for this step (rotate-key commit and finish).
    pub checked_iods: Option<usize>,
    /// What the admin does next.
    pub next: Vec<String>,
}

/// A key id as the key file and the logs write it.
pub fn key_id(k: Option<&Key>) -> Option<String> {
    k.map(|k| format!("{:08x}", k.id()))
}

impl KeyReport {
    /// A report of `keys` in `key_file`.
    pub fn new(step: &str, key_file: &Path, keys: &Keys, loaded: bool, next: Vec<String>) -> Self {
        KeyReport {
            step: step.into(),
            key_file: key_file.display().to_string(),
            sign: key_id(keys.signing()),
            accept: key_id(keys.accepted()),
            loaded,
            checked_iods: None,
            next,
        }
    }

    /// The human text.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = write!(
            s,
            "{}: {}: {}",
            self.step,
            self.key_file,
            match (&self.sign, &self.accept) {
                (None, _) => "insecure (no key)".to_string(),
                (Some(k), None) => format!("signs with key {k}"),
                (Some(k), Some(a)) => format!("signs with key {k}, also accepts key {a}"),
            }
        );
        if self.loaded {
            s.push_str("; loaded into the module");
        }
        if let Some(n) = self.checked_iods {
            let _ = write!(s, "; {n} iod(s) ready");
        }
        s.push('\n');
        if !self.next.is_empty() {
            s.push_str("next:\n");
            for (i, n) in self.next.iter().enumerate() {
                let _ = writeln!(s, "  {}. {n}", i + 1);
            }
        }
        s
    }

    /// Print as text or JSON.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        let text = if json {
            serde_json::to_string(self).context("JSON")? + "\n"
        } else {
            self.text()
        };
        crate::render::print(&text)
    }
}

/// Install `keys` in the module (the secret never reaches a log or an
/// error message: see [`crate::control::shown`]).
pub fn load_keys(ctl: &Control, keys: &Keys) -> anyhow::Result<()> {
    let cmd = Command::Keys(*keys);
    ctl.transact(&cmd)?;
    log::info!("{}: loaded", crate::control::shown(&cmd));
    Ok(())
}

/// Write `keys` to `path` (atomically, mode 0600: `nfsp_keys::store`),
/// keeping an existing file's owner, group and group-read bit: daemons
/// running as a service user read it through its group (root:nfsp 0640).
pub fn store_keys(path: &Path, keys: &Keys) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let old = std::fs::metadata(path).ok();
    nfsp_keys::store(path, keys)?;
    let Some(old) = old else {
        return Ok(());
    };
    let new = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    if (new.uid(), new.gid()) != (old.uid(), old.gid()) {
        std::os::unix::fs::chown(path, Some(old.uid()), Some(old.gid())).with_context(|| {
            format!(
                "{}: giving the new key file its old owner {}:{}",
                path.display(),
                old.uid(),
                old.gid()
            )
        })?;
    }
    if old.mode() & 0o040 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640))
            .with_context(|| format!("chmod 0640 {}", path.display()))?;
    }
    Ok(())
}

/// The instruction to hand the key file to the iods and daemons.
pub fn distribute(key_file: &Path, what: &str) -> [String; 2] {
    [
        format!(
            "copy {} to every iod host (same path; mode 0600, or root:nfsp 0640) and reload the \
             iods (`systemctl reload iod@…`, or SIGHUP): {what}",
            key_file.display()
        ),
        "reload unlinkd and iodmgr on this host (`systemctl kill -s HUP unlinkd iodmgr`)".into(),
    ]
}
