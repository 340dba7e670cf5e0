// SPDX-License-Identifier: GPL-2.0
//! The viod table's configuration file, `/etc/nfsp/viods.conf`: what
//! `iodctl save` writes and `iodctl load` (at boot, `nfsp-viods.service`)
//! puts back into the module, which keeps its table in memory only.
//!
//! One line per viod, in the control grammar of `nfsp_proto`:
//! `add-viod ID ADDR [ADDR…]`, the members in chain order, each followed
//! by `identity ID ADDR IDENTITY` for the members whose data directory's
//! identity is known (the module then reads nothing from an iod that
//! comes back as another directory); `#` starts a comment, blank lines are
//! ignored. The viod ids are the file's layout:
//! a file striped over viods 0..W-1 must find the same iods under the same
//! ids, or it would be read from the wrong iods, so the file is the table
//! itself, not a recipe to rebuild it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nfsp_proto::wire::UNKNOWN_IDENTITY;
use nfsp_proto::{Command, ListLine};

/// Where the configuration lives by default.
pub const DEFAULT_VIODS_FILE: &str = "/etc/nfsp/viods.conf";

/// The viods: id → members in chain order.
pub type Viods = BTreeMap<u32, Vec<SocketAddr>>;

/// The known identities of members' data directories: (viod, member) →
/// identity.
pub type Identities = BTreeMap<(u32, SocketAddr), u32>;

/// What the file holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Table {
    /// The viods.
    pub viods: Viods,
    /// Their members' identities.
    pub identities: Identities,
}

/// A line of the file that is not a valid `add-viod`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfError {
    /// Not an `add-viod` or `identity` command of the control grammar.
    #[error(
        "line {line}: '{text}' is not 'add-viod ID ADDR [ADDR…]' or 'identity ID ADDR IDENTITY'"
    )]
    NotAddViod {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// The same viod twice.
    #[error("line {line}: viod {id} is already defined on line {first}")]
    Duplicate {
        /// 1-based line number.
        line: usize,
        /// The viod id.
        id: u32,
        /// Where it was first defined.
        first: usize,
    },
    /// An identity of a member no `add-viod` line above defines.
    #[error("line {line}: {addr} is not a member of a viod {id} defined above")]
    NotAMember {
        /// 1-based line number.
        line: usize,
        /// The viod id.
        id: u32,
        /// The member.
        addr: SocketAddr,
    },
}

/// The table of a `list` answer (members in the order listed, which is
/// chain order).
pub fn from_list(lines: &[ListLine]) -> Table {
    let mut t = Table::default();
    for l in lines {
        t.viods.entry(l.viod).or_default().push(l.addr);
        if l.identity != UNKNOWN_IDENTITY {
            t.identities.insert((l.viod, l.addr), l.identity);
        }
    }
    t
}

/// The file's text for `table`.
pub fn format(table: &Table) -> String {
    let mut s = String::from(
        "# nfsp viod table (iodctl save; loaded at boot by iodctl load).\n\
         # One viod per line: add-viod ID ADDR [ADDR...], replicas in chain order,\n\
         # then the identity of each member's data directory.\n\
         # Files are striped over viods by id: keep every id with its iods.\n",
    );
    for (id, members) in &table.viods {
        let _ = write!(s, "add-viod {id}");
        for m in members {
            let _ = write!(s, " {m}");
        }
        s.push('\n');
        for m in members {
            if let Some(identity) = table.identities.get(&(*id, *m)) {
                let _ = writeln!(s, "identity {id} {m} {identity:08x}");
            }
        }
    }
    s
}

/// Writes `text` to `path` atomically (a new file, fsynced, renamed over;
/// mode 0644: no secret in it).
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("viods.conf");
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

/// Parses the file's text.
pub fn parse(text: &str) -> Result<Table, ConfError> {
    let mut t = Table::default();
    let mut defined_on = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = || ConfError::NotAddViod {
            line: i + 1,
            text: line.to_string(),
        };
        let (id, members) = match Command::parse(line) {
            Ok(Command::AddViod { id, members }) => (id, members),
            Ok(Command::Identity {
                viod,
                addr,
                identity,
            }) => {
                if !t.viods.get(&viod).is_some_and(|m| m.contains(&addr)) {
                    return Err(ConfError::NotAMember {
                        line: i + 1,
                        id: viod,
                        addr,
                    });
                }
                t.identities.insert((viod, addr), identity);
                continue;
            }
            _ => return Err(bad()),
        };
        if let Some(&first) = defined_on.get(&id) {
            return Err(ConfError::Duplicate {
                line: i + 1,
                id,
                first,
            });
        }
        defined_on.insert(id, i + 1);
        t.viods.insert(id, members.iter().collect());
    }
    Ok(t)
}

/// What loading `wanted` into a module that has `current` does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Viods to add.
    pub add: Vec<(u32, Vec<SocketAddr>)>,
    /// Viods already there with the same members.
    pub present: Vec<u32>,
    /// Viods there with other members: loading stops (the admin decides).
    pub conflicts: Vec<u32>,
    /// Viods in the module but not in the file (kept).
    pub extra: Vec<u32>,
}

/// Compares the file with the module's table.
pub fn plan(wanted: &Viods, current: &Viods) -> Plan {
    let mut p = Plan::default();
    for (id, members) in wanted {
        match current.get(id) {
            None => p.add.push((*id, members.clone())),
            Some(m) if m == members => p.present.push(*id),
            Some(_) => p.conflicts.push(*id),
        }
    }
    p.extra = current
        .keys()
        .filter(|id| !wanted.contains_key(id))
        .copied()
        .collect();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn format_then_parse_is_the_same_table() {
        let mut v = Viods::new();
        v.insert(0, vec![a("10.0.0.11:7000")]);
        v.insert(1, vec![a("10.0.0.12:7000"), a("10.0.0.22:7000")]);
        v.insert(7, vec![a("[2001:db8::1]:7000")]);
        let mut identities = Identities::new();
        identities.insert((1, a("10.0.0.22:7000")), 0x1d00_0022);
        identities.insert((7, a("[2001:db8::1]:7000")), 0xabcd_ef01);
        let t = Table {
            viods: v,
            identities,
        };
        let text = format(&t);
        assert!(text.contains(
            "add-viod 1 10.0.0.12:7000 10.0.0.22:7000\nidentity 1 10.0.0.22:7000 1d000022\n"
        ));
        assert!(text.contains("identity 7 [2001:db8::1]:7000 abcdef01\n"));
        assert_eq!(parse(&text), Ok(t));
    }

    #[test]
    fn the_packaged_example_parses() {
        let t = parse(include_str!("../../../packaging/viods.conf.example")).expect("parses");
        assert_eq!(t.viods.len(), 2);
        assert_eq!(t.identities.len(), 4);
    }

    #[test]
    fn identities_only_of_members_defined_above() {
        assert_eq!(
            parse("identity 0 10.0.0.1:7000 00000001\nadd-viod 0 10.0.0.1:7000\n"),
            Err(ConfError::NotAMember {
                line: 1,
                id: 0,
                addr: a("10.0.0.1:7000")
            })
        );
        assert_eq!(
            parse("add-viod 0 10.0.0.1:7000\nidentity 0 10.0.0.2:7000 00000001\n"),
            Err(ConfError::NotAMember {
                line: 2,
                id: 0,
                addr: a("10.0.0.2:7000")
            })
        );
        assert!(matches!(
            parse("add-viod 0 10.0.0.1:7000\nidentity 0 10.0.0.1:7000 1\n"),
            Err(ConfError::NotAddViod { line: 2, .. })
        ));
    }

    #[test]
    fn comments_and_blank_lines() {
        let v = parse("# x\n\n  add-viod 3 10.0.0.1:7000   # the third\n")
            .expect("parses")
            .viods;
        assert_eq!(v.get(&3), Some(&vec![a("10.0.0.1:7000")]));
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn other_commands_and_duplicates_are_refused() {
        assert!(matches!(
            parse("add-viod 0 10.0.0.1:7000\ndel-viod 0\n"),
            Err(ConfError::NotAddViod { line: 2, .. })
        ));
        assert!(matches!(
            parse("add-viod 0\n"),
            Err(ConfError::NotAddViod { line: 1, .. })
        ));
        assert!(matches!(
            parse("add-viod x 10.0.0.1:7000\n"),
            Err(ConfError::NotAddViod { .. })
        ));
        assert_eq!(
            parse("add-viod 2 10.0.0.1:7000\nadd-viod 2 10.0.0.2:7000\n").map(|t| t.viods),
            Err(ConfError::Duplicate {
                line: 2,
                id: 2,
                first: 1
            })
        );
    }

    #[test]
    fn plan_adds_keeps_and_stops_on_conflicts() {
        let wanted =
            parse("add-viod 0 10.0.0.1:7000\nadd-viod 1 10.0.0.2:7000\nadd-viod 2 10.0.0.3:7000\n")
                .expect("parses")
                .viods;
        let current =
            parse("add-viod 1 10.0.0.2:7000\nadd-viod 2 10.0.0.9:7000\nadd-viod 5 10.0.0.5:7000\n")
                .expect("parses")
                .viods;
        let p = plan(&wanted, &current);
        assert_eq!(p.add, vec![(0, vec![a("10.0.0.1:7000")])]);
        assert_eq!(p.present, vec![1]);
        assert_eq!(p.conflicts, vec![2]);
        assert_eq!(p.extra, vec![5]);
    }
}
