// SPDX-License-Identifier: GPL-2.0

//! nfsp meta-server module for the in-kernel NFS server.
//!
//! Exports carrying the `nfsp` option keep each regular file as a small
//! meta-file on the meta-server, while the file data is striped over
//! user-space storage daemons (iods), grouped in replica sets (viods).
//!
//! A meta-file is sparse: its size is the file's real size (so every
//! attribute nfsd returns is right without further work) and its only
//! content is the layout header (`proto::metafile`) in the extended
//! attribute `trusted.nfsp`, made when the file is first used. When nfsd
//! opens such a file (`include/linux/nfsd_nfsp.h`), the module gives the
//! open file its own file operations (`ffi::fops`), so that every NFS
//! version's reads, writes and commits reach the iods; the other hooks
//! are the NFSv3/UDP direct reply, truncation and removal. Each network
//! namespace running nfsd has its own viod table.

use kernel::{
    iov::{IovIterDest, IovIterSource},
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        Arc, Mutex,
    },
};

mod cuts;
mod ffi;
mod iodio;
mod overlap;
mod pnfs;
mod proto;
mod unlink;
mod viod;

use ffi::{
    Dentry,
    DirectReply,
    FileOps,
    HooksRegistration,
    InodeRef,
    MetaFile,
    NetRef,
    PernetRegistration, //
};
use iodio::FileIo;
use proto::{
    control::{Answer, Command, Space},
    filekey::FileKey,
    metafile::{MetaHeader, HEADER_LEN},
    unlink::UnlinkRecord,
};
use unlink::{DeletionQueue, UnlinkReader};
use viod::{AnswerBuf, Table};

module! {
    type: NfspKnfsd,
    name: "nfsp_knfsd",
    authors: ["nfsp developers"],
    description: "nfsp: parallel NFS meta-server for nfsd",
    license: "GPL",
}

/// Module version, logged at load time so a test can tell which build runs.
const VERSION: &str = "0.1.0";

/// Sends of one WRITE's data when cuts keep coming in between.
const MAX_WRITE_TRIES: u32 = 8;

/// Counters shown by the `stats` control command.
struct Counters {
    creates: Atomic<u64>,
    reads_relay: Atomic<u64>,
    reads_direct: Atomic<u64>,
    writes: Atomic<u64>,
    commits: Atomic<u64>,
    truncates: Atomic<u64>,
    deletions_queued: Atomic<u64>,
    layouts: Atomic<u64>,
    fences: Atomic<u64>,
    failures: Atomic<u64>,
}

/// The viod table of one network namespace (one nfsd instance).
struct NetTable {
    net: NetRef,
    table: Arc<Table>,
}

/// Everything the hooks work with.
#[pin_data]
struct State {
    /// One table per network namespace that configured one.
    #[pin]
    tables: Mutex<KVec<NetTable>>,
    /// The table of a namespace that has none: no storage, no keys.
    empty: Arc<Table>,
    #[pin]
    queue: DeletionQueue,
    #[pin]
    overlaps: overlap::Overlaps,
    counters: Counters,
}

/// The state while the hooks are registered; null otherwise.
static STATE: Atomic<*const State> = Atomic::new(core::ptr::null());

/// The module's state, for hook and device calls.
fn state() -> Result<&'static State> {
    let p = STATE.load(Acquire);
    // SAFETY: `STATE` points to the module's `State` from before the hooks
    // and the device are registered until after both are unregistered
    // (which waits for running calls), so any caller sees it live.
    unsafe { p.as_ref() }.ok_or(ENODEV)
}

impl State {
    /// The current table of `net`; the lock is held only to find it and
    /// clone the `Arc`.
    fn table(&self, net: NetRef) -> Arc<Table> {
        let tables = self.tables.lock();
        tables
            .iter()
            .find(|t| t.net.same(&net))
            .map_or_else(|| self.empty.clone(), |t| t.table.clone())
    }

    fn count(&self, counter: &Atomic<u64>, r: Result) -> Result {
        if r.is_err() {
            self.counters.failures.add(1u64, Relaxed);
        } else {
            counter.add(1u64, Relaxed);
        }
        r
    }
}

/// What the module keeps for a meta-file it took over: its data's layout,
/// read once at open, and whose viod table holds it.
struct OpenMeta {
    net: NetRef,
    header: MetaHeader,
    key: FileKey,
}

/// The header of a meta-file; `ENODATA` if it has none.
fn header_of(dentry: &Dentry<'_>) -> Result<MetaHeader> {
    let mut buf = [0u8; 2 * HEADER_LEN];
    let len = dentry.get_header(&mut buf)?;
    // A corrupt header leaves no data we could serve.
    MetaHeader::decode(buf.get(..len).ok_or(EIO)?).map_err(|_| EIO)
}

/// The header of a meta-file nfsd serves, created if the file has none
/// and is empty (new files get theirs on first use, whatever the NFS
/// version or operation that made them); `None` for a file with data but
/// no header: a local file, served as it is.
fn header_or_create(net: NetRef, dentry: &Dentry<'_>) -> Result<Option<MetaHeader>> {
    match header_of(dentry) {
        Err(e) if e == ENODATA => dentry.locked(|| create_header_locked(net, dentry)),
        other => other.map(Some),
    }
}

/// The header of a file whose inode the caller has locked (so no other
/// thread creates one meanwhile), created as [`header_or_create`] does.
fn create_header_locked(net: NetRef, dentry: &Dentry<'_>) -> Result<Option<MetaHeader>> {
    match header_of(dentry) {
        Err(e) if e == ENODATA => {}
        other => return other.map(Some),
    }
    if dentry.size() != 0 {
        return Ok(None);
    }
    let st = state()?;
    let width = st.table(net).width();
    if width == 0 {
        // No storage configured yet: the client retries.
        return Err(EAGAIN);
    }
    let seed = ffi::random_u64();
    // Rotate the first block so that small files spread over the viods.
    let header = MetaHeader::new(seed, width, (seed % u64::from(width)) as u32);
    let mut buf = [0u8; HEADER_LEN];
    let n = header.encode(&mut buf).map_err(|_| EINVAL)?;
    let r = dentry.create_header(buf.get(..n).ok_or(EINVAL)?);
    st.count(&st.counters.creates, r)?;
    Ok(Some(header))
}

/// Raises the layout epoch in the header of a file whose inode the caller
/// has locked, and returns it: data-server filehandles minted before are
/// to be refused by the iods. Durable before the iods hear of it: a crash
/// that undid the header would leave them refusing every new layout.
fn raise_layout_epoch(dentry: &Dentry<'_>, header: &MetaHeader) -> Result<u32> {
    let raised = MetaHeader {
        layout_epoch: header.layout_epoch.checked_add(1).ok_or(EOVERFLOW)?,
        ..*header
    };
    let mut buf = [0u8; HEADER_LEN];
    let n = raised.encode(&mut buf).map_err(|_| EINVAL)?;
    dentry.replace_header(buf.get(..n).ok_or(EINVAL)?)?;
    dentry.commit_metadata()?;
    Ok(raised.layout_epoch)
}

fn key_of(dentry: &Dentry<'_>, header: &MetaHeader) -> FileKey {
    FileKey {
        export: proto::filekey::export_id(&dentry.fs_uuid()),
        inode: dentry.ino(),
        seed: header.seed,
    }
}

/// Runs `f` on the data of a file with `header`, in the table of `net`.
fn with_data<R>(
    net: NetRef,
    key: FileKey,
    header: &MetaHeader,
    f: impl FnOnce(&FileIo<'_>) -> Result<R>,
) -> Result<R> {
    let table = state()?.table(net);
    let io = FileIo {
        table: &table,
        key,
        layout: header.layout().map_err(|_| EIO)?,
    };
    f(&io)
}

fn with_open<R>(open: &OpenMeta, f: impl FnOnce(&FileIo<'_>) -> Result<R>) -> Result<R> {
    with_data(open.net, open.key, &open.header, f)
}

/// What an unlink keeps between `unlink_prepare` and `unlink_finish`.
struct PendingUnlink {
    record: UnlinkRecord,
    inode: InodeRef,
}

/// The operations of the meta-files taken over.
static META_FOPS: FileOps = FileOps::new::<Nfsp>();

struct Nfsp;

impl ffi::Hooks for Nfsp {
    type Open = OpenMeta;
    const FOPS: &'static FileOps = &META_FOPS;

    fn open(net: NetRef, file: &MetaFile<'_>) -> Result<Option<OpenMeta>> {
        let dentry = file.dentry();
        Ok(header_or_create(net, &dentry)?.map(|header| OpenMeta {
            net,
            key: key_of(&dentry, &header),
            header,
        }))
    }

    fn read(
        open: &OpenMeta,
        _file: &MetaFile<'_>,
        pos: u64,
        len: usize,
        to: &mut IovIterDest<'_>,
    ) -> Result<usize> {
        let st = state()?;
        let mut buf = KVVec::from_elem(0u8, len, GFP_KERNEL)?;
        let r = with_open(open, |io| io.read(pos, &mut buf));
        st.count(&st.counters.reads_relay, r)?;
        if to.copy_to_iter(&buf) != len {
            return Err(EFAULT);
        }
        Ok(len)
    }

    fn read_direct(
        net: NetRef,
        dentry: &Dentry<'_>,
        pos: u64,
        count: usize,
        reply: &DirectReply<'_>,
    ) -> Result {
        let st = state()?;
        let header = header_of(dentry)?;
        let key = key_of(dentry, &header);
        let r = with_data(net, key, &header, |io| io.read_direct(pos, count, reply));
        st.count(&st.counters.reads_direct, r)
    }

    fn write(
        open: &OpenMeta,
        file: &MetaFile<'_>,
        pos: u64,
        from: &mut IovIterSource<'_>,
    ) -> Result<usize> {
        let st = state()?;
        let mut data = KVVec::new();
        let count = from.copy_from_iter_vec(&mut data, GFP_KERNEL)?;
        let end = pos.checked_add(count as u64).ok_or(EFBIG)?;
        let key = open.key;
        let _alone = st.overlaps.hold(key, pos, end)?;
        // A cut between the data and the size update may have removed
        // the data: it is sent again, after the cut (see `cuts`).
        for _ in 0..MAX_WRITE_TRIES {
            let seen = cuts::generation(&key);
            // A write past the end leaves a hole: every iod's local file
            // must reach the new end first (a data server tells the end of
            // the file from its local length).
            if pos > file.dentry().size() {
                with_open(open, |io| io.grow(pos))?;
            }
            let r = with_open(open, |io| io.write(pos, &data));
            st.count(&st.counters.writes, r)?;
            if file.written_up_to(end, || cuts::unchanged(&key, seen))? {
                return Ok(count);
            }
        }
        // Cut again and again: the client retries later.
        Err(EAGAIN)
    }

    fn commit(open: &OpenMeta, _file: &MetaFile<'_>) -> Result {
        let st = state()?;
        let r = with_open(open, |io| io.commit());
        st.count(&st.counters.commits, r)
    }

    fn truncate(net: NetRef, dentry: &Dentry<'_>, size: u64, exact: bool) -> Result {
        let st = state()?;
        // nfsd holds the inode lock here. A local file is cut by nfsd
        // alone; an empty file without a header gets one first, so that
        // extending it (`truncate -s` before any write) makes it sparse
        // on the iods, not a local file.
        let Some(header) = create_header_locked(net, dentry)? else {
            return Ok(());
        };
        let key = key_of(dentry, &header);
        let current = dentry.size();
        // A size a client set is exact: what the iods hold past it goes,
        // even when the meta-file is shorter (clients wrote through
        // layouts and have not told the meta-server yet; a client that
        // wrote, then cut, drops those pages and never will). Growth to
        // what clients wrote (LAYOUTCOMMIT, returns, fences) cuts
        // nothing: other writers may have data past it. Cutting fences
        // the layouts out: a late write through one would put back data
        // past the cut.
        let r = with_data(net, key, &header, |io| {
            let cut = exact && (size < current || io.size_on_iods()? > size);
            if !cut {
                return io.grow(size);
            }
            let epoch = raise_layout_epoch(dentry, &header)?;
            let r = io.truncate(size, epoch);
            // Writes in flight may have lost data to it, even if it failed.
            cuts::cut(&key);
            r
        });
        st.count(&st.counters.truncates, r)
    }

    fn unlink_prepare(dentry: &Dentry<'_>) -> Result<usize> {
        let st = state()?;
        // A file without a header (never used, or local) has no data on
        // the iods: nothing to queue. Any other failure to read the header
        // keeps the file.
        let header = match header_of(dentry) {
            Err(e) if e == ENODATA => return Ok(0),
            other => other?,
        };
        let layout = header.layout().map_err(|_| EIO)?;
        st.queue.reserve()?;
        let pending = PendingUnlink {
            record: UnlinkRecord {
                seq: 0,
                key: key_of(dentry, &header),
                real_size: dentry.size(),
                layout,
            },
            inode: dentry.hold_inode(),
        };
        match KBox::new(pending, GFP_KERNEL) {
            Ok(b) => Ok(KBox::into_raw(b) as usize),
            Err(e) => {
                let _ = st.queue.complete(None);
                Err(e.into())
            }
        }
    }

    fn unlink_finish(cookie: usize, done: bool) {
        if cookie == 0 {
            return;
        }
        // SAFETY: a non-zero cookie is a `KBox<PendingUnlink>` leaked by
        // `unlink_prepare`, and nfsd hands each cookie back exactly once.
        let pending = unsafe { KBox::from_raw(cookie as *mut PendingUnlink) };
        let Ok(st) = state() else {
            return;
        };
        // Only a removal that is on stable storage may free the data; a
        // file still linked elsewhere (hard links) keeps it.
        if !done || !pending.inode.unlinked() {
            let _ = st.queue.complete(None);
            return;
        }
        let PendingUnlink { record, inode } = KBox::into_inner(pending);
        drop(inode);
        let ino = record.key.inode;
        let r = st.queue.complete(Some(record));
        if r.is_err() {
            pr_err!("nfsp: cannot queue the deletion of inode {}\n", ino);
        }
        let _ = st.count(&st.counters.deletions_queued, r);
    }

    fn layout(
        net: NetRef,
        dentry: &Dentry<'_>,
        iomode: u32,
        fsid_idx: u64,
        client: &[u8],
        buf: &mut [u8],
    ) -> Result<usize> {
        let st = state()?;
        // A local file (no header) has no data on the iods.
        let header = match header_of(dentry) {
            Err(e) if e == ENODATA => return Err(EOPNOTSUPP),
            other => other?,
        };
        let layout = header.layout().map_err(|_| EIO)?;
        let key = key_of(dentry, &header);
        let r = pnfs::layout(
            &st.table(net),
            key,
            layout,
            header.layout_epoch,
            iomode,
            fsid_idx,
            client,
            buf,
        );
        if r.is_ok() {
            st.counters.layouts.add(1u64, Relaxed);
        }
        r
    }

    fn layout_returned(net: NetRef, dentry: &Dentry<'_>, rw: bool, errors: &[u8]) -> Result<u64> {
        let st = state()?;
        let table = st.table(net);
        pnfs::count_errors(&table, errors);
        if !rw {
            return Err(EOPNOTSUPP);
        }
        let header = match header_of(dentry) {
            Err(e) if e == ENODATA => return Err(EOPNOTSUPP),
            other => other?,
        };
        let key = key_of(dentry, &header);
        with_data(net, key, &header, |io| io.size_on_iods())
    }

    fn fence(net: NetRef, dentry: &Dentry<'_>) -> Result<u64> {
        let st = state()?;
        // nfsd holds the inode lock (the header and the size stay put).
        let r = header_of(dentry).and_then(|header| {
            let epoch = raise_layout_epoch(dentry, &header)?;
            with_data(net, key_of(dentry, &header), &header, |io| {
                io.fence(dentry.size(), epoch)?;
                // What the fenced client wrote before, which its
                // LAYOUTCOMMIT will not bring.
                io.size_on_iods()
            })
        });
        if r.is_ok() {
            st.counters.fences.add(1u64, Relaxed);
        } else {
            st.counters.failures.add(1u64, Relaxed);
        }
        r
    }

    fn device(net: NetRef, device: u32, buf: &mut [u8]) -> Result<usize> {
        pnfs::device(&state()?.table(net), device, buf)
    }

    fn space(net: NetRef) -> Option<Space> {
        viod::space(&state().ok()?.table(net))
    }

    fn control(net: NetRef, buf: &mut [u8], len: usize) -> Result<usize> {
        let st = state()?;
        let line = buf
            .get(..len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .ok_or(EINVAL)?;
        // Opening and reading without a command gives an empty answer.
        if line.trim().is_empty() {
            return Ok(0);
        }
        // A key line must not stay in nfsd's transaction buffer behind the
        // answer, whatever the outcome.
        let secret = line.trim_start().starts_with("keys");
        let parsed = Command::parse(line).map_err(|_| EINVAL);
        let r = parsed.and_then(|cmd| Self::answer(st, net, &cmd, buf));
        if secret {
            let from = *r.as_ref().unwrap_or(&0);
            if let Some(rest) = buf.get_mut(from..len) {
                rest.fill(0);
            }
        }
        r
    }
}

impl Nfsp {
    /// Runs one control command of `net` and writes its answer over `buf`.
    fn answer(st: &State, net: NetRef, cmd: &Command, buf: &mut [u8]) -> Result<usize> {
        let mut out = AnswerBuf::new(buf);
        match cmd {
            Command::List => viod::list(&st.table(net), &mut out),
            Command::Stats => stats(st, &st.table(net), &mut out),
            Command::Space { addr, space } => {
                viod::set_space(&st.table(net), addr, space)?;
                out.line(&Answer::Ok);
            }
            _ => {
                let mut tables = st.tables.lock();
                let at = tables.iter().position(|t| t.net.same(&net));
                let old = at
                    .and_then(|i| tables.get(i))
                    .map_or_else(|| st.empty.clone(), |t| t.table.clone());
                let table = Arc::new(viod::apply(&old, net, cmd)?, GFP_KERNEL)?;
                match at.and_then(|i| tables.get_mut(i)) {
                    Some(t) => t.table = table,
                    None => tables.push(NetTable { net, table }, GFP_KERNEL)?,
                }
                drop(tables);
                out.line(&Answer::Ok);
            }
        }
        out.finish()
    }
}

impl ffi::NetExit for Nfsp {
    fn net_exit(net: NetRef) {
        let Ok(st) = state() else {
            return;
        };
        let mut tables = st.tables.lock();
        if let Some(i) = tables.iter().position(|t| t.net.same(&net)) {
            // The table's sockets close with it, while the namespace is
            // still there.
            let _ = tables.remove(i);
            pr_info!("nfsp: a network namespace exited: its viod table is dropped\n");
        }
    }
}

fn stats(st: &State, table: &Table, out: &mut AnswerBuf<'_>) {
    let c = &st.counters;
    let (pending, pending_bytes) = st.queue.pending();
    // Key ids (never the keys): which key signs, which one is accepted too.
    let keys = table.keys;
    let sign_id = keys.and_then(|k| k.signing().map(|k| k.id()));
    let accept_id = keys.and_then(|k| k.accepted().map(|k| k.id()));
    let space = viod::space(table).unwrap_or_default();
    let lines: [(&str, u64); 23] = [
        ("keys_loaded", u64::from(keys.is_some())),
        ("key_sign_id", u64::from(sign_id.unwrap_or(0))),
        ("key_accept_id", u64::from(accept_id.unwrap_or(0))),
        ("creates", c.creates.load(Relaxed)),
        ("reads_relay", c.reads_relay.load(Relaxed)),
        ("reads_direct", c.reads_direct.load(Relaxed)),
        ("direct_reads_refused", iodio::direct_reads_refused()),
        ("writes", c.writes.load(Relaxed)),
        ("commits", c.commits.load(Relaxed)),
        ("truncates", c.truncates.load(Relaxed)),
        ("deletions_queued", c.deletions_queued.load(Relaxed)),
        ("deletions_pending", pending),
        ("layouts", c.layouts.load(Relaxed)),
        ("fences", c.fences.load(Relaxed)),
        ("write_verifier_resets", iodio::verifier_resets()),
        ("identity_mismatches", iodio::identity_mismatches()),
        ("writes_after_cuts", cuts::resent()),
        ("overlapping_writes_waited", overlap::waited()),
        ("deletions_pending_bytes", pending_bytes),
        ("failures", c.failures.load(Relaxed)),
        ("space_total", space.total),
        ("space_free", space.free),
        ("space_avail", space.avail),
    ];
    for (name, value) in lines {
        out.line(&Answer::Stat { name, value });
    }
}

#[pin_data(PinnedDrop)]
struct NfspKnfsd {
    // Declared first so it is dropped first: no hook runs after.
    #[pin]
    hooks: HooksRegistration,
    // Then every namespace's table goes (with its sockets).
    #[pin]
    pernet: PernetRegistration,
    #[pin]
    device: MiscDeviceRegistration<UnlinkReader>,
    state: Pin<KBox<State>>,
}

impl kernel::InPlaceModule for NfspKnfsd {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let state = KBox::pin_init(
            try_pin_init!(State {
                tables <- new_mutex!(KVec::new()),
                empty: Table::empty()?,
                queue <- DeletionQueue::new(module),
                overlaps <- overlap::Overlaps::new(),
                counters: Counters {
                    creates: Atomic::new(0),
                    reads_relay: Atomic::new(0),
                    reads_direct: Atomic::new(0),
                    writes: Atomic::new(0),
                    commits: Atomic::new(0),
                    truncates: Atomic::new(0),
                    deletions_queued: Atomic::new(0),
                    layouts: Atomic::new(0),
                    fences: Atomic::new(0),
                    failures: Atomic::new(0),
                },
            }),
            GFP_KERNEL,
        );
        try_pin_init!(Self {
            state: {
                let state = state?;
                STATE.store(&raw const *state, Release);
                state
            },
            device <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"nfsp_unlink",
            }),
            pernet <- PernetRegistration::register::<Nfsp>(),
            hooks <- HooksRegistration::register::<Nfsp>(module),
        })
        .pin_chain(|_| {
            pr_info!(
                "nfsp_knfsd {} loaded (meta-file format {}, iod protocol {})\n",
                VERSION,
                proto::metafile::VERSION,
                proto::wire::VERSION
            );
            Ok(())
        })
    }
}

#[pinned_drop]
impl PinnedDrop for NfspKnfsd {
    fn drop(self: Pin<&mut Self>) {
        pr_info!("nfsp_knfsd {} unloaded\n", VERSION);
    }
}
