// SPDX-License-Identifier: GPL-2.0
//! The cluster key options of every program that talks to iods
//! (`--key-file PATH`, `--insecure`) and the reload of the key file on
//! SIGHUP for the daemons.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nfsp_keys::KeyFileError;
use nfsp_proto::auth::Keys;

use crate::client::SharedKeys;

/// Key options, for `#[command(flatten)]`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct KeyArgs {
    /// The cluster key file: signs every message to the iods and checks
    /// their answers (`iodctl genkey` makes one; the daemons reload it on
    /// SIGHUP).
    #[arg(long, value_name = "PATH", default_value = nfsp_keys::DEFAULT_KEY_FILE)]
    pub key_file: PathBuf,
    /// Talk to the iods without a key: unsigned messages, accepted only by
    /// iods also run with --insecure. Anyone who can send UDP to them can
    /// then read, overwrite and delete data: test set-ups only.
    #[arg(long, conflicts_with = "key_file")]
    pub insecure: bool,
}

/// Why the keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be loaded (its message already says why:
    /// not a source, so that error chains do not repeat it).
    #[error("{}{}", .0, hint(.0))]
    Load(KeyFileError),
    /// SIGHUP could not be caught.
    #[error("SIGHUP handler: {0}")]
    Signal(io::Error),
}

/// A description of `keys` for the log: key ids only, never a secret.
pub fn describe(keys: &Keys) -> String {
    match (keys.signing(), keys.accepted()) {
        (None, _) => "insecure (no key)".into(),
        (Some(s), None) => format!("key {:08x}", s.id()),
        (Some(s), Some(a)) => format!("key {:08x}, also accepting {:08x}", s.id(), a.id()),
    }
}

/// What to do about a missing key file.
fn hint(e: &KeyFileError) -> &'static str {
    match e {
        KeyFileError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
            " (`iodctl genkey` creates a key file; --insecure runs without one)"
        }
        _ => "",
    }
}

impl From<KeyFileError> for KeyError {
    fn from(e: KeyFileError) -> Self {
        KeyError::Load(e)
    }
}

impl KeyArgs {
    /// The keys to use: the key file's, or none with `--insecure` (warned
    /// loudly). A missing or unreadable key file is an error: nobody runs
    /// unauthenticated by accident.
    pub fn load(&self) -> Result<Keys, KeyError> {
        if self.insecure {
            log::warn!(
                "--insecure: messages to and from the iods are NOT authenticated; anyone who \
                 can send UDP to the iods can read, overwrite and delete file data"
            );
            return Ok(Keys::insecure());
        }
        let keys = nfsp_keys::load(&self.key_file)?;
        log::info!("{}: {}", self.key_file.display(), describe(&keys));
        Ok(keys)
    }

    /// Reload the key file into `shared` whenever SIGHUP arrives (call
    /// [`Reloader::poll`] from the main loop).
    pub fn reloader(&self, shared: SharedKeys) -> Result<Reloader, KeyError> {
        let flag = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&flag))
            .map_err(KeyError::Signal)?;
        Ok(Reloader {
            args: self.clone(),
            flag,
            shared,
        })
    }
}

/// Reloads the key file on SIGHUP.
#[derive(Debug)]
pub struct Reloader {
    args: KeyArgs,
    flag: Arc<AtomicBool>,
    shared: SharedKeys,
}

impl Reloader {
    /// A reloader set off by `flag` instead of a signal (tests).
    pub fn with_flag(args: KeyArgs, flag: Arc<AtomicBool>, shared: SharedKeys) -> Self {
        Reloader { args, flag, shared }
    }

    /// Reload if SIGHUP came since the last call; on failure the old keys
    /// stay. True when new keys were installed.
    pub fn poll(&self) -> bool {
        if !self.flag.swap(false, Ordering::Relaxed) {
            return false;
        }
        if self.args.insecure {
            log::warn!("SIGHUP: running with --insecure, no key file to reload");
            return false;
        }
        match nfsp_keys::load(&self.args.key_file) {
            Ok(k) => {
                let old = self.shared.get();
                self.shared.set(k);
                log::info!(
                    "SIGHUP: reloaded {}: {} (was {})",
                    self.args.key_file.display(),
                    describe(&k),
                    describe(&old)
                );
                true
            }
            Err(e) => {
                log::error!(
                    "SIGHUP: cannot reload the key file, keeping {}: {e}",
                    describe(&self.shared.get())
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfsp_proto::auth::Key;

    #[test]
    fn loads_reloads_and_keeps_old_keys_on_failure() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cluster.key");
        let args = KeyArgs {
            key_file: p.clone(),
            insecure: false,
        };
        let e = args.load().unwrap_err();
        assert!(e.to_string().contains("iodctl genkey"), "{e}");
        let k1 = Keys::new(Key::new(1, [1; 32]).unwrap(), None).unwrap();
        nfsp_keys::store(&p, &k1).unwrap();
        assert_eq!(args.load().unwrap(), k1);
        let shared = SharedKeys::new(k1);
        let flag = Arc::new(AtomicBool::new(false));
        let r = Reloader::with_flag(args.clone(), Arc::clone(&flag), shared.clone());
        assert!(!r.poll(), "no signal, no reload");
        let k2 = Keys::new(
            Key::new(2, [2; 32]).unwrap(),
            Some(Key::new(1, [1; 32]).unwrap()),
        )
        .unwrap();
        nfsp_keys::store(&p, &k2).unwrap();
        flag.store(true, Ordering::Relaxed);
        assert!(r.poll());
        assert_eq!(shared.get(), k2);
        std::fs::write(&p, "garbage\n").unwrap();
        flag.store(true, Ordering::Relaxed);
        assert!(!r.poll());
        assert_eq!(shared.get(), k2, "old keys kept");
        let insecure = KeyArgs {
            key_file: p,
            insecure: true,
        };
        assert!(insecure.load().unwrap().is_insecure());
    }

    #[test]
    fn descriptions_hold_no_secret() {
        let k = Keys::new(Key::new(0xab, [0x5a; 32]).unwrap(), None).unwrap();
        let s = describe(&k);
        assert_eq!(s, "key 000000ab");
        assert_eq!(describe(&Keys::insecure()), "insecure (no key)");
    }
}
