// SPDX-License-Identifier: GPL-2.0
//! The iod as a pNFS flexfiles data server: NFSv3 over TCP (NULL, READ,
//! WRITE, COMMIT; [`nfsp_proto::ds3`]) on a port of its own, the one port
//! clients reach.
//!
//! Every filehandle is checked ([`DsHandle::open`]): tagged with a cluster
//! key, for this iod's data-server address; a forged one is answered
//! NFS3ERR_BADHANDLE and counted as refused. Clients send file offsets
//! (sparse mapping); the handle's layout maps them to the dense local file.
//! Holes read as zeros; a READ at the end of the local file is short, with
//! EOF: the module keeps every local length at what the file's size asks
//! of it (`local_len`), so a local end is the file's end.
//! The write verifier is the iod's instance at start: it changes when the
//! iod restarts, so clients send unstable writes again.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use log::{debug, info};
use nfsp_proto::codec::Writer;
use nfsp_proto::ds3::{self, Accept, Args, Nfsstat3, StableHow};
use nfsp_proto::dsfh::DsHandle;

use super::Shared;
use crate::stats::Stats;
use crate::store::StoreError;

/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 512;
/// Largest record (a 4 MiB WRITE and its header).
const MAX_RECORD: usize = ds3::MAX_IO as usize + 4096;
/// Room for a reply's header before READ data.
const REPLY_HEADER: usize = 64;
/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// A connection silent for this long is closed (a client reconnects).
const IDLE: Duration = Duration::from_secs(300);
/// Buffers larger than this are given back after each call: an idle
/// connection holds little memory.
const KEEP: usize = 256 << 10;

/// Accepts connections until `stop` is set, each served by a thread.
pub(super) fn accept_loop(
    listener: TcpListener,
    sh: Arc<Shared>,
    verifier: [u8; 8],
    stop: Arc<AtomicBool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    if let Err(e) = listener.set_nonblocking(true) {
        log::error!("data server: {e}");
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                sh.warn_limited(format_args!("data server: accept: {e}"));
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            Stats::add(&sh.stats.drops, 1);
            sh.warn_limited(format_args!(
                "data server: {peer}: too many connections, closed"
            ));
            continue;
        }
        let (sh2, stop2, open2) = (Arc::clone(&sh), Arc::clone(&stop), Arc::clone(&open));
        let spawned = std::thread::Builder::new()
            .name("iod-ds-conn".into())
            .spawn(move || {
                match serve(stream, &sh2, verifier, &stop2) {
                    Ok(()) => debug!("data server: {peer} closed"),
                    Err(e) => debug!("data server: {peer}: {e}"),
                }
                open2.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            open.fetch_sub(1, Ordering::SeqCst);
            Stats::add(&sh.stats.drops, 1);
            sh.warn_limited(format_args!("data server: {peer}: no thread: {e}"));
        }
    }
    info!("data server stopped");
}

/// Reads exactly `buf.len()` bytes, looking at `stop` while waiting;
/// `Ok(false)` on a clean end of stream, or after [`IDLE`] of silence,
/// before the first byte.
fn read_full(s: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> io::Result<bool> {
    let mut got = 0;
    let since = std::time::Instant::now();
    while got < buf.len() {
        if stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("stopping"));
        }
        match s.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if got == 0 && since.elapsed() > IDLE {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads one RPC record (RFC 5531 §11 record marking) into `rec`.
fn read_record(s: &mut TcpStream, rec: &mut Vec<u8>, stop: &AtomicBool) -> io::Result<bool> {
    rec.clear();
    loop {
        let mut mark = [0u8; 4];
        if !read_full(s, &mut mark, stop)? {
            return if rec.is_empty() {
                Ok(false)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        let mark = u32::from_be_bytes(mark);
        let len = (mark & 0x7fff_ffff) as usize;
        let at = rec.len();
        if at + len > MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record too long",
            ));
        }
        rec.resize(at + len, 0);
        read_full(s, &mut rec[at..], stop)?;
        if mark & 0x8000_0000 != 0 {
            return Ok(true);
        }
    }
}

/// Serves one connection until it closes, `stop` is set, or it sends what
/// is not an RPC call (then it is closed: nothing can be answered).
fn serve(mut s: TcpStream, sh: &Shared, verifier: [u8; 8], stop: &AtomicBool) -> io::Result<()> {
    s.set_read_timeout(Some(POLL))?;
    s.set_nodelay(true)?;
    // The address the client reached: the one its handles are for.
    let server = s.local_addr()?;
    let mut rec = Vec::new();
    let mut out = Vec::new();
    while read_record(&mut s, &mut rec, stop)? {
        // Room for the largest reply to this record (a READ's data).
        out.resize(REPLY_HEADER + reply_data_len(&rec), 0);
        let Some(n) = answer(sh, &server, verifier, &rec, &mut out) else {
            Stats::add(&sh.stats.malformed, 1);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not an RPC call",
            ));
        };
        let mark = 0x8000_0000u32 | n as u32;
        s.write_all(&mark.to_be_bytes())?;
        s.write_all(&out[..n])?;
        for b in [&mut rec, &mut out] {
            if b.capacity() > KEEP {
                b.clear();
                b.shrink_to(KEEP);
            }
        }
    }
    Ok(())
}

/// The most data a reply to `rec` carries: a READ's count (capped), else 0.
fn reply_data_len(rec: &[u8]) -> usize {
    match ds3::decode_call(rec).map(|(c, args)| (c, ds3::decode_args(c.proc_, args))) {
        Ok((_, Ok(Some(Args::Read { count, .. })))) => count.min(ds3::MAX_IO) as usize + 4,
        _ => 0,
    }
}

/// The reply to one call, written into `out` (its length); `None` if the
/// record is not an RPC call.
fn answer(
    sh: &Shared,
    server: &SocketAddr,
    verifier: [u8; 8],
    rec: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    let (call, args) = ds3::decode_call(rec).ok()?;
    let mut w = Writer::new(out);
    let accept = |w: &mut Writer<'_>, how| ds3::encode_accepted(w, call.xid, how).ok();
    if call.prog != ds3::NFS_PROGRAM {
        // The LOCALIO probe among others.
        accept(&mut w, Accept::ProgUnavail)?;
        return Some(w.position());
    }
    if call.vers != ds3::NFS_V3 {
        accept(&mut w, Accept::ProgMismatch)?;
        return Some(w.position());
    }
    if call.flavor != ds3::AUTH_SYS && call.flavor != ds3::AUTH_NONE {
        ds3::encode_bad_cred(&mut w, call.xid).ok()?;
        return Some(w.position());
    }
    let args = match ds3::decode_args(call.proc_, args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            accept(&mut w, Accept::ProcUnavail)?;
            return Some(w.position());
        }
        Err(_) => {
            Stats::add(&sh.stats.malformed, 1);
            accept(&mut w, Accept::GarbageArgs)?;
            return Some(w.position());
        }
    };
    Stats::add(&sh.stats.requests, 1);
    accept(&mut w, Accept::Success)?;
    let done = match args {
        Args::Null => Ok(()),
        Args::Read { fh, offset, count } => read(sh, server, fh, offset, count, &mut w),
        Args::Write {
            fh,
            offset,
            stable,
            data,
        } => write(sh, server, fh, offset, stable, data, verifier, &mut w),
        Args::Commit { fh, .. } => commit(sh, server, fh, verifier, &mut w),
    };
    if let Err(status) = done {
        // Start the results again after the accepted header.
        let mut w = Writer::new(out);
        ds3::encode_accepted(&mut w, call.xid, Accept::Success).ok()?;
        ds3::encode_error(&mut w, call.proc_, status).ok()?;
        return Some(w.position());
    }
    Some(w.position())
}

/// The handle's file and the local offset of `[offset, offset + len)`.
fn open_handle(
    sh: &Shared,
    server: &SocketAddr,
    fh: &[u8],
    offset: u64,
    len: u64,
) -> Result<(DsHandle, u64), Nfsstat3> {
    let h = DsHandle::open(fh, &sh.keys(), server, sh.identity()).map_err(|_| {
        Stats::add(&sh.stats.refused, 1);
        sh.warn_limited(format_args!("data server: a filehandle that is not ours"));
        Nfsstat3::Badhandle
    })?;
    let local = h.local_offset(offset, len).map_err(|_| Nfsstat3::Inval)?;
    Ok((h, local))
}

fn store_status(sh: &Shared, e: &StoreError) -> Nfsstat3 {
    if let StoreError::Fenced { .. } = e {
        // A client still using a layout recalled by a truncate, or one
        // that was fenced: it asks for a new layout.
        Stats::add(&sh.stats.refused, 1);
        return Nfsstat3::Stale;
    }
    Stats::add(&sh.stats.errors, 1);
    sh.warn_limited(format_args!("data server: {e}"));
    match e {
        StoreError::Io { source, .. } if source.raw_os_error() == Some(nix::libc::ENOSPC) => {
            Nfsstat3::Nospc
        }
        _ => Nfsstat3::Io,
    }
}

fn read(
    sh: &Shared,
    server: &SocketAddr,
    fh: &[u8],
    offset: u64,
    count: u32,
    w: &mut Writer<'_>,
) -> Result<(), Nfsstat3> {
    let count = count.min(ds3::MAX_IO);
    let (h, local) = open_handle(sh, server, fh, offset, u64::from(count))?;
    sh.store
        .check_epoch(&h.key, h.epoch)
        .map_err(|e| store_status(sh, &e))?;
    // The local file ends where the file does (the module keeps every
    // local length at what the file's size asks of it): a READ there is
    // short, with EOF, as O_DIRECT readers need; holes before are zeros.
    let len = sh.store.len(&h.key).map_err(|e| store_status(sh, &e))?;
    let n = len.saturating_sub(local).min(u64::from(count)) as usize;
    // Only a short READ is at the file's end: a full one that reaches the
    // local end may be followed by other viods' blocks.
    let eof = n < count as usize;
    let mut data = vec![0u8; n];
    sh.store
        .read(&h.key, local, &mut data)
        .map_err(|e| store_status(sh, &e))?;
    Stats::add(&sh.stats.bytes_read, n as u64);
    let count = n as u32;
    let fill = |w: &mut Writer<'_>| -> nfsp_proto::Result<()> {
        ds3::encode_read_ok(w, count, eof)?;
        w.put(&data)?;
        w.zeros(ds3::pad_len(n))
    };
    fill(w).map_err(|_| Nfsstat3::Serverfault)
}

#[allow(clippy::too_many_arguments)]
fn write(
    sh: &Shared,
    server: &SocketAddr,
    fh: &[u8],
    offset: u64,
    stable: StableHow,
    data: &[u8],
    verifier: [u8; 8],
    w: &mut Writer<'_>,
) -> Result<(), Nfsstat3> {
    let (h, local) = open_handle(sh, server, fh, offset, data.len() as u64)?;
    if h.read_only {
        return Err(Nfsstat3::Acces);
    }
    let end = local
        .checked_add(data.len() as u64)
        .ok_or(Nfsstat3::Inval)?;
    if end > sh.max_file_size {
        return Err(Nfsstat3::Nospc);
    }
    sh.store
        .write_at_epoch(&h.key, local, data, h.epoch)
        .map_err(|e| store_status(sh, &e))?;
    if stable != StableHow::Unstable {
        sh.commit(&h.key).map_err(|e| store_status(sh, &e))?;
    }
    Stats::add(&sh.stats.bytes_written, data.len() as u64);
    ds3::encode_write_ok(w, data.len() as u32, stable, verifier).map_err(|_| Nfsstat3::Serverfault)
}

fn commit(
    sh: &Shared,
    server: &SocketAddr,
    fh: &[u8],
    verifier: [u8; 8],
    w: &mut Writer<'_>,
) -> Result<(), Nfsstat3> {
    let h = DsHandle::open(fh, &sh.keys(), server, sh.identity()).map_err(|_| {
        Stats::add(&sh.stats.refused, 1);
        Nfsstat3::Badhandle
    })?;
    if h.read_only {
        return Err(Nfsstat3::Acces);
    }
    // A fenced client's writes may have been cut: it must write again.
    sh.store
        .check_epoch(&h.key, h.epoch)
        .map_err(|e| store_status(sh, &e))?;
    // The whole local file: a commit's range maps to every block of it.
    sh.commit(&h.key).map_err(|e| store_status(sh, &e))?;
    ds3::encode_commit_ok(w, verifier).map_err(|_| Nfsstat3::Serverfault)
}
