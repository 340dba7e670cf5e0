// SPDX-License-Identifier: GPL-2.0
//! The cluster key file of every user-space party (`/etc/nfsp/cluster.key`
//! by default): loading it with permission checks, generating keys and
//! writing the file atomically with mode 0600. The text format itself is
//! [`nfsp_proto::auth::keyfile`], shared with the kernel module's control
//! command.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nfsp_proto::auth::{keyfile, Key, Keys, KEY_LEN};
use nfsp_proto::ProtoError;

/// The default key file.
pub const DEFAULT_KEY_FILE: &str = "/etc/nfsp/cluster.key";

/// Largest key file read (a few lines of hex and comments).
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Errors of the key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// Others than the owner (and its group) may read or write it.
    #[error("{path}: mode {mode:o} lets others read or write the cluster key (chmod 0600)")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The text is not a key file.
    #[error("{path}: not a valid key file: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: ProtoError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads and checks the key file at `path`: no access for others (group
/// read is allowed, for a daemon's group), a valid `sign` line.
pub fn load(path: &Path) -> Result<Keys, KeyFileError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let meta = f.metadata().map_err(io_err(path))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o027 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = String::new();
    Read::by_ref(&mut f)
        .take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(io_err(path))?;
    keyfile::parse(&text).map_err(|source| KeyFileError::Format {
        path: path.to_owned(),
        source,
    })
}

/// Fills `buf` from the kernel's random source.
fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    File::open("/dev/urandom")?.read_exact(buf)
}

/// A random u64 that is never 0 (request epochs, iod instances).
pub fn random_nonzero_u64() -> io::Result<u64> {
    loop {
        let mut b = [0u8; 8];
        random_bytes(&mut b)?;
        let v = u64::from_le_bytes(b);
        if v != 0 {
            return Ok(v);
        }
    }
}

/// A new random key with a random id other than `avoid`'s.
pub fn generate(avoid: Option<&Key>) -> io::Result<Key> {
    loop {
        let mut id = [0u8; 4];
        let mut bytes = [0u8; KEY_LEN];
        random_bytes(&mut id)?;
        random_bytes(&mut bytes)?;
        let id = u32::from_be_bytes(id);
        if avoid.is_some_and(|a| a.id() == id) {
            continue;
        }
        if let Ok(k) = Key::new(id, bytes) {
            return Ok(k);
        }
    }
}

/// Writes `keys` to `path` atomically (a temporary file with mode 0600,
/// fsync, rename, fsync of the directory).
pub fn store(path: &Path, keys: &Keys) -> Result<(), KeyFileError> {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = keyfile::write(&mut text, keys);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("cluster.key"),
        std::process::id()
    ));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    let written = f
        .set_permissions(fs::Permissions::from_mode(0o600))
        .and_then(|()| f.write_all(text.as_bytes()))
        .and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(&tmp)(e));
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use blake2::digest::{KeyInit, Mac};

    #[test]
    fn generate_store_load() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cluster.key");
        let k = generate(None).unwrap();
        let keys = Keys::new(k, None).unwrap();
        store(&p, &keys).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(load(&p).unwrap(), keys);
        let k2 = generate(Some(&k)).unwrap();
        assert_ne!(k2.id(), k.id());
        let both = Keys::new(k2, Some(k)).unwrap();
        store(&p, &both).unwrap();
        assert_eq!(load(&p).unwrap(), both);
    }

    #[test]
    fn refuses_loose_permissions_and_garbage() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cluster.key");
        store(&p, &Keys::new(generate(None).unwrap(), None).unwrap()).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load(&p), Err(KeyFileError::Permissions { .. })));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(load(&p).is_ok());
        fs::write(&p, "sign 1 2\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(load(&p), Err(KeyFileError::Format { .. })));
        assert!(matches!(
            load(&d.path().join("none")),
            Err(KeyFileError::Io { .. })
        ));
    }

    /// Our BLAKE2s-128 keyed MAC (proto, no dependencies) agrees with the
    /// RustCrypto `blake2` crate on random keys and lengths.
    #[test]
    fn mac_matches_the_blake2_crate() {
        type Mac128 = blake2::Blake2sMac<blake2::digest::consts::U16>;
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for len in [
            0usize, 1, 55, 56, 63, 64, 65, 127, 128, 129, 1000, 61_440, 65_507,
        ] {
            let mut key = [0u8; 32];
            key.iter_mut().for_each(|b| *b = next() as u8);
            let msg: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut ours = nfsp_proto::auth::Blake2s::new(16, &key);
            ours.update(&msg);
            let mut theirs = <Mac128 as KeyInit>::new_from_slice(&key).unwrap();
            theirs.update(&msg);
            assert_eq!(
                &ours.finalize()[..16],
                &theirs.finalize().into_bytes()[..],
                "len {len}"
            );
        }
    }
}
