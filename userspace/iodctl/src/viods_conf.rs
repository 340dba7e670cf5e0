// SPDX-License-Identifier: GPL-2.0
//! The viod table's configuration file, `/etc/nfsp/viods.conf`: what
//! `iodctl save` writes and `iodctl load` (at boot, `nfsp-viods.service`)
//! puts back into the module, which keeps its table in memory only.
//!
//! One line per viod, in the control grammar of `nfsp_proto`:
//! `add-viod ID ADDR [ADDR…]`, the members in chain order; `#` starts a
//! comment, blank lines are ignored. The viod ids are the file's layout:
//! a file striped over viods 0..W-1 must find the same iods under the same
//! ids, or it would be read from the wrong iods, so the file is the table
//! itself, not a recipe to rebuild it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use nfsp_proto::{Command, ListLine};

/// Where the configuration lives by default.
pub const DEFAULT_VIODS_FILE: &str = "/etc/nfsp/viods.conf";

/// The viods: id → members in chain order.
pub type Viods = BTreeMap<u32, Vec<SocketAddr>>;

/// A line of the file that is not a valid `add-viod`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfError {
    /// Not an `add-viod` command of the control grammar.
    #[error("line {line}: '{text}' is not 'add-viod ID ADDR [ADDR…]'")]
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
}

/// The viods of a `list` answer (members in the order listed, which is
/// chain order).
pub fn from_list(lines: &[ListLine]) -> Viods {
    let mut viods = Viods::new();
    for l in lines {
        viods.entry(l.viod).or_default().push(l.addr);
    }
    viods
}

/// The file's text for `viods`.
pub fn format(viods: &Viods) -> String {
    let mut s = String::from(
        "# nfsp viod table (iodctl save; loaded at boot by iodctl load).\n\
         # One viod per line: add-viod ID ADDR [ADDR...], replicas in chain order.\n\
         # Files are striped over viods by id: keep every id with its iods.\n",
    );
    for (id, members) in viods {
        let _ = write!(s, "add-viod {id}");
        for m in members {
            let _ = write!(s, " {m}");
        }
        s.push('\n');
    }
    s
}

/// Parses the file's text.
pub fn parse(text: &str) -> Result<Viods, ConfError> {
    let mut viods = Viods::new();
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
        let Ok(Command::AddViod { id, members }) = Command::parse(line) else {
            return Err(bad());
        };
        if let Some(&first) = defined_on.get(&id) {
            return Err(ConfError::Duplicate {
                line: i + 1,
                id,
                first,
            });
        }
        defined_on.insert(id, i + 1);
        viods.insert(id, members.iter().collect());
    }
    Ok(viods)
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
        let text = format(&v);
        assert!(text.contains("add-viod 1 10.0.0.12:7000 10.0.0.22:7000\n"));
        assert_eq!(parse(&text), Ok(v));
    }

    #[test]
    fn comments_and_blank_lines() {
        let v = parse("# x\n\n  add-viod 3 10.0.0.1:7000   # the third\n").expect("parses");
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
            parse("add-viod 2 10.0.0.1:7000\nadd-viod 2 10.0.0.2:7000\n"),
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
                .expect("parses");
        let current =
            parse("add-viod 1 10.0.0.2:7000\nadd-viod 2 10.0.0.9:7000\nadd-viod 5 10.0.0.5:7000\n")
                .expect("parses");
        let p = plan(&wanted, &current);
        assert_eq!(p.add, vec![(0, vec![a("10.0.0.1:7000")])]);
        assert_eq!(p.present, vec![1]);
        assert_eq!(p.conflicts, vec![2]);
        assert_eq!(p.extra, vec![5]);
    }
}
