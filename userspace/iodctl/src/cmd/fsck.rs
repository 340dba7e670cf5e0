// SPDX-License-Identifier: GPL-2.0
//! `iodctl fsck EXPORT_DIR [--json] [--delete] [--journal PATH] [--min-age S]
//! [--key-file PATH | --insecure]`
//!
//! Cross-checks an nfsp export with its iods:
//! * the live files: every regular file under EXPORT_DIR with a valid
//!   `trusted.nfsp` header (files without one are listed apart), keyed by
//!   (export id from `FS_IOC_GETFSUUID`, inode, seed), with the meta-file's
//!   size as real size;
//! * what every member of every viod holds (LIST, page by page);
//! * **orphans**: data of this export on an iod whose key is neither live
//!   nor pending in unlinkd's journal. On ext4 the file system confirms it
//!   by inode (see [`super::liveness`]): a key whose file lives outside
//!   EXPORT_DIR (another export on the same file system, a file moved
//!   during the walk) is not an orphan, and a confirmed orphan counts
//!   whatever its age. Elsewhere data younger than `--min-age` seconds (a
//!   file being created) is counted apart, not reported;
//! * **missing data**: a live file whose viod should hold bytes
//!   (`local_len > 0`) on a member that has no local file for it.
//!
//! `--delete` removes the orphans (UNLINK) after walking the export and
//! reading the journal once more right before, and on ext4 asking the file
//! system again: a key that became live or pending meanwhile, or one the
//! file system cannot vouch for, is kept. Memory: the live keys and every
//! listed key of this export (about 100 bytes each). Run at boot before
//! nfsd serves (`nfsp-recover@.service`, `--min-age 0`), it collects the
//! data of files whose removal a crash kept from reaching unlinkd.
//!
//! Exits 0 when nothing is wrong (or every orphan was deleted), 1 when
//! orphans remain or data is missing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use nfsp_proto::filekey::{export_id, FILE_NAME_LEN};
use nfsp_proto::wire::MAX_UNLINK_KEYS;
use nfsp_proto::{Command, FileKey, MetaHeader, StripeLayout};
use serde::Serialize;
use unlinkd::client::Client;
use unlinkd::members::{parse_list, Viods};

use super::liveness::{header_from, require_header_access, InodeLookup, Liveness};
use crate::control::Control;
use crate::UsageError;

/// Arguments of `fsck`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The nfsp export's directory on the meta-server (its meta-files).
    pub export_dir: PathBuf,
    /// Print JSON: {"files":N,"orphans":[...],"missing":[...],...}.
    #[arg(long)]
    pub json: bool,
    /// Remove the orphans found (dry run otherwise).
    #[arg(long)]
    pub delete: bool,
    /// unlinkd's journal: its pending deletions are not orphans.
    #[arg(long, value_name = "PATH", default_value = unlinkd::DEFAULT_JOURNAL)]
    pub journal: PathBuf,
    /// Ignore iod data modified less than this many seconds ago.
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub min_age: u64,
    /// Time to wait for an iod's answer, in milliseconds (3 tries).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub timeout_ms: u64,
    #[command(flatten)]
    pub keys: unlinkd::keys::KeyArgs,
}

/// Live files asked of the inode lookup before it is trusted.
const VOUCH_SAMPLE: usize = 64;

/// Whether `dir` is the root of its file system as mounted (the root of
/// its mount is the file system's `/`): then no other directory of the
/// file system can hold files of another export.
fn is_fs_root(dir: &Path) -> anyhow::Result<bool> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("/proc/self/mountinfo")?;
    // Fields: id parent major:minor root mount-point ...; the last mount
    // on a point is the visible one.
    let root = info
        .lines()
        .filter_map(|l| {
            let mut w = l.split(' ');
            let root = w.nth(3)?;
            let point = w.next()?;
            Some((root, point))
        })
        .filter(|(_, point)| Path::new(point) == dir)
        .last()
        .map(|(root, _)| root == "/");
    Ok(root.unwrap_or(false))
}

/// A live nfsp file.
#[derive(Debug, Clone)]
struct Live {
    path: PathBuf,
    size: u64,
    layout: StripeLayout,
}

/// Data on an iod without a file.
#[derive(Debug, Clone, Serialize)]
struct Orphan {
    iod: SocketAddr,
    key: String,
    len: u64,
    mtime: u64,
    /// The file system says the key's file is gone (ext4): deletable.
    /// Otherwise only the walk says so, and data younger than --min-age
    /// is not counted at all.
    verified: bool,
    #[serde(skip)]
    k: FileKey,
}

/// A live file's data an iod should have and has not.
#[derive(Debug, Clone, Serialize)]
struct Missing {
    path: String,
    key: String,
    viod: u32,
    iod: Option<SocketAddr>,
    local_len: u64,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    export: String,
    dir: String,
    files: usize,
    bytes: u64,
    without_header: Vec<String>,
    iods: usize,
    iod_files: usize,
    foreign: usize,
    /// Live files of this file system outside EXPORT_DIR (another export
    /// on it, or moved out of what the walk had read).
    live_elsewhere: usize,
    recent: usize,
    pending: usize,
    orphans: Vec<Orphan>,
    orphan_bytes: u64,
    missing: Vec<Missing>,
    deleted: u64,
    skipped_live: usize,
    /// Orphans kept by --delete: the file system could not confirm them.
    kept_unconfirmed: usize,
}

fn key_name(k: &FileKey) -> String {
    let mut b = [0u8; FILE_NAME_LEN];
    k.write_file_name(&mut b)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// `FS_IOC_GETFSUUID` = `_IOR(0x15, 0, struct fsuuid2)` (17 bytes).
const FS_IOC_GETFSUUID: libc::c_ulong = 0x8011_1500;

/// The export id of the file system holding `dir`.
fn export_of(dir: &Path) -> anyhow::Result<u64> {
    let f = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let mut u = [0u8; 17];
    // SAFETY: the ioctl writes at most sizeof(struct fsuuid2) = 17 bytes.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_GETFSUUID as _, u.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!(
                "FS_IOC_GETFSUUID on {} (Linux >= 6.5 needed)",
                dir.display()
            )
        });
    }
    let mut uuid = [0u8; 16];
    let n = (u[0] as usize).min(16);
    uuid[..n].copy_from_slice(&u[1..1 + n]);
    Ok(export_id(&uuid))
}

/// The `trusted.nfsp` header of a file: Ok(None) when it has none.
fn header_of(path: &Path) -> anyhow::Result<Option<MetaHeader>> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).context("path with NUL")?;
    let mut buf = [0u8; 256];
    // SAFETY: valid C strings and buffer with its length.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.nfsp".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    match header_from(n, &buf) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        r => r.with_context(|| format!("reading trusted.nfsp of {}", path.display())),
    }
}

/// Walk the export: live files by key, and files without a valid header.
fn walk(
    root: &Path,
    export: u64,
    pb: &ProgressBar,
) -> anyhow::Result<(HashMap<FileKey, Live>, Vec<String>)> {
    let dev = std::fs::metadata(root)
        .with_context(|| format!("stat {}", root.display()))?
        .dev();
    let mut live = HashMap::new();
    let mut bad = Vec::new();
    let mut seen_inodes = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for ent in rd {
            let ent = ent.with_context(|| format!("reading {}", dir.display()))?;
            let p = ent.path();
            let md = match std::fs::symlink_metadata(&p) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("stat {}", p.display())),
            };
            if md.dev() != dev {
                continue;
            }
            if md.is_dir() {
                stack.push(p);
            } else if md.is_file() {
                pb.inc(1);
                if !seen_inodes.insert(md.ino()) {
                    continue; // another name of a file already seen
                }
                match header_of(&p)? {
                    Some(h) => match h.layout() {
                        Ok(layout) => {
                            let key = FileKey::new(export, md.ino(), h.seed);
                            live.insert(
                                key,
                                Live {
                                    path: p,
                                    size: md.len(),
                                    layout,
                                },
                            );
                        }
                        Err(_) => bad.push(p.display().to_string()),
                    },
                    None => bad.push(p.display().to_string()),
                }
            }
        }
    }
    Ok((live, bad))
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn bar(total: Option<u64>, msg: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {pos} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Orphans remain or data is missing (exit status 1, after the report).
#[derive(Debug)]
pub struct Problems(pub String);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Problems {}

impl Args {
    /// The control command it needs (`list`, for the members).
    pub fn command(&self) -> Result<Command, UsageError> {
        Ok(Command::List)
    }

    /// Check, report, delete if asked.
    pub fn run(&self, ctl: &Control, cmd: &Command) -> anyhow::Result<()> {
        let keys = self.keys.load()?;
        let viods: Viods =
            parse_list(&ctl.transact(cmd)?.join("\n"), "control file").context("viod list")?;
        let export = export_of(&self.export_dir)?;
        require_header_access()?;
        let lookup = InodeLookup::new(&self.export_dir)?;
        let pb = bar(None, "meta-files");
        let (live, bad) = walk(&self.export_dir, export, &pb)?;
        pb.finish_and_clear();
        // Trusted only if it finds what the walk found.
        let lookup = lookup.filter(|l| {
            let ok = l.vouches_for(live.keys().take(VOUCH_SAMPLE));
            if !ok {
                log::warn!(
                    "{}: live files do not open by inode number: orphans not confirmed",
                    self.export_dir.display()
                );
            }
            ok
        });
        if self.delete && lookup.is_none() && !is_fs_root(&self.export_dir)? {
            return Err(UsageError(format!(
                "--delete: {} is not the root of its file system, and its file system \
                 cannot confirm orphans by inode (ext4 can): files elsewhere on it \
                 (another export) would look like orphans",
                self.export_dir.display()
            ))
            .into());
        }
        let journal = unlinkd::journal::read_state(&self.journal)
            .with_context(|| format!("journal {}", self.journal.display()))?;
        let mut rep = Report {
            export: format!("{export:016x}"),
            dir: self.export_dir.display().to_string(),
            files: live.len(),
            bytes: live.values().map(|l| l.size).sum(),
            without_header: bad,
            pending: journal.pending.len(),
            ..Default::default()
        };
        let mut addrs: BTreeMap<SocketAddr, Vec<u32>> = BTreeMap::new();
        for (v, members) in &viods {
            for a in members {
                addrs.entry(*a).or_default().push(*v);
            }
        }
        rep.iods = addrs.len();
        let mut client = Client::new(keys, Duration::from_millis(self.timeout_ms.max(1)), 3)
            .context("iod client")?;
        let mut present: HashSet<(SocketAddr, FileKey)> = HashSet::new();
        let now = now_s();
        let pb = bar(Some(addrs.len() as u64), "iods");
        for addr in addrs.keys() {
            let mut err = None;
            client
                .list_all(*addr, |page| {
                    for e in page {
                        rep.iod_files += 1;
                        if e.key.export != export {
                            rep.foreign += 1;
                            continue;
                        }
                        present.insert((*addr, e.key));
                        if live.contains_key(&e.key) || journal.pending.contains_key(&e.key) {
                            continue;
                        }
                        let verdict = lookup.as_ref().map(|l| l.liveness(&e.key));
                        if verdict == Some(Liveness::Live) {
                            rep.live_elsewhere += 1;
                            continue;
                        }
                        let verified = verdict == Some(Liveness::Gone);
                        if !verified && now.saturating_sub(e.mtime_s) < self.min_age {
                            rep.recent += 1;
                            continue;
                        }
                        rep.orphan_bytes += e.len;
                        rep.orphans.push(Orphan {
                            iod: *addr,
                            key: key_name(&e.key),
                            len: e.len,
                            mtime: e.mtime_s,
                            verified,
                            k: e.key,
                        });
                    }
                })
                .map_err(|e| err = Some(e))
                .ok();
            if let Some(e) = err {
                return Err(e).with_context(|| format!("listing {addr}"));
            }
            pb.inc(1);
        }
        pb.finish_and_clear();
        for (key, l) in &live {
            if l.size == 0 {
                continue;
            }
            for v in 0..l.layout.width {
                let want = l.layout.local_len(v, l.size).unwrap_or(0);
                if want == 0 {
                    continue;
                }
                let members = viods.get(&v).cloned().unwrap_or_default();
                let miss = |iod| Missing {
                    path: l.path.display().to_string(),
                    key: key_name(key),
                    viod: v,
                    iod,
                    local_len: want,
                };
                if members.is_empty() {
                    rep.missing.push(miss(None));
                }
                for a in members {
                    if !present.contains(&(a, *key)) {
                        rep.missing.push(miss(Some(a)));
                    }
                }
            }
        }
        rep.missing
            .sort_by(|a, b| a.path.cmp(&b.path).then(a.viod.cmp(&b.viod)));
        if self.delete && !rep.orphans.is_empty() {
            self.delete_orphans(&mut rep, export, lookup.as_ref(), &mut client)?;
        }
        let text = if self.json {
            serde_json::to_string(&rep).context("JSON")? + "\n"
        } else {
            table(&rep, self.delete)
        };
        crate::render::print(&text)?;
        // Deleting, what remains are the orphans nothing could confirm.
        let left = if self.delete {
            rep.kept_unconfirmed
        } else {
            rep.orphans.len()
        };
        if left > 0 || !rep.missing.is_empty() {
            return Err(Problems(format!(
                "{left} orphan(s), {} missing data",
                rep.missing.len()
            ))
            .into());
        }
        Ok(())
    }

    /// Re-check (walk again, journal again) and UNLINK what is still orphan.
    fn delete_orphans(
        &self,
        rep: &mut Report,
        export: u64,
        lookup: Option<&InodeLookup>,
        client: &mut Client,
    ) -> anyhow::Result<()> {
        let (live, _) = walk(&self.export_dir, export, &ProgressBar::hidden())?;
        let journal = unlinkd::journal::read_state(&self.journal)
            .with_context(|| format!("journal {}", self.journal.display()))?;
        let mut by_addr: BTreeMap<SocketAddr, Vec<FileKey>> = BTreeMap::new();
        for o in &rep.orphans {
            if live.contains_key(&o.k) || journal.pending.contains_key(&o.k) {
                rep.skipped_live += 1;
                continue;
            }
            // Asked again right before: it must still be gone.
            let confirmed = lookup.is_none_or(|l| o.verified && l.liveness(&o.k) == Liveness::Gone);
            if !confirmed {
                rep.kept_unconfirmed += 1;
                continue;
            }
            by_addr.entry(o.iod).or_default().push(o.k);
        }
        let pb = bar(
            Some(by_addr.values().map(|v| v.len() as u64).sum()),
            "deleting",
        );
        for (addr, keys) in by_addr {
            for chunk in keys.chunks(MAX_UNLINK_KEYS) {
                rep.deleted += client
                    .unlink(addr, chunk)
                    .with_context(|| format!("UNLINK on {addr}"))?;
                pb.inc(chunk.len() as u64);
            }
        }
        pb.finish_and_clear();
        Ok(())
    }
}

fn table(r: &Report, delete: bool) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "export {}: {} file(s), {} byte(s); {} iod(s) hold {} local file(s) ({} of other file systems, {} of live files outside {}); {} pending in unlinkd's journal",
        r.export, r.files, r.bytes, r.iods, r.iod_files, r.foreign, r.live_elsewhere, r.dir, r.pending
    );
    if !r.without_header.is_empty() {
        let _ = writeln!(
            s,
            "{} file(s) without a valid nfsp header:",
            r.without_header.len()
        );
        for p in &r.without_header {
            let _ = writeln!(s, "  {p}");
        }
    }
    let _ = writeln!(
        s,
        "{} orphan(s), {} byte(s){}{}",
        r.orphans.len(),
        r.orphan_bytes,
        if r.recent > 0 {
            format!(" ({} recent file(s) not counted)", r.recent)
        } else {
            String::new()
        },
        if delete {
            format!(
                "; {} local file(s) deleted, {} live or pending by now, {} kept (not confirmed gone)",
                r.deleted, r.skipped_live, r.kept_unconfirmed
            )
        } else {
            String::new()
        }
    );
    if !r.orphans.is_empty() {
        let _ = writeln!(s, "  {:<24} {:<50} {:>12}", "IOD", "KEY", "BYTES");
        for o in &r.orphans {
            let _ = writeln!(s, "  {:<24} {:<50} {:>12}", o.iod.to_string(), o.key, o.len);
        }
    }
    let _ = writeln!(s, "{} missing data", r.missing.len());
    if !r.missing.is_empty() {
        let _ = writeln!(
            s,
            "  {:<40} {:>5} {:<24} {:>12}",
            "FILE", "VIOD", "IOD", "BYTES"
        );
        for m in &r.missing {
            let iod = m
                .iod
                .map(|a| a.to_string())
                .unwrap_or_else(|| "(no member)".into());
            let _ = writeln!(
                s,
                "  {:<40} {:>5} {:<24} {:>12}",
                m.path, m.viod, iod, m.local_len
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_mount_of_a_whole_file_system_is_a_root() {
        assert!(is_fs_root(Path::new("/")).unwrap());
        let d = tempfile::tempdir().unwrap();
        assert!(!is_fs_root(d.path()).unwrap(), "a plain directory");
    }

    #[test]
    fn table_lists_orphans_and_missing() {
        let k = FileKey::new(1, 2, 3);
        let r = Report {
            files: 1,
            orphans: vec![Orphan {
                iod: "10.0.0.1:7000".parse().unwrap(),
                key: key_name(&k),
                len: 5,
                mtime: 0,
                verified: true,
                k,
            }],
            missing: vec![Missing {
                path: "/srv/x".into(),
                key: key_name(&k),
                viod: 1,
                iod: None,
                local_len: 9,
            }],
            ..Default::default()
        };
        let t = table(&r, false);
        assert!(t.contains("1 orphan(s)"), "{t}");
        assert!(t.contains("0000000000000001-0000000000000002-0000000000000003"));
        assert!(t.contains("(no member)"));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["files"], 1);
        assert_eq!(j["orphans"][0]["len"], 5);
        assert!(j["orphans"][0].get("k").is_none());
        assert_eq!(j["missing"][0]["iod"], serde_json::Value::Null);
    }

    #[test]
    fn walk_finds_headers() {
        // tmpfs/ext4 in tests may refuse trusted.* without root: only the
        // header-less path is checked here; the VM scenario covers the rest.
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("plain"), b"x").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/y"), b"y").unwrap();
        std::fs::hard_link(d.path().join("sub/y"), d.path().join("y2")).unwrap();
        let (live, bad) = walk(d.path(), 1, &ProgressBar::hidden()).unwrap();
        assert!(live.is_empty());
        assert_eq!(bad.len(), 2, "{bad:?}");
    }
}
