// SPDX-License-Identifier: GPL-2.0

//! pNFS flexfiles layouts of nfsp files (RFC 8435): clients read and write
//! the iods directly, striped, over NFSv3/TCP.
//!
//! A layout covers the whole file: stripe unit = the file's block size,
//! the data servers of a mirror = the file's viods in stripe order (block
//! `n` on stripe position `n % W`, the very map of `proto::stripe`), the
//! mirrors = the viods' members (layouts only where each viod has one
//! member for now, see [`layout`]).
//! Each data server gets a filehandle ([`DsHandle`]) naming the file, its
//! layout and that server's viod, tagged with the cluster key for that
//! iod's address and data-directory identity (read only for a READ
//! layout): an iod that comes back wiped or swapped serves none of them. Layouts are only handed
//! out while every member of the file's viods is up and answering, and
//! every viod has as many members: a member that is down or re-syncing
//! must get every write, which only I/O through the meta-server ensures.
//!
//! Fencing: the handles carry the file's layout epoch (in its header).
//! Cutting the file, or nfsd fencing a client that did not give back a
//! recalled layout, raises it and has every iod of the file refuse the
//! handles minted before (NFS3ERR_STALE: the client asks for a new
//! layout), so no write through an old layout lands afterwards.

use kernel::{prelude::*, sync::atomic::Relaxed};

use crate::proto::{
    dsfh::{DsHandle, DS_FH_LEN},
    ffl::{self, DataServer},
    filekey::FileKey,
    stripe::StripeLayout,
    wire::UNKNOWN_IDENTITY,
};
use crate::viod::{self, Table};

/// The data servers' `rsize` and `wsize` (a client's RPCs are bounded by
/// the stripe unit as well).
const DS_IO_SIZE: u32 = 1 << 20;

/// `iomode` of a READ layout (RFC 8881 `layoutiomode4`).
const IOMODE_READ: u32 = 1;

/// Encodes the layout of the file `key` with `layout` and `iomode` into
/// `buf`, for a client whose implementation name is `client`; its
/// data-server filehandles are of `epoch` (the header's layout epoch). `EAGAIN` while there are
/// no keys; `EOPNOTSUPP` (the client does its I/O through the meta-server)
/// for a client the table's rule gives no such layout, or while a member
/// of one of the file's viods cannot serve clients.
pub(crate) fn layout(
    table: &Table,
    key: FileKey,
    layout: StripeLayout,
    epoch: u32,
    iomode: u32,
    fsid_idx: u64,
    client: &[u8],
    buf: &mut [u8],
) -> Result<usize> {
    let sign = table
        .keys
        .and_then(|k| k.signing().copied())
        .ok_or(EAGAIN)?;
    let width = layout.width;
    if !table.layout_rule.allows(client, width) {
        return Err(EOPNOTSUPP);
    }
    let viod_at = |j: u32| (layout.first_viod + j) % width;
    // The handles name each member's data directory: learn the ones not
    // known yet (a PING each), or the client goes through us meanwhile.
    let mut unknown = KVec::new();
    for j in 0..width {
        for m in table.viod(viod_at(j)).iter().flat_map(|v| v.members.iter()) {
            if table.instance_of(&m.addr) == 0 || m.identity.load(Relaxed) == UNKNOWN_IDENTITY {
                unknown.push(m, GFP_KERNEL)?;
            }
        }
    }
    if !unknown.is_empty() {
        crate::iodio::learn_instances(table, &unknown).map_err(|_| EOPNOTSUPP)?;
    }
    // Mirror m is every viod's member m: a member left out of the layout
    // would miss the clients' writes, so every viod must have as many.
    let mut mirrors = None;
    for j in 0..width {
        let v = table.viod(viod_at(j)).ok_or(EOPNOTSUPP)?;
        if v.members.is_empty() || !v.members.iter().all(|m| m.serves_layouts()) {
            return Err(EOPNOTSUPP);
        }
        let n = u32::try_from(v.members.len()).map_err(|_| EINVAL)?;
        if *mirrors.get_or_insert(n) != n {
            return Err(EOPNOTSUPP);
        }
    }
    let mirrors = mirrors.ok_or(EOPNOTSUPP)?;
    // Replicated viods are served through the meta-server (its replica
    // chains), not through layouts: a client that dies between the mirrors
    // of a write leaves the members different, and a member that went down
    // (and missed writes) would still serve the reads of a layout naming
    // it; nothing re-syncs the one or fences the other yet.
    if mirrors > 1 {
        return Err(EOPNOTSUPP);
    }
    let stripe_unit = u64::from(layout.block_size);
    ffl::encode_layout(buf, fsid_idx, stripe_unit, mirrors, width, |m, j| {
        let viod = viod_at(j);
        let member = table
            .viod(viod)
            .and_then(|v| v.members.get(m as usize))
            .ok_or(crate::proto::error::ProtoError::InvalidField("member"))?;
        let handle = DsHandle {
            key,
            layout,
            viod,
            epoch,
            read_only: iomode == IOMODE_READ,
        };
        let mut fh = [0u8; DS_FH_LEN];
        handle.seal(&sign, &member.addr, member.identity.load(Relaxed), &mut fh)?;
        Ok(DataServer {
            device: member.device,
            fh,
        })
    })
    .map_err(|_| E2BIG)
}

/// Encodes the address of the data server `device` into `buf`.
pub(crate) fn device(table: &Table, device: u32, buf: &mut [u8]) -> Result<usize> {
    let iod = viod::by_device(table, device).ok_or(ENOENT)?;
    ffl::encode_device(buf, &iod.addr, DS_IO_SIZE, DS_IO_SIZE).map_err(|_| E2BIG)
}

/// Counts the data-server errors a client reports as it returns a layout
/// (`errors`, its `ff_layoutreturn4`) on the iods concerned; iodmgr sees
/// them in the table's list. A body we cannot read is only logged.
pub(crate) fn count_errors(table: &Table, errors: &[u8]) {
    let r = ffl::for_each_return_error(errors, |e| {
        if let Some(iod) = viod::by_device(table, e.device) {
            iod.ds_errors.add(1u64, Relaxed);
        }
    });
    if r.is_err() {
        pr_info!("nfsp: a LAYOUTRETURN with an unreadable error report\n");
    }
}
