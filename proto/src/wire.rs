// SPDX-License-Identifier: GPL-2.0
//! Meta-server ↔ iod UDP messages (little-endian). See the crate docs for
//! the byte layout of every message.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::auth::{tags_equal, Keys, TAG_LEN};
use super::codec::{Reader, Writer};
use super::error::{ProtoError, Result};
use super::filekey::{FileKey, FILE_KEY_LEN};

/// `b"NFSP"` read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"NFSP");
/// Protocol version (2: authenticated header; 4: TRUNCATE fences).
pub const VERSION: u8 = 5;
/// Largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65507;
/// Largest data payload of one message (READ total, READ_REPLY, WRITE).
/// A larger request is split by its sender; IP fragmentation by the kernel
/// carries each datagram.
pub const MAX_DATA_PER_MSG: usize = 60 * 1024;
/// Largest prebuilt reply header of a direct-mode READ.
pub const MAX_REPLY_HEADER: usize = 512;
/// Largest number of following hops in a READ routing list.
pub const MAX_HOPS: usize = 16;
/// Largest number of remaining members in a replica chain.
pub const MAX_CHAIN: usize = 8;
/// Largest number of file keys in one UNLINK.
pub const MAX_UNLINK_KEYS: usize = 256;
/// Largest number of entries in one LIST_REPLY (and of `max` in a LIST):
/// 32 + 8 + 1024 × 40 bytes, well inside one datagram.
pub const MAX_LIST_ENTRIES: usize = 1024;
/// Encoded length of a LIST_REPLY entry (key, local length, mtime).
pub const LIST_ENTRY_LEN: usize = FILE_KEY_LEN + 16;
/// LIST flag: a cursor key is present (list the keys after it).
pub const LIST_FLAG_AFTER: u8 = 1;
/// Length of the common header.
pub const HEADER_LEN: usize = 56;
/// Offset of the key id in the header.
pub const KEY_ID_OFFSET: usize = 8;
/// Offset of the destination/answering iod instance in the header.
#[cfg(not(nfsp_kernel))]
pub const INSTANCE_OFFSET: usize = 32;
/// The identity a table records before it learned the real one.
pub const UNKNOWN_IDENTITY: u32 = 0;

/// The identity of the data directory an iod instance serves: the high
/// half of the instance. An iod draws its identity once, when it first
/// starts on an empty data directory, and keeps it there; the low half is
/// drawn anew at each start. A wiped, swapped or mis-addressed iod thus
/// answers with another identity, and the meta-server reads nothing from
/// it until it is re-synced or the admin accepts it (32 random bits make
/// a collision of two directories of one cluster as likely as 1 in 2^32
/// per pair; the low half keeps a restart's instance new with the same
/// odds, and the replay windows cover the rest).
pub fn identity_of(instance: u64) -> u32 {
    (instance >> 32) as u32
}

/// The instance of the data directory `identity` (never 0) at a start
/// that drew `random`.
#[cfg(not(nfsp_kernel))]
pub fn instance_of(identity: u32, random: u32) -> u64 {
    (u64::from(identity) << 32) | u64::from(random)
}

/// Offset of the authentication tag in the header.
pub const AUTH_TAG_OFFSET: usize = 40;
/// Length of the authentication tag.
pub const AUTH_TAG_LEN: usize = TAG_LEN;
/// Encoded length of a socket address.
pub const ADDR_LEN: usize = 24;
/// Encoded length of a routing hop.
pub const HOP_LEN: usize = ADDR_LEN + 20;
/// Encoded length of a replica chain member.
pub const MEMBER_LEN: usize = ADDR_LEN + 8;
/// Body of a PING: zeros, longer than a PONG's body, so that answering a
/// PING never sends more bytes than it received.
pub const PING_PAD: usize = 128;
/// Reply-spec flag: pad the data to a multiple of 4 bytes (XDR).
pub const REPLY_FLAG_PAD: u8 = 1;

/// Message type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgType {
    /// Read request (meta-server → iod, iod → iod).
    Read = 1,
    /// Relay-mode read answer (last hop → origin).
    ReadReply = 2,
    /// Write request (meta-server → iod, chain).
    Write = 3,
    /// Flush to stable storage (chain).
    Commit = 4,
    /// Set local length (chain).
    Truncate = 5,
    /// Remove a batch of local files.
    Unlink = 6,
    /// Generic acknowledgement (WRITE_ACK, COMMIT/TRUNCATE/UNLINK acks).
    Ack = 7,
    /// Heartbeat.
    Ping = 8,
    /// Heartbeat answer with statistics.
    Pong = 9,
    /// Ask an iod which local files it holds (a page, after a cursor).
    List = 10,
    /// One page of an iod's local files.
    ListReply = 11,
    /// Ask an iod for the length of one local file (answered by ACK).
    Length = 12,
}

impl MsgType {
    /// An answer (ACK, READ_REPLY, PONG, LIST_REPLY), as opposed to a
    /// request: a sender takes only answers, an iod only requests.
    pub fn is_answer(&self) -> bool {
        matches!(
            self,
            MsgType::Ack | MsgType::ReadReply | MsgType::Pong | MsgType::ListReply
        )
    }

    /// From the wire byte.
    pub fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            1 => MsgType::Read,
            2 => MsgType::ReadReply,
            3 => MsgType::Write,
            4 => MsgType::Commit,
            5 => MsgType::Truncate,
            6 => MsgType::Unlink,
            7 => MsgType::Ack,
            8 => MsgType::Ping,
            9 => MsgType::Pong,
            10 => MsgType::List,
            11 => MsgType::ListReply,
            12 => MsgType::Length,
            _ => return Err(ProtoError::BadType),
        })
    }
}

/// Status code of acknowledgements and replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// No such file (only where absence matters).
    NoEntry = 1,
    /// Local I/O error.
    Io = 2,
    /// Request understood but invalid.
    Invalid = 3,
    /// Overloaded: retry later.
    Busy = 4,
    /// Out of space.
    NoSpace = 5,
    /// Too large.
    TooBig = 6,
    /// Not supported by this iod.
    Unsupported = 7,
    /// Forwarding to the next hop/member failed.
    ForwardFailed = 8,
    /// The request named another instance of this iod (it restarted, or
    /// the sender never asked): nothing was applied; the answer's header
    /// carries the current instance, send again with it.
    Stale = 9,
    /// Refused by the iod's address rules (a hop, member, origin or
    /// direct-reply address it must not use); nothing was applied.
    Refused = 10,
}

impl Status {
    /// From the wire byte.
    pub fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            0 => Status::Ok,
            1 => Status::NoEntry,
            2 => Status::Io,
            3 => Status::Invalid,
            4 => Status::Busy,
            5 => Status::NoSpace,
            6 => Status::TooBig,
            7 => Status::Unsupported,
            8 => Status::ForwardFailed,
            9 => Status::Stale,
            10 => Status::Refused,
            _ => return Err(ProtoError::InvalidField("status")),
        })
    }
}

/// Fixed-size list item encoding.
pub trait Item: Copy {
    /// Encoded length.
    const LEN: usize;
    /// Encode one item.
    fn enc(&self, w: &mut Writer<'_>) -> Result<()>;
    /// Decode one item from exactly `LEN` bytes.
    fn dec(r: &mut Reader<'_>) -> Result<Self>;
}

/// Encode a socket address (24 bytes: family 4|6, 0, port, scope id, 16
/// address bytes; IPv4 uses the first 4, the rest is 0).
pub fn put_addr(w: &mut Writer<'_>, a: &SocketAddr) -> Result<()> {
    match a {
        SocketAddr::V4(v4) => {
            w.u8(4)?;
            w.u8(0)?;
            w.u16_le(v4.port())?;
            w.u32_le(0)?;
            w.put(&v4.ip().octets())?;
            w.zeros(12)
        }
        SocketAddr::V6(v6) => {
            w.u8(6)?;
            w.u8(0)?;
            w.u16_le(v6.port())?;
            w.u32_le(v6.scope_id())?;
            w.put(&v6.ip().octets())
        }
    }
}

/// Decode a socket address written by [`put_addr`].
pub fn get_addr(r: &mut Reader<'_>) -> Result<SocketAddr> {
    let fam = r.u8()?;
    if r.u8()? != 0 {
        return Err(ProtoError::InvalidField("address"));
    }
    let port = r.u16_le()?;
    let scope = r.u32_le()?;
    let ip: [u8; 16] = r.array()?;
    match fam {
        4 => {
            if scope != 0 || ip.iter().skip(4).any(|b| *b != 0) {
                return Err(ProtoError::InvalidField("address"));
            }
            let o = Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]);
            Ok(SocketAddr::V4(SocketAddrV4::new(o, port)))
        }
        6 => Ok(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(ip),
            port,
            0,
            scope,
        ))),
        _ => Err(ProtoError::InvalidField("address family")),
    }
}

impl Item for SocketAddr {
    const LEN: usize = ADDR_LEN;
    fn enc(&self, w: &mut Writer<'_>) -> Result<()> {
        put_addr(w, self)
    }
    fn dec(r: &mut Reader<'_>) -> Result<Self> {
        get_addr(r)
    }
}

impl Item for FileKey {
    const LEN: usize = FILE_KEY_LEN;
    fn enc(&self, w: &mut Writer<'_>) -> Result<()> {
        w.put(&self.to_bytes())
    }
    fn dec(r: &mut Reader<'_>) -> Result<Self> {
        FileKey::from_bytes(r.bytes(FILE_KEY_LEN)?)
    }
}

/// One following hop of a straddling READ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hop {
    /// The iod to forward to.
    pub addr: SocketAddr,
    /// Offset in that iod's local file.
    pub local_offset: u64,
    /// Bytes that iod appends.
    pub len: u32,
    /// The instance of that iod the sender knows (see [`Message::instance`]).
    pub instance: u64,
}

impl Item for Hop {
    const LEN: usize = HOP_LEN;
    fn enc(&self, w: &mut Writer<'_>) -> Result<()> {
        put_addr(w, &self.addr)?;
        w.u64_le(self.local_offset)?;
        w.u32_le(self.len)?;
        w.u64_le(self.instance)
    }
    fn dec(r: &mut Reader<'_>) -> Result<Self> {
        let addr = get_addr(r)?;
        let local_offset = r.u64_le()?;
        let len = r.u32_le()?;
        local_offset
            .checked_add(len as u64)
            .ok_or(ProtoError::Overflow)?;
        Ok(Hop {
            addr,
            local_offset,
            len,
            instance: r.u64_le()?,
        })
    }
}

/// A member of a replica chain: its address and the instance the origin
/// knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainMember {
    /// The iod.
    pub addr: SocketAddr,
    /// Its instance (see [`Message::instance`]).
    pub instance: u64,
}

impl Item for ChainMember {
    const LEN: usize = MEMBER_LEN;
    fn enc(&self, w: &mut Writer<'_>) -> Result<()> {
        put_addr(w, &self.addr)?;
        w.u64_le(self.instance)
    }
    fn dec(r: &mut Reader<'_>) -> Result<Self> {
        Ok(ChainMember {
            addr: get_addr(r)?,
            instance: r.u64_le()?,
        })
    }
}

/// A list of fixed-size items: either still encoded (a decoded view,
/// validated) or a borrowed slice (to encode). No allocation either way.
#[derive(Debug, Clone, Copy)]
pub enum List<'a, T: Item> {
    /// Validated encoded bytes (`len * T::LEN` bytes).
    Encoded(&'a [u8]),
    /// Items to encode.
    Items(&'a [T]),
}

impl<'a, T: Item> List<'a, T> {
    /// Number of items.
    pub fn len(&self) -> usize {
        match self {
            List::Encoded(b) => b.len() / T::LEN,
            List::Items(s) => s.len(),
        }
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Item `i`.
    pub fn get(&self, i: usize) -> Option<T> {
        match self {
            List::Encoded(b) => {
                let start = i.checked_mul(T::LEN)?;
                let end = start.checked_add(T::LEN)?;
                let mut r = Reader::new(b.get(start..end)?);
                T::dec(&mut r).ok()
            }
            List::Items(s) => s.get(i).copied(),
        }
    }
    /// First item.
    #[cfg(not(nfsp_kernel))]
    pub fn first(&self) -> Option<T> {
        self.get(0)
    }
    /// The list without its first item (empty stays empty).
    #[cfg(not(nfsp_kernel))]
    pub fn rest(&self) -> List<'a, T> {
        match *self {
            List::Encoded(b) => List::Encoded(b.get(T::LEN..).unwrap_or(&[])),
            List::Items(s) => List::Items(s.get(1..).unwrap_or(&[])),
        }
    }
    /// Iterate the items.
    pub fn iter(&self) -> ListIter<'a, T> {
        ListIter { list: *self, i: 0 }
    }
    fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        for it in self.iter() {
            it.enc(w)?;
        }
        Ok(())
    }
    fn decode(r: &mut Reader<'a>, count: usize) -> Result<Self> {
        let n = count.checked_mul(T::LEN).ok_or(ProtoError::Overflow)?;
        let raw = r.bytes(n)?;
        let mut rr = Reader::new(raw);
        for _ in 0..count {
            T::dec(&mut rr)?;
        }
        Ok(List::Encoded(raw))
    }
}

impl<T: Item + PartialEq> PartialEq for List<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

/// Iterator over a [`List`].
pub struct ListIter<'a, T: Item> {
    list: List<'a, T>,
    i: usize,
}

impl<T: Item> Iterator for ListIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        let v = self.list.get(self.i)?;
        self.i = self.i.checked_add(1)?;
        Some(v)
    }
}

/// Where the last hop of a READ sends the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReplySpec<'a> {
    /// Send `header ++ data ++ pad` to `client`, from `source` (the
    /// meta-server's NFS address and port); failures (and [`Status::Stale`])
    /// are acknowledged to `origin`.
    Direct {
        /// Who hears of a failure.
        origin: SocketAddr,
        /// The NFS client.
        client: SocketAddr,
        /// The meta-server's address:port the client sent its call to.
        source: SocketAddr,
        /// Prebuilt RPC/NFS reply header (<= [`MAX_REPLY_HEADER`]).
        header: &'a [u8],
        /// Pad the data with zeros to a multiple of 4 (XDR opaque).
        pad: bool,
    },
    /// Send a READ_REPLY to `origin`.
    Relay {
        /// Who gets the READ_REPLY.
        origin: SocketAddr,
    },
}

/// READ request: read `len` bytes at `local_offset` of `key`, append them to
/// `gathered`, then forward to `routes[0]` or, if no route is left, answer
/// according to `reply`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Read<'a> {
    /// File.
    pub key: FileKey,
    /// This hop's local offset.
    pub local_offset: u64,
    /// This hop's length.
    pub len: u32,
    /// Following hops.
    pub routes: List<'a, Hop>,
    /// What the last hop does.
    pub reply: ReplySpec<'a>,
    /// Data gathered by previous hops.
    pub gathered: &'a [u8],
}

impl Read<'_> {
    /// Total data bytes of the whole request (gathered + this hop + routes).
    pub fn total_len(&self) -> Result<usize> {
        let mut t = self
            .gathered
            .len()
            .checked_add(self.len as usize)
            .ok_or(ProtoError::Overflow)?;
        for h in self.routes.iter() {
            t = t.checked_add(h.len as usize).ok_or(ProtoError::Overflow)?;
        }
        Ok(t)
    }

    /// Encode the message for the next hop, with `routes[0]` as the new
    /// current extent and `gathered ++ <append_len bytes>` as gathered data.
    /// Writes everything except the appended bytes, which the caller must
    /// write at `buf[returned_len..returned_len + append_len]`. Returns the
    /// destination hop and the prefix length; the full message length is
    /// prefix + append_len.
    ///
    /// The message is unsigned: [`seal`] it once the data is in place.
    #[cfg(not(nfsp_kernel))]
    pub fn encode_forward_prefix(
        &self,
        id: RequestId,
        append_len: usize,
        buf: &mut [u8],
    ) -> Result<(Hop, usize)> {
        let hop = self
            .routes
            .first()
            .ok_or(ProtoError::InvalidField("routes"))?;
        let gathered_len = self
            .gathered
            .len()
            .checked_add(append_len)
            .ok_or(ProtoError::Overflow)?;
        let mut w = Writer::new(buf);
        put_header(&mut w, MsgType::Read, 0, id, hop.instance)?;
        encode_read_fixed(
            &mut w,
            &self.key,
            hop.local_offset,
            hop.len,
            &self.routes.rest(),
            &self.reply,
        )?;
        w.u32_le(u32::try_from(gathered_len).map_err(|_| ProtoError::Overflow)?)?;
        w.put(self.gathered)?;
        let n = w.position();
        let end = n.checked_add(append_len).ok_or(ProtoError::Overflow)?;
        if end > buf.len() {
            return Err(ProtoError::BufferTooSmall);
        }
        Ok((hop, n))
    }
}

/// Relay-mode READ answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadReply<'a> {
    /// Outcome.
    pub status: Status,
    /// The data (all hops, in file order).
    pub data: &'a [u8],
}

impl ReadReply<'_> {
    /// Encode a READ_REPLY header announcing `data_len` bytes, without the
    /// data; the caller writes the data at `buf[n..n + data_len]`, then
    /// [`seal`]s the datagram. `instance` is the answering iod's.
    #[cfg(not(nfsp_kernel))]
    pub fn encode_prefix(
        id: RequestId,
        instance: u64,
        status: Status,
        data_len: usize,
        buf: &mut [u8],
    ) -> Result<usize> {
        if data_len > MAX_DATA_PER_MSG {
            return Err(ProtoError::TooMany("data bytes"));
        }
        let mut w = Writer::new(buf);
        put_header(&mut w, MsgType::ReadReply, 0, id, instance)?;
        w.u8(status as u8)?;
        w.zeros(3)?;
        w.u32_le(data_len as u32)?;
        let n = w.position();
        if n.checked_add(data_len).ok_or(ProtoError::Overflow)? > buf.len() {
            return Err(ProtoError::BufferTooSmall);
        }
        Ok(n)
    }
}

/// Replica chain: the members still to visit, and who gets the final ack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chain<'a> {
    /// Receives the acknowledgement (from the last member, or from a member
    /// that failed).
    pub origin: SocketAddr,
    /// Remaining members after the receiver, in order.
    pub members: List<'a, ChainMember>,
}

impl<'a> Chain<'a> {
    /// The next member and the chain it must receive.
    #[cfg(not(nfsp_kernel))]
    pub fn next(&self) -> Option<(ChainMember, Chain<'a>)> {
        let first = self.members.first()?;
        Some((
            first,
            Chain {
                origin: self.origin,
                members: self.members.rest(),
            },
        ))
    }
    fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        if self.members.len() > MAX_CHAIN {
            return Err(ProtoError::TooMany("chain members"));
        }
        put_addr(w, &self.origin)?;
        w.u8(self.members.len() as u8)?;
        w.zeros(3)?;
        self.members.encode(w)
    }
    fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let origin = get_addr(r)?;
        let n = r.u8()? as usize;
        if r.array::<3>()? != [0; 3] {
            return Err(ProtoError::InvalidField("reserved"));
        }
        if n > MAX_CHAIN {
            return Err(ProtoError::TooMany("chain members"));
        }
        Ok(Chain {
            origin,
            members: List::decode(r, n)?,
        })
    }
}

/// WRITE request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Write<'a> {
    /// File.
    pub key: FileKey,
    /// Local offset.
    pub local_offset: u64,
    /// Replica chain.
    pub chain: Chain<'a>,
    /// Data (<= [`MAX_DATA_PER_MSG`]).
    pub data: &'a [u8],
}

/// COMMIT request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Commit<'a> {
    /// File.
    pub key: FileKey,
    /// Replica chain.
    pub chain: Chain<'a>,
}

/// TRUNCATE request (set the local file's length, creating it if missing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truncate<'a> {
    /// File.
    pub key: FileKey,
    /// New local length (see `StripeLayout::local_len`).
    pub new_len: u64,
    /// Only make a shorter local file that long, never cut a longer one
    /// (a file grew: every iod's local length must follow its size).
    pub extend_only: bool,
    /// pNFS fencing: the iod refuses the file's data-server filehandles of
    /// an older layout epoch from now on (it keeps the highest it was
    /// given; 0 changes nothing).
    pub layout_epoch: u32,
    /// Replica chain.
    pub chain: Chain<'a>,
}

/// UNLINK request: remove the local files of these keys. Idempotent. The
/// ack goes to the datagram's source; its value = number actually removed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unlink<'a> {
    /// Keys (<= [`MAX_UNLINK_KEYS`]).
    pub keys: List<'a, FileKey>,
}

/// LIST request: up to `max` local files whose keys come after `after`
/// in listing order ([`FileKey::list_cmp`]: local path order), from the
/// start when `after` is `None`. The reply goes to the datagram's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListRequest {
    /// Cursor: the last key of the previous page.
    pub after: Option<FileKey>,
    /// Most entries wanted (1..=[`MAX_LIST_ENTRIES`]).
    pub max: u16,
}

/// One local file in a LIST_REPLY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListEntry {
    /// The file's key.
    pub key: FileKey,
    /// Local length in bytes.
    pub len: u64,
    /// Last modification, seconds since the Unix epoch.
    pub mtime_s: u64,
}

impl Item for ListEntry {
    const LEN: usize = LIST_ENTRY_LEN;
    fn enc(&self, w: &mut Writer<'_>) -> Result<()> {
        w.put(&self.key.to_bytes())?;
        w.u64_le(self.len)?;
        w.u64_le(self.mtime_s)
    }
    fn dec(r: &mut Reader<'_>) -> Result<Self> {
        Ok(ListEntry {
            key: get_key(r)?,
            len: r.u64_le()?,
            mtime_s: r.u64_le()?,
        })
    }
}

/// LIST_REPLY: entries in listing order, strictly after the request's
/// cursor; `more` = further entries exist (ask again after the last one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListReply<'a> {
    /// Outcome (an error reply carries no entries).
    pub status: Status,
    /// More entries follow the last one.
    pub more: bool,
    /// The page (<= [`MAX_LIST_ENTRIES`]).
    pub entries: List<'a, ListEntry>,
}

/// Generic acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The request type acknowledged.
    pub op: MsgType,
    /// Outcome.
    pub status: Status,
    /// WRITE: bytes written; TRUNCATE: new length; UNLINK: files removed;
    /// LENGTH: the local length.
    pub value: u64,
}

/// Iod statistics carried by PONG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IodStats {
    /// Seconds since start.
    pub uptime_s: u64,
    /// Valid requests handled.
    pub requests: u64,
    /// Bytes read from local files.
    pub bytes_read: u64,
    /// Bytes written to local files.
    pub bytes_written: u64,
    /// Requests that failed (I/O error, ...).
    pub errors: u64,
    /// Malformed datagrams dropped.
    pub malformed: u64,
    /// Requests dropped (overload, send failure).
    pub drops: u64,
    /// Requests currently being served.
    pub in_flight: u64,
    /// Datagrams dropped for a missing, unknown or wrong tag.
    pub bad_auth: u64,
    /// Authenticated datagrams dropped as replays or duplicates.
    pub replays: u64,
    /// Requests refused by the address rules or answered [`Status::Stale`].
    pub refused: u64,
    /// Size of the file system holding the iod's data, in bytes.
    pub space_total: u64,
    /// Its free bytes.
    pub space_free: u64,
    /// Its bytes available to the iod (free less the root reserve).
    pub space_avail: u64,
}

impl IodStats {
    fn fields(&self) -> [u64; 14] {
        [
            self.uptime_s,
            self.requests,
            self.bytes_read,
            self.bytes_written,
            self.errors,
            self.malformed,
            self.drops,
            self.in_flight,
            self.bad_auth,
            self.replays,
            self.refused,
            self.space_total,
            self.space_free,
            self.space_avail,
        ]
    }
}

/// The identity of a request: a random epoch chosen by its sender when it
/// starts (never 0) and a counter. Answers and forwarded copies carry the
/// request's id; an iod suppresses copies of an id it has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct RequestId {
    /// The sender's epoch.
    pub epoch: u64,
    /// The request's number in that epoch.
    pub seq: u64,
}

/// The body of a message, by type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Body<'a> {
    /// READ.
    Read(Read<'a>),
    /// READ_REPLY.
    ReadReply(ReadReply<'a>),
    /// WRITE.
    Write(Write<'a>),
    /// COMMIT.
    Commit(Commit<'a>),
    /// TRUNCATE.
    Truncate(Truncate<'a>),
    /// UNLINK.
    Unlink(Unlink<'a>),
    /// ACK.
    Ack(Ack),
    /// PING.
    Ping,
    /// PONG.
    Pong(IodStats),
    /// LIST.
    List(ListRequest),
    /// LIST_REPLY.
    ListReply(ListReply<'a>),
    /// LENGTH: the local length of this key (0 if no such local file).
    Length(FileKey),
}

impl Body<'_> {
    /// The type byte of this body.
    pub fn msg_type(&self) -> MsgType {
        match self {
            Body::Read(_) => MsgType::Read,
            Body::ReadReply(_) => MsgType::ReadReply,
            Body::Write(_) => MsgType::Write,
            Body::Commit(_) => MsgType::Commit,
            Body::Truncate(_) => MsgType::Truncate,
            Body::Unlink(_) => MsgType::Unlink,
            Body::Ack(_) => MsgType::Ack,
            Body::Ping => MsgType::Ping,
            Body::Pong(_) => MsgType::Pong,
            Body::List(_) => MsgType::List,
            Body::ListReply(_) => MsgType::ListReply,
            Body::Length(_) => MsgType::Length,
        }
    }
}

/// A complete message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Message<'a> {
    /// Request id chosen by the origin, echoed in every answer.
    pub id: RequestId,
    /// In a request: the instance of the receiving iod that the sender
    /// knows (0 = unknown; only PING may go without); an iod answers any
    /// other value with [`Status::Stale`]. In an answer: the answering
    /// iod's instance. Captured requests thus die with the instance.
    pub instance: u64,
    /// Header flags (none defined: 0).
    pub flags: u16,
    /// Id of the key that signed the message (0 = unauthenticated); set
    /// by [`seal`].
    pub key_id: u32,
    /// Authentication tag (set by [`seal`], checked by [`open`]).
    pub auth_tag: [u8; AUTH_TAG_LEN],
    /// Typed body.
    pub body: Body<'a>,
}

fn put_header(
    w: &mut Writer<'_>,
    t: MsgType,
    flags: u16,
    id: RequestId,
    instance: u64,
) -> Result<()> {
    // The decoder's limits: no unknown flag, no epoch 0.
    if flags != 0 {
        return Err(ProtoError::InvalidField("flags"));
    }
    if id.epoch == 0 {
        return Err(ProtoError::InvalidField("epoch"));
    }
    w.u32_le(MAGIC)?;
    w.u8(VERSION)?;
    w.u8(t as u8)?;
    w.u16_le(flags)?;
    // Key id and tag are written by `seal`.
    w.u32_le(0)?;
    w.u32_le(0)?;
    w.u64_le(id.epoch)?;
    w.u64_le(id.seq)?;
    w.u64_le(instance)?;
    w.zeros(AUTH_TAG_LEN)
}

/// Signs an encoded datagram in place with the signing key of `keys`
/// (key id + tag); in the insecure mode both stay zero.
pub fn seal(keys: &Keys, datagram: &mut [u8]) -> Result<()> {
    if datagram.len() < HEADER_LEN {
        return Err(ProtoError::Truncated);
    }
    let id = keys.signing().map_or(0, |k| k.id());
    // The tag covers the key id.
    datagram[KEY_ID_OFFSET..KEY_ID_OFFSET + 4].copy_from_slice(&id.to_le_bytes());
    let tag = match keys.signing() {
        Some(k) => k
            .tag(datagram, AUTH_TAG_OFFSET)
            .ok_or(ProtoError::Truncated)?,
        None => [0; AUTH_TAG_LEN],
    };
    datagram[AUTH_TAG_OFFSET..AUTH_TAG_OFFSET + AUTH_TAG_LEN].copy_from_slice(&tag);
    Ok(())
}

/// Checks a datagram's tag against `keys`: signed by a held key with a
/// matching tag, or unsigned in the insecure mode (and only then).
pub fn verify(keys: &Keys, datagram: &[u8]) -> Result<()> {
    let id_bytes: [u8; 4] = datagram
        .get(KEY_ID_OFFSET..KEY_ID_OFFSET + 4)
        .and_then(|b| b.try_into().ok())
        .ok_or(ProtoError::Truncated)?;
    let got: [u8; AUTH_TAG_LEN] = datagram
        .get(AUTH_TAG_OFFSET..AUTH_TAG_OFFSET + AUTH_TAG_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or(ProtoError::Truncated)?;
    let id = u32::from_le_bytes(id_bytes);
    if keys.is_insecure() {
        return if id == 0 && got == [0; AUTH_TAG_LEN] {
            Ok(())
        } else {
            Err(ProtoError::UnknownKey)
        };
    }
    if id == 0 {
        return Err(ProtoError::Unauthenticated);
    }
    let key = keys.find(id).ok_or(ProtoError::UnknownKey)?;
    let want = key
        .tag(datagram, AUTH_TAG_OFFSET)
        .ok_or(ProtoError::Truncated)?;
    if tags_equal(&want, &got) {
        Ok(())
    } else {
        Err(ProtoError::BadTag)
    }
}

/// Verifies, then decodes, a received datagram: the only way a party
/// should read one.
pub fn open<'a>(keys: &Keys, datagram: &'a [u8]) -> Result<Message<'a>> {
    // Cheap structural checks first, so garbage costs no MAC.
    if datagram.len() < HEADER_LEN {
        return Err(ProtoError::Truncated);
    }
    if datagram.get(..4) != Some(&MAGIC.to_le_bytes()[..]) {
        return Err(ProtoError::BadMagic);
    }
    verify(keys, datagram)?;
    Message::decode(datagram)
}

/// Re-issues an unanswered or [`Status::Stale`]-refused request: decodes
/// `old` (a datagram we sealed), gives it `id` and the instances
/// `instance_of` knows now (the receiver's in the header, each hop's or
/// chain member's in the body), and seals it into `buf`.
pub fn restamp(
    keys: &Keys,
    old: &[u8],
    id: RequestId,
    to: &SocketAddr,
    instance_of: &dyn Fn(&SocketAddr) -> u64,
    buf: &mut [u8],
) -> Result<usize> {
    let mut m = Message::decode(old)?;
    m.id = id;
    m.instance = instance_of(to);
    let mut hops = [Hop {
        addr: *to,
        local_offset: 0,
        len: 0,
        instance: 0,
    }; MAX_HOPS];
    let mut members = [ChainMember {
        addr: *to,
        instance: 0,
    }; MAX_CHAIN];
    let fix_chain = |c: &mut Chain<'_>, members: &mut [ChainMember; MAX_CHAIN]| -> Result<usize> {
        let n = c.members.len();
        if n > MAX_CHAIN {
            return Err(ProtoError::TooMany("chain members"));
        }
        for (slot, mem) in members.iter_mut().zip(c.members.iter()) {
            *slot = ChainMember {
                addr: mem.addr,
                instance: instance_of(&mem.addr),
            };
        }
        Ok(n)
    };
    let n = match &mut m.body {
        Body::Read(r) => {
            let n = r.routes.len();
            if n > MAX_HOPS {
                return Err(ProtoError::TooMany("hops"));
            }
            for (slot, h) in hops.iter_mut().zip(r.routes.iter()) {
                *slot = Hop {
                    instance: instance_of(&h.addr),
                    ..h
                };
            }
            n
        }
        Body::Write(w) => fix_chain(&mut w.chain, &mut members)?,
        Body::Commit(c) => fix_chain(&mut c.chain, &mut members)?,
        Body::Truncate(t) => fix_chain(&mut t.chain, &mut members)?,
        _ => 0,
    };
    match &mut m.body {
        Body::Read(r) => r.routes = List::Items(&hops[..n]),
        Body::Write(w) => w.chain.members = List::Items(&members[..n]),
        Body::Commit(c) => c.chain.members = List::Items(&members[..n]),
        Body::Truncate(t) => t.chain.members = List::Items(&members[..n]),
        _ => {}
    }
    let len = m.encode(buf)?;
    seal(keys, buf.get_mut(..len).ok_or(ProtoError::BufferTooSmall)?)?;
    Ok(len)
}

fn encode_read_fixed(
    w: &mut Writer<'_>,
    key: &FileKey,
    local_offset: u64,
    len: u32,
    routes: &List<'_, Hop>,
    reply: &ReplySpec<'_>,
) -> Result<()> {
    if routes.len() > MAX_HOPS {
        return Err(ProtoError::TooMany("hops"));
    }
    w.put(&key.to_bytes())?;
    w.u64_le(local_offset)?;
    w.u32_le(len)?;
    w.u8(routes.len() as u8)?;
    match reply {
        ReplySpec::Direct { pad, .. } => {
            w.u8(1)?;
            w.u8(if *pad { REPLY_FLAG_PAD } else { 0 })?;
        }
        ReplySpec::Relay { .. } => {
            w.u8(2)?;
            w.u8(0)?;
        }
    }
    w.u8(0)?;
    routes.encode(w)?;
    match reply {
        ReplySpec::Direct {
            origin,
            client,
            source,
            header,
            ..
        } => {
            if header.len() > MAX_REPLY_HEADER {
                return Err(ProtoError::TooMany("reply header bytes"));
            }
            put_addr(w, origin)?;
            put_addr(w, client)?;
            put_addr(w, source)?;
            w.u16_le(header.len() as u16)?;
            w.u16_le(0)?;
            w.put(header)
        }
        ReplySpec::Relay { origin } => put_addr(w, origin),
    }
}

fn put_data(w: &mut Writer<'_>, data: &[u8]) -> Result<()> {
    if data.len() > MAX_DATA_PER_MSG {
        return Err(ProtoError::TooMany("data bytes"));
    }
    w.u32_le(data.len() as u32)?;
    w.put(data)
}

fn get_data<'a>(r: &mut Reader<'a>) -> Result<&'a [u8]> {
    let n = r.u32_le()? as usize;
    if n > MAX_DATA_PER_MSG {
        return Err(ProtoError::TooMany("data bytes"));
    }
    r.bytes(n)
}

fn get_key(r: &mut Reader<'_>) -> Result<FileKey> {
    FileKey::from_bytes(r.bytes(FILE_KEY_LEN)?)
}

impl<'a> Message<'a> {
    /// A message to (or from) iod instance `instance`, unsigned.
    pub fn new(id: RequestId, instance: u64, body: Body<'a>) -> Self {
        Message {
            id,
            instance,
            flags: 0,
            key_id: 0,
            auth_tag: [0; AUTH_TAG_LEN],
            body,
        }
    }

    /// Encode into `buf`, returning the length; unsigned (key id and tag
    /// zero). Enforces the same limits as the decoder.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf);
        put_header(
            &mut w,
            self.body.msg_type(),
            self.flags,
            self.id,
            self.instance,
        )?;
        match &self.body {
            Body::Read(rd) => {
                if rd.total_len()? > MAX_DATA_PER_MSG {
                    return Err(ProtoError::TooMany("data bytes"));
                }
                rd.local_offset
                    .checked_add(rd.len as u64)
                    .ok_or(ProtoError::Overflow)?;
                encode_read_fixed(
                    &mut w,
                    &rd.key,
                    rd.local_offset,
                    rd.len,
                    &rd.routes,
                    &rd.reply,
                )?;
                put_data(&mut w, rd.gathered)?;
            }
            Body::ReadReply(rr) => {
                w.u8(rr.status as u8)?;
                w.zeros(3)?;
                put_data(&mut w, rr.data)?;
            }
            Body::Write(wr) => {
                wr.local_offset
                    .checked_add(wr.data.len() as u64)
                    .ok_or(ProtoError::Overflow)?;
                w.put(&wr.key.to_bytes())?;
                w.u64_le(wr.local_offset)?;
                wr.chain.encode(&mut w)?;
                put_data(&mut w, wr.data)?;
            }
            Body::Commit(c) => {
                w.put(&c.key.to_bytes())?;
                c.chain.encode(&mut w)?;
            }
            Body::Truncate(t) => {
                w.put(&t.key.to_bytes())?;
                w.u64_le(t.new_len)?;
                w.u8(u8::from(t.extend_only))?;
                w.zeros(3)?;
                w.u32_le(t.layout_epoch)?;
                t.chain.encode(&mut w)?;
            }
            Body::Unlink(u) => {
                if u.keys.len() > MAX_UNLINK_KEYS {
                    return Err(ProtoError::TooMany("unlink keys"));
                }
                w.u16_le(u.keys.len() as u16)?;
                w.u16_le(0)?;
                u.keys.encode(&mut w)?;
            }
            Body::Ack(a) => {
                w.u8(a.op as u8)?;
                w.u8(a.status as u8)?;
                w.u16_le(0)?;
                w.u64_le(a.value)?;
            }
            Body::Ping => w.zeros(PING_PAD)?,
            Body::Length(key) => w.put(&key.to_bytes())?,
            Body::Pong(s) => {
                for v in s.fields() {
                    w.u64_le(v)?;
                }
            }
            Body::List(l) => {
                if l.max == 0 || l.max as usize > MAX_LIST_ENTRIES {
                    return Err(ProtoError::InvalidField("list max"));
                }
                w.u8(if l.after.is_some() {
                    LIST_FLAG_AFTER
                } else {
                    0
                })?;
                w.u8(0)?;
                w.u16_le(l.max)?;
                w.put(&l.after.unwrap_or_default().to_bytes())?;
            }
            Body::ListReply(l) => {
                if l.entries.len() > MAX_LIST_ENTRIES {
                    return Err(ProtoError::TooMany("list entries"));
                }
                if l.status != Status::Ok && (l.more || !l.entries.is_empty()) {
                    return Err(ProtoError::InvalidField("list status"));
                }
                check_list_order(&l.entries)?;
                w.u8(l.status as u8)?;
                w.u8(l.more as u8)?;
                w.u16_le(l.entries.len() as u16)?;
                l.entries.encode(&mut w)?;
            }
        }
        let n = w.position();
        if n > MAX_DATAGRAM {
            return Err(ProtoError::TooMany("datagram bytes"));
        }
        Ok(n)
    }

    /// Encode into `buf` and [`seal`] with `keys`.
    pub fn seal(&self, keys: &Keys, buf: &mut [u8]) -> Result<usize> {
        let n = self.encode(buf)?;
        seal(keys, buf.get_mut(..n).ok_or(ProtoError::BufferTooSmall)?)?;
        Ok(n)
    }

    /// Decode one datagram; the whole slice must be exactly one message.
    pub fn decode(buf: &'a [u8]) -> Result<Self> {
        if buf.len() > MAX_DATAGRAM {
            return Err(ProtoError::TooMany("datagram bytes"));
        }
        let mut r = Reader::new(buf);
        if r.u32_le()? != MAGIC {
            return Err(ProtoError::BadMagic);
        }
        if r.u8()? != VERSION {
            return Err(ProtoError::BadVersion);
        }
        let t = MsgType::from_u8(r.u8()?)?;
        let flags = r.u16_le()?;
        if flags != 0 {
            return Err(ProtoError::InvalidField("flags"));
        }
        let key_id = r.u32_le()?;
        if r.u32_le()? != 0 {
            return Err(ProtoError::InvalidField("reserved"));
        }
        let id = RequestId {
            epoch: r.u64_le()?,
            seq: r.u64_le()?,
        };
        if id.epoch == 0 {
            return Err(ProtoError::InvalidField("epoch"));
        }
        let instance = r.u64_le()?;
        let auth_tag: [u8; AUTH_TAG_LEN] = r.array()?;
        let body = match t {
            MsgType::Read => Body::Read(decode_read(&mut r)?),
            MsgType::ReadReply => {
                let status = Status::from_u8(r.u8()?)?;
                if r.array::<3>()? != [0; 3] {
                    return Err(ProtoError::InvalidField("reserved"));
                }
                Body::ReadReply(ReadReply {
                    status,
                    data: get_data(&mut r)?,
                })
            }
            MsgType::Write => {
                let key = get_key(&mut r)?;
                let local_offset = r.u64_le()?;
                let chain = Chain::decode(&mut r)?;
                let data = get_data(&mut r)?;
                local_offset
                    .checked_add(data.len() as u64)
                    .ok_or(ProtoError::Overflow)?;
                Body::Write(Write {
                    key,
                    local_offset,
                    chain,
                    data,
                })
            }
            MsgType::Commit => {
                let key = get_key(&mut r)?;
                Body::Commit(Commit {
                    key,
                    chain: Chain::decode(&mut r)?,
                })
            }
            MsgType::Truncate => {
                let key = get_key(&mut r)?;
                let new_len = r.u64_le()?;
                let extend_only = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(ProtoError::InvalidField("truncate flags")),
                };
                if r.bytes(3)?.iter().any(|b| *b != 0) {
                    return Err(ProtoError::InvalidField("reserved"));
                }
                let layout_epoch = r.u32_le()?;
                Body::Truncate(Truncate {
                    key,
                    new_len,
                    extend_only,
                    layout_epoch,
                    chain: Chain::decode(&mut r)?,
                })
            }
            MsgType::Unlink => {
                let n = r.u16_le()? as usize;
                if r.u16_le()? != 0 {
                    return Err(ProtoError::InvalidField("reserved"));
                }
                if n > MAX_UNLINK_KEYS {
                    return Err(ProtoError::TooMany("unlink keys"));
                }
                Body::Unlink(Unlink {
                    keys: List::decode(&mut r, n)?,
                })
            }
            MsgType::Ack => {
                let op = MsgType::from_u8(r.u8()?)?;
                let status = Status::from_u8(r.u8()?)?;
                if r.u16_le()? != 0 {
                    return Err(ProtoError::InvalidField("reserved"));
                }
                Body::Ack(Ack {
                    op,
                    status,
                    value: r.u64_le()?,
                })
            }
            MsgType::Ping => {
                if r.bytes(PING_PAD)?.iter().any(|b| *b != 0) {
                    return Err(ProtoError::InvalidField("ping padding"));
                }
                Body::Ping
            }
            MsgType::Pong => Body::Pong(IodStats {
                uptime_s: r.u64_le()?,
                requests: r.u64_le()?,
                bytes_read: r.u64_le()?,
                bytes_written: r.u64_le()?,
                errors: r.u64_le()?,
                malformed: r.u64_le()?,
                drops: r.u64_le()?,
                in_flight: r.u64_le()?,
                bad_auth: r.u64_le()?,
                replays: r.u64_le()?,
                refused: r.u64_le()?,
                space_total: r.u64_le()?,
                space_free: r.u64_le()?,
                space_avail: r.u64_le()?,
            }),
            MsgType::List => {
                let fl = r.u8()?;
                if fl & !LIST_FLAG_AFTER != 0 || r.u8()? != 0 {
                    return Err(ProtoError::InvalidField("list flags"));
                }
                let max = r.u16_le()?;
                if max == 0 || max as usize > MAX_LIST_ENTRIES {
                    return Err(ProtoError::InvalidField("list max"));
                }
                let key = get_key(&mut r)?;
                let after = if fl & LIST_FLAG_AFTER != 0 {
                    Some(key)
                } else if key == FileKey::default() {
                    None
                } else {
                    return Err(ProtoError::InvalidField("list cursor"));
                };
                Body::List(ListRequest { after, max })
            }
            MsgType::Length => Body::Length(get_key(&mut r)?),
            MsgType::ListReply => {
                let status = Status::from_u8(r.u8()?)?;
                let more = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(ProtoError::InvalidField("list more")),
                };
                let n = r.u16_le()? as usize;
                if n > MAX_LIST_ENTRIES {
                    return Err(ProtoError::TooMany("list entries"));
                }
                if status != Status::Ok && (more || n != 0) {
                    return Err(ProtoError::InvalidField("list status"));
                }
                let entries = List::decode(&mut r, n)?;
                check_list_order(&entries)?;
                Body::ListReply(ListReply {
                    status,
                    more,
                    entries,
                })
            }
        };
        r.finish()?;
        Ok(Message {
            id,
            instance,
            flags,
            key_id,
            auth_tag,
            body,
        })
    }
}

/// Entries of a LIST_REPLY must be strictly increasing in listing order.
fn check_list_order(entries: &List<'_, ListEntry>) -> Result<()> {
    let mut prev: Option<FileKey> = None;
    for e in entries.iter() {
        if let Some(p) = prev {
            if p.list_cmp(&e.key) != core::cmp::Ordering::Less {
                return Err(ProtoError::InvalidField("list order"));
            }
        }
        prev = Some(e.key);
    }
    Ok(())
}

fn decode_read<'a>(r: &mut Reader<'a>) -> Result<Read<'a>> {
    let key = get_key(r)?;
    let local_offset = r.u64_le()?;
    let len = r.u32_le()?;
    local_offset
        .checked_add(len as u64)
        .ok_or(ProtoError::Overflow)?;
    let nroutes = r.u8()? as usize;
    let kind = r.u8()?;
    let rflags = r.u8()?;
    if r.u8()? != 0 {
        return Err(ProtoError::InvalidField("reserved"));
    }
    if nroutes > MAX_HOPS {
        return Err(ProtoError::TooMany("hops"));
    }
    let routes = List::decode(r, nroutes)?;
    let reply = match kind {
        1 => {
            if rflags & !REPLY_FLAG_PAD != 0 {
                return Err(ProtoError::InvalidField("reply flags"));
            }
            let origin = get_addr(r)?;
            let client = get_addr(r)?;
            let source = get_addr(r)?;
            let hl = r.u16_le()? as usize;
            if r.u16_le()? != 0 {
                return Err(ProtoError::InvalidField("reserved"));
            }
            if hl > MAX_REPLY_HEADER {
                return Err(ProtoError::TooMany("reply header bytes"));
            }
            ReplySpec::Direct {
                origin,
                client,
                source,
                header: r.bytes(hl)?,
                pad: rflags & REPLY_FLAG_PAD != 0,
            }
        }
        2 => {
            if rflags != 0 {
                return Err(ProtoError::InvalidField("reply flags"));
            }
            ReplySpec::Relay {
                origin: get_addr(r)?,
            }
        }
        _ => return Err(ProtoError::InvalidField("reply kind")),
    };
    let gathered = get_data(r)?;
    let rd = Read {
        key,
        local_offset,
        len,
        routes,
        reply,
        gathered,
    };
    if rd.total_len()? > MAX_DATA_PER_MSG {
        return Err(ProtoError::TooMany("data bytes"));
    }
    Ok(rd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_answers() {
        let answers = [
            MsgType::Ack,
            MsgType::ReadReply,
            MsgType::Pong,
            MsgType::ListReply,
        ];
        let mut n = 0;
        for v in 0..=u8::MAX {
            let Ok(t) = MsgType::from_u8(v) else { continue };
            n += 1;
            assert_eq!(t.is_answer(), answers.contains(&t), "{t:?}");
        }
        assert_eq!(n, 12, "every type judged");
    }

    fn a4(p: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), p))
    }
    fn a6(p: u16) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, p, 0, 3))
    }
    fn rid(seq: u64) -> RequestId {
        RequestId { epoch: 0xfeed, seq }
    }
    fn mem(addr: SocketAddr) -> ChainMember {
        ChainMember {
            addr,
            instance: 0x1111,
        }
    }

    fn rt(m: &Message<'_>) {
        let mut b = [0u8; MAX_DATAGRAM];
        let n = m.encode(&mut b).unwrap();
        let d = Message::decode(&b[..n]).unwrap();
        assert_eq!(&d, m);
        let mut b2 = [0u8; MAX_DATAGRAM];
        let n2 = d.encode(&mut b2).unwrap();
        assert_eq!(&b[..n], &b2[..n2]);
        // every strict prefix fails, one extra byte fails
        for k in 0..n {
            assert!(Message::decode(&b[..k]).is_err(), "prefix {k}");
        }
        assert_eq!(Message::decode(&b[..n + 1]), Err(ProtoError::TrailingBytes));
        let mut x = b;
        x[0] ^= 1;
        assert_eq!(Message::decode(&x[..n]), Err(ProtoError::BadMagic));
        let mut x = b;
        x[4] = 1;
        assert_eq!(Message::decode(&x[..n]), Err(ProtoError::BadVersion));
        let mut x = b;
        x[5] = 99;
        assert_eq!(Message::decode(&x[..n]), Err(ProtoError::BadType));
    }

    const KEY: FileKey = FileKey {
        export: 1,
        inode: 2,
        seed: 3,
    };

    #[test]
    fn round_trips() {
        let hops = [
            Hop {
                addr: a4(7001),
                local_offset: 0,
                len: 4096,
                instance: 42,
            },
            Hop {
                addr: a6(7002),
                local_offset: 65536,
                len: 100,
                instance: 42,
            },
        ];
        let hdr = [0xabu8; 128];
        rt(&Message::new(
            rid(7),
            0,
            Body::Read(Read {
                key: KEY,
                local_offset: 61440,
                len: 4096,
                routes: List::Items(&hops),
                reply: ReplySpec::Direct {
                    origin: a4(900),
                    client: a4(800),
                    source: a4(2049),
                    header: &hdr,
                    pad: true,
                },
                gathered: b"xyz",
            }),
        ));
        rt(&Message::new(
            rid(8),
            0,
            Body::Read(Read {
                key: KEY,
                local_offset: 0,
                len: 10,
                routes: List::Items(&[]),
                reply: ReplySpec::Relay { origin: a6(9) },
                gathered: &[],
            }),
        ));
        rt(&Message::new(
            rid(9),
            0,
            Body::ReadReply(ReadReply {
                status: Status::Io,
                data: b"hello",
            }),
        ));
        let members = [mem(a4(1)), mem(a6(2))];
        let chain = Chain {
            origin: a4(3),
            members: List::Items(&members),
        };
        rt(&Message::new(
            rid(10),
            0,
            Body::Write(Write {
                key: KEY,
                local_offset: 5,
                chain,
                data: &[1; 1000],
            }),
        ));
        rt(&Message::new(
            rid(11),
            0,
            Body::Commit(Commit { key: KEY, chain }),
        ));
        rt(&Message::new(
            rid(12),
            0,
            Body::Truncate(Truncate {
                key: KEY,
                new_len: 77,
                extend_only: true,
                layout_epoch: 0x0102_0304,
                chain,
            }),
        ));
        rt(&Message::new(rid(12), 0, Body::Length(KEY)));
        let keys = [KEY, FileKey::new(4, 5, 6)];
        rt(&Message::new(
            rid(13),
            0,
            Body::Unlink(Unlink {
                keys: List::Items(&keys),
            }),
        ));
        rt(&Message::new(
            rid(14),
            0,
            Body::Ack(Ack {
                op: MsgType::Write,
                status: Status::Ok,
                value: 1000,
            }),
        ));
        rt(&Message::new(rid(15), 0, Body::Ping));
        let mut m = Message::new(
            rid(16),
            0,
            Body::Pong(IodStats {
                uptime_s: 1,
                requests: 2,
                bytes_read: 3,
                bytes_written: 4,
                errors: 5,
                malformed: 6,
                drops: 7,
                in_flight: 8,
                bad_auth: 9,
                replays: 10,
                refused: 11,
                space_total: 12,
                space_free: 13,
                space_avail: 14,
            }),
        );
        m.instance = 77;
        rt(&m);
    }

    fn keys(id: u32, b: u8) -> Keys {
        Keys::new(super::super::auth::Key::new(id, [b; 32]).unwrap(), None).unwrap()
    }

    #[test]
    fn seal_and_open() {
        let k1 = keys(1, 0x11);
        let mut b = [0u8; 512];
        let msg = Message::new(rid(3), 99, Body::Ping);
        let n = msg.seal(&k1, &mut b).unwrap();
        let got = open(&k1, &b[..n]).unwrap();
        assert_eq!((got.id, got.instance, got.key_id), (rid(3), 99, 1));
        assert_eq!(got.body, Body::Ping);
        // every single-bit flip is refused, the tag's own bits included
        for i in 0..n {
            let mut x = b;
            x[i] ^= 0x20;
            assert!(open(&k1, &x[..n]).is_err(), "flip at {i}");
        }
        // another key with the same id, an unknown id, unsigned, insecure
        assert_eq!(open(&keys(1, 0x12), &b[..n]), Err(ProtoError::BadTag));
        assert_eq!(open(&keys(2, 0x11), &b[..n]), Err(ProtoError::UnknownKey));
        assert_eq!(
            open(&Keys::insecure(), &b[..n]),
            Err(ProtoError::UnknownKey)
        );
        let n0 = msg.encode(&mut b).unwrap();
        assert_eq!(open(&k1, &b[..n0]), Err(ProtoError::Unauthenticated));
        assert!(open(&Keys::insecure(), &b[..n0]).is_ok());
        let n1 = msg.seal(&Keys::insecure(), &mut b).unwrap();
        assert!(open(&Keys::insecure(), &b[..n1]).is_ok());
        // rotation: signed with the new key, accepted by a party that
        // signs with the old one and accepts the new one
        let old = super::super::auth::Key::new(1, [0x11; 32]).unwrap();
        let new = super::super::auth::Key::new(2, [0x22; 32]).unwrap();
        let during = Keys::new(old, Some(new)).unwrap();
        let after = Keys::new(new, Some(old)).unwrap();
        let n = msg.seal(&after, &mut b).unwrap();
        assert!(open(&during, &b[..n]).is_ok());
        assert!(open(&k1, &b[..n]).is_err());
        let n = msg.seal(&during, &mut b).unwrap();
        assert!(open(&after, &b[..n]).is_ok());
    }

    #[test]
    fn restamp_updates_every_instance() {
        let k = keys(7, 0x77);
        let members = [mem(a4(2)), mem(a4(3))];
        let msg = Message::new(
            rid(1),
            5,
            Body::Write(Write {
                key: KEY,
                local_offset: 0,
                chain: Chain {
                    origin: a4(1),
                    members: List::Items(&members),
                },
                data: b"abc",
            }),
        );
        let mut old = [0u8; 1024];
        let n = msg.seal(&k, &mut old).unwrap();
        let mut new = [0u8; 1024];
        let inst = |a: &SocketAddr| u64::from(a.port()) * 100;
        let n2 = restamp(&k, &old[..n], rid(2), &a4(9), &inst, &mut new).unwrap();
        let got = open(&k, &new[..n2]).unwrap();
        assert_eq!((got.id, got.instance), (rid(2), 900));
        let Body::Write(w) = got.body else {
            panic!("not a write")
        };
        let i: std::vec::Vec<u64> = w.chain.members.iter().map(|m| m.instance).collect();
        assert_eq!(i, [200, 300]);
        assert_eq!(w.data, b"abc");
        let hops = [Hop {
            addr: a4(4),
            local_offset: 0,
            len: 1,
            instance: 0,
        }];
        let rd = Message::new(
            rid(1),
            0,
            Body::Read(Read {
                key: KEY,
                local_offset: 0,
                len: 1,
                routes: List::Items(&hops),
                reply: ReplySpec::Relay { origin: a4(1) },
                gathered: &[],
            }),
        );
        let n = rd.seal(&k, &mut old).unwrap();
        let n2 = restamp(&k, &old[..n], rid(3), &a4(8), &inst, &mut new).unwrap();
        let Body::Read(r) = open(&k, &new[..n2]).unwrap().body else {
            panic!("not a read")
        };
        assert_eq!(r.routes.first().map(|h| h.instance), Some(400));
    }

    #[test]
    fn limits() {
        let mut b = [0u8; MAX_DATAGRAM];
        let big = [0u8; MAX_DATA_PER_MSG + 1];
        let chain = Chain {
            origin: a4(3),
            members: List::Items(&[]),
        };
        let w = Message::new(
            rid(1),
            0,
            Body::Write(Write {
                key: KEY,
                local_offset: 0,
                chain,
                data: &big,
            }),
        );
        assert_eq!(w.encode(&mut b), Err(ProtoError::TooMany("data bytes")));
        let w = Message::new(
            rid(1),
            0,
            Body::Write(Write {
                key: KEY,
                local_offset: u64::MAX,
                chain,
                data: &big[..2],
            }),
        );
        assert_eq!(w.encode(&mut b), Err(ProtoError::Overflow));
        let members = [mem(a4(1)); MAX_CHAIN + 1];
        let chain = Chain {
            origin: a4(3),
            members: List::Items(&members),
        };
        assert!(
            Message::new(rid(1), 0, Body::Commit(Commit { key: KEY, chain }))
                .encode(&mut b)
                .is_err()
        );
        let hops = [Hop {
            addr: a4(1),
            local_offset: 0,
            len: 1,
            instance: 0,
        }; MAX_HOPS + 1];
        let r = Read {
            key: KEY,
            local_offset: 0,
            len: 1,
            routes: List::Items(&hops),
            reply: ReplySpec::Relay { origin: a4(1) },
            gathered: &[],
        };
        assert!(Message::new(rid(1), 0, Body::Read(r))
            .encode(&mut b)
            .is_err());
        let r = Read {
            key: KEY,
            local_offset: 0,
            len: MAX_DATA_PER_MSG as u32,
            routes: List::Items(&[]),
            reply: ReplySpec::Relay { origin: a4(1) },
            gathered: b"x",
        };
        assert!(Message::new(rid(1), 0, Body::Read(r))
            .encode(&mut b)
            .is_err());
        let hdr = [0u8; MAX_REPLY_HEADER + 1];
        let r = Read {
            key: KEY,
            local_offset: 0,
            len: 1,
            routes: List::Items(&[]),
            reply: ReplySpec::Direct {
                origin: a4(3),
                client: a4(1),
                source: a4(2),
                header: &hdr,
                pad: false,
            },
            gathered: &[],
        };
        assert!(Message::new(rid(1), 0, Body::Read(r))
            .encode(&mut b)
            .is_err());
        assert_eq!(
            Message::new(rid(1), 0, Body::Ping).encode(&mut [0u8; 31]),
            Err(ProtoError::BufferTooSmall)
        );
        assert!(Message::decode(&b).is_err());
        // unknown header flags
        let n = Message::new(rid(1), 0, Body::Ping).encode(&mut b).unwrap();
        b[6] = 1;
        assert_eq!(
            Message::decode(&b[..n]),
            Err(ProtoError::InvalidField("flags"))
        );
    }

    #[test]
    fn bad_fields() {
        let mut b = [0u8; 256];
        let n = Message::new(
            rid(1),
            0,
            Body::Ack(Ack {
                op: MsgType::Commit,
                status: Status::Ok,
                value: 0,
            }),
        )
        .encode(&mut b)
        .unwrap();
        let mut x = b;
        x[HEADER_LEN + 1] = 200;
        assert_eq!(
            Message::decode(&x[..n]),
            Err(ProtoError::InvalidField("status"))
        );
        let mut x = b;
        x[HEADER_LEN] = 0;
        assert_eq!(Message::decode(&x[..n]), Err(ProtoError::BadType));
        // bad address family in a chain
        let chain = Chain {
            origin: a4(3),
            members: List::Items(&[]),
        };
        let n = Message::new(rid(1), 0, Body::Commit(Commit { key: KEY, chain }))
            .encode(&mut b)
            .unwrap();
        let mut x = b;
        x[HEADER_LEN + FILE_KEY_LEN] = 5;
        assert_eq!(
            Message::decode(&x[..n]),
            Err(ProtoError::InvalidField("address family"))
        );
        // garbage in the unused part of an IPv4 address
        let mut x = b;
        x[HEADER_LEN + FILE_KEY_LEN + 23] = 1;
        assert_eq!(
            Message::decode(&x[..n]),
            Err(ProtoError::InvalidField("address"))
        );
        // chain count too large
        let mut x = b;
        x[HEADER_LEN + FILE_KEY_LEN + ADDR_LEN] = 9;
        assert_eq!(
            Message::decode(&x[..n]),
            Err(ProtoError::TooMany("chain members"))
        );
    }

    fn sorted_entries(n: usize) -> std::vec::Vec<ListEntry> {
        let mut v: std::vec::Vec<ListEntry> = (0..n as u64)
            .map(|i| ListEntry {
                key: FileKey::new(7, i, i * 31),
                len: i * 1000,
                mtime_s: 1_700_000_000 + i,
            })
            .collect();
        v.sort_by(|a, b| a.key.list_cmp(&b.key));
        v
    }

    #[test]
    fn list_round_trips() {
        rt(&Message::new(
            rid(20),
            0,
            Body::List(ListRequest {
                after: None,
                max: 1,
            }),
        ));
        rt(&Message::new(
            rid(21),
            0,
            Body::List(ListRequest {
                after: Some(KEY),
                max: MAX_LIST_ENTRIES as u16,
            }),
        ));
        // the all-zero key is a valid cursor too (flag set)
        rt(&Message::new(
            rid(22),
            0,
            Body::List(ListRequest {
                after: Some(FileKey::default()),
                max: 5,
            }),
        ));
        for n in [0, 1, 2, 17] {
            let e = sorted_entries(n);
            rt(&Message::new(
                rid(23),
                0,
                Body::ListReply(ListReply {
                    status: Status::Ok,
                    more: n == 17,
                    entries: List::Items(&e),
                }),
            ));
        }
        rt(&Message::new(
            rid(24),
            0,
            Body::ListReply(ListReply {
                status: Status::Io,
                more: false,
                entries: List::Items(&[]),
            }),
        ));
        // the largest page fits one datagram
        let e = sorted_entries(MAX_LIST_ENTRIES);
        let m = Message::new(
            rid(25),
            0,
            Body::ListReply(ListReply {
                status: Status::Ok,
                more: true,
                entries: List::Items(&e),
            }),
        );
        let mut b = [0u8; MAX_DATAGRAM];
        let n = m.encode(&mut b).unwrap();
        assert_eq!(n, HEADER_LEN + 4 + MAX_LIST_ENTRIES * LIST_ENTRY_LEN);
        assert_eq!(Message::decode(&b[..n]).unwrap(), m);
    }

    #[test]
    fn list_errors() {
        let mut b = [0u8; MAX_DATAGRAM];
        for max in [0u16, MAX_LIST_ENTRIES as u16 + 1] {
            let m = Message::new(rid(1), 0, Body::List(ListRequest { after: None, max }));
            assert_eq!(m.encode(&mut b), Err(ProtoError::InvalidField("list max")));
        }
        let n = Message::new(
            rid(1),
            0,
            Body::List(ListRequest {
                after: None,
                max: 3,
            }),
        )
        .encode(&mut b)
        .unwrap();
        let mut x = b;
        x[HEADER_LEN] = 2; // unknown flag
        assert_eq!(
            Message::decode(&x[..n]),
            Err(ProtoError::InvalidField("list flags"))
        );
        let mut x = b;
        x[HEADER_LEN + 4] = 1; // key bytes without the cursor flag
        assert_eq!(
            Message::decode(&x[..n]),
            Err(ProtoError::InvalidField("list cursor"))
        );
        let mut x = b;
        x[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(
            Message::decode(&x[..n]),
            Err(ProtoError::InvalidField("list max"))
        );
        // too many entries
        let e = sorted_entries(MAX_LIST_ENTRIES + 1);
        let m = Message::new(
            rid(2),
            0,
            Body::ListReply(ListReply {
                status: Status::Ok,
                more: false,
                entries: List::Items(&e),
            }),
        );
        assert_eq!(m.encode(&mut b), Err(ProtoError::TooMany("list entries")));
        // out of order / duplicate entries
        let mut e = sorted_entries(3);
        e.swap(0, 2);
        let m = Message::new(
            rid(3),
            0,
            Body::ListReply(ListReply {
                status: Status::Ok,
                more: false,
                entries: List::Items(&e),
            }),
        );
        assert_eq!(
            m.encode(&mut b),
            Err(ProtoError::InvalidField("list order"))
        );
        let e = sorted_entries(2);
        let n = Message::new(
            rid(4),
            0,
            Body::ListReply(ListReply {
                status: Status::Ok,
                more: false,
                entries: List::Items(&e),
            }),
        )
        .encode(&mut b)
        .unwrap();
        let mut x = b;
        let first = HEADER_LEN + 4;
        x.copy_within(first..first + LIST_ENTRY_LEN, first + LIST_ENTRY_LEN);
        assert_eq!(
            Message::decode(&x[..n]),
            Err(ProtoError::InvalidField("list order"))
        );
        let mut x = b;
        x[HEADER_LEN + 1] = 2;
        assert_eq!(
            Message::decode(&x[..n]),
            Err(ProtoError::InvalidField("list more"))
        );
        let mut x = b;
        x[HEADER_LEN] = Status::Io as u8; // error with entries
        assert_eq!(
            Message::decode(&x[..n]),
            Err(ProtoError::InvalidField("list status"))
        );
        let mut x = b;
        x[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&2000u16.to_le_bytes());
        assert_eq!(
            Message::decode(&x[..n]),
            Err(ProtoError::TooMany("list entries"))
        );
    }

    #[test]
    fn forward() {
        let hops = [
            Hop {
                addr: a4(7001),
                local_offset: 100,
                len: 3,
                instance: 42,
            },
            Hop {
                addr: a4(7002),
                local_offset: 200,
                len: 2,
                instance: 42,
            },
        ];
        let r = Read {
            key: KEY,
            local_offset: 0,
            len: 4,
            routes: List::Items(&hops),
            reply: ReplySpec::Relay { origin: a4(1) },
            gathered: b"ab",
        };
        let mut b = [0u8; 1024];
        let (hop, n) = r.encode_forward_prefix(rid(5), 4, &mut b).unwrap();
        assert_eq!(hop, hops[0]);
        b[n..n + 4].copy_from_slice(b"cdef");
        let m = Message::decode(&b[..n + 4]).unwrap();
        let Body::Read(f) = m.body else {
            panic!("not a read")
        };
        assert_eq!(f.local_offset, 100);
        assert_eq!(f.len, 3);
        assert_eq!(f.gathered, b"abcdef");
        assert_eq!(f.routes.len(), 1);
        assert_eq!(f.routes.first(), Some(hops[1]));
        assert_eq!(f.total_len(), Ok(11));
        let last = Read {
            routes: List::Items(&[]),
            ..r
        };
        assert!(last.encode_forward_prefix(rid(5), 4, &mut b).is_err());
        let n = ReadReply::encode_prefix(rid(3), 9, Status::Ok, 2, &mut b).unwrap();
        b[n..n + 2].copy_from_slice(b"zz");
        let m = Message::decode(&b[..n + 2]).unwrap();
        assert_eq!(
            m.body,
            Body::ReadReply(ReadReply {
                status: Status::Ok,
                data: b"zz"
            })
        );
        let c = Chain {
            origin: a4(1),
            members: List::Items(&[mem(a4(2)), mem(a4(3))]),
        };
        let (n1, c1) = c.next().unwrap();
        assert_eq!(n1.addr, a4(2));
        let (n2, c2) = c1.next().unwrap();
        assert_eq!(n2.addr, a4(3));
        assert!(c2.next().is_none());
    }
}
