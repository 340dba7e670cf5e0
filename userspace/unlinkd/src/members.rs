// SPDX-License-Identifier: GPL-2.0
//! The viods and their member iods, from the control file's `list` answer.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;

use nfsp_proto::{Answer, Command};

/// Errors reading the membership.
#[derive(Debug, thiserror::Error)]
pub enum MembersError {
    /// The control file could not be used.
    #[error("control file {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: io::Error,
    },
    /// The kernel answered something else than member lines.
    #[error("control file {path}: unexpected answer '{line}'")]
    Answer {
        /// Path.
        path: String,
        /// The line.
        line: String,
    },
}

/// Viod id → member iods (in the kernel's order).
pub type Viods = BTreeMap<u32, Vec<SocketAddr>>;

/// Parse the answer lines of `list`.
pub fn parse_list(answer: &str, path: &str) -> Result<Viods, MembersError> {
    let mut v = Viods::new();
    for line in answer.lines().filter(|l| !l.trim().is_empty()) {
        match Answer::parse(line) {
            Ok(Answer::Member(m)) => v.entry(m.viod).or_default().push(m.addr),
            Ok(Answer::Ok) => {}
            _ => {
                return Err(MembersError::Answer {
                    path: path.to_string(),
                    line: line.to_string(),
                })
            }
        }
    }
    Ok(v)
}

/// Send `list` to the control file and return the viods.
pub fn read(control: &Path) -> Result<Viods, MembersError> {
    let p = control.display().to_string();
    let io = |source| MembersError::Io {
        path: p.clone(),
        source,
    };
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(control)
        .map_err(io)?;
    f.write_all(format!("{}\n", Command::List).as_bytes())
        .map_err(io)?;
    let mut s = String::new();
    f.read_to_string(&mut s).map_err(io)?;
    parse_list(&s, &p)
}

/// The members of viods `0..width`, or the first viod that has none.
pub fn members_of(viods: &Viods, width: u32) -> Result<Vec<(u32, SocketAddr)>, u32> {
    let mut out = Vec::new();
    for v in 0..width {
        match viods.get(&v) {
            Some(m) if !m.is_empty() => out.extend(m.iter().map(|a| (v, *a))),
            _ => return Err(v),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_list() {
        let a = "viod 0 iod 10.0.0.1:7000 up requests=1 bytes=2 errors=0 timeouts=0 latency_us=5\n\
                 viod 0 iod 10.0.0.2:7000 down requests=1 bytes=2 errors=0 timeouts=0 latency_us=5\n\
                 viod 1 iod 10.0.0.3:7000 up requests=1 bytes=2 errors=0 timeouts=0 latency_us=5\n\
                 ok\n";
        let v = parse_list(a, "x").unwrap();
        assert_eq!(v[&0].len(), 2);
        assert_eq!(members_of(&v, 2).unwrap().len(), 3);
        assert_eq!(members_of(&v, 3), Err(2));
        assert!(parse_list("error EINVAL no\n", "x").is_err());
    }
}
