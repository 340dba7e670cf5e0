// SPDX-License-Identifier: GPL-2.0
//! The control grammar of `/proc/fs/nfsd/nfsp`: one command per write, and
//! the answer lines read back.
//!
//! Commands (words separated by ASCII white space, one optional trailing
//! newline, at most [`MAX_LINE`] bytes):
//! ```text
//! add-viod ID ADDR:PORT [ADDR:PORT...]   (1..=8 members)
//! del-viod ID
//! add-iod VIOD ADDR:PORT
//! del-iod VIOD ADDR:PORT
//! set-state VIOD ADDR:PORT up|down|resync
//! identity VIOD ADDR:PORT IDENTITY        (00000000: learn from its next answer)
//! list
//! stats
//! timeout MS                              (1..=3600000)
//! keys sign ID KEY [accept ID KEY]        (write-only: never read back)
//! keys insecure                           (no key: unsigned messages)
//! ```
//! `ID` and `IDENTITY` are 8 hex digits, `KEY` 64 (see [`super::auth::keyfile`]).
//! Addresses: `192.0.2.1:7000` or `[2001:db8::1]:7000` (`[fe80::1%2]:7000`).
//!
//! Answers (one per line):
//! ```text
//! ok
//! error <ERRNO-NAME> <message>
//! viod ID iod ADDR:PORT STATE requests=N bytes=N errors=N timeouts=N latency_us=N ds_errors=N identity=IDENTITY [foreign=IDENTITY]
//! stat NAME VALUE
//! ```

use core::fmt;
use core::net::SocketAddr;

use super::auth::{self, Keys};
use super::error::{ProtoError, Result};

/// Longest accepted command line in bytes (newline included).
pub const MAX_LINE: usize = 1024;
/// Most members of one viod.
pub const MAX_MEMBERS: usize = 8;
/// Largest timeout in milliseconds.
pub const MAX_TIMEOUT_MS: u32 = 3_600_000;

/// State of an iod inside its viod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IodState {
    /// Serving.
    Up,
    /// Out of service.
    Down,
    /// Being re-synchronised (receives writes, serves no reads).
    Resync,
}

impl IodState {
    /// The keyword.
    pub fn as_str(&self) -> &'static str {
        match self {
            IodState::Up => "up",
            IodState::Down => "down",
            IodState::Resync => "resync",
        }
    }
    /// Parse the keyword.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "up" => Ok(IodState::Up),
            "down" => Ok(IodState::Down),
            "resync" => Ok(IodState::Resync),
            _ => Err(ProtoError::InvalidField("state")),
        }
    }
}

impl fmt::Display for IodState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// 1..=8 member addresses of a viod (fixed array, no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Members {
    addrs: [Option<SocketAddr>; MAX_MEMBERS],
    len: usize,
}

impl Members {
    /// Empty list.
    pub const fn new() -> Self {
        Members {
            addrs: [None; MAX_MEMBERS],
            len: 0,
        }
    }
    /// Build from a slice (1..=8 entries).
    #[cfg(not(nfsp_kernel))]
    pub fn from_slice(s: &[SocketAddr]) -> Result<Self> {
        let mut m = Members::new();
        for a in s {
            m.push(*a)?;
        }
        if m.is_empty() {
            return Err(ProtoError::MissingArgument("ADDR:PORT"));
        }
        Ok(m)
    }
    /// Append one member.
    pub fn push(&mut self, a: SocketAddr) -> Result<()> {
        let slot = self
            .addrs
            .get_mut(self.len)
            .ok_or(ProtoError::TooMany("members"))?;
        *slot = Some(a);
        self.len += 1;
        Ok(())
    }
    /// Number of members.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when empty.
    #[cfg(not(nfsp_kernel))]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Iterate the members.
    pub fn iter(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.addrs.iter().take(self.len).filter_map(|a| *a)
    }
}

impl Default for Members {
    fn default() -> Self {
        Self::new()
    }
}

/// One control command.
#[allow(clippy::large_enum_variant)] // Copy, no allocation: size is fine
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Create a viod with its members.
    AddViod {
        /// Viod id.
        id: u32,
        /// Members.
        members: Members,
    },
    /// Remove a viod.
    DelViod {
        /// Viod id.
        id: u32,
    },
    /// Add a member to a viod.
    AddIod {
        /// Viod id.
        viod: u32,
        /// Member address.
        addr: SocketAddr,
    },
    /// Remove a member from a viod.
    DelIod {
        /// Viod id.
        viod: u32,
        /// Member address.
        addr: SocketAddr,
    },
    /// Change a member's state.
    SetState {
        /// Viod id.
        viod: u32,
        /// Member address.
        addr: SocketAddr,
        /// New state.
        state: IodState,
    },
    /// Record the identity of a member's data directory (see
    /// [`super::wire::identity_of`]): the one it must answer with, or
    /// [`super::wire::UNKNOWN_IDENTITY`] to take it from its next answer.
    /// Clears what it answered with otherwise (`foreign`).
    Identity {
        /// Viod id.
        viod: u32,
        /// Member address.
        addr: SocketAddr,
        /// Identity.
        identity: u32,
    },
    /// List viods and members (answer: `viod ...` lines).
    List,
    /// Global statistics (answer: `stat NAME VALUE` lines).
    Stats,
    /// Set the iod request timeout.
    Timeout {
        /// Milliseconds (1..=3600000).
        ms: u32,
    },
    /// Install the cluster keys (or the explicit insecure mode).
    Keys(Keys),
    /// Which clients get pNFS layouts.
    Layouts(super::ffl::LayoutRule),
    /// The space an iod reported (in its PONG): what `df` shows of the
    /// export is added up from these.
    Space {
        /// Member address (every viod it belongs to).
        addr: SocketAddr,
        /// Its space.
        space: Space,
    },
}

/// The space of the file system holding an iod's data, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Space {
    /// Size.
    pub total: u64,
    /// Free.
    pub free: u64,
    /// Available to the iod (free less the root reserve).
    pub avail: u64,
}

impl Space {
    /// The space of a viod whose members hold `members`: each holds a
    /// whole copy, so the smallest one bounds it. `None` without members.
    pub fn replicated(members: impl Iterator<Item = Space>) -> Option<Space> {
        members.reduce(|a, b| Space {
            total: a.total.min(b.total),
            free: a.free.min(b.free),
            avail: a.avail.min(b.avail),
        })
    }

    /// `self` and `other` side by side (two viods), saturating.
    pub fn plus(self, other: Space) -> Space {
        Space {
            total: self.total.saturating_add(other.total),
            free: self.free.saturating_add(other.free),
            avail: self.avail.saturating_add(other.avail),
        }
    }
}

fn parse_u32(s: &str, err: ProtoError) -> Result<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err);
    }
    s.parse::<u32>().map_err(|_| err)
}

/// Parse an identity: 8 hex digits.
pub fn parse_identity(s: &str) -> Result<u32> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ProtoError::InvalidField("identity"));
    }
    u32::from_str_radix(s, 16).map_err(|_| ProtoError::InvalidField("identity"))
}

fn parse_u64(s: &str, what: &'static str) -> Result<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProtoError::BadNumber(what));
    }
    s.parse::<u64>().map_err(|_| ProtoError::BadNumber(what))
}

/// Parse `A.B.C.D:PORT` or `[v6]:PORT`.
pub fn parse_addr(s: &str) -> Result<SocketAddr> {
    if s.len() > 64 {
        return Err(ProtoError::BadAddress);
    }
    s.parse::<SocketAddr>().map_err(|_| ProtoError::BadAddress)
}

fn check_line(line: &str) -> Result<&str> {
    if line.len() > MAX_LINE {
        return Err(ProtoError::LineTooLong);
    }
    let l = line.strip_suffix('\n').unwrap_or(line);
    Ok(l.strip_suffix('\r').unwrap_or(l))
}

impl Command {
    /// Parse one command line.
    pub fn parse(line: &str) -> Result<Self> {
        let l = check_line(line)?;
        let mut w = l.split_ascii_whitespace();
        let cmd = w.next().ok_or(ProtoError::MissingArgument("command"))?;
        let mut arg = |name: &'static str| w.next().ok_or(ProtoError::MissingArgument(name));
        let c = match cmd {
            "add-viod" => {
                let id = parse_u32(arg("ID")?, ProtoError::BadViodId)?;
                let mut members = Members::new();
                members.push(parse_addr(arg("ADDR:PORT")?)?)?;
                for a in w.by_ref() {
                    members.push(parse_addr(a)?)?;
                }
                Command::AddViod { id, members }
            }
            "del-viod" => Command::DelViod {
                id: parse_u32(arg("ID")?, ProtoError::BadViodId)?,
            },
            "add-iod" | "del-iod" => {
                let viod = parse_u32(arg("VIOD")?, ProtoError::BadViodId)?;
                let addr = parse_addr(arg("ADDR:PORT")?)?;
                if cmd == "add-iod" {
                    Command::AddIod { viod, addr }
                } else {
                    Command::DelIod { viod, addr }
                }
            }
            "set-state" => {
                let viod = parse_u32(arg("VIOD")?, ProtoError::BadViodId)?;
                let addr = parse_addr(arg("ADDR:PORT")?)?;
                let state = IodState::parse(arg("STATE")?)?;
                Command::SetState { viod, addr, state }
            }
            "identity" => {
                let viod = parse_u32(arg("VIOD")?, ProtoError::BadViodId)?;
                let addr = parse_addr(arg("ADDR:PORT")?)?;
                let identity = parse_identity(arg("IDENTITY")?)?;
                Command::Identity {
                    viod,
                    addr,
                    identity,
                }
            }
            "list" => Command::List,
            "stats" => Command::Stats,
            "timeout" => {
                let ms = parse_u32(arg("MS")?, ProtoError::BadNumber("MS"))?;
                if ms == 0 || ms > MAX_TIMEOUT_MS {
                    return Err(ProtoError::BadNumber("MS"));
                }
                Command::Timeout { ms }
            }
            "keys" => match w.next() {
                Some("insecure") => Command::Keys(Keys::insecure()),
                Some("sign") => {
                    let sign = auth::parse_key_words(&mut w)?;
                    let accept = match w.next() {
                        Some("accept") => Some(auth::parse_key_words(&mut w)?),
                        Some(_) => return Err(ProtoError::TrailingGarbage),
                        None => None,
                    };
                    Command::Keys(Keys::new(sign, accept)?)
                }
                Some(_) => return Err(ProtoError::InvalidField("keys")),
                None => return Err(ProtoError::MissingArgument("sign")),
            },
            "layouts" => Command::Layouts(super::ffl::LayoutRule::parse(arg("RULE")?)?),
            "space" => {
                let addr = parse_addr(arg("ADDR:PORT")?)?;
                let total = parse_u64(arg("TOTAL")?, "TOTAL")?;
                let free = parse_u64(arg("FREE")?, "FREE")?;
                let avail = parse_u64(arg("AVAIL")?, "AVAIL")?;
                if free > total || avail > free {
                    return Err(ProtoError::InvalidField("space"));
                }
                Command::Space {
                    addr,
                    space: Space { total, free, avail },
                }
            }
            _ => return Err(ProtoError::UnknownCommand),
        };
        if w.next().is_some() {
            return Err(ProtoError::TrailingGarbage);
        }
        Ok(c)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::AddViod { id, members } => {
                write!(f, "add-viod {id}")?;
                for a in members.iter() {
                    write!(f, " {a}")?;
                }
                Ok(())
            }
            Command::DelViod { id } => write!(f, "del-viod {id}"),
            Command::AddIod { viod, addr } => write!(f, "add-iod {viod} {addr}"),
            Command::DelIod { viod, addr } => write!(f, "del-iod {viod} {addr}"),
            Command::SetState { viod, addr, state } => {
                write!(f, "set-state {viod} {addr} {state}")
            }
            Command::Identity {
                viod,
                addr,
                identity,
            } => {
                write!(f, "identity {viod} {addr} {identity:08x}")
            }
            Command::List => f.write_str("list"),
            Command::Stats => f.write_str("stats"),
            Command::Timeout { ms } => write!(f, "timeout {ms}"),
            Command::Keys(k) => match (k.signing(), k.accepted()) {
                (None, _) => f.write_str("keys insecure"),
                (Some(s), a) => {
                    f.write_str("keys sign ")?;
                    auth::write_key_words(f, s)?;
                    if let Some(a) = a {
                        f.write_str(" accept ")?;
                        auth::write_key_words(f, a)?;
                    }
                    Ok(())
                }
            },
            Command::Layouts(r) => write!(f, "layouts {}", r.as_str()),
            Command::Space { addr, space } => write!(
                f,
                "space {addr} {} {} {}",
                space.total, space.free, space.avail
            ),
        }
    }
}

/// One `list` answer line: a member of a viod and its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListLine {
    /// Viod id.
    pub viod: u32,
    /// Member address.
    pub addr: SocketAddr,
    /// State.
    pub state: IodState,
    /// Requests sent.
    pub requests: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Error answers.
    pub errors: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Mean latency in microseconds.
    pub latency_us: u64,
    /// Errors of its pNFS data server that clients reported when they
    /// returned layouts.
    pub ds_errors: u64,
    /// The identity of its data directory the table holds
    /// ([`super::wire::UNKNOWN_IDENTITY`] until its first answer).
    pub identity: u32,
    /// The other identity it last answered with (it is not read from
    /// until re-synced or accepted); 0: none.
    pub foreign: u32,
}

impl fmt::Display for ListLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "viod {} iod {} {} requests={} bytes={} errors={} timeouts={} latency_us={} ds_errors={} \
             identity={:08x}",
            self.viod,
            self.addr,
            self.state,
            self.requests,
            self.bytes,
            self.errors,
            self.timeouts,
            self.latency_us,
            self.ds_errors,
            self.identity,
        )?;
        // Only when there is one: the answer fits in one page.
        if self.foreign != 0 {
            write!(f, " foreign={:08x}", self.foreign)?;
        }
        Ok(())
    }
}

/// Writes `error <ERRNO-NAME> <message>` for a parse error.
#[cfg(not(nfsp_kernel))]
pub struct ErrorLine<'a>(pub &'a ProtoError);

#[cfg(not(nfsp_kernel))]
impl fmt::Display for ErrorLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error {} {}", self.0.errno_name(), self.0)
    }
}

/// One parsed answer line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// `ok`
    Ok,
    /// `error ERRNO message`
    #[cfg(not(nfsp_kernel))]
    Error {
        /// Errno name, e.g. `EINVAL`.
        errno: &'a str,
        /// Human-readable message (may be empty).
        message: &'a str,
    },
    /// `viod ...` listing line.
    Member(ListLine),
    /// `stat NAME VALUE`.
    Stat {
        /// Counter name.
        name: &'a str,
        /// Value.
        value: u64,
    },
}

impl fmt::Display for Answer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Ok => f.write_str("ok"),
            #[cfg(not(nfsp_kernel))]
            Answer::Error { errno, message } => {
                if message.is_empty() {
                    write!(f, "error {errno}")
                } else {
                    write!(f, "error {errno} {message}")
                }
            }
            Answer::Member(l) => l.fmt(f),
            Answer::Stat { name, value } => write!(f, "stat {name} {value}"),
        }
    }
}

/// The value of `key=VALUE`.
#[cfg(not(nfsp_kernel))]
fn kv_value<'a>(word: Option<&'a str>, key: &'static str) -> Result<&'a str> {
    word.ok_or(ProtoError::MissingArgument(key))?
        .strip_prefix(key)
        .and_then(|r| r.strip_prefix('='))
        .ok_or(ProtoError::InvalidField(key))
}

#[cfg(not(nfsp_kernel))]
fn kv(word: Option<&str>, key: &'static str) -> Result<u64> {
    parse_u64(kv_value(word, key)?, key)
}

#[cfg(not(nfsp_kernel))]
fn kv_identity(word: Option<&str>, key: &'static str) -> Result<u32> {
    parse_identity(kv_value(word, key)?)
}

#[cfg(not(nfsp_kernel))]
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'
        })
}

impl<'a> Answer<'a> {
    /// Parse one answer line.
    #[cfg(not(nfsp_kernel))]
    pub fn parse(line: &'a str) -> Result<Self> {
        let l = check_line(line)?;
        let mut w = l.split_ascii_whitespace();
        let first = w.next().ok_or(ProtoError::MissingArgument("answer"))?;
        let a = match first {
            "ok" => Answer::Ok,
            "error" => {
                let errno = w.next().ok_or(ProtoError::MissingArgument("ERRNO"))?;
                if !is_name(errno) {
                    return Err(ProtoError::InvalidField("errno"));
                }
                // Message: the rest of the line after the errno word.
                let rest = l
                    .trim_start_matches(|c: char| c.is_ascii_whitespace())
                    .strip_prefix("error")
                    .map(|r| r.trim_start_matches(|c: char| c.is_ascii_whitespace()))
                    .and_then(|r| r.strip_prefix(errno))
                    .ok_or(ProtoError::InvalidField("errno"))?;
                let message = rest.trim_matches(|c: char| c.is_ascii_whitespace());
                return Ok(Answer::Error { errno, message });
            }
            "viod" => {
                let viod = parse_u32(
                    w.next().ok_or(ProtoError::MissingArgument("ID"))?,
                    ProtoError::BadViodId,
                )?;
                if w.next() != Some("iod") {
                    return Err(ProtoError::InvalidField("iod"));
                }
                let addr = parse_addr(w.next().ok_or(ProtoError::MissingArgument("ADDR:PORT"))?)?;
                let state = IodState::parse(w.next().ok_or(ProtoError::MissingArgument("STATE"))?)?;
                Answer::Member(ListLine {
                    viod,
                    addr,
                    state,
                    requests: kv(w.next(), "requests")?,
                    bytes: kv(w.next(), "bytes")?,
                    errors: kv(w.next(), "errors")?,
                    timeouts: kv(w.next(), "timeouts")?,
                    latency_us: kv(w.next(), "latency_us")?,
                    // Absent from modules before pNFS.
                    ds_errors: match w.next() {
                        None => 0,
                        t => kv(t, "ds_errors")?,
                    },
                    // Absent from modules before identities.
                    identity: match w.next() {
                        None => 0,
                        t => kv_identity(t, "identity")?,
                    },
                    foreign: match w.next() {
                        None => 0,
                        t => kv_identity(t, "foreign")?,
                    },
                })
            }
            "stat" => {
                let name = w.next().ok_or(ProtoError::MissingArgument("NAME"))?;
                if !is_name(name) {
                    return Err(ProtoError::InvalidField("name"));
                }
                let value = parse_u64(
                    w.next().ok_or(ProtoError::MissingArgument("VALUE"))?,
                    "VALUE",
                )?;
                Answer::Stat { name, value }
            }
            _ => return Err(ProtoError::UnknownCommand),
        };
        if w.next().is_some() {
            return Err(ProtoError::TrailingGarbage);
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_command() {
        let line = "keys sign 0000abcd 1111111111111111111111111111111111111111111111111111111111111111 \
                    accept 00000002 2222222222222222222222222222222222222222222222222222222222222222";
        let c = Command::parse(line).unwrap();
        let Command::Keys(k) = c else {
            panic!("not keys")
        };
        assert_eq!(k.signing().map(|k| k.id()), Some(0xabcd));
        assert_eq!(k.accepted().map(|k| k.id()), Some(2));
        assert_eq!(Command::parse(&c.to_string()).unwrap(), c);
        assert!(!std::format!("{c:?}").contains("1111"));
        let c = Command::parse("keys insecure\n").unwrap();
        assert_eq!(c, Command::Keys(Keys::insecure()));
        assert_eq!(c.to_string(), "keys insecure");
        for bad in [
            "keys",
            "keys sign",
            "keys sign 00000001",
            "keys sign 00000001 11",
            "keys foo",
            "keys insecure x",
            "keys sign 00000001 1111111111111111111111111111111111111111111111111111111111111111 x",
        ] {
            assert!(Command::parse(bad).is_err(), "{bad}");
        }
    }
    use std::string::{String, ToString};

    fn rt(s: &str) {
        let c = Command::parse(s).unwrap();
        let printed = c.to_string();
        assert_eq!(Command::parse(&printed), Ok(c), "{s}");
    }

    #[test]
    fn commands() {
        rt("add-viod 0 10.0.0.2:7000 10.0.0.3:7000\n");
        rt("add-viod 4294967295 [::1]:7000");
        rt("del-viod 3");
        rt("add-iod 1 [fe80::1%2]:7000");
        rt("del-iod 1 127.0.0.1:1");
        rt("set-state 2 127.0.0.1:7000 resync");
        rt("list");
        rt("  stats  \r\n");
        rt("timeout 1500");
        rt("space 10.0.0.2:7000 1000 600 500");
        rt("layouts single");
        assert!(Command::parse("layouts sometimes").is_err());
        assert_eq!(Command::parse("list\n"), Ok(Command::List));
        let c = Command::parse("add-viod 7 1.2.3.4:5 [::2]:6").unwrap();
        assert_eq!(c.to_string(), "add-viod 7 1.2.3.4:5 [::2]:6");
        match c {
            Command::AddViod { id, members } => {
                assert_eq!(id, 7);
                assert_eq!(members.len(), 2);
            }
            _ => panic!("wrong command"),
        }
    }

    #[test]
    fn command_errors() {
        use ProtoError::*;
        assert_eq!(Command::parse(""), Err(MissingArgument("command")));
        assert_eq!(Command::parse("frob"), Err(UnknownCommand));
        assert_eq!(Command::parse("del-viod"), Err(MissingArgument("ID")));
        assert_eq!(Command::parse("del-viod x"), Err(BadViodId));
        assert_eq!(Command::parse("del-viod -1"), Err(BadViodId));
        assert_eq!(Command::parse("del-viod 4294967296"), Err(BadViodId));
        assert_eq!(
            Command::parse("add-viod 1"),
            Err(MissingArgument("ADDR:PORT"))
        );
        assert_eq!(Command::parse("add-viod 1 1.2.3.4"), Err(BadAddress));
        assert_eq!(Command::parse("add-viod 1 ::1:7000"), Err(BadAddress));
        assert_eq!(Command::parse("add-iod 1 1.2.3.4:70000"), Err(BadAddress));
        let nine = "add-viod 1 1.1.1.1:1 1.1.1.1:2 1.1.1.1:3 1.1.1.1:4 1.1.1.1:5 1.1.1.1:6 1.1.1.1:7 1.1.1.1:8 1.1.1.1:9";
        assert_eq!(Command::parse(nine), Err(TooMany("members")));
        assert_eq!(Command::parse("list x"), Err(TrailingGarbage));
        assert_eq!(
            Command::parse("del-iod 1 1.1.1.1:1 x"),
            Err(TrailingGarbage)
        );
        assert_eq!(
            Command::parse("set-state 1 1.1.1.1:1 sideways"),
            Err(InvalidField("state"))
        );
        assert_eq!(
            Command::parse("set-state 1 1.1.1.1:1"),
            Err(MissingArgument("STATE"))
        );
        assert_eq!(Command::parse("timeout 0"), Err(BadNumber("MS")));
        assert_eq!(Command::parse("timeout 3600001"), Err(BadNumber("MS")));
        let long: String = core::iter::repeat_n('x', MAX_LINE + 1).collect();
        assert_eq!(Command::parse(&long), Err(LineTooLong));
        assert_eq!(Command::parse("list é"), Err(TrailingGarbage));
        assert_eq!(
            Command::parse("space 1.1.1.1:1 10 11 5"),
            Err(InvalidField("space")),
            "more free than total"
        );
        assert_eq!(
            Command::parse("space 1.1.1.1:1 10 5 6"),
            Err(InvalidField("space")),
            "more available than free"
        );
        assert_eq!(
            Command::parse("space 1.1.1.1:1 10 5"),
            Err(MissingArgument("AVAIL"))
        );
        assert_eq!(
            Command::parse("space 1.1.1.1:1 10 5 5 5"),
            Err(TrailingGarbage)
        );
    }

    #[test]
    fn space_of_viods() {
        let s = |total, free, avail| Space { total, free, avail };
        let members = [s(100, 50, 40), s(80, 60, 30)];
        // Replicas hold whole copies: the smallest member bounds the viod.
        assert_eq!(Space::replicated(members.into_iter()), Some(s(80, 50, 30)));
        assert_eq!(Space::replicated(core::iter::empty()), None);
        // Viods side by side add up.
        assert_eq!(s(80, 50, 30).plus(s(10, 5, 1)), s(90, 55, 31));
        assert_eq!(s(u64::MAX, 0, 0).plus(s(1, 0, 0)).total, u64::MAX);
    }

    #[test]
    fn answers() {
        let l = ListLine {
            viod: 3,
            addr: "[::1]:7000".parse().unwrap(),
            state: IodState::Down,
            requests: 10,
            bytes: 1 << 40,
            errors: 1,
            timeouts: 2,
            latency_us: 350,
            ds_errors: 4,
            identity: 0x1d00_00a1,
            foreign: 0,
        };
        let s = l.to_string();
        assert_eq!(
            s,
            "viod 3 iod [::1]:7000 down requests=10 bytes=1099511627776 errors=1 timeouts=2 latency_us=350 ds_errors=4 identity=1d0000a1"
        );
        assert_eq!(Answer::parse(&s), Ok(Answer::Member(l)));
        let foreign = ListLine {
            foreign: 0xf00,
            ..l
        };
        assert!(foreign
            .to_string()
            .ends_with(" identity=1d0000a1 foreign=00000f00"));
        assert_eq!(
            Answer::parse(&foreign.to_string()),
            Ok(Answer::Member(foreign))
        );
        // Lines of older modules.
        let before_identities = s.trim_end_matches(" identity=1d0000a1");
        let bare = ListLine { identity: 0, ..l };
        assert_eq!(Answer::parse(before_identities), Ok(Answer::Member(bare)));
        let old = before_identities.trim_end_matches(" ds_errors=4");
        assert_eq!(
            Answer::parse(old),
            Ok(Answer::Member(ListLine {
                ds_errors: 0,
                ..bare
            }))
        );
        assert!(Answer::parse(&s.replace("identity=1d0000a1", "identity=1d00a1")).is_err());
        assert!(Answer::parse(&format!("{s} foreign=0000000g")).is_err());
        assert_eq!(Answer::parse("ok\n"), Ok(Answer::Ok));
        assert_eq!(
            Answer::parse("error EINVAL bad viod id\n"),
            Ok(Answer::Error {
                errno: "EINVAL",
                message: "bad viod id"
            })
        );
        assert_eq!(
            Answer::parse("error ENOENT"),
            Ok(Answer::Error {
                errno: "ENOENT",
                message: ""
            })
        );
        assert_eq!(
            Answer::parse("stat reads 5"),
            Ok(Answer::Stat {
                name: "reads",
                value: 5
            })
        );
        let e = ProtoError::BadViodId;
        let el = ErrorLine(&e).to_string();
        assert_eq!(el, "error EINVAL bad viod id");
        assert!(matches!(
            Answer::parse(&el),
            Ok(Answer::Error {
                errno: "EINVAL",
                ..
            })
        ));
        assert!(Answer::parse("").is_err());
        assert!(Answer::parse("okay").is_err());
        assert!(Answer::parse("ok more").is_err());
        assert!(Answer::parse("stat x").is_err());
        assert!(Answer::parse("stat x -1").is_err());
        assert!(Answer::parse("viod 3 iod [::1]:7000 down requests=10").is_err());
        assert!(Answer::parse(&s.replace("bytes=", "byte=")).is_err());
        assert!(Answer::parse(&(s.clone() + " extra")).is_err());
        for a in [
            Answer::Ok,
            Answer::Stat {
                name: "x",
                value: 1,
            },
            Answer::Member(l),
        ] {
            assert_eq!(Answer::parse(&a.to_string()), Ok(a));
        }
    }
}
