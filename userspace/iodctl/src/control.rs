// SPDX-License-Identifier: GPL-2.0
//! One transaction on the control file: write one command line, read the
//! answer lines back from the same open file descriptor.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use nfsp_proto::auth::Key;
use nfsp_proto::{Answer, Command};

use crate::errno;

/// What nfsd's control file answers when no nfsp module is registered.
const ENODEV: i32 = 19;

/// The control file of the module.
#[derive(Debug, Clone)]
pub struct Control {
    path: PathBuf,
}

impl Control {
    /// A control file at `path` (not opened yet).
    pub fn new(path: PathBuf) -> Self {
        Control { path }
    }

    fn open(&self) -> anyhow::Result<File> {
        let p = self.path.display();
        match OpenOptions::new().read(true).write(true).open(&self.path) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
                "{p} not found: is nfsd running with the nfsp patch, and is nfsp_knfsd loaded?"
            ),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                bail!("{p}: permission denied (iodctl must run as root)")
            }
            Err(e) => Err(e).with_context(|| format!("cannot open {p}")),
        }
    }

    /// Send `cmd`; the answer lines (none of them `error`, all parseable).
    pub fn transact(&self, cmd: &Command) -> anyhow::Result<Vec<String>> {
        let line = format!("{cmd}\n");
        let shown = shown(cmd);
        let mut f = self.open()?;
        log::debug!("{}: writing '{shown}'", self.path.display());
        let written = f.write(line.as_bytes());
        let mut buf = Vec::new();
        let read = f
            .read_to_end(&mut buf)
            .map(|_| String::from_utf8_lossy(&buf).into_owned());
        if let Ok(a) = &read {
            log::debug!("{}: answer {a:?}", self.path.display());
        }
        interpret(&shown, line.len(), written, read)
            .with_context(|| format!("control file {}", self.path.display()))
            .map_err(strip_context_if_refused)
    }
}

/// `cmd` as logs and error messages show it: a `keys` command with its
/// key ids only, never the secrets.
pub fn shown(cmd: &Command) -> String {
    let Command::Keys(k) = cmd else {
        return cmd.to_string();
    };
    let key = |k: &Key| format!("{:08x} <secret>", k.id());
    match (k.signing(), k.accepted()) {
        (None, _) => cmd.to_string(),
        (Some(s), None) => format!("keys sign {}", key(s)),
        (Some(s), Some(a)) => format!("keys sign {} accept {}", key(s), key(a)),
    }
}

/// A kernel refusal is reported as is (`the kernel refused ...`), without
/// the file name in front.
fn strip_context_if_refused(e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<Refused>() {
        Ok(r) => anyhow::Error::new(r),
        Err(e) => e,
    }
}

/// The kernel answered a command with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The command line (no newline).
    pub line: String,
    /// `ENOENT`, ...
    pub errno: String,
    /// The kernel's message, or the system's description of the errno.
    pub message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the kernel refused '{}': {}", self.line, self.errno)?;
        if !self.message.is_empty() {
            write!(f, " {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Refused {}

/// Decide from the write's and the read's results: the answer lines, or why
/// the command failed. A failed write reports the kernel's `error` line when
/// the answer holds one, else the errno.
pub fn interpret(
    line: &str,
    len: usize,
    written: io::Result<usize>,
    read: io::Result<String>,
) -> anyhow::Result<Vec<String>> {
    let answer = read.as_deref().unwrap_or("");
    let lines: Vec<String> = answer
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let kernel_error = lines.iter().find_map(|l| match Answer::parse(l) {
        Ok(Answer::Error { errno, message }) => Some(Refused {
            line: line.to_string(),
            errno: errno.to_string(),
            message: message.to_string(),
        }),
        _ => None,
    });
    match written {
        Err(e) => {
            if let Some(r) = kernel_error {
                return Err(r.into());
            }
            let Some(n) = e.raw_os_error() else {
                return Err(e).context("write");
            };
            let desc = io::Error::from_raw_os_error(n).to_string();
            // "Invalid argument (os error 22)" -> "(Invalid argument)"
            let desc = desc.split(" (os error").next().unwrap_or("").to_string();
            let mut message = if desc.is_empty() {
                desc
            } else {
                format!("({desc})")
            };
            if n == ENODEV {
                // nfsd has the control file but no module registered.
                message.push_str(": is nfsp_knfsd loaded?");
            }
            Err(Refused {
                line: line.to_string(),
                errno: errno::name(n),
                message,
            }
            .into())
        }
        Ok(n) if n != len => bail!("short write ({n} of {len} bytes) of '{line}'"),
        Ok(_) => {
            if let Some(r) = kernel_error {
                return Err(r.into());
            }
            if let Err(e) = &read {
                bail!("reading the answer to '{line}': {e}");
            }
            for l in &lines {
                if let Err(e) = Answer::parse(l) {
                    bail!("unexpected answer to '{line}': '{l}' ({e})");
                }
            }
            Ok(lines)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn einval() -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(22))
    }

    #[test]
    fn ok_answers() {
        let r = interpret("list", 5, Ok(5), Ok("viod 0 iod 10.99.0.11:7000 up requests=1 bytes=2 errors=0 timeouts=0 latency_us=3\n".into())).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(
            interpret("del-viod 1", 11, Ok(11), Ok("ok\n".into())).unwrap(),
            vec!["ok"]
        );
        assert!(interpret("list", 5, Ok(5), Ok(String::new()))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn kernel_message_wins_over_errno() {
        let e = interpret(
            "del-viod 9",
            11,
            Err(io::Error::from_raw_os_error(2)),
            Ok("error ENOENT no such viod\n".into()),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the kernel refused 'del-viod 9': ENOENT no such viod"
        );
    }

    #[test]
    fn errno_when_no_message() {
        let e = interpret("del-viod 9", 11, einval(), Ok(String::new())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the kernel refused 'del-viod 9': EINVAL (Invalid argument)"
        );
        let e = interpret(
            "del-viod 9",
            11,
            einval(),
            Err(io::Error::from_raw_os_error(22)),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the kernel refused 'del-viod 9': EINVAL"),
            "{e}"
        );
        // A garbled answer after a failed write still gives the errno.
        let e = interpret("del-viod 9", 11, einval(), Ok("garbage\n".into())).unwrap_err();
        assert!(e.to_string().contains("EINVAL"), "{e}");
    }

    #[test]
    fn no_module() {
        let e = interpret(
            "list",
            5,
            Err(io::Error::from_raw_os_error(19)),
            Ok(String::new()),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the kernel refused 'list': ENODEV (No such device): is nfsp_knfsd loaded?"
        );
    }

    #[test]
    fn error_line_after_successful_write() {
        let e = interpret(
            "add-viod 0 1.2.3.4:5",
            21,
            Ok(21),
            Ok("error EEXIST viod exists".into()),
        )
        .unwrap_err();
        let r = e.downcast_ref::<Refused>().unwrap();
        assert_eq!(r.errno, "EEXIST");
        assert_eq!(r.message, "viod exists");
    }

    #[test]
    fn bad_answers() {
        let e = interpret("list", 5, Ok(5), Ok("viod x\n".into())).unwrap_err();
        assert!(e.to_string().contains("unexpected answer to 'list'"), "{e}");
        let e = interpret("list", 5, Ok(3), Ok(String::new())).unwrap_err();
        assert!(e.to_string().contains("short write"), "{e}");
    }

    #[test]
    fn keys_are_never_shown() {
        use nfsp_proto::auth::Keys;
        let s = Key::new(0xabcd, [0x11; 32]).unwrap();
        let a = Key::new(2, [0x22; 32]).unwrap();
        let cmd = Command::Keys(Keys::new(s, Some(a)).unwrap());
        assert!(
            cmd.to_string().contains("1111"),
            "the line itself has the key"
        );
        let t = shown(&cmd);
        assert_eq!(t, "keys sign 0000abcd <secret> accept 00000002 <secret>");
        assert_eq!(shown(&Command::Keys(Keys::insecure())), "keys insecure");
        assert_eq!(shown(&Command::List), "list");
        // A refusal's message carries the shown line.
        let d = tempfile::tempdir().unwrap();
        let c = Control::new(d.path().join("none"));
        let e = format!("{:#}", c.transact(&cmd).unwrap_err());
        assert!(!e.contains("1111") && !e.contains("2222"), "{e}");
        let e = interpret(&t, 10, einval(), Ok("error EINVAL bad keys\n".into())).unwrap_err();
        assert!(!e.to_string().contains("1111"), "{e}");
    }

    #[test]
    fn missing_control_file() {
        let c = Control::new("/nonexistent/nfsp".into());
        let e = c.transact(&Command::List).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "/nonexistent/nfsp not found: is nfsd running with the nfsp patch, and is nfsp_knfsd loaded?"
        );
    }
}
