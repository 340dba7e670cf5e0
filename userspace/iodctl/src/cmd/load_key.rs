// SPDX-License-Identifier: GPL-2.0
//! `iodctl load-key [--key-file PATH | --insecure] [--json]`: install the
//! key file's keys in the module (`keys sign ID KEY [accept ID KEY]`, a
//! write-only command: the module never shows them back).

use std::path::PathBuf;

use nfsp_proto::auth::Keys;

use super::KeyReport;
use crate::control::Control;

/// Arguments of `load-key`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The key file to load (the module signs with its `sign` key and
    /// also accepts its `accept` key).
    #[arg(long, value_name = "PATH", default_value = nfsp_keys::DEFAULT_KEY_FILE)]
    pub key_file: PathBuf,
    /// Put the module in the insecure mode instead (`keys insecure`): it
    /// signs nothing and accepts only unsigned answers. Test set-ups only.
    #[arg(long, conflicts_with = "key_file")]
    pub insecure: bool,
    /// Print JSON: {"step":"load-key","key_file":PATH,"sign":ID,"accept":ID|null,...}.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// Load; what was loaded.
    pub fn load(&self, ctl: &Control) -> anyhow::Result<KeyReport> {
        let keys = if self.insecure {
            log::warn!(
                "loading the insecure mode: the module's messages to the iods will not be \
                 authenticated"
            );
            Keys::insecure()
        } else {
            nfsp_keys::load(&self.key_file)?
        };
        super::load_keys(ctl, &keys)?;
        Ok(KeyReport::new(
            "load-key",
            &self.key_file,
            &keys,
            true,
            Vec::new(),
        ))
    }

    /// Load and report.
    pub fn run(&self, ctl: &Control) -> anyhow::Result<()> {
        self.load(ctl)?.print(self.json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfsp_proto::auth::Key;
    use nfsp_proto::Command;

    #[test]
    fn writes_the_keys_command() {
        let d = tempfile::tempdir().unwrap();
        let (kf, cf) = (d.path().join("cluster.key"), d.path().join("nfsp"));
        std::fs::write(&cf, "").unwrap();
        let ctl = Control::new(cf.clone());
        let a = Args {
            key_file: kf.clone(),
            insecure: false,
            json: false,
        };
        assert!(a.load(&ctl).is_err(), "no key file");
        let keys = Keys::new(
            Key::new(7, [7; 32]).unwrap(),
            Some(Key::new(8, [8; 32]).unwrap()),
        )
        .unwrap();
        nfsp_keys::store(&kf, &keys).unwrap();
        let r = a.load(&ctl).unwrap();
        assert_eq!(
            (r.sign.as_deref(), r.accept.as_deref()),
            (Some("00000007"), Some("00000008"))
        );
        let line = std::fs::read_to_string(&cf).unwrap();
        assert_eq!(Command::parse(&line).unwrap(), Command::Keys(keys));
        assert!(!r.text().contains("0707"), "{}", r.text());
        std::fs::write(&cf, "").unwrap();
        let a = Args {
            insecure: true,
            ..a
        };
        a.load(&ctl).unwrap();
        assert_eq!(std::fs::read_to_string(&cf).unwrap(), "keys insecure\n");
    }
}
