// SPDX-License-Identifier: GPL-2.0
//! Property tests: stripe tiling, decoders never panic, encode∘decode = id,
//! sealed datagrams do not open once changed.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use nfsp_proto::auth::{self, keyfile, Key, Keys};
use nfsp_proto::codec::Reader;
use nfsp_proto::control::{self, Answer, Command, IodState, ListLine, Members};
use nfsp_proto::filekey::FileKey;
use nfsp_proto::journal::{Entries, Entry};
use nfsp_proto::metafile::MetaHeader;
use nfsp_proto::nfs3::{Fattr3, NfsTime3, ReadCall, ReadReplyPrefix};
use nfsp_proto::stripe::StripeLayout;
use nfsp_proto::unlink::{UnlinkAck, UnlinkRecord};
use nfsp_proto::wire::{self, Body, Chain, Hop, List, Message, MsgType, ReplySpec, Status};
use proptest::prelude::*;

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(o, p)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(o), p))),
        (any::<[u8; 16]>(), any::<u16>(), 0u32..4)
            .prop_map(|(o, p, s)| SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(o), p, 0, s))),
    ]
}

fn key() -> impl Strategy<Value = FileKey> {
    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(e, i, s)| FileKey::new(e, i, s))
}

fn test_keys() -> Keys {
    let sign = Key::new(0x0000_0007, [0x42; 32]).unwrap();
    let accept = Key::new(0x0000_0008, [0x24; 32]).unwrap();
    Keys::new(sign, Some(accept)).unwrap()
}

/// Every public decoder and parser of bytes.
fn decode_bytes(data: &[u8]) {
    let keys = test_keys();
    let _ = MetaHeader::decode(data);
    let _ = Message::decode(data);
    for ks in [keys, Keys::insecure()] {
        let _ = wire::open(&ks, data);
        let _ = wire::verify(&ks, data);
        let mut buf = vec![0u8; data.len()];
        let to = SocketAddr::from(([192, 0, 2, 1], 7000));
        let _ = wire::restamp(
            &ks,
            data,
            wire::RequestId { epoch: 1, seq: 2 },
            &to,
            &|a| a.port() as u64,
            &mut buf,
        );
    }
    let _ = wire::get_addr(&mut Reader::new(data));
    if let Some(&b) = data.first() {
        let _ = MsgType::from_u8(b);
        let _ = Status::from_u8(b);
    }
    let _ = UnlinkRecord::decode(data);
    let _ = UnlinkAck::decode(data);
    let _ = Entry::decode(data);
    for (_, e) in Entries::new(data) {
        let _ = e;
    }
    let _ = ReadReplyPrefix::decode(data, true);
    let _ = ReadReplyPrefix::decode(data, false);
    let _ = ReadCall::decode(data);
    let _ = FileKey::from_bytes(data);
    if let Ok(s) = std::str::from_utf8(data) {
        decode_text(s);
    }
}

/// Every public text parser.
fn decode_text(s: &str) {
    let _ = Command::parse(s);
    let _ = Answer::parse(s);
    let _ = control::parse_addr(s);
    let _ = IodState::parse(s);
    let _ = FileKey::parse_file_name(s);
    let _ = FileKey::parse_local_path(s);
    let _ = keyfile::parse(s);
    let _ = auth::parse_key_id(s);
    let _ = auth::parse_hex::<4>(s);
    let _ = auth::parse_hex::<32>(s);
    let _ = auth::parse_key_words(&mut s.split_ascii_whitespace());
}

/// Lines made of the grammars' own words, so that the parsers get past
/// their first word.
fn grammar_text() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        proptest::sample::select(vec![
            "sign",
            "accept",
            "keys",
            "insecure",
            "#",
            "add-viod",
            "del-viod",
            "add-iod",
            "del-iod",
            "set-state",
            "list",
            "stats",
            "timeout",
            "up",
            "down",
            "resync",
            "ok",
            "error",
            "EINVAL",
            "viod",
            "iod",
            "stat",
            "requests=1",
            "bytes=2",
            "errors=3",
            "timeouts=4",
            "latency_us=5",
            "192.0.2.1:7000",
            "[2001:db8::1]:7000",
            "[fe80::1%2]:7000",
            "00000001",
            "7e570001",
            "1",
            "4294967296",
            "\n",
            "\r\n",
            "\t",
        ])
        .prop_map(String::from),
        "[0-9a-fA-F]{1,70}",
        "\\PC{0,12}",
    ];
    proptest::collection::vec(
        (word, prop_oneof![Just(" "), Just("\n"), Just("  ")]),
        0..14,
    )
    .prop_map(|ws| ws.into_iter().map(|(w, sep)| w + sep).collect())
}

fn layout() -> impl Strategy<Value = StripeLayout> {
    (1u32..=(1 << 20), 1u32..=16)
        .prop_flat_map(|(b, w)| (Just(b), Just(w), 0..w))
        .prop_map(|(b, w, f)| StripeLayout {
            block_size: b,
            width: w,
            first_viod: f,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn stripe_tiles(l in layout(), offset in any::<u64>(), len in 0u64..(8 << 20)) {
        let r = l.pieces(offset, len);
        if offset.checked_add(len).is_none() {
            prop_assert!(r.is_err());
            return Ok(());
        }
        let b = l.block_size as u64;
        let w = l.width as u64;
        let mut pos = offset;
        let mut total = 0u64;
        for p in r.unwrap() {
            prop_assert_eq!(p.file_offset, pos);
            prop_assert!(p.len > 0);
            let n = p.file_offset / b;
            prop_assert_eq!((p.file_offset + p.len - 1) / b, n, "piece crosses a block");
            prop_assert_eq!(p.viod as u64, (l.first_viod as u64 + n % w) % w);
            prop_assert_eq!(p.local_offset, (n / w) * b + p.file_offset % b);
            prop_assert_eq!(l.viod_of_block(n).unwrap(), p.viod);
            pos += p.len;
            total += p.len;
        }
        prop_assert_eq!(total, len);
        prop_assert_eq!(pos, offset + len);
    }

    #[test]
    fn local_len_covers_pieces(l in layout(), size in 0u64..(64 << 20)) {
        // Every piece of [0, size) fits in its viod's local_len, and the
        // last piece of each viod ends exactly there.
        let mut max = vec![0u64; l.width as usize];
        for p in l.pieces(0, size).unwrap().take(4096) {
            let e = p.local_offset + p.len;
            let m = &mut max[p.viod as usize];
            *m = (*m).max(e);
        }
        if size.div_ceil(l.block_size as u64) <= 4096 {
            for v in 0..l.width {
                prop_assert_eq!(l.local_len(v, size).unwrap(), max[v as usize]);
            }
        }
    }

    #[test]
    fn metafile_rt(seed in any::<u64>(), size in any::<u64>(), bs in 1u32..=256, l in layout()) {
        let h = MetaHeader { flags: 0, block_size: bs * 4096, width: l.width, first_viod: l.first_viod, seed, real_size: size, layout_epoch: size as u32 };
        let mut b = [0u8; 48];
        h.encode(&mut b).unwrap();
        prop_assert_eq!(MetaHeader::decode(&b).unwrap(), h);
    }

    #[test]
    fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        decode_bytes(&data);
    }

    #[test]
    fn text_parsers_never_panic(s in grammar_text()) {
        decode_text(&s);
        decode_bytes(s.as_bytes());
    }

    #[test]
    fn sealed_mutations_never_open(k in key(), a in addr(), flips in proptest::collection::vec((any::<usize>(), 1u8..), 1..4)) {
        // Whatever an attacker changes in a sealed datagram, it no longer opens.
        let keys = test_keys();
        let members = [wire::ChainMember { addr: a, instance: 9 }];
        let m = Message::new(wire::RequestId { epoch: 3, seq: 4 }, 5, Body::Write(wire::Write { key: k, local_offset: 0, chain: Chain { origin: a, members: List::Items(&members) }, data: b"data" }));
        let mut b = vec![0u8; 1024];
        let n = m.seal(&keys, &mut b).unwrap();
        b.truncate(n);
        prop_assert_eq!(wire::open(&keys, &b), Ok(Message { key_id: 7, auth_tag: b[wire::AUTH_TAG_OFFSET..][..16].try_into().unwrap(), ..m }));
        let orig = b.clone();
        for (i, v) in flips { b[i % n] ^= v; }
        if b != orig {
            prop_assert!(wire::open(&keys, &b).is_err());
            prop_assert!(wire::verify(&keys, &b).is_err());
        }
        prop_assert!(wire::open(&Keys::insecure(), &orig).is_err());
    }

    #[test]
    fn wire_mutations_never_panic(k in key(), a in addr(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let hops = [Hop { addr: a, local_offset: 1, len: 5, instance: 3 }];
        let m = Message::new(wire::RequestId { epoch: 1, seq: 1 }, 0, Body::Read(wire::Read { key: k, local_offset: 0, len: 3, routes: List::Items(&hops), reply: ReplySpec::Direct { origin: a, client: a, source: a, header: b"hdr", pad: true }, gathered: b"ab" }));
        let mut b = vec![0u8; 1024];
        let n = m.encode(&mut b).unwrap();
        b.truncate(n);
        for (i, v) in flips { let i = i % n; b[i] ^= v; }
        if let Ok(d) = Message::decode(&b) {
            let mut b2 = vec![0u8; 1024];
            let n2 = d.encode(&mut b2).unwrap();
            // encode leaves the key id and the tag to `seal`
            b[wire::KEY_ID_OFFSET..wire::KEY_ID_OFFSET + 4].fill(0);
            b[wire::AUTH_TAG_OFFSET..wire::AUTH_TAG_OFFSET + wire::AUTH_TAG_LEN].fill(0);
            prop_assert_eq!(&b2[..n2], &b[..]);
        }
    }

    #[test]
    fn wire_rt(epoch in 1u64.., seq in any::<u64>(), instance in any::<u64>(), k in key(), off in 0u64..(1 << 60), a in addr(), b2 in addr(), members in proptest::collection::vec(addr(), 0..=8), data in proptest::collection::vec(any::<u8>(), 0..3000), keys in proptest::collection::vec(key(), 0..20), hops in proptest::collection::vec((addr(), 0u64..(1 << 40), 0u32..2000), 0..=16), pad in any::<bool>(), direct in any::<bool>()) {
        let hops: Vec<Hop> = hops.into_iter().map(|(addr, local_offset, len)| Hop { addr, local_offset, len, instance: local_offset ^ 5 }).collect();
        let members: Vec<wire::ChainMember> = members.into_iter().map(|addr| wire::ChainMember { addr, instance: seq }).collect();
        let chain = Chain { origin: a, members: List::Items(&members) };
        let reply = if direct { ReplySpec::Direct { origin: a, client: a, source: b2, header: &data[..data.len().min(512)], pad } } else { ReplySpec::Relay { origin: b2 } };
        let bodies = [
            Body::Read(wire::Read { key: k, local_offset: off, len: 100, routes: List::Items(&hops), reply, gathered: &data }),
            Body::Write(wire::Write { key: k, local_offset: off, chain, data: &data }),
            Body::Commit(wire::Commit { key: k, chain }),
            Body::Truncate(wire::Truncate { key: k, new_len: off, extend_only: off % 2 == 0, layout_epoch: off as u32, chain }),
            Body::Unlink(wire::Unlink { keys: List::Items(&keys) }),
            Body::ReadReply(wire::ReadReply { status: wire::Status::Busy, data: &data }),
        ];
        let mut buf = vec![0u8; wire::MAX_DATAGRAM];
        for body in bodies {
            let m = Message::new(wire::RequestId { epoch, seq }, instance, body);
            let n = m.encode(&mut buf).unwrap();
            let d = Message::decode(&buf[..n]).unwrap();
            prop_assert_eq!(d, m);
        }
    }

    #[test]
    fn filekey_rt(k in key()) {
        let mut b = [0u8; 64];
        let p = k.write_local_path(&mut b).unwrap().to_string();
        prop_assert_eq!(FileKey::parse_local_path(&p).unwrap(), k);
    }

    #[test]
    fn unlink_rt(seq in any::<u64>(), k in key(), size in any::<u64>(), l in layout(), bs in 1u32..=256, first in any::<u64>(), span in any::<u64>()) {
        let r = UnlinkRecord { seq, key: k, real_size: size, layout: StripeLayout { block_size: bs * 4096, ..l } };
        let mut b = [0u8; 64];
        r.encode(&mut b).unwrap();
        prop_assert_eq!(UnlinkRecord::decode(&b).unwrap(), r);
        let a = UnlinkAck { first, last: first.saturating_add(span) };
        let mut b = [0u8; 24];
        a.encode(&mut b).unwrap();
        prop_assert_eq!(UnlinkAck::decode(&b).unwrap(), a);
    }

    #[test]
    fn nfs3_rt(xid in any::<u32>(), v in proptest::collection::vec(any::<u32>(), 13), count in any::<u32>(), eof in any::<bool>()) {
        let t = |i: usize| NfsTime3 { seconds: v[i], nseconds: v[i + 1] };
        let attr = Fattr3 { ftype: 1 + v[0] % 7, mode: v[1], nlink: v[2], uid: v[3], gid: v[4], size: v[5] as u64 * 3, used: v[6] as u64, rdev: (v[7], v[8]), fsid: v[9] as u64, fileid: v[10] as u64, atime: t(0), mtime: t(2), ctime: t(11) };
        let p = ReadReplyPrefix { xid, attr, count, eof };
        let mut b = [0u8; 128];
        p.encode(&mut b).unwrap();
        prop_assert_eq!(ReadReplyPrefix::decode(&b, false).unwrap().0, p);
    }

    #[test]
    fn command_rt(c in command()) {
        let s = c.to_string();
        prop_assert_eq!(Command::parse(&s).unwrap(), c);
    }

    #[test]
    fn listline_rt(viod in any::<u32>(), a in addr(), st in 0u8..3, n in any::<[u64; 6]>(), ids in any::<[u32; 2]>()) {
        let state = [IodState::Up, IodState::Down, IodState::Resync][st as usize];
        let l = ListLine { viod, addr: a, state, requests: n[0], bytes: n[1], errors: n[2], timeouts: n[3], latency_us: n[4], ds_errors: n[5], identity: ids[0], foreign: ids[1] };
        let text = l.to_string();
        prop_assert_eq!(Answer::parse(&text).unwrap(), Answer::Member(l));
    }
}

fn command() -> impl Strategy<Value = Command> {
    let st = prop_oneof![
        Just(IodState::Up),
        Just(IodState::Down),
        Just(IodState::Resync)
    ];
    prop_oneof![
        (any::<u32>(), proptest::collection::vec(addr(), 1..=8)).prop_map(|(id, m)| {
            Command::AddViod {
                id,
                members: Members::from_slice(&m).unwrap(),
            }
        }),
        any::<u32>().prop_map(|id| Command::DelViod { id }),
        (any::<u32>(), addr()).prop_map(|(viod, addr)| Command::AddIod { viod, addr }),
        (any::<u32>(), addr()).prop_map(|(viod, addr)| Command::DelIod { viod, addr }),
        (any::<u32>(), addr(), st).prop_map(|(viod, addr, state)| Command::SetState {
            viod,
            addr,
            state
        }),
        (any::<u32>(), addr(), any::<u32>()).prop_map(|(viod, addr, identity)| Command::Identity {
            viod,
            addr,
            identity
        }),
        Just(Command::List),
        Just(Command::Stats),
        (1u32..=3_600_000).prop_map(|ms| Command::Timeout { ms }),
    ]
}
