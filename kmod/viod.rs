// SPDX-License-Identifier: GPL-2.0

//! The viod table: viods (groups of iods replicating each other) and their
//! members, changed at run time by control commands while nfsd threads use
//! it.
//!
//! Readers take the table lock only to clone an `Arc` of the current table,
//! so a request never waits on a writer for longer than that; a writer
//! builds a new table beside the old one and swaps it in. Member counters
//! live in the members themselves (`Arc<Iod>`), shared by old and new
//! tables, so they survive reconfiguration.

use core::fmt::Write;
use core::net::{IpAddr, SocketAddr};

use kernel::{
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
    time::{Instant, Monotonic},
};

use crate::ffi::{NetRef, UdpSocket};
use crate::proto::{
    auth::Keys,
    control::{Answer, Command, IodState, ListLine, Members, Space},
    ffl::LayoutRule,
};

/// One iod: where it is, its state and its counters.
pub(crate) struct Iod {
    pub(crate) addr: SocketAddr,
    /// Its pNFS device number (unique in the module; its data server is
    /// at `addr` over TCP).
    pub(crate) device: u32,
    /// Our own address as the iod sees it (replies and acks come back here).
    pub(crate) origin_ip: IpAddr,
    state: Atomic<u32>,
    pub(crate) requests: Atomic<u64>,
    pub(crate) bytes: Atomic<u64>,
    pub(crate) errors: Atomic<u64>,
    pub(crate) timeouts: Atomic<u64>,
    /// Errors of its data server that pNFS clients reported.
    pub(crate) ds_errors: Atomic<u64>,
    /// The iod's instance, learned from its authenticated answers (0:
    /// not known yet); requests must name it.
    pub(crate) instance: Atomic<u64>,
    /// The sequence number of the answer `instance` was learned from.
    pub(crate) instance_seq: Atomic<u64>,
    /// The identity of its data directory (the high half of its
    /// instances): given by the admin (`identity`, `iodctl load`) or
    /// learned from its first answer; 0: not known yet.
    pub(crate) identity: Atomic<u32>,
    /// Another identity it answered with since (it is kept down); 0: none.
    pub(crate) foreign: Atomic<u32>,
    /// Exponentially weighted mean latency (microseconds).
    latency_us: Atomic<u64>,
    /// The clock of `silent_until_ms`.
    created: Instant<Monotonic>,
    /// While the iod is known to be silent (its last request timed out),
    /// until when (ms since `created`) requests that need it fail at once
    /// instead of holding an nfsd thread for every retry; 0: not silent.
    /// Then one request, a probe, waits a single round for it.
    silent_until_ms: Atomic<u64>,
    /// The space of its file system (bytes: size, free, available), as
    /// iodmgr last told it; size 0: not told yet.
    space: [Atomic<u64>; 3],
}

/// How long an iod that stopped answering is failed fast before the next
/// probe, in milliseconds.
const SILENT_PROBE_INTERVAL_MS: u64 = 1000;

/// What a request may do with an iod.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Reach {
    /// Answering: wait for it as usual.
    Normal,
    /// Known to be silent, and this request probes it: wait one round.
    Probe,
    /// Known to be silent: fail now (the client retries).
    FailFast,
}

fn state_to_u32(s: IodState) -> u32 {
    match s {
        IodState::Up => 0,
        IodState::Down => 1,
        IodState::Resync => 2,
    }
}

fn state_from_u32(v: u32) -> IodState {
    match v {
        0 => IodState::Up,
        2 => IodState::Resync,
        _ => IodState::Down,
    }
}

impl Iod {
    pub(crate) fn state(&self) -> IodState {
        state_from_u32(self.state.load(Relaxed))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.created.elapsed().as_millis())
            .unwrap_or(0)
            .max(1)
    }

    /// Whether a request may wait for this iod now (see [`Reach`]). At
    /// most one probe is in flight: it pushes the next one out.
    pub(crate) fn reach(&self) -> Reach {
        let until = self.silent_until_ms.load(Relaxed);
        if until == 0 {
            return Reach::Normal;
        }
        let now = self.now_ms();
        if now < until {
            return Reach::FailFast;
        }
        match self
            .silent_until_ms
            .cmpxchg(until, now + SILENT_PROBE_INTERVAL_MS, Relaxed)
        {
            Ok(_) => Reach::Probe,
            Err(_) => Reach::FailFast,
        }
    }

    /// The iod left a request unanswered for every round: fail fast for a
    /// while.
    pub(crate) fn went_silent(&self) {
        self.silent_until_ms
            .store(self.now_ms() + SILENT_PROBE_INTERVAL_MS, Relaxed);
    }

    /// The iod answered: it is not silent.
    pub(crate) fn answered(&self) {
        if self.silent_until_ms.load(Relaxed) != 0 {
            self.silent_until_ms.store(0, Relaxed);
        }
    }

    /// Whether the iod is known to be silent.
    pub(crate) fn silent(&self) -> bool {
        self.silent_until_ms.load(Relaxed) != 0
    }

    /// Its space, if told.
    fn space(&self) -> Option<Space> {
        let [total, free, avail] = self.space.each_ref().map(|a| a.load(Relaxed));
        (total != 0).then_some(Space { total, free, avail })
    }

    /// Whether clients may do I/O to it directly (pNFS): up, answering,
    /// and with a known identity (its data-server filehandles name it).
    pub(crate) fn serves_layouts(&self) -> bool {
        self.state() == IodState::Up
            && !self.silent()
            && self.identity.load(Relaxed) != crate::proto::wire::UNKNOWN_IDENTITY
            && self.foreign.load(Relaxed) == 0
    }

    /// Takes it out of service: it answered as another data directory.
    pub(crate) fn take_down(&self) {
        self.state.store(state_to_u32(IodState::Down), Relaxed);
    }

    /// Whether the iod receives writes (up, or re-syncing).
    pub(crate) fn takes_writes(&self) -> bool {
        self.state() != IodState::Down
    }

    /// Records one request, with its latency when it was answered to us
    /// (direct reads are answered to the client).
    pub(crate) fn record(&self, bytes: usize, latency_us: Option<u64>) {
        self.requests.add(1u64, Relaxed);
        self.bytes.add(bytes as u64, Relaxed);
        let Some(latency_us) = latency_us else {
            return;
        };
        let old = self.latency_us.load(Relaxed);
        let new = if old == 0 {
            latency_us
        } else {
            (old.saturating_mul(7).saturating_add(latency_us)) / 8
        };
        self.latency_us.store(new, Relaxed);
    }

    fn list_line(&self, viod: u32) -> ListLine {
        ListLine {
            viod,
            addr: self.addr,
            state: self.state(),
            requests: self.requests.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            errors: self.errors.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            latency_us: self.latency_us.load(Relaxed),
            ds_errors: self.ds_errors.load(Relaxed),
            identity: self.identity.load(Relaxed),
            foreign: self.foreign.load(Relaxed),
        }
    }
}

/// A group of iods holding the same data.
pub(crate) struct Viod {
    pub(crate) id: u32,
    pub(crate) members: KVec<Arc<Iod>>,
    /// Round-robin cursor for reads, shared across table versions.
    cursor: Arc<Atomic<u32>>,
}

impl Viod {
    /// The member to read from: the next up member, round-robin.
    pub(crate) fn reader(&self) -> Option<&Arc<Iod>> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1u32, Relaxed) as usize;
        let up = || {
            (0..n)
                .filter_map(|i| start.wrapping_add(i).checked_rem(n))
                .filter_map(|i| self.members.get(i))
                .filter(|m| m.state() == IodState::Up)
        };
        // A replica known to be silent only when no other one answers.
        up().find(|m| !m.silent()).or_else(|| up().next())
    }

    /// The members that must receive a write, in chain order.
    pub(crate) fn writers(&self) -> impl Iterator<Item = &Arc<Iod>> {
        self.members.iter().filter(|m| m.takes_writes())
    }

    fn find(&self, addr: &SocketAddr) -> Option<usize> {
        self.members.iter().position(|m| m.addr == *addr)
    }
}

/// The network namespace the table lives in, and its sockets (dropped
/// with the table when the namespace exits).
pub(crate) struct Anchor {
    pub(crate) net: NetRef,
    /// The origin of direct reads (which nobody waits for): iods send
    /// their failures and stale-instance refusals here, and the next
    /// direct read picks them up. Also sends the direct reads.
    pub(crate) notices: UdpSocket,
    pub(crate) notices_port: u16,
}

/// One version of the table.
pub(crate) struct Table {
    /// Sorted by id.
    pub(crate) viods: KVec<Viod>,
    pub(crate) anchor: Option<Arc<Anchor>>,
    /// How long to wait for an iod's answer before retrying.
    pub(crate) timeout_ms: u32,
    /// The cluster keys; `None` until loaded (`keys` command): no iod
    /// I/O happens before, nfsd answers NFS3ERR_JUKEBOX.
    pub(crate) keys: Option<Keys>,
    /// Which clients get pNFS layouts (`layouts` command).
    pub(crate) layout_rule: LayoutRule,
}

/// Default wait for an iod's answer.
const DEFAULT_TIMEOUT_MS: u32 = 500;

impl Table {
    pub(crate) fn empty() -> Result<Arc<Table>> {
        Ok(Arc::new(
            Table {
                viods: KVec::new(),
                anchor: None,
                timeout_ms: DEFAULT_TIMEOUT_MS,
                keys: None,
                layout_rule: LayoutRule::Auto,
            },
            GFP_KERNEL,
        )?)
    }

    /// The member at `addr`, in any viod.
    pub(crate) fn iod(&self, addr: &SocketAddr) -> Option<&Arc<Iod>> {
        self.viods
            .iter()
            .flat_map(|v| v.members.iter())
            .find(|m| m.addr == *addr)
    }

    /// The instance of the iod at `addr` as known (0: unknown).
    pub(crate) fn instance_of(&self, addr: &SocketAddr) -> u64 {
        self.iod(addr).map_or(0, |m| m.instance.load(Relaxed))
    }

    pub(crate) fn viod(&self, id: u32) -> Option<&Viod> {
        self.viods
            .binary_search_by_key(&id, |v| v.id)
            .ok()
            .and_then(|i| self.viods.get(i))
    }

    /// Stripe width for a new file: the viods 0, 1, 2, … present without a
    /// gap.
    pub(crate) fn width(&self) -> u32 {
        let mut w = 0u32;
        while self.viod(w).is_some() {
            w += 1;
        }
        w
    }

    /// A copy of the table sharing every member, to be changed and swapped
    /// in.
    fn clone_for_update(&self) -> Result<Table> {
        let mut viods = KVec::with_capacity(self.viods.len() + 1, GFP_KERNEL)?;
        for v in self.viods.iter() {
            let mut members = KVec::with_capacity(v.members.len() + 1, GFP_KERNEL)?;
            for m in v.members.iter() {
                members.push(m.clone(), GFP_KERNEL)?;
            }
            viods.push(
                Viod {
                    id: v.id,
                    members,
                    cursor: v.cursor.clone(),
                },
                GFP_KERNEL,
            )?;
        }
        Ok(Table {
            viods,
            anchor: self.anchor.clone(),
            timeout_ms: self.timeout_ms,
            keys: self.keys,
            layout_rule: self.layout_rule,
        })
    }
}

/// An answer being written into the control buffer.
pub(crate) struct AnswerBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl<'a> AnswerBuf<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        AnswerBuf {
            buf,
            len: 0,
            overflow: false,
        }
    }

    /// Appends one answer line.
    pub(crate) fn line(&mut self, a: &Answer<'_>) {
        let _ = writeln!(self, "{a}");
    }

    /// The answer's length, or `EFBIG` if it did not fit.
    pub(crate) fn finish(self) -> Result<usize> {
        if self.overflow {
            Err(EFBIG)
        } else {
            Ok(self.len)
        }
    }
}

impl Write for AnswerBuf<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(s.as_bytes());
                self.len = end;
                Ok(())
            }
            None => {
                self.overflow = true;
                Err(core::fmt::Error)
            }
        }
    }
}

fn oom(_: impl Into<Error>) -> Error {
    ENOMEM
}

/// The last pNFS device number given to an iod.
static LAST_DEVICE: Atomic<u32> = Atomic::new(0);

fn new_iod(net: &NetRef, addr: SocketAddr) -> Result<Arc<Iod>> {
    let origin_ip = UdpSocket::source_for(net, &addr).map_err(|_| EHOSTUNREACH)?;
    Arc::new(
        Iod {
            addr,
            device: LAST_DEVICE.fetch_add(1u32, Relaxed).wrapping_add(1),
            origin_ip,
            state: Atomic::new(state_to_u32(IodState::Up)),
            requests: Atomic::new(0),
            bytes: Atomic::new(0),
            errors: Atomic::new(0),
            timeouts: Atomic::new(0),
            ds_errors: Atomic::new(0),
            instance: Atomic::new(0),
            instance_seq: Atomic::new(0),
            identity: Atomic::new(0),
            foreign: Atomic::new(0),
            latency_us: Atomic::new(0),
            created: Instant::now(),
            silent_until_ms: Atomic::new(0),
            space: [Atomic::new(0), Atomic::new(0), Atomic::new(0)],
        },
        GFP_KERNEL,
    )
    .map_err(oom)
}

fn new_members(net: &NetRef, addrs: &Members) -> Result<KVec<Arc<Iod>>> {
    let mut members = KVec::with_capacity(addrs.len(), GFP_KERNEL).map_err(oom)?;
    for (i, a) in addrs.iter().enumerate() {
        if addrs.iter().take(i).any(|b| b == a) {
            return Err(EINVAL);
        }
        members.push(new_iod(net, a)?, GFP_KERNEL).map_err(oom)?;
    }
    Ok(members)
}

/// Applies a changing command to `old`, the table of `net`, giving the new
/// table. Nothing changes when it fails: `ENOENT` names an unknown viod or
/// iod, `EEXIST` one that exists, `EBUSY` the removal of a viod's last
/// member (use `del-viod`), `E2BIG` a full viod, `EHOSTUNREACH` an iod
/// with no route to it.
pub(crate) fn apply(old: &Table, net: NetRef, cmd: &Command) -> Result<Table> {
    let mut t = old.clone_for_update().map_err(oom)?;
    // The table's sockets live in the namespace of its nfsd (and iods).
    if t.anchor.is_none() && matches!(cmd, Command::AddViod { .. } | Command::AddIod { .. }) {
        let probe = SocketAddr::new(IpAddr::V4(core::net::Ipv4Addr::LOCALHOST), 0);
        let notices = UdpSocket::new(&net, &probe).map_err(|_| oom(ENOMEM))?;
        let notices_port = notices.local_port(&probe)?;
        t.anchor = Some(
            Arc::new(
                Anchor {
                    net,
                    notices,
                    notices_port,
                },
                GFP_KERNEL,
            )
            .map_err(oom)?,
        );
        // Iods met from now on count as known instances: one that
        // restarted while no table was loaded (module reload) would not
        // look new, so writes acknowledged before are sent again now.
        crate::iodio::reset_write_verifier(&net);
    }
    match *cmd {
        Command::AddViod { id, ref members } => {
            if t.viod(id).is_some() {
                return Err(EEXIST);
            }
            let anchor = t.anchor.clone().ok_or(EINVAL)?;
            let members = new_members(&anchor.net, members)?;
            let at = t
                .viods
                .iter()
                .position(|v| v.id > id)
                .unwrap_or(t.viods.len());
            let viod = Viod {
                id,
                members,
                cursor: Arc::new(Atomic::new(0), GFP_KERNEL).map_err(oom)?,
            };
            t.viods
                .insert_within_capacity(at, viod)
                .map_err(|_| oom(ENOMEM))?;
        }
        Command::DelViod { id } => {
            let at = t.viods.iter().position(|v| v.id == id).ok_or(ENOENT)?;
            t.viods.remove(at).map_err(|_| ENOENT)?;
        }
        Command::AddIod { viod, addr } => {
            let anchor = t.anchor.clone().ok_or(EINVAL)?;
            let v = t.viods.iter_mut().find(|v| v.id == viod).ok_or(ENOENT)?;
            if v.find(&addr).is_some() {
                return Err(EEXIST);
            }
            if v.members.len() >= crate::proto::control::MAX_MEMBERS {
                return Err(E2BIG);
            }
            let iod = new_iod(&anchor.net, addr)?;
            // A new member holds nothing yet: it must be re-synced first.
            iod.state.store(state_to_u32(IodState::Resync), Relaxed);
            v.members.push(iod, GFP_KERNEL).map_err(oom)?;
        }
        Command::DelIod { viod, addr } => {
            let v = t.viods.iter_mut().find(|v| v.id == viod).ok_or(ENOENT)?;
            let at = v.find(&addr).ok_or(ENOENT)?;
            if v.members.len() == 1 {
                return Err(EBUSY);
            }
            v.members.remove(at).map_err(|_| ENOENT)?;
        }
        Command::SetState { viod, addr, state } => {
            let v = t.viod(viod).ok_or(ENOENT)?;
            let at = v.find(&addr).ok_or(ENOENT)?;
            if let Some(m) = v.members.get(at) {
                m.state.store(state_to_u32(state), Relaxed);
            }
        }
        Command::Identity {
            viod,
            addr,
            identity,
        } => {
            t.viod(viod).and_then(|v| v.find(&addr)).ok_or(ENOENT)?;
            // Its instance is kept: the next answer (Stale, from an iod
            // that came back) teaches the new one, which changes nfsd's
            // write verifier as for any restart.
            for m in t
                .viods
                .iter()
                .flat_map(|v| v.members.iter())
                .filter(|m| m.addr == addr)
            {
                m.identity.store(identity, Relaxed);
                m.foreign.store(0, Relaxed);
            }
        }
        Command::Timeout { ms } => t.timeout_ms = ms,
        Command::Keys(keys) => t.keys = Some(keys),
        Command::Layouts(rule) => t.layout_rule = rule,
        Command::List | Command::Stats | Command::Space { .. } => {}
    }
    Ok(t)
}

/// Records the space iodmgr tells for every member at `addr`; `ENOENT`
/// if there is none. The table stays as it is (members are shared).
pub(crate) fn set_space(t: &Table, addr: &SocketAddr, space: &Space) -> Result {
    let mut found = false;
    for m in t
        .viods
        .iter()
        .flat_map(|v| v.members.iter())
        .filter(|m| m.addr == *addr)
    {
        for (a, v) in m.space.iter().zip([space.total, space.free, space.avail]) {
            a.store(v, Relaxed);
        }
        found = true;
    }
    if found {
        Ok(())
    } else {
        Err(ENOENT)
    }
}

/// The space of the table's data: each viod holds as much as its
/// smallest member, and viods add up. `None` unless every viod has a
/// member whose space is known (partial figures would mislead `df`).
pub(crate) fn space(t: &Table) -> Option<Space> {
    let mut sum: Option<Space> = None;
    for v in t.viods.iter() {
        let viod = Space::replicated(v.members.iter().filter_map(|m| m.space()))?;
        sum = Some(sum.map_or(viod, |s| s.plus(viod)));
    }
    sum
}

/// The iod whose pNFS device number is `device`.
pub(crate) fn by_device(t: &Table, device: u32) -> Option<&Arc<Iod>> {
    t.viods
        .iter()
        .flat_map(|v| v.members.iter())
        .find(|m| m.device == device)
}

/// Writes the `list` answer.
pub(crate) fn list(t: &Table, out: &mut AnswerBuf<'_>) {
    for v in t.viods.iter() {
        for m in v.members.iter() {
            out.line(&Answer::Member(m.list_line(v.id)));
        }
    }
}
