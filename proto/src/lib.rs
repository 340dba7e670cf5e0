// SPDX-License-Identifier: GPL-2.0
//! # nfsp_proto — everything two nfsp parties must agree on
//!
//! `no_std`, no dependencies, no allocation, checked arithmetic, borrowed
//! slices; every decoder rejects malformed input with a [`ProtoError`] and
//! never panics. The Linux kernel module includes these files directly
//! (`#[path = "../proto/src/xxx.rs"] mod xxx;` inside a `mod proto { }`),
//! so each file is one module and refers to its siblings as
//! `super::other::Item`.
//!
//! ## Modules and formats
//!
//! * [`auth`] — BLAKE2s-128 keyed MAC (RFC 7693), the cluster keys (a
//!   signing slot and an accepted-only slot, for rotation) and the key
//!   file format.
//! * [`crc32c`] — CRC32C (Castagnoli), used by every checksummed format.
//! * [`metafile`] — the meta-file header (kept by the kernel module in the
//!   `trusted.nfsp` xattr of a sparse meta-file whose size is the real size):
//!   48 bytes little-endian: `b"NFSPMETA"`, version u16 = 1, flags u16 = 0,
//!   block size u32 (multiple of 4096, <= 1 MiB, default 64 KiB), stripe
//!   width u32 (>= 1), first viod u32 (< width), seed u64, real size u64,
//!   reserved u32 = 0, CRC32C u32 of bytes 0..44. Wrong magic, newer
//!   version, bad CRC, truncation or nonsense fields are errors.
//! * [`stripe`] — the striping map. Block `n` = bytes `[n*B, (n+1)*B)`
//!   lives on viod `(first_viod + n % W) % W` at local offset
//!   `(n / W) * B + offset_in_block`. [`stripe::StripeLayout::pieces`]
//!   iterates the per-block pieces of a byte range (never merged across
//!   blocks); [`stripe::StripeLayout::local_len`] gives the local length a
//!   viod keeps for a real size (TRUNCATE).
//! * [`filekey`] — `(export, inode, seed)` names a file's data on every
//!   iod. Local path `ab/cd/EEEEEEEEEEEEEEEE-IIIIIIIIIIIIIIII-SSSSSSSSSSSSSSSS`
//!   (lowercase hex), `ab`/`cd` = bytes 0/1 of
//!   `crc32c(export_le ++ inode_le ++ seed_le)` read little-endian.
//! * [`wire`] — meta-server ↔ iod UDP messages (little-endian), described
//!   below.
//! * [`nfs3`] — the ONC-RPC + NFSv3 READ reply prefix (XDR, big-endian)
//!   that the meta-server prebuilds for a direct-mode READ, and a READ call
//!   codec.
//! * [`nfs3_error`] — the 32-byte READ reply that refuses a direct-mode
//!   READ (NFS3ERR_JUKEBOX) when no iod can serve it.
//! * [`unlink`] — 64-byte deletion records read by `unlinkd` from
//!   `/dev/nfsp_unlink` (magic `NFUL`, version, seq, key, real size, layout,
//!   CRC32C) and the 24-byte acknowledgement (`NFUA`, first..=last seq).
//! * [`journal`] — `unlinkd`'s journal: 64-byte entries, pending (an
//!   unlink record as is) or done (`NFUD`, seq, key, CRC32C); a key is
//!   pending when its last entry is a pending one.
//! * [`control`] — the text grammar of `/proc/fs/nfsd/nfsp` (commands,
//!   `ok` / `error ERRNO msg` / `viod ...` / `stat NAME VALUE` answers).
//! * [`codec`] — bounds-checked byte cursors used by all of the above.
//!
//! ## Wire protocol
//!
//! Every datagram starts with a 56-byte header: magic u32 (`b"NFSP"`),
//! version u8 (= 2), type u8, flags u16 (0), key id u32 (0 = unsigned),
//! reserved u32 (0), request id = sender epoch u64 (random per sender
//! start, never 0) + sequence u64, instance u64 (in a request: the
//! receiving iod's instance as the sender knows it, 0 = unknown, accepted
//! only in PING; in an answer: the answering iod's), and a 16-byte tag =
//! BLAKE2s-128 keyed with the key named by the key id, over the whole
//! datagram with the tag zeroed ([`wire::seal`], [`wire::open`]). A
//! request naming another instance is refused with `Stale` (nothing
//! applied; the answer tells the current instance): a captured request
//! dies with the iod instance it was meant for. Forwarded copies (READ
//! hops, chain members) keep the origin's request id; hops and chain
//! members carry each iod's instance.
//! Socket addresses take 24 bytes (family 4|6, 0, port u16, IPv6 scope
//! id u32, 16 address bytes). Lists carry a count and fixed-size items.
//! The decoder checks magic, version, type, every count and length, and
//! that the declared lengths use the datagram exactly (no trailing bytes).
//!
//! | type | body |
//! |------|------|
//! | READ (1) | key, local offset u64, len u32, n_hops u8, reply kind u8 (1 direct, 2 relay), reply flags u8 (bit 0: pad to 4), 0u8, hops (addr, local offset u64, len u32, instance u64) × n, reply spec (direct: origin addr, client addr, source addr, header len u16, 0u16, header bytes <= 512; relay: origin addr), gathered len u32, gathered bytes |
//! | READ_REPLY (2) | status u8, 0 × 3, data len u32, data |
//! | WRITE (3) | key, local offset u64, chain, data len u32, data |
//! | COMMIT (4) | key, chain |
//! | TRUNCATE (5) | key, new local length u64, flags u8 (bit 0: extend only, never cut), 0 × 3, layout epoch u32 (pNFS fencing, 0: unchanged), chain |
//! | UNLINK (6) | count u16 (<= 256), 0u16, keys |
//! | ACK (7) | acked type u8, status u8 (9 = stale instance, 10 = refused by address rules), 0u16, value u64 (bytes written / new length / files removed / local length) |
//! | PING (8) | 128 zero bytes (longer than a PONG body: no amplification) |
//! | PONG (9) | uptime, requests, bytes read, bytes written, errors, malformed, drops, in-flight, bad auth, replays, refused, space total, free, available (bytes) (u64 each) |
//! | LIST (10) | flags u8 (bit 0: cursor present), 0u8, max u16 (1..=1024), cursor key (all zero without the flag) |
//! | LIST_REPLY (11) | status u8, more u8 (0/1), count u16 (<= 1024), entries (key, local length u64, mtime seconds u64) × count, strictly increasing in listing order |
//! | LENGTH (12) | key (answered by ACK: the local file's length, 0 if there is none) |
//!
//! LIST asks an iod for up to `max` of its local files whose keys follow
//! the cursor in *listing order* ([`filekey::FileKey::list_cmp`]: the order
//! of the local paths, sub-directory bytes first); the reply goes to the
//! datagram's source. `more` = ask again with the last key as cursor. An
//! error reply (status != 0) has no entries and `more` = 0.
//!
//! A chain is: origin addr, count u8 (<= 8), 0 × 3, members (addr,
//! instance u64). A member
//! applies the request, then forwards it to the first remaining member with
//! that member removed; the member that finds the chain empty sends the
//! ACK to the origin; a member that fails sends an error ACK to the origin
//! at once and does not forward.
//!
//! A READ hop reads its extent (zeros past the end of the local file or in
//! holes), appends it to the gathered data and, if hops remain, forwards
//! the READ to the first hop (see [`wire::Read::encode_forward_prefix`]);
//! the last hop sends `header ++ data ++ pad` to the client from the
//! meta-server's address (direct) or a READ_REPLY to the origin (relay).
//!
//! ### How 64 KiB blocks travel
//! One message carries at most [`wire::MAX_DATA_PER_MSG`] = 60 KiB of data
//! (a READ counts gathered + all hops), which keeps every datagram,
//! including a direct reply with a 512-byte header, under
//! [`wire::MAX_DATAGRAM`] = 65507 bytes. A request covering more bytes
//! (a 64 KiB block write, a 1 MiB TCP READ) is split by its sender into
//! several messages with distinct request ids. Each datagram larger than
//! the path MTU is fragmented by the sending kernel (IPv4 fragmentation)
//! and reassembled by the receiver: the iod's direct-reply socket is a
//! normal UDP socket (IP_TRANSPARENT), not a raw one, precisely so that
//! the kernel fragments. NFS over UDP clients use rsize <= 32 KiB, so a
//! direct reply always fits one message.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod codec;
pub mod control;
pub mod crc32c;
pub mod ds3;
pub mod dsfh;
pub mod error;
pub mod ffl;
pub mod filekey;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod journal;
pub mod metafile;
pub mod nfs3;
pub mod nfs3_error;
pub mod stripe;
pub mod unlink;
pub mod wire;

pub use control::{Answer, Command, IodState, ListLine, Members, Space};
pub use error::{ProtoError, Result};
pub use filekey::FileKey;
pub use metafile::MetaHeader;
pub use stripe::{Piece, Pieces, StripeLayout};
pub use unlink::{UnlinkAck, UnlinkRecord};
pub use wire::{Body, Message, MsgType, Status};
