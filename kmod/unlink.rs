// SPDX-License-Identifier: GPL-2.0

//! The deletion queue and its device, `/dev/nfsp_unlink`.
//!
//! When the last link of an nfsp file goes, its data key is queued here;
//! `unlinkd` reads the records (`proto::unlink::UnlinkRecord`, 64 bytes
//! each), makes them durable, tells the iods to drop the data, and writes
//! back acknowledgements (`UnlinkAck`, 24 bytes). A record leaves the kernel
//! only when acknowledged: a reader that dies before acknowledging gets the
//! same records again when it reopens the device. A full queue refuses new
//! deletions (`EAGAIN`, which nfsd turns into NFS3ERR_JUKEBOX: the client
//! retries), so a deletion is never dropped. While records are pending the
//! module holds a reference on itself: `rmmod` refuses to unload it.
//!
//! Reads never block: an empty queue reads as 0 bytes (unlinkd polls).

use kernel::{
    fs::File,
    iov::{IovIterDest, IovIterSource},
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    new_mutex,
    prelude::*,
    sync::Mutex,
};

use crate::proto::unlink::{UnlinkAck, UnlinkRecord, ACK_LEN, RECORD_LEN};
use crate::{ffi, state};

/// Most deletions waiting for `unlinkd` (64 bytes each).
pub(crate) const QUEUE_CAPACITY: usize = 16384;

struct Inner {
    /// Unacknowledged records, oldest first (sequence numbers increase).
    records: KVVec<UnlinkRecord>,
    /// Slots promised to unlinks in progress.
    reserved: usize,
    next_seq: u64,
    /// Whether the module holds a reference on itself.
    pinned: bool,
}

/// The queue of deletions.
#[pin_data]
pub(crate) struct DeletionQueue {
    #[pin]
    inner: Mutex<Inner>,
    module: &'static ThisModule,
}

impl DeletionQueue {
    pub(crate) fn new(module: &'static ThisModule) -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_mutex!(Inner {
                records: KVVec::new(),
                reserved: 0,
                next_seq: 1,
                pinned: false,
            }),
            module,
        })
    }

    /// Reserves room for one record (an unlink is about to happen).
    pub(crate) fn reserve(&self) -> Result {
        let mut q = self.inner.lock();
        if q.records.len() + q.reserved >= QUEUE_CAPACITY {
            return Err(EAGAIN);
        }
        q.reserved += 1;
        Ok(())
    }

    /// Uses (with `record`) or returns (with `None`) a reserved slot.
    pub(crate) fn complete(&self, record: Option<UnlinkRecord>) -> Result {
        let mut q = self.inner.lock();
        q.reserved = q.reserved.saturating_sub(1);
        let Some(mut record) = record else {
            return Ok(());
        };
        record.seq = q.next_seq;
        q.next_seq += 1;
        // The slot was reserved, so only a failed allocation can fail here.
        q.records.push(record, GFP_KERNEL)?;
        if !q.pinned {
            ffi::module_get(self.module);
            q.pinned = true;
        }
        Ok(())
    }

    /// Records pending and their total real size.
    pub(crate) fn pending(&self) -> (u64, u64) {
        let q = self.inner.lock();
        let mut bytes = 0u64;
        for r in q.records.iter() {
            bytes = bytes.saturating_add(r.real_size);
        }
        (q.records.len() as u64, bytes)
    }

    fn acknowledge(&self, ack: &UnlinkAck) {
        let mut q = self.inner.lock();
        q.records.retain(|r| !ack.covers(r.seq));
        if q.records.is_empty() && q.pinned {
            q.pinned = false;
            ffi::module_put(self.module);
        }
    }
}

/// An open `/dev/nfsp_unlink`: the next sequence number to hand out.
#[pin_data]
pub(crate) struct UnlinkReader {
    #[pin]
    cursor: Mutex<u64>,
}

#[vtable]
impl MiscDevice for UnlinkReader {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(
            try_pin_init!(UnlinkReader {
                cursor <- new_mutex!(0),
            }),
            GFP_KERNEL,
        )
    }

    fn read_iter(
        kiocb: kernel::fs::Kiocb<'_, Self::Ptr>,
        iov: &mut IovIterDest<'_>,
    ) -> Result<usize> {
        let me = kiocb.file();
        let queue = &state()?.queue;
        let mut cursor = me.cursor.lock();
        let q = queue.inner.lock();
        let mut copied = 0;
        let mut buf = [0u8; RECORD_LEN];
        let from = *cursor;
        for r in q.records.iter().filter(|r| r.seq >= from) {
            if iov.len() < RECORD_LEN {
                break;
            }
            let n = r.encode(&mut buf).map_err(|_| EINVAL)?;
            if iov.copy_to_iter(&buf[..n]) != n {
                return Err(EFAULT);
            }
            copied += n;
            *cursor = r.seq + 1;
        }
        Ok(copied)
    }

    fn write_iter(
        _kiocb: kernel::fs::Kiocb<'_, Self::Ptr>,
        iov: &mut IovIterSource<'_>,
    ) -> Result<usize> {
        let queue = &state()?.queue;
        let len = iov.len();
        if len == 0 || len % ACK_LEN != 0 {
            return Err(EINVAL);
        }
        let mut done = 0;
        let mut buf = [0u8; ACK_LEN];
        while done < len {
            if iov.copy_from_iter(&mut buf) != ACK_LEN {
                return Err(EFAULT);
            }
            let ack = UnlinkAck::decode(&buf).map_err(|_| EINVAL)?;
            queue.acknowledge(&ack);
            done += ACK_LEN;
        }
        Ok(done)
    }
}
