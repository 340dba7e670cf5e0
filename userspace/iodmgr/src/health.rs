// SPDX-License-Identifier: GPL-2.0
//! The health state machine: one round per interval turns the kernel's
//! member list and the heartbeat results into actions on the control file.
//!
//! Per member `(viod, iod)`:
//! * a PONG resets its misses and records the round-trip time; `misses`
//!   missed PINGs in a row take an `up` (or `resync`) member `down` — also
//!   the last up member of its viod: with every member dead, clients get
//!   NFS3ERR_JUKEBOX whether it is marked or not, and marking it keeps its
//!   data *fresh* (no write can reach any other member meanwhile);
//! * an `up` member answering much slower than its viod's other up members
//!   (its typical round trip — the median of its last 5 — `> slow_factor ×`
//!   the median of theirs and `> 50 ms`) for `misses` rounds in a row is
//!   taken `down` too — never the last up member of its viod
//!   (slow beats nothing) — and comes back only after `misses` rounds back
//!   under that bound;
//! * when no `up` member is left in a viod, its `resync` members go `down`
//!   as well: nothing takes writes any more, so the member that went down
//!   last still holds the newest data;
//! * a `down` member is *stale* as soon as another member of its viod
//!   takes writes; a *fresh* one (the viod's last writer) goes back `up`
//!   directly when it answers; a stale one is re-synced from an up member
//!   (`resync` first, so it gets the writes made meanwhile) and goes `up`
//!   only when the copy is complete. A stale member with no up member to
//!   copy from waits.
//!
//! Every PONG carries the iod's instance, drawn anew at each start: a
//! changed instance means the iod restarted (logged and counted; its data
//! on disk survived, its reply cache and in-flight requests did not).
//!
//! The instance's high half is the identity of the iod's data directory
//! ([`nfsp_proto::wire::identity_of`]), which the table records (learned
//! from its first PONG when the table has none). A member that answers as
//! another directory (wiped, replaced, or another iod at its address; the
//! module finds it too, in `foreign`) holds none of its viod's data: it
//! is taken down and treated as stale, so it is re-synced from an up
//! member, and its new identity is recorded just before the copy starts
//! (it takes writes from then on, and serves reads only once complete).
//! With no member to copy from it stays down: the admin decides
//! (`iodctl accept-identity`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use nfsp_proto::wire::UNKNOWN_IDENTITY;
use nfsp_proto::{IodState, ListLine};

use crate::status::IodStatus;

/// Latency below which an iod is never called slow.
pub const SLOW_MIN: Duration = Duration::from_millis(50);
/// Round trips remembered per member.
pub const WINDOW: usize = 5;
/// Wait before trying again after a failed re-sync.
pub const RESYNC_RETRY: Duration = Duration::from_secs(5);

/// Thresholds.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Missed PINGs in a row (and slow rounds in a row) before `down`.
    pub misses: u32,
    /// Slow = above this factor × the viod peers' median latency.
    pub slow_factor: f64,
    /// … and above this latency.
    pub slow_min: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            misses: 3,
            slow_factor: 10.0,
            slow_min: SLOW_MIN,
        }
    }
}

/// What the daemon must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `set-state VIOD ADDR STATE`, with the reason to log.
    SetState {
        /// Viod.
        viod: u32,
        /// Member.
        addr: SocketAddr,
        /// New state.
        state: IodState,
        /// Why (logged).
        reason: String,
    },
    /// Set `addr` to `resync`, copy `source`'s data to it, then `up`.
    Resync {
        /// Viod.
        viod: u32,
        /// The returning member.
        addr: SocketAddr,
        /// An up member of the viod to copy from.
        source: SocketAddr,
    },
    /// Record `identity` as the one of `addr`'s data directory (`identity
    /// VIOD ADDR IDENTITY`), with the reason to log.
    SetIdentity {
        /// Viod.
        viod: u32,
        /// Member.
        addr: SocketAddr,
        /// Its data directory's identity.
        identity: u32,
        /// Why (logged).
        reason: String,
    },
    /// Stop the re-sync of `addr` (it is being taken down).
    AbortResync {
        /// Viod.
        viod: u32,
        /// Member.
        addr: SocketAddr,
    },
}

/// What the monitor remembers about one member.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// Missed PINGs in a row.
    pub misses: u32,
    /// Last round-trip time.
    pub latency: Option<Duration>,
    /// The last [`WINDOW`] round-trip times (slowness is judged on their
    /// median, so one late PONG is not enough).
    pub recent: VecDeque<Duration>,
    /// Last PONG (wall clock).
    pub last_seen: Option<SystemTime>,
    /// Slow rounds in a row (while up), or good rounds in a row (while
    /// down for slowness).
    pub slow_rounds: u32,
    /// Taken down for slowness (returns after good rounds, not at once).
    pub slow_down: bool,
    /// Other members took writes since it went down: needs a re-sync.
    pub stale: bool,
    /// A re-sync to it is running.
    pub resyncing: bool,
    /// No re-sync before this instant (after a failure).
    pub retry_after: Option<Instant>,
    /// Bytes copied to it by re-syncs.
    pub resync_bytes: u64,
    /// Why it is down (or the last event).
    pub reason: String,
    /// Said once that it waits for a fresh member.
    pub waiting_logged: bool,
    /// The iod's instance, from its last PONG.
    pub instance: Option<u64>,
    /// Instance changes seen (restarts of the iod).
    pub restarts: u64,
    /// Data-server errors reported by clients, as last seen.
    pub ds_errors: u64,
    /// The other data directory it answers as (see the module doc).
    pub foreign: Option<u32>,
}

/// The monitor: trackers by `(viod, iod)`.
#[derive(Debug, Default)]
pub struct Monitor {
    /// Thresholds.
    pub cfg: Config,
    /// Members seen.
    pub members: BTreeMap<(u32, SocketAddr), Tracker>,
    /// The data-directory identity each iod's PONG named this round (set
    /// by [`Monitor::note_identities`] before [`Monitor::round`]).
    pub answered_as: HashMap<SocketAddr, u32>,
}

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    })
}

impl Tracker {
    /// The median of the recent round trips.
    pub fn typical(&self) -> Option<Duration> {
        median(self.recent.iter().copied().collect())
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

impl Monitor {
    /// A monitor with these thresholds; `known_fresh` = members remembered
    /// (state file) as fresh while down, the others found down are stale.
    pub fn new(cfg: Config, remembered: &[IodStatus]) -> Self {
        let mut m = Monitor {
            cfg,
            members: BTreeMap::new(),
            answered_as: HashMap::new(),
        };
        for s in remembered {
            if let Ok(addr) = s.iod.parse() {
                m.members.insert(
                    (s.viod, addr),
                    Tracker {
                        stale: s.stale,
                        slow_down: s.slow_down,
                        resync_bytes: s.resync_bytes,
                        reason: s.reason.clone(),
                        // A restart while no monitor ran is seen too.
                        instance: s.instance_u64(),
                        restarts: s.restarts,
                        ..Tracker::default()
                    },
                );
            }
        }
        m
    }

    /// The slowness bound of viod `viod` for member `addr`: the median
    /// typical round trip of the viod's other up members that answer, ×
    /// the factor (at least [`Config::slow_min`]), and that median.
    fn slow_bound(
        &self,
        list: &[ListLine],
        viod: u32,
        addr: SocketAddr,
    ) -> Option<(Duration, Duration)> {
        let peers: Vec<Duration> = list
            .iter()
            .filter(|l| l.viod == viod && l.addr != addr && l.state == IodState::Up)
            .filter_map(|l| self.members.get(&(l.viod, l.addr)))
            .filter(|t| t.misses == 0)
            .filter_map(Tracker::typical)
            .collect();
        let med = median(peers)?;
        let bound = med.mul_f64(self.cfg.slow_factor).max(self.cfg.slow_min);
        Some((med, bound))
    }

    /// One round: `list` = the kernel's members now, `pings` = the
    /// round-trip time of every iod that answered this round's PING.
    pub fn round(
        &mut self,
        list: &[ListLine],
        pings: &HashMap<SocketAddr, Duration>,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<Action> {
        let cfg = self.cfg;
        // Forget members that are gone from the table.
        self.members
            .retain(|k, _| list.iter().any(|l| (l.viod, l.addr) == *k));
        // Heartbeats.
        for l in list {
            let t = self
                .members
                .entry((l.viod, l.addr))
                .or_insert_with(|| Tracker {
                    // A member found down without history may miss writes.
                    stale: l.state == IodState::Down,
                    ..Tracker::default()
                });
            match pings.get(&l.addr) {
                Some(rtt) => {
                    t.misses = 0;
                    t.latency = Some(*rtt);
                    t.last_seen = Some(wall);
                    if t.recent.len() == WINDOW {
                        t.recent.pop_front();
                    }
                    t.recent.push_back(*rtt);
                }
                None => t.misses = t.misses.saturating_add(1),
            }
            if l.ds_errors > t.ds_errors {
                // The heartbeats judge the member; this says why clients
                // fell back to the meta-server.
                log::warn!(
                    "viod {} member {}: pNFS clients reported {} data-server errors ({} in all)",
                    l.viod,
                    l.addr,
                    l.ds_errors - t.ds_errors,
                    l.ds_errors
                );
                t.ds_errors = l.ds_errors;
            }
        }
        // The states after this round's decisions.
        let mut state: BTreeMap<(u32, SocketAddr), IodState> =
            list.iter().map(|l| ((l.viod, l.addr), l.state)).collect();
        let mut actions = Vec::new();
        let down = |state: &mut BTreeMap<(u32, SocketAddr), IodState>,
                    actions: &mut Vec<Action>,
                    t: &mut Tracker,
                    viod: u32,
                    addr: SocketAddr,
                    reason: String| {
            if t.resyncing {
                actions.push(Action::AbortResync { viod, addr });
                t.resyncing = false;
            }
            state.insert((viod, addr), IodState::Down);
            t.reason = reason.clone();
            t.slow_rounds = 0;
            actions.push(Action::SetState {
                viod,
                addr,
                state: IodState::Down,
                reason,
            });
        };
        // Dead members.
        for l in list {
            let key = (l.viod, l.addr);
            let Some(t) = self.members.get_mut(&key) else {
                continue;
            };
            if l.state != IodState::Down && t.misses >= cfg.misses {
                t.slow_down = false;
                down(
                    &mut state,
                    &mut actions,
                    t,
                    l.viod,
                    l.addr,
                    format!("no answer to {} PINGs in a row", t.misses),
                );
            }
        }
        // Other data directories: none of the viod's data is there.
        for l in list {
            let key = (l.viod, l.addr);
            let Some(t) = self.members.get_mut(&key) else {
                continue;
            };
            let seen = self
                .answered_as
                .get(&l.addr)
                .copied()
                .filter(|i| *i != UNKNOWN_IDENTITY);
            if l.identity == UNKNOWN_IDENTITY && l.foreign == 0 {
                if let Some(identity) = seen {
                    actions.push(Action::SetIdentity {
                        viod: l.viod,
                        addr: l.addr,
                        identity,
                        reason: "its first answer".into(),
                    });
                }
                continue;
            }
            let foreign = match seen {
                // Its own directory again (a disk mounted back): the
                // module's memory of the other one goes.
                Some(i) if i == l.identity => {
                    if l.foreign != 0 {
                        actions.push(Action::SetIdentity {
                            viod: l.viod,
                            addr: l.addr,
                            identity: i,
                            reason: "answers as its own data directory again".into(),
                        });
                    }
                    None
                }
                Some(i) => Some(i),
                None => (l.foreign != 0).then_some(l.foreign),
            };
            if let (Some(old), None) = (t.foreign, foreign) {
                // Accepted (the table holds the directory it answered as):
                // its viod's other members, if any, must copy their data
                // to it. Back on its own directory: as stale as it was.
                if l.identity == old && list.iter().any(|o| o.viod == l.viod && o.addr != l.addr) {
                    t.stale = true;
                }
            }
            let news = foreign.is_some() && foreign != t.foreign;
            t.foreign = foreign;
            let Some(f) = foreign else { continue };
            let why = format!(
                "answers as data directory {f:08x}, the table holds {:08x} (wiped, replaced or \
                 at the wrong address)",
                l.identity
            );
            if news {
                log::warn!("viod {}: {} {why}", l.viod, l.addr);
            }
            if state.get(&key) != Some(&IodState::Down) {
                t.slow_down = false;
                down(&mut state, &mut actions, t, l.viod, l.addr, why);
            } else {
                // The module took it down: a copy to it stops too.
                if t.resyncing {
                    actions.push(Action::AbortResync {
                        viod: l.viod,
                        addr: l.addr,
                    });
                    t.resyncing = false;
                }
                if news {
                    t.reason = why;
                }
            }
        }
        // Slow members (never the last up one of a viod).
        for l in list {
            let key = (l.viod, l.addr);
            if state.get(&key) != Some(&IodState::Up) {
                continue;
            }
            if !pings.contains_key(&l.addr) {
                continue;
            }
            let bound = self.slow_bound(list, l.viod, l.addr);
            let Some(t) = self.members.get_mut(&key) else {
                continue;
            };
            let Some(rtt) = t.typical() else {
                continue;
            };
            match bound {
                Some((med, b)) if rtt > b => {
                    t.slow_rounds += 1;
                    let others_up = state
                        .iter()
                        .any(|(k, s)| k.0 == l.viod && k.1 != l.addr && *s == IodState::Up);
                    if t.slow_rounds >= cfg.misses && others_up {
                        t.slow_down = true;
                        down(
                            &mut state,
                            &mut actions,
                            t,
                            l.viod,
                            l.addr,
                            format!(
                                "slow: {} typical round trip vs {} for its viod's other up members ({} rounds)",
                                ms(rtt),
                                ms(med),
                                t.slow_rounds
                            ),
                        );
                    }
                }
                _ => t.slow_rounds = 0,
            }
        }
        // No up member left: nothing may take writes (keeps the last
        // writer fresh); re-syncing members go down.
        let viods: Vec<u32> = state.keys().map(|k| k.0).collect();
        for v in viods {
            let any_up = state.iter().any(|(k, s)| k.0 == v && *s == IodState::Up);
            if any_up {
                continue;
            }
            let resyncing: Vec<SocketAddr> = state
                .iter()
                .filter(|(k, s)| k.0 == v && **s == IodState::Resync)
                .map(|(k, _)| k.1)
                .collect();
            for a in resyncing {
                if let Some(t) = self.members.get_mut(&(v, a)) {
                    t.stale = true;
                    down(
                        &mut state,
                        &mut actions,
                        t,
                        v,
                        a,
                        "re-sync stopped: no up member left in its viod to copy from".into(),
                    );
                }
            }
        }
        // Staleness: a down member misses every write another member takes.
        for ((v, a), t) in self.members.iter_mut() {
            if state.get(&(*v, *a)) != Some(&IodState::Down) {
                continue;
            }
            let others_write = state
                .iter()
                .any(|(k, s)| k.0 == *v && k.1 != *a && *s != IodState::Down);
            if others_write {
                t.stale = true;
            }
        }
        // Returning members: down (or resync without a copy running) and
        // answering.
        let members: Vec<(u32, SocketAddr)> = state.keys().copied().collect();
        for (v, a) in members {
            let s = state[&(v, a)];
            let Some(t) = self.members.get(&(v, a)) else {
                continue;
            };
            if s == IodState::Up || t.resyncing || t.misses > 0 {
                continue;
            }
            if t.retry_after.is_some_and(|r| r > now) {
                continue;
            }
            let foreign = t.foreign;
            if t.slow_down {
                // Back only after `misses` good rounds in a row.
                let rtt = t.typical().unwrap_or(Duration::MAX);
                let good = match self.slow_bound(list, v, a) {
                    Some((_, b)) => rtt <= b,
                    None => true,
                };
                let t = self.members.get_mut(&(v, a)).expect("tracked");
                t.slow_rounds = if good { t.slow_rounds + 1 } else { 0 };
                if t.slow_rounds < cfg.misses {
                    continue;
                }
            }
            // Serving the directory of another member (swapped disks or
            // addresses): a copy would overwrite that member's data.
            let swapped = foreign.and_then(|f| {
                list.iter()
                    .find(|l| l.addr != a && l.identity == f)
                    .map(|l| (l.viod, l.addr))
            });
            if let Some((ov, oa)) = swapped {
                let t = self.members.get_mut(&(v, a)).expect("tracked");
                if !t.waiting_logged {
                    t.waiting_logged = true;
                    log::warn!(
                        "viod {v}: {a} serves the data directory of viod {ov} member {oa} \
                         (swapped disks or addresses?): not re-synced, nothing is read from it \
                         until it is put right"
                    );
                }
                continue;
            }
            // An up member to copy from: the fastest one that answered.
            let source = state
                .iter()
                .filter(|(k, st)| k.0 == v && k.1 != a && **st == IodState::Up)
                .filter_map(|(k, _)| pings.get(&k.1).map(|d| (*d, k.1)))
                .min()
                .map(|(_, addr)| addr);
            let t = self.members.get_mut(&(v, a)).expect("tracked");
            if !t.stale && t.foreign.is_none() && s == IodState::Down {
                t.slow_down = false;
                t.slow_rounds = 0;
                t.waiting_logged = false;
                t.reason = "answers again; holds its viod's newest data".into();
                state.insert((v, a), IodState::Up);
                actions.push(Action::SetState {
                    viod: v,
                    addr: a,
                    state: IodState::Up,
                    reason: t.reason.clone(),
                });
                continue;
            }
            match source {
                Some(source) => {
                    if let Some(identity) = t.foreign.take() {
                        actions.push(Action::SetIdentity {
                            viod: v,
                            addr: a,
                            identity,
                            reason: format!("another data directory, re-synced from {source}"),
                        });
                    }
                    t.slow_down = false;
                    t.slow_rounds = 0;
                    t.waiting_logged = false;
                    t.resyncing = true;
                    t.reason = format!("re-syncing from {source}");
                    state.insert((v, a), IodState::Resync);
                    actions.push(Action::Resync {
                        viod: v,
                        addr: a,
                        source,
                    });
                }
                None if !t.waiting_logged && t.foreign.is_some() => {
                    t.waiting_logged = true;
                    log::warn!(
                        "viod {v}: {a} answers as another data directory ({:08x}) and no up \
                         member can re-sync it: nothing is read from it; `iodctl \
                         accept-identity {v} {a}` takes its data as it is (what the old one \
                         held is lost)",
                        t.foreign.unwrap_or(0)
                    );
                }
                None if !t.waiting_logged => {
                    t.waiting_logged = true;
                    log::warn!(
                        "viod {v}: {a} answers but may lack writes and no up member can \
                         re-sync it: waiting for a member with current data (or `iodctl \
                         set-state {v} {a} up` if it has them)"
                    );
                }
                None => {}
            }
        }
        actions
    }

    /// Records the data-directory identities this round's PONGs name
    /// (`instances`: iod → instance), before [`Monitor::round`].
    pub fn note_identities(&mut self, instances: &HashMap<SocketAddr, u64>) {
        self.answered_as = instances
            .iter()
            .map(|(a, i)| (*a, nfsp_proto::wire::identity_of(*i)))
            .collect();
    }

    /// Record the instances told by this round's PONGs (`instances`: iod →
    /// instance, after [`Monitor::round`] has seen the members). Returns
    /// the members whose iod restarted: `(viod, iod, old, new)`.
    pub fn note_instances(
        &mut self,
        instances: &HashMap<SocketAddr, u64>,
    ) -> Vec<(u32, SocketAddr, u64, u64)> {
        let mut restarted = Vec::new();
        for ((v, a), t) in self.members.iter_mut() {
            let Some(&new) = instances.get(a).filter(|i| **i != 0) else {
                continue;
            };
            match t.instance.replace(new) {
                Some(old) if old != new => {
                    t.restarts += 1;
                    log::warn!(
                        "viod {v}: {a} restarted (instance {old:016x} -> {new:016x}, restart \
                         {} seen)",
                        t.restarts
                    );
                    restarted.push((*v, *a, old, new));
                }
                None => log::debug!("viod {v}: {a} instance {new:016x}"),
                _ => {}
            }
        }
        restarted
    }

    /// A re-sync ended: `ok` = copied completely (the daemon sets it up).
    pub fn resync_finished(&mut self, viod: u32, addr: SocketAddr, ok: bool, now: Instant) {
        if let Some(t) = self.members.get_mut(&(viod, addr)) {
            t.resyncing = false;
            if ok {
                t.stale = false;
                t.retry_after = None;
                t.reason = "re-synced".into();
            } else {
                t.retry_after = Some(now + RESYNC_RETRY);
            }
        }
    }

    /// Bytes copied by a running re-sync.
    pub fn add_resync_bytes(&mut self, viod: u32, addr: SocketAddr, bytes: u64) {
        if let Some(t) = self.members.get_mut(&(viod, addr)) {
            t.resync_bytes += bytes;
        }
    }

    /// The status of every member of `list`.
    pub fn statuses(&self, list: &[ListLine]) -> Vec<IodStatus> {
        list.iter()
            .map(|l| {
                let t = self
                    .members
                    .get(&(l.viod, l.addr))
                    .cloned()
                    .unwrap_or_default();
                IodStatus::new(l, &t)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(viod: u32, addr: &str, state: IodState) -> ListLine {
        ListLine {
            viod,
            addr: addr.parse().unwrap(),
            state,
            requests: 0,
            bytes: 0,
            errors: 0,
            timeouts: 0,
            latency_us: 0,
            ds_errors: 0,
            identity: 0,
            foreign: 0,
        }
    }

    const A: &str = "10.0.0.1:7000";
    const B: &str = "10.0.0.2:7000";
    const C: &str = "10.0.0.3:7000";

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn pings(v: &[(&str, u64)]) -> HashMap<SocketAddr, Duration> {
        v.iter()
            .map(|(s, ms)| (a(s), Duration::from_millis(*ms)))
            .collect()
    }

    fn set(actions: &[Action]) -> Vec<(SocketAddr, IodState)> {
        actions
            .iter()
            .filter_map(|x| match x {
                Action::SetState { addr, state, .. } => Some((*addr, *state)),
                _ => None,
            })
            .collect()
    }

    /// Apply the actions to the list as the kernel would.
    fn apply(list: &mut [ListLine], actions: &[Action]) {
        for x in actions {
            let (addr, st) = match x {
                Action::SetState { addr, state, .. } => (*addr, *state),
                Action::Resync { addr, .. } => (*addr, IodState::Resync),
                Action::AbortResync { .. } => continue,
                Action::SetIdentity { addr, identity, .. } => {
                    for l in list.iter_mut().filter(|l| l.addr == *addr) {
                        (l.identity, l.foreign) = (*identity, 0);
                    }
                    continue;
                }
            };
            for l in list.iter_mut().filter(|l| l.addr == addr) {
                l.state = st;
            }
        }
    }

    fn round(m: &mut Monitor, list: &mut [ListLine], p: &[(&str, u64)]) -> Vec<Action> {
        let acts = m.round(list, &pings(p), Instant::now(), SystemTime::now());
        apply(list, &acts);
        acts
    }

    #[test]
    fn misses_then_down_then_resync_then_up() {
        let mut m = Monitor::new(Config::default(), &[]);
        let mut list = vec![line(0, A, IodState::Up), line(0, B, IodState::Up)];
        assert!(round(&mut m, &mut list, &[(A, 1), (B, 1)]).is_empty());
        // B stops answering: down at the third miss, not before.
        assert!(round(&mut m, &mut list, &[(A, 1)]).is_empty());
        assert!(round(&mut m, &mut list, &[(A, 1)]).is_empty());
        let acts = round(&mut m, &mut list, &[(A, 1)]);
        assert_eq!(set(&acts), vec![(a(B), IodState::Down)]);
        assert!(m.members[&(0, a(B))].stale, "A took writes meanwhile");
        assert!(round(&mut m, &mut list, &[(A, 1)]).is_empty());
        // B answers again: re-sync from A, then up once done.
        let acts = round(&mut m, &mut list, &[(A, 1), (B, 1)]);
        assert_eq!(
            acts,
            vec![Action::Resync {
                viod: 0,
                addr: a(B),
                source: a(A)
            }]
        );
        assert!(round(&mut m, &mut list, &[(A, 1), (B, 1)]).is_empty());
        m.resync_finished(0, a(B), true, Instant::now());
        assert!(!m.members[&(0, a(B))].stale);
    }

    #[test]
    fn failed_resync_waits_then_retries() {
        let mut m = Monitor::new(Config::default(), &[]);
        let mut list = vec![line(0, A, IodState::Up), line(0, B, IodState::Down)];
        let acts = round(&mut m, &mut list, &[(A, 1), (B, 1)]);
        assert!(matches!(acts[..], [Action::Resync { .. }]));
        m.resync_finished(0, a(B), false, Instant::now());
        list[1].state = IodState::Down;
        assert!(round(&mut m, &mut list, &[(A, 1), (B, 1)]).is_empty());
        m.members.get_mut(&(0, a(B))).unwrap().retry_after = None;
        let acts = round(&mut m, &mut list, &[(A, 1), (B, 1)]);
        assert!(matches!(acts[..], [Action::Resync { .. }]));
    }

    #[test]
    fn last_member_goes_down_and_comes_back_fresh() {
        let mut m = Monitor::new(Config::default(), &[]);
        let mut list = vec![line(0, A, IodState::Up), line(1, C, IodState::Up)];
        round(&mut m, &mut list, &[(A, 1), (C, 1)]);
        for _ in 0..2 {
            assert!(round(&mut m, &mut list, &[(C, 1)]).is_empty());
        }
        let acts = round(&mut m, &mut list, &[(C, 1)]);
        assert_eq!(set(&acts), vec![(a(A), IodState::Down)]);
        assert!(!m.members[&(0, a(A))].stale, "nobody else took writes");
        // Back: straight up, no copy.
        let acts = round(&mut m, &mut list, &[(A, 1), (C, 1)]);
        assert_eq!(set(&acts), vec![(a(A), IodState::Up)]);
    }

    #[test]
    fn whole_viod_down_waits_for_the_last_writer() {
        let mut m = Monitor::new(Config::default(), &[]);
        let mut list = vec![line(0, A, IodState::Up), line(0, B, IodState::Up)];
        round(&mut m, &mut list, &[(A, 1), (B, 1)]);
        // B dies first (A goes on taking writes), then A.
        for _ in 0..3 {
            round(&mut m, &mut list, &[(A, 1)]);
        }
        assert_eq!(list[1].state, IodState::Down);
        for _ in 0..3 {
            round(&mut m, &mut list, &[]);
        }
        assert_eq!(list[0].state, IodState::Down);
        assert!(m.members[&(0, a(B))].stale);
        assert!(!m.members[&(0, a(A))].stale);
        // B returns first: it lacks A's writes, nobody to copy from: waits.
        assert!(round(&mut m, &mut list, &[(B, 1)]).is_empty());
        assert!(round(&mut m, &mut list, &[(B, 1)]).is_empty());
        // A returns: up at once, and B re-syncs from it.
        let acts = round(&mut m, &mut list, &[(A, 1), (B, 1)]);
        assert_eq!(set(&acts), vec![(a(A), IodState::Up)]);
        assert!(matches!(acts[..], [_, Action::Resync { source, .. }] if source == a(A)));
    }

    #[test]
    fn resync_members_go_down_with_the_last_up_one() {
        let mut m = Monitor::new(Config::default(), &[]);
        let mut list = vec![line(0, A, IodState::Up), line(0, B, IodState::Down)];
        let acts = round(&mut m, &mut list, &[(A, 1), (B, 1)]);
        assert!(matches!(acts[..], [Action::Resync { .. }]));
        round(&mut m, &mut list, &[(B, 1)]);
        round(&mut m, &mut list, &[(B, 1)]);
        let acts = round(&mut m, &mut list, &[(B, 1)]);
        assert!(acts.contains(&Action::AbortResync {
            viod: 0,
            addr: a(B)
        }));
        assert_eq!(
            set(&acts),
            vec![(a(A), IodState::Down), (a(B), IodState::Down)]
        );
        assert!(!m.members[&(0, a(A))].stale);
        assert!(m.members[&(0, a(B))].stale);
    }

    #[test]
    fn slow_member_is_taken_out_and_returns_when_fast() {
        let mut m = Monitor::new(Config::default(), &[]);
        let mut list = vec![
            line(0, A, IodState::Up),
            line(0, B, IodState::Up),
            line(0, C, IodState::Up),
        ];
        // 60 ms vs 2 ms: slow, down after 3 rounds.
        assert!(round(&mut m, &mut list, &[(A, 2), (B, 60), (C, 2)]).is_empty());
        assert!(round(&mut m, &mut list, &[(A, 2), (B, 60), (C, 2)]).is_empty());
        let acts = round(&mut m, &mut list, &[(A, 2), (B, 60), (C, 2)]);
        assert_eq!(set(&acts), vec![(a(B), IodState::Down)]);
        match &acts[0] {
            Action::SetState { reason, .. } => assert!(reason.starts_with("slow"), "{reason}"),
            x => panic!("{x:?}"),
        }
        // Still slow: stays down.
        for _ in 0..3 {
            assert!(round(&mut m, &mut list, &[(A, 2), (B, 60), (C, 2)]).is_empty());
        }
        // Fast again: re-sync once the typical round trip (median of the
        // last 5) has been fine for 3 rounds, not at the first good PONG.
        let mut n = 0;
        loop {
            n += 1;
            let acts = round(&mut m, &mut list, &[(A, 2), (B, 3), (C, 2)]);
            if !acts.is_empty() {
                assert!(matches!(acts[..], [Action::Resync { .. }]), "{acts:?}");
                break;
            }
            assert!(n < 10);
        }
        assert_eq!(
            n, 5,
            "the median is down at the 3rd fast PONG, + 2 more good rounds"
        );
    }

    #[test]
    fn one_late_pong_is_not_slowness() {
        let mut m = Monitor::new(Config::default(), &[]);
        let mut list = vec![line(0, A, IodState::Up), line(0, B, IodState::Up)];
        for i in 0..20 {
            let b = if i % 3 == 0 { 400 } else { 2 };
            assert!(round(&mut m, &mut list, &[(A, 2), (B, b)]).is_empty());
        }
    }

    #[test]
    fn not_slow_under_50ms_nor_alone() {
        let mut m = Monitor::new(Config::default(), &[]);
        let mut list = vec![line(0, A, IodState::Up), line(0, B, IodState::Up)];
        // 40 ms vs 1 ms: above 10x but under 50 ms.
        for _ in 0..5 {
            assert!(round(&mut m, &mut list, &[(A, 1), (B, 40)]).is_empty());
        }
        // A single member is never slow (no peers); the last up one stays.
        let mut list = vec![line(1, C, IodState::Up)];
        for _ in 0..5 {
            assert!(round(&mut m, &mut list, &[(C, 900)]).is_empty());
        }
        // Both slow vs each other? No: the slow one goes, the other stays.
        let mut list = vec![line(2, A, IodState::Up), line(2, B, IodState::Up)];
        let mut m = Monitor::new(Config::default(), &[]);
        let mut downs = 0;
        for _ in 0..6 {
            downs += set(&round(&mut m, &mut list, &[(A, 1), (B, 500)])).len();
        }
        assert_eq!(downs, 1);
        assert_eq!(list[0].state, IodState::Up);
    }

    #[test]
    fn unknown_down_member_is_stale_unless_remembered() {
        let remembered = [IodStatus {
            viod: 0,
            iod: A.into(),
            stale: false,
            ..IodStatus::default()
        }];
        let mut m = Monitor::new(Config::default(), &remembered);
        let mut list = vec![line(0, A, IodState::Down), line(0, B, IodState::Down)];
        let acts = round(&mut m, &mut list, &[(A, 1), (B, 1)]);
        assert_eq!(set(&acts), vec![(a(A), IodState::Up)]);
    }

    #[test]
    fn instance_changes_are_restarts() {
        let remembered = [IodStatus {
            viod: 0,
            iod: A.into(),
            instance: Some(format!("{:016x}", 5u64)),
            restarts: 2,
            ..IodStatus::default()
        }];
        let mut m = Monitor::new(Config::default(), &remembered);
        let mut list = vec![line(0, A, IodState::Up), line(1, B, IodState::Up)];
        round(&mut m, &mut list, &[(A, 1), (B, 1)]);
        let inst = |v: &[(&str, u64)]| -> HashMap<SocketAddr, u64> {
            v.iter().map(|(s, i)| (a(s), *i)).collect()
        };
        // A was 5 before this monitor started: restarted meanwhile.
        assert_eq!(
            m.note_instances(&inst(&[(A, 6), (B, 9)])),
            vec![(0, a(A), 5, 6)]
        );
        assert_eq!(m.members[&(0, a(A))].restarts, 3);
        assert_eq!(m.members[&(1, a(B))].restarts, 0, "first heard: no restart");
        assert!(m.note_instances(&inst(&[(A, 6), (B, 9)])).is_empty());
        // No PONG (or instance 0): nothing changes.
        assert!(m.note_instances(&inst(&[(B, 0)])).is_empty());
        assert_eq!(m.note_instances(&inst(&[(B, 10)])), vec![(1, a(B), 9, 10)]);
        let st = m.statuses(&list);
        assert_eq!(st[0].instance.as_deref(), Some("0000000000000006"));
        assert_eq!((st[0].restarts, st[1].restarts), (3, 1));
    }

    #[test]
    fn medians() {
        let d = Duration::from_millis;
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![d(3), d(1), d(2)]), Some(d(2)));
        assert_eq!(median(vec![d(4), d(2)]), Some(d(3)));
    }

    fn identities(m: &mut Monitor, v: &[(&str, u32)]) {
        m.answered_as = v.iter().map(|(s, i)| (a(s), *i)).collect();
    }

    /// A monitor whose members `(viod, addr, identity)` are up, known
    /// and answered one round (nothing to do).
    fn settled(members: &[(u32, &str, u32)]) -> (Monitor, Vec<ListLine>) {
        let mut m = Monitor::new(Config::default(), &[]);
        let mut list: Vec<ListLine> = members
            .iter()
            .map(|(v, addr, id)| ListLine {
                identity: *id,
                ..line(*v, addr, IodState::Up)
            })
            .collect();
        identities(
            &mut m,
            &members
                .iter()
                .map(|(_, addr, id)| (*addr, *id))
                .collect::<Vec<_>>(),
        );
        let all: Vec<(&str, u64)> = members.iter().map(|(_, addr, _)| (*addr, 1)).collect();
        assert!(round(&mut m, &mut list, &all).is_empty());
        (m, list)
    }

    fn identity_set(actions: &[Action]) -> Vec<(SocketAddr, u32)> {
        actions
            .iter()
            .filter_map(|x| match x {
                Action::SetIdentity { addr, identity, .. } => Some((*addr, *identity)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn first_answers_teach_identities() {
        let mut m = Monitor::new(Config::default(), &[]);
        let mut list = vec![line(0, A, IodState::Up), line(1, B, IodState::Up)];
        identities(&mut m, &[(A, 0xa), (B, 0xb)]);
        let acts = round(&mut m, &mut list, &[(A, 1), (B, 1)]);
        assert_eq!(identity_set(&acts), [(a(A), 0xa), (a(B), 0xb)]);
        assert!(set(&acts).is_empty());
        assert!(
            round(&mut m, &mut list, &[(A, 1), (B, 1)]).is_empty(),
            "learned once"
        );
    }

    #[test]
    fn a_wiped_replica_is_resynced_under_its_new_identity() {
        let mut m = Monitor::new(Config::default(), &[]);
        let mut list = vec![line(0, A, IodState::Up), line(0, B, IodState::Up)];
        list[0].identity = 0xa;
        list[1].identity = 0xb;
        identities(&mut m, &[(A, 0xa), (B, 0xb)]);
        assert!(round(&mut m, &mut list, &[(A, 1), (B, 1)]).is_empty());
        // B comes back on an empty disk: down at once, never up as it is.
        identities(&mut m, &[(A, 0xa), (B, 0xbb)]);
        // Its identity is recorded just before the copy from A.
        let acts = round(&mut m, &mut list, &[(A, 1), (B, 1)]);
        assert_eq!(set(&acts), [(a(B), IodState::Down)]);
        match &acts[0] {
            Action::SetState { reason, .. } => {
                assert!(
                    reason.contains("000000bb") && reason.contains("0000000b"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(identity_set(&acts), [(a(B), 0xbb)]);
        assert!(
            matches!(acts[1..], [Action::SetIdentity { .. }, Action::Resync { source, .. }] if source == a(A)),
            "{acts:?}"
        );
        assert!(
            round(&mut m, &mut list, &[(A, 1), (B, 1)]).is_empty(),
            "copy running"
        );
    }

    #[test]
    fn a_foreign_member_the_module_found_stays_down_without_a_source() {
        let (mut m, mut list) = settled(&[(0, A, 0xa)]);
        (list[0].state, list[0].foreign) = (IodState::Down, 0xff);
        identities(&mut m, &[(A, 0xff)]);
        for _ in 0..5 {
            let acts = round(&mut m, &mut list, &[(A, 1)]);
            assert!(acts.is_empty(), "never up, nothing to copy from: {acts:?}");
        }
        // The admin accepts its data as it is: it comes back.
        list[0].identity = 0xff;
        list[0].foreign = 0;
        let acts = round(&mut m, &mut list, &[(A, 1)]);
        assert_eq!(set(&acts), [(a(A), IodState::Up)]);
    }

    #[test]
    fn a_member_serving_another_members_directory_is_not_copied_over() {
        let mut m = Monitor::new(Config::default(), &[]);
        let mut list = vec![
            line(0, A, IodState::Up),
            line(0, B, IodState::Up),
            line(1, C, IodState::Up),
        ];
        for (l, i) in list.iter_mut().zip([0xa, 0xb, 0xc]) {
            l.identity = i;
        }
        identities(&mut m, &[(A, 0xa), (B, 0xb), (C, 0xc)]);
        assert!(round(&mut m, &mut list, &[(A, 1), (B, 1), (C, 1)]).is_empty());
        // B's iod now runs on C's disk.
        identities(&mut m, &[(A, 0xa), (B, 0xc), (C, 0xc)]);
        let acts = round(&mut m, &mut list, &[(A, 1), (B, 1), (C, 1)]);
        assert_eq!(set(&acts), [(a(B), IodState::Down)], "{acts:?}");
        for _ in 0..3 {
            let acts = round(&mut m, &mut list, &[(A, 1), (B, 1), (C, 1)]);
            assert!(acts.is_empty(), "no copy onto C's data: {acts:?}");
        }
    }

    #[test]
    fn a_member_back_on_its_disk_is_as_stale_as_before() {
        // B answers as another directory and goes down; A takes writes,
        // then goes down as the last up member (it holds the newest data).
        let (mut m, mut list) = settled(&[(0, A, 0xa), (0, B, 0xb)]);
        identities(&mut m, &[(A, 0xa), (B, 0xbb)]);
        list[1].foreign = 0xbb;
        list[1].state = IodState::Down;
        // (no PING from B: it is not re-synced yet)
        round(&mut m, &mut list, &[(A, 1)]);
        for _ in 0..3 {
            round(&mut m, &mut list, &[]);
        }
        assert_eq!(list[0].state, IodState::Down, "A went down last");
        // B is back on its own disk, A is still away: B missed A's writes.
        identities(&mut m, &[(B, 0xb)]);
        let acts = round(&mut m, &mut list, &[(B, 1)]);
        assert!(!set(&acts).contains(&(a(B), IodState::Up)), "{acts:?}");
        // A returns: it is set up (it holds the newest data), and B is
        // re-synced from it.
        identities(&mut m, &[(A, 0xa), (B, 0xb)]);
        let acts = round(&mut m, &mut list, &[(A, 1), (B, 1)]);
        assert!(set(&acts).contains(&(a(A), IodState::Up)), "{acts:?}");
        assert!(
            matches!(acts[..], [_, Action::Resync { addr, source, .. }] if addr == a(B) && source == a(A)),
            "{acts:?}"
        );
    }

    #[test]
    fn an_accepted_replica_is_copied_to_not_set_up() {
        let (mut m, mut list) = settled(&[(0, A, 0xa), (0, B, 0xb)]);
        // B wiped; the module took it down; no write since.
        (list[1].state, list[1].foreign) = (IodState::Down, 0xbb);
        identities(&mut m, &[(A, 0xa), (B, 0xbb)]);
        // The admin accepts before iodmgr copies (A answers no PING).
        round(&mut m, &mut list, &[(B, 1)]);
        (list[1].identity, list[1].foreign) = (0xbb, 0);
        let acts = round(&mut m, &mut list, &[(A, 1), (B, 1)]);
        assert!(!set(&acts).contains(&(a(B), IodState::Up)), "{acts:?}");
        assert!(
            matches!(acts[..], [Action::Resync { addr, .. }] if addr == a(B)),
            "{acts:?}"
        );
    }

    #[test]
    fn its_own_directory_back_clears_the_modules_memory() {
        let (mut m, mut list) = settled(&[(0, A, 0xa)]);
        // Started on an empty mount point: the module took it down.
        (list[0].state, list[0].foreign) = (IodState::Down, 0xff);
        identities(&mut m, &[(A, 0xff)]);
        assert!(round(&mut m, &mut list, &[(A, 1)]).is_empty());
        // Restarted on its disk.
        identities(&mut m, &[(A, 0xa)]);
        let acts = round(&mut m, &mut list, &[(A, 1)]);
        assert_eq!(identity_set(&acts), [(a(A), 0xa)]);
        // Nobody else wrote meanwhile: it holds the newest data.
        assert_eq!(set(&acts), [(a(A), IodState::Up)]);
    }
}
