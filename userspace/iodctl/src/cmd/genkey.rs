// SPDX-License-Identifier: GPL-2.0
//! `iodctl genkey [--key-file PATH] [--force] [--json]`: a new cluster key
//! file (one random signing key), written atomically with mode 0600.

use std::path::PathBuf;

use anyhow::{bail, Context};
use nfsp_proto::auth::Keys;

use super::KeyReport;

/// Arguments of `genkey`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The key file to write (mode 0600; its directory is created if
    /// missing).
    #[arg(long, value_name = "PATH", default_value = nfsp_keys::DEFAULT_KEY_FILE)]
    pub key_file: PathBuf,
    /// Replace an existing key file. Every party using the old key is
    /// locked out until it gets the new one: `rotate-key` changes keys
    /// without that.
    #[arg(long)]
    pub force: bool,
    /// Print JSON: {"step":"genkey","key_file":PATH,"sign":ID,"accept":null,...}.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// Write the new key file; what was written.
    pub fn generate(&self) -> anyhow::Result<KeyReport> {
        let p = &self.key_file;
        if !self.force && std::fs::symlink_metadata(p).is_ok() {
            bail!(
                "{} exists: a new key would lock out every iod and daemon using it \
                 (`iodctl rotate-key` replaces a key without downtime; --force overwrites)",
                p.display()
            );
        }
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let key = nfsp_keys::generate(None).context("random key")?;
        let keys = Keys::new(key, None).context("new key")?;
        super::store_keys(p, &keys)?;
        let mut next = super::distribute(p, "they sign with it and accept only it").to_vec();
        next.insert(1, "iodctl load-key (the module signs with it)".into());
        Ok(KeyReport::new("genkey", p, &keys, false, next))
    }

    /// Generate and report.
    pub fn run(&self) -> anyhow::Result<()> {
        self.generate()?.print(self.json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn args(p: PathBuf, force: bool) -> Args {
        Args {
            key_file: p,
            force,
            json: false,
        }
    }

    #[test]
    fn writes_mode_0600_and_refuses_to_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("etc/nfsp/cluster.key");
        let r = args(p.clone(), false).generate().unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        let k = nfsp_keys::load(&p).unwrap();
        assert_eq!(r.sign, super::super::key_id(k.signing()));
        assert!(k.accepted().is_none());
        let text = std::fs::read_to_string(&p).unwrap();
        let secret: String = k
            .signing()
            .unwrap()
            .secret()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(text.contains(&secret));
        // Neither the report nor its JSON holds the secret.
        assert!(!r.text().contains(&secret));
        assert!(!serde_json::to_string(&r).unwrap().contains(&secret));
        let e = args(p.clone(), false).generate().unwrap_err();
        assert!(e.to_string().contains("exists"), "{e}");
        assert_eq!(nfsp_keys::load(&p).unwrap(), k, "untouched");
        args(p.clone(), true).generate().unwrap();
        let k2 = nfsp_keys::load(&p).unwrap();
        assert_ne!(k2, k);
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    }
}
