// SPDX-License-Identifier: GPL-2.0
//! `iodctl rotate-key prepare|commit|finish [--key-file PATH] [--force]
//! [--json]`: replace the cluster key without downtime, in three steps,
//! each one written to the key file, then loaded into the module:
//!
//! | step | key file afterwards | every party must then |
//! |------|---------------------|-----------------------|
//! | prepare | sign OLD, accept NEW | accept NEW |
//! | commit | sign NEW, accept OLD | sign with NEW |
//! | finish | sign NEW | forget OLD |
//!
//! The new key's id is the old one's + 1: that is how `commit` and
//! `finish` tell which key is which in a file with two keys. Before
//! `commit` every iod of the module's list must accept the new key, and
//! before `finish` sign with it: both are checked with a PING (`--force`
//! skips the check, e.g. for an iod that is down for good).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use nfsp_proto::auth::{Key, Keys};
use nfsp_proto::Command;
use unlinkd::client::Client;

use super::KeyReport;
use crate::control::Control;

/// A step of the rotation.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Add a new key to the accept slot (the old one still signs).
    Prepare,
    /// Sign with the new key, still accept the old one.
    Commit,
    /// Drop the old key.
    Finish,
}

/// Arguments of `rotate-key`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The step: prepare, commit or finish (in this order, each once the
    /// key file of the previous one is on every iod).
    #[arg(value_enum)]
    pub step: Step,
    /// The key file (rewritten atomically, mode 0600).
    #[arg(long, value_name = "PATH", default_value = nfsp_keys::DEFAULT_KEY_FILE)]
    pub key_file: PathBuf,
    /// Do not check that every iod is ready for commit or finish.
    #[arg(long)]
    pub force: bool,
    /// Time to wait for each iod's PONG in that check, in milliseconds
    /// (3 tries).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub timeout_ms: u64,
    /// Print JSON: {"step":"rotate-key commit","key_file":PATH,"sign":ID,"accept":ID,...}.
    #[arg(long)]
    pub json: bool,
}

/// Where a key file stands in a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// One key.
    Steady(Key),
    /// After prepare: old signs, new accepted.
    Prepared {
        /// The old key.
        old: Key,
        /// The new key.
        new: Key,
    },
    /// After commit: new signs, old accepted.
    Committed {
        /// The old key.
        old: Key,
        /// The new key.
        new: Key,
    },
}

/// The id after `id` (never 0).
pub fn successor(id: u32) -> u32 {
    match id.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

/// The phase of `keys`.
pub fn phase(keys: &Keys) -> anyhow::Result<Phase> {
    match (keys.signing(), keys.accepted()) {
        (None, _) => bail!("the key file has no key"),
        (Some(s), None) => Ok(Phase::Steady(*s)),
        (Some(s), Some(a)) if a.id() == successor(s.id()) => {
            Ok(Phase::Prepared { old: *s, new: *a })
        }
        (Some(s), Some(a)) if s.id() == successor(a.id()) => {
            Ok(Phase::Committed { old: *a, new: *s })
        }
        (Some(s), Some(a)) => bail!(
            "cannot tell the rotation step of keys {:08x} (sign) and {:08x} (accept): their ids \
             are not consecutive (not written by rotate-key); edit the key file by hand",
            s.id(),
            a.id()
        ),
    }
}

fn id(k: &Key) -> String {
    format!("{:08x}", k.id())
}

impl Args {
    /// The iods of the module that do not answer a PING with `keys`.
    fn not_ready(&self, ctl: &Control, keys: Keys) -> anyhow::Result<(usize, Vec<SocketAddr>)> {
        let lines = ctl.transact(&Command::List)?;
        let viods = unlinkd::members::parse_list(&lines.join("\n"), "control file")?;
        let addrs: BTreeSet<SocketAddr> = viods.values().flatten().copied().collect();
        let mut left: Vec<SocketAddr> = addrs.iter().copied().collect();
        let mut client = Client::new(keys, Duration::from_millis(1), 1).context("iod client")?;
        let wait = Duration::from_millis(self.timeout_ms.max(1));
        for _ in 0..3 {
            if left.is_empty() {
                break;
            }
            let answers = client.ping_many(&left, wait);
            left = left
                .iter()
                .zip(answers)
                .filter(|(_, p)| p.is_none())
                .map(|(a, _)| *a)
                .collect();
        }
        Ok((addrs.len(), left))
    }

    /// Check that every iod is ready (unless --force).
    fn check(&self, ctl: &Control, keys: Keys, what: &str) -> anyhow::Result<Option<usize>> {
        if self.force {
            log::warn!("--force: not checking that every iod {what}");
            return Ok(None);
        }
        let (n, left) = self.not_ready(ctl, keys)?;
        if !left.is_empty() {
            let l: Vec<String> = left.iter().map(ToString::to_string).collect();
            bail!(
                "{} of {n} iod(s) do not answer with the new key: {} — each must {what} first \
                 (copy {} there and reload it), or is down (--force goes on without it)",
                left.len(),
                l.join(", "),
                self.key_file.display()
            );
        }
        Ok(Some(n))
    }

    /// Do the step; what was done.
    pub fn rotate(&self, ctl: &Control) -> anyhow::Result<KeyReport> {
        let p = &self.key_file;
        let cur = nfsp_keys::load(p)?;
        let ph = phase(&cur)?;
        let name = format!(
            "rotate-key {}",
            match self.step {
                Step::Prepare => "prepare",
                Step::Commit => "commit",
                Step::Finish => "finish",
            }
        );
        let mut checked = None;
        let (keys, next) = match (self.step, ph) {
            (Step::Prepare, Phase::Steady(old)) => {
                let fresh = nfsp_keys::generate(Some(&old)).context("random key")?;
                let new = Key::new(successor(old.id()), *fresh.secret()).context("new key")?;
                let k = Keys::new(old, Some(new)).context("keys")?;
                (k, self.next_prepare(&old, &new))
            }
            (Step::Prepare, Phase::Prepared { old, new }) => {
                log::warn!("already prepared: loading the key file again");
                (cur, self.next_prepare(&old, &new))
            }
            (Step::Commit, Phase::Prepared { old, new }) => {
                // The iods must accept the new key (their answers may still
                // be signed with the old one).
                checked = self.check(ctl, Keys::new(new, Some(old))?, "accept the new key")?;
                (Keys::new(new, Some(old))?, self.next_commit(&old, &new))
            }
            (Step::Commit, Phase::Committed { old, new }) => {
                log::warn!("already committed: loading the key file again");
                (cur, self.next_commit(&old, &new))
            }
            (Step::Finish, Phase::Committed { old, new }) => {
                // The iods must sign with the new key: accept nothing else.
                checked = self.check(ctl, Keys::new(new, None)?, "sign with the new key")?;
                (Keys::new(new, None)?, self.next_finish(&old))
            }
            (Step::Finish, Phase::Steady(_)) => {
                log::warn!("no rotation in progress: loading the key file again");
                (cur, Vec::new())
            }
            (Step::Prepare, Phase::Committed { .. }) => {
                bail!("a rotation is committed but not finished: run `iodctl rotate-key finish` first")
            }
            (Step::Commit, Phase::Steady(_)) => {
                bail!("no rotation prepared: run `iodctl rotate-key prepare` first")
            }
            (Step::Finish, Phase::Prepared { .. }) => {
                bail!("the new key is not signing yet: run `iodctl rotate-key commit` first")
            }
        };
        if keys != cur {
            super::store_keys(p, &keys)?;
        }
        super::load_keys(ctl, &keys).with_context(|| {
            format!(
                "{} is written, but the module did not take it: run `iodctl load-key` once \
                 fixed",
                p.display()
            )
        })?;
        let mut r = KeyReport::new(&name, p, &keys, true, next);
        r.checked_iods = checked;
        Ok(r)
    }

    fn next_prepare(&self, old: &Key, new: &Key) -> Vec<String> {
        let what = format!("they sign with {} and accept {}", id(old), id(new));
        let mut v = super::distribute(&self.key_file, &what).to_vec();
        v.push("iodctl rotate-key commit".into());
        v
    }

    fn next_commit(&self, old: &Key, new: &Key) -> Vec<String> {
        let what = format!("they sign with {} and still accept {}", id(new), id(old));
        let mut v = super::distribute(&self.key_file, &what).to_vec();
        v.push("iodctl rotate-key finish".into());
        v
    }

    fn next_finish(&self, old: &Key) -> Vec<String> {
        let what = format!(
            "they no longer accept {}; the rotation is complete",
            id(old)
        );
        super::distribute(&self.key_file, &what).to_vec()
    }

    /// Rotate and report.
    pub fn run(&self, ctl: &Control) -> anyhow::Result<()> {
        self.rotate(ctl)?.print(self.json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Setup {
        _d: tempfile::TempDir,
        kf: PathBuf,
        cf: PathBuf,
        ctl: Control,
    }

    fn setup() -> Setup {
        let d = tempfile::tempdir().unwrap();
        let kf = d.path().join("cluster.key");
        let cf = d.path().join("nfsp");
        std::fs::write(&cf, "").unwrap();
        let ctl = Control::new(cf.clone());
        Setup { _d: d, kf, cf, ctl }
    }

    impl Setup {
        fn step(&self, step: Step) -> anyhow::Result<KeyReport> {
            std::fs::write(&self.cf, "").unwrap();
            Args {
                step,
                key_file: self.kf.clone(),
                force: false,
                timeout_ms: 50,
                json: false,
            }
            .rotate(&self.ctl)
        }
        /// The last line written to the fake control file.
        fn written(&self) -> Command {
            let s = std::fs::read_to_string(&self.cf).unwrap();
            Command::parse(s.lines().next().unwrap()).unwrap()
        }
        fn keys(&self) -> Keys {
            nfsp_keys::load(&self.kf).unwrap()
        }
    }

    #[test]
    fn the_whole_rotation() {
        let s = setup();
        let k0 = Keys::new(Key::new(0xffff_ffff, [9; 32]).unwrap(), None).unwrap();
        nfsp_keys::store(&s.kf, &k0).unwrap();
        let old = *k0.signing().unwrap();
        // Out of order.
        assert!(s
            .step(Step::Commit)
            .unwrap_err()
            .to_string()
            .contains("prepare` first"));
        assert!(
            s.step(Step::Finish).is_ok(),
            "nothing to finish: loads again"
        );
        assert_eq!(s.written(), Command::Keys(k0));

        let r = s.step(Step::Prepare).unwrap();
        let k1 = s.keys();
        assert_eq!(k1.signing(), Some(&old));
        let new = *k1.accepted().unwrap();
        assert_eq!(new.id(), 1, "old id + 1, skipping 0");
        assert_ne!(new.secret(), old.secret());
        assert_eq!(s.written(), Command::Keys(k1));
        assert_eq!(
            (r.sign.as_deref(), r.accept.as_deref()),
            (Some("ffffffff"), Some("00000001"))
        );
        assert!(
            r.next.last().unwrap().contains("rotate-key commit"),
            "{:?}",
            r.next
        );
        assert!(r.next[0].contains("reload"), "{:?}", r.next);
        // Again: nothing new, loaded again.
        s.step(Step::Prepare).unwrap();
        assert_eq!(s.keys(), k1);
        assert_eq!(s.written(), Command::Keys(k1));
        assert!(s
            .step(Step::Finish)
            .unwrap_err()
            .to_string()
            .contains("commit` first"));

        // No iods in the (fake) list: the check passes.
        let r = s.step(Step::Commit).unwrap();
        let k2 = s.keys();
        assert_eq!((k2.signing(), k2.accepted()), (Some(&new), Some(&old)));
        assert_eq!(s.written(), Command::Keys(k2));
        assert_eq!(r.checked_iods, Some(0));
        assert!(r.next.last().unwrap().contains("rotate-key finish"));
        s.step(Step::Commit).unwrap();
        assert_eq!(s.keys(), k2, "commit twice does not swap back");
        assert!(s
            .step(Step::Prepare)
            .unwrap_err()
            .to_string()
            .contains("finish` first"));

        let r = s.step(Step::Finish).unwrap();
        let k3 = s.keys();
        assert_eq!((k3.signing(), k3.accepted()), (Some(&new), None));
        assert_eq!(s.written(), Command::Keys(k3));
        assert!(
            r.next[0].contains("no longer accept ffffffff"),
            "{:?}",
            r.next
        );
        let secret: String = new.secret().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!r.text().contains(&secret));
        assert!(!serde_json::to_string(&r).unwrap().contains(&secret));
    }

    #[test]
    fn a_group_readable_key_file_stays_so() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let s = setup();
        nfsp_keys::store(
            &s.kf,
            &Keys::new(Key::new(3, [3; 32]).unwrap(), None).unwrap(),
        )
        .unwrap();
        std::fs::set_permissions(&s.kf, std::fs::Permissions::from_mode(0o640)).unwrap();
        let gid = std::fs::metadata(&s.kf).unwrap().gid();
        s.step(Step::Prepare).unwrap();
        let m = std::fs::metadata(&s.kf).unwrap();
        assert_eq!((m.mode() & 0o777, m.gid()), (0o640, gid));
        assert_eq!(s.keys().accepted().map(Key::id), Some(4));
    }

    #[test]
    fn unrelated_ids_are_refused() {
        let s = setup();
        let k = Keys::new(
            Key::new(5, [5; 32]).unwrap(),
            Some(Key::new(9, [9; 32]).unwrap()),
        )
        .unwrap();
        nfsp_keys::store(&s.kf, &k).unwrap();
        for st in [Step::Prepare, Step::Commit, Step::Finish] {
            let e = s.step(st).unwrap_err();
            assert!(e.to_string().contains("not consecutive"), "{e}");
        }
        assert_eq!(s.keys(), k);
    }

    #[test]
    fn commit_waits_for_the_iods() {
        let s = setup();
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        // The fake control file answers `list` with one member.
        let line =
            format!("viod 0 iod {addr} up requests=0 bytes=0 errors=0 timeouts=0 latency_us=0\n");
        let k = Keys::new(
            Key::new(1, [1; 32]).unwrap(),
            Some(Key::new(2, [2; 32]).unwrap()),
        )
        .unwrap();
        nfsp_keys::store(&s.kf, &k).unwrap();
        let a = Args {
            step: Step::Commit,
            key_file: s.kf.clone(),
            force: false,
            timeout_ms: 20,
            json: false,
        };
        // A regular file reads back what follows the written line: put the
        // answer after room for "list\n".
        std::fs::write(&s.cf, format!("xxxxx{line}")).unwrap();
        let e = a.rotate(&s.ctl).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("do not answer with the new key: {addr}")),
            "{e}"
        );
        assert_eq!(s.keys(), k, "nothing changed");
        let a = Args { force: true, ..a };
        std::fs::write(&s.cf, "").unwrap();
        a.rotate(&s.ctl).unwrap();
        assert_eq!(s.keys().signing().map(Key::id), Some(2));
    }

    /// An iod that has the prepared key file: signs with 1, accepts 2.
    fn prepared_iod(iod_keys: Keys) -> SocketAddr {
        use nfsp_proto::wire::{self, Body, IodStats, Message};
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut b = vec![0u8; 65536];
            let mut out = vec![0u8; 65536];
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            while let Ok((n, from)) = sock.recv_from(&mut b) {
                let Ok(m) = wire::open(&iod_keys, &b[..n]) else {
                    continue;
                };
                let pong = Message::new(m.id, 77, Body::Pong(IodStats::default()));
                let n = pong.seal(&iod_keys, &mut out).unwrap();
                sock.send_to(&out[..n], from).unwrap();
            }
        });
        addr
    }

    #[test]
    fn commit_and_finish_go_on_when_the_iods_are_ready() {
        let s = setup();
        let (k1, k2) = (Key::new(1, [1; 32]).unwrap(), Key::new(2, [2; 32]).unwrap());
        let prepared = Keys::new(k1, Some(k2)).unwrap();
        nfsp_keys::store(&s.kf, &prepared).unwrap();
        let list = |addr: SocketAddr| {
            format!(
                "xxxxxviod 0 iod {addr} up requests=0 bytes=0 errors=0 timeouts=0 latency_us=0\n"
            )
        };
        let iod = prepared_iod(prepared);
        let a = Args {
            step: Step::Commit,
            key_file: s.kf.clone(),
            force: false,
            timeout_ms: 200,
            json: false,
        };
        std::fs::write(&s.cf, list(iod)).unwrap();
        assert_eq!(a.rotate(&s.ctl).unwrap().checked_iods, Some(1));
        // Finish: the iod still signs with the old key: not ready. (The
        // check alone: the short finish line would not cover the fake
        // answer in the control file.)
        let a = Args {
            step: Step::Finish,
            ..a
        };
        let finished = Keys::new(k2, None).unwrap();
        std::fs::write(&s.cf, list(iod)).unwrap();
        assert_eq!(a.not_ready(&s.ctl, finished).unwrap(), (1, vec![iod]));
        std::fs::write(&s.cf, list(iod)).unwrap();
        assert!(a.rotate(&s.ctl).is_err());
        assert_eq!(s.keys().accepted().map(Key::id), Some(1), "unchanged");
        // Once it has the committed file (signs with 2), it is.
        let iod = prepared_iod(Keys::new(k2, Some(k1)).unwrap());
        std::fs::write(&s.cf, list(iod)).unwrap();
        assert_eq!(a.not_ready(&s.ctl, finished).unwrap(), (1, vec![]));
        std::fs::write(&s.cf, "").unwrap();
        a.rotate(&s.ctl).unwrap();
        assert_eq!(s.keys(), finished);
    }
}
