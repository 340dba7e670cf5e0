// SPDX-License-Identifier: GPL-2.0
//! Direct-mode READ between network namespaces: the iod answers an NFS
//! client with the meta-server's address and port as source, the reply is
//! byte-exact, a 32 KiB reply arrives whole (fragmented + reassembled), and
//! tshark decodes it as an NFS V3 READ reply with the right xid/count/eof (fields rpc.xid, nfs.count3, nfs.read.eof).
//!
//! Layout: ns I (two iods, 10.251.0.2:7000 and :7001, peers of each other,
//! `--meta 10.251.0.1`) <-veth-> ns C (client, 10.251.0.3).
//! 10.251.0.1 (meta-server) exists nowhere: the client has a static
//! neighbour entry for it pointing at the iod side's MAC. Requests are
//! signed with the test key; the iods' instances are learnt with a PING.
//! Only iod A sends direct replies: its transparent socket holds
//! 10.251.0.1:2049 (no SO_REUSEADDR, so one per network namespace).
//!
//! Needs root, iproute2 and tshark; otherwise SKIPPED (FAILED when
//! NFSP_REQUIRE_ROOT_TESTS=1).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::meta::{test_keys, Rng};
use nfsp_proto::nfs3::{xdr_pad_len, Fattr3, NfsTime3, ReadReplyPrefix};
use nfsp_proto::wire::{self, Body, Hop, List, Message, ReplySpec, RequestId};
use nfsp_proto::FileKey;

const META: &str = "10.251.0.1:2049";
const IOD_IP: &str = "10.251.0.2";
const EPOCH: u64 = 0x7e57_d1ec_0000_0001;
const CLIENT_IP: &str = "10.251.0.3";
/// The port the request probe sends from: a first hop's origin must be its
/// sender's full address (IP and port).
const ORIGIN_PORT: u16 = 9;

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn sh(args: &[&str]) {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .expect("run command");
    assert!(st.success(), "command failed: {args:?}");
}

fn out(args: &[&str]) -> String {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command");
    assert!(
        o.status.success(),
        "command failed: {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Namespaces and children, removed even when the test fails.
struct Topo {
    ns_iod: String,
    ns_cli: String,
    veth_cli: String,
    children: Vec<Child>,
}

impl Drop for Topo {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.ns_iod, &self.ns_cli] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn setup() -> Topo {
    let pid = std::process::id();
    let t = Topo {
        ns_iod: format!("nfspt-{pid}-iod"),
        ns_cli: format!("nfspt-{pid}-cli"),
        veth_cli: format!("nfc{}", pid % 100_000),
        children: Vec::new(),
    };
    let veth_iod = format!("nfi{}", pid % 100_000);
    sh(&["ip", "netns", "add", &t.ns_iod]);
    sh(&["ip", "netns", "add", &t.ns_cli]);
    sh(&[
        "ip",
        "link",
        "add",
        &veth_iod,
        "netns",
        &t.ns_iod,
        "type",
        "veth",
        "peer",
        "name",
        &t.veth_cli,
        "netns",
        &t.ns_cli,
    ]);
    for (ns, dev, ip) in [
        (&t.ns_iod, &veth_iod, IOD_IP),
        (&t.ns_cli, &t.veth_cli, CLIENT_IP),
    ] {
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        sh(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            dev,
        ]);
        sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
    }
    // The meta-server address lives nowhere: the client reaches it through
    // a static neighbour entry pointing at the iod side.
    let link = out(&["ip", "-n", &t.ns_iod, "-o", "link", "show", &veth_iod]);
    let mac = link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("iod veth MAC")
        .to_string();
    sh(&[
        "ip",
        "-n",
        &t.ns_cli,
        "neigh",
        "replace",
        "10.251.0.1",
        "lladdr",
        &mac,
        "dev",
        &t.veth_cli,
        "nud",
        "permanent",
    ]);
    t
}

fn attr(size: u64) -> Fattr3 {
    Fattr3 {
        ftype: 1,
        mode: 0o644,
        nlink: 1,
        uid: 0,
        gid: 0,
        size,
        used: size,
        rdev: (0, 0),
        fsid: 0x42,
        fileid: 0x4242_4242,
        atime: NfsTime3 {
            seconds: 1_700_000_000,
            nseconds: 0,
        },
        mtime: NfsTime3 {
            seconds: 1_700_000_000,
            nseconds: 0,
        },
        ctime: NfsTime3 {
            seconds: 1_700_000_000,
            nseconds: 0,
        },
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Send `datagram` from the iod namespace to `to`; with `wait`, return the
/// answer (source, bytes).
fn probe_send(
    t: &Topo,
    to: SocketAddr,
    datagram: &[u8],
    wait: bool,
) -> Option<(SocketAddr, Vec<u8>)> {
    let mut args = vec![
        "ip".to_string(),
        "netns".into(),
        "exec".into(),
        t.ns_iod.clone(),
        env!("CARGO_BIN_EXE_nfsp-udp-probe").into(),
        "send".into(),
        "--bind".into(),
        format!("{IOD_IP}:{ORIGIN_PORT}"),
        "--to".into(),
        to.to_string(),
        "--hex".into(),
        hex(datagram),
    ];
    if !wait {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        sh(&a);
        return None;
    }
    args.extend(["--wait-ms".into(), "5000".into()]);
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let line = out(&a);
    let mut it = line.split_whitespace();
    assert_eq!(it.next(), Some("reply"));
    let from: SocketAddr = it.next().expect("from").parse().expect("from addr");
    let _n = it.next();
    Some((from, unhex(it.next().unwrap_or(""))))
}

/// The instance of the iod at `to` (from its PONG).
fn learn_instance(t: &Topo, to: SocketAddr) -> u64 {
    let mut b = vec![0u8; 512];
    let id = RequestId {
        epoch: EPOCH,
        seq: 1 + to.port() as u64,
    };
    let n = Message::new(id, 0, Body::Ping)
        .seal(&test_keys(), &mut b)
        .unwrap();
    let (from, ans) = probe_send(t, to, &b[..n], true).unwrap();
    assert_eq!(from, to);
    let m = wire::open(&test_keys(), &ans).expect("signed PONG");
    assert_eq!(m.id, id);
    assert!(matches!(m.body, Body::Pong(_)));
    m.instance
}

/// One direct-mode exchange; returns the client's (source, bytes).
#[allow(clippy::too_many_arguments)]
fn exchange(
    t: &mut Topo,
    iod: SocketAddr,
    iod_instance: u64,
    key: FileKey,
    xid: u32,
    hops: &[Hop],
    eof: bool,
    size: u64,
) -> (SocketAddr, Vec<u8>, Vec<u8>) {
    let probe = env!("CARGO_BIN_EXE_nfsp-udp-probe");
    let count: u32 = hops.iter().map(|h| h.len).sum();
    let mut client = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.ns_cli,
            probe,
            "call",
            "--bind",
            &format!("{CLIENT_IP}:0"),
            "--server",
            META,
        ])
        .args(["--xid", &xid.to_string(), "--count", &count.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn client probe");
    let mut lines = BufReader::new(client.stdout.take().expect("stdout")).lines();
    let ready = lines.next().expect("client ready line").expect("read");
    let client_addr: SocketAddr = ready
        .strip_prefix("ready ")
        .expect("ready")
        .parse()
        .expect("client addr");

    let mut header = [0u8; 128];
    let n = ReadReplyPrefix {
        xid,
        attr: attr(size),
        count,
        eof,
    }
    .encode(&mut header)
    .expect("prefix");
    let req = Message::new(
        RequestId {
            epoch: EPOCH,
            seq: xid as u64,
        },
        iod_instance,
        Body::Read(wire::Read {
            key,
            local_offset: hops[0].local_offset,
            len: hops[0].len,
            routes: List::Items(&hops[1..]),
            reply: ReplySpec::Direct {
                // The probe's address (a first hop must name its sender).
                origin: format!("{IOD_IP}:{ORIGIN_PORT}").parse().unwrap(),
                client: client_addr,
                source: META.parse().unwrap(),
                header: &header[..n],
                pad: true,
            },
            gathered: &[],
        }),
    );
    let mut b = vec![0u8; wire::MAX_DATAGRAM];
    let len = req.seal(&test_keys(), &mut b).expect("seal");
    probe_send(t, iod, &b[..len], false);

    let line = lines.next().expect("client reply line").expect("read");
    let st = client.wait().expect("client exit");
    assert!(st.success());
    let mut it = line.split_whitespace();
    assert_eq!(it.next(), Some("reply"));
    let from: SocketAddr = it.next().expect("from").parse().expect("from addr");
    let n: usize = it.next().expect("len").parse().expect("len");
    let bytes = unhex(it.next().unwrap_or(""));
    assert_eq!(bytes.len(), n);
    (from, bytes, header[..n.min(128)].to_vec())
}

#[test]
fn direct_read_reaches_client_from_meta_address() {
    let require = std::env::var("NFSP_REQUIRE_ROOT_TESTS")
        .map(|v| v == "1")
        .unwrap_or(false);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !(root && have("ip") && have("tshark")) {
        let msg = "SKIPPED: direct_netns needs root + iproute2 + tshark";
        assert!(!require, "{msg} (NFSP_REQUIRE_ROOT_TESTS=1)");
        eprintln!("\n{msg}\n");
        return;
    }
    let mut t = setup();
    let work = tempfile::tempdir().expect("tempdir");
    let data_dir = work.path().join("data");
    let pcap = work.path().join("cap.pcap");

    // Capture in the client namespace.
    let mut tshark = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.ns_cli,
            "tshark",
            "-i",
            &t.veth_cli,
            "-f",
            "udp",
            "-w",
        ])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tshark");
    let mut err = tshark.stderr.take().expect("stderr");
    let started = Instant::now();
    let mut seen = String::new();
    while !seen.contains("Capturing on") {
        let mut b = [0u8; 256];
        let n = err.read(&mut b).unwrap_or(0);
        assert!(
            n > 0 && started.elapsed() < Duration::from_secs(30),
            "tshark did not start: {seen}"
        );
        seen.push_str(&String::from_utf8_lossy(&b[..n]));
    }
    let tshark_pid = tshark.id();
    t.children.push(tshark);
    std::thread::sleep(Duration::from_millis(500));

    // Two iods in their namespace, peers of each other.
    let (a_addr, b_addr) = (format!("{IOD_IP}:7000"), format!("{IOD_IP}:7001"));
    let key_file = common::write_key_file(work.path(), &test_keys());
    let spawn = |listen: &str, data: &Path| {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &t.ns_iod,
            env!("CARGO_BIN_EXE_iod"),
            "--listen",
            listen,
        ])
        .args([
            "--workers",
            "4",
            "--meta",
            "10.251.0.1",
            "--peer",
            &a_addr,
            "--peer",
            &b_addr,
        ])
        .arg("--key-file")
        .arg(&key_file)
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "warn");
        common::spawn_iod_cmd(cmd)
    };
    let data_b = work.path().join("data-b");
    let iod = spawn(&a_addr, &data_dir);
    let iod_b = spawn(&b_addr, &data_b);
    let iod_addr = iod.addr;
    let inst_a = learn_instance(&t, iod.addr);
    let inst_b = learn_instance(&t, iod_b.addr);
    assert_ne!(inst_a, inst_b);

    // File data written straight into the iod's local file.
    let key = FileKey::new(7, 8, 9);
    let mut pb = [0u8; 64];
    let local: &Path = Path::new(key.write_local_path(&mut pb).unwrap());
    let mut data = vec![0u8; 100_000];
    Rng(7).fill(&mut data);
    for d in [&data_dir, &data_b] {
        let path = d.join(local);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &data).unwrap();
    }

    // 1) small read with padding (1001 bytes -> 3 pad bytes).
    let hops = [Hop {
        addr: iod_addr,
        local_offset: 5000,
        len: 1001,
        instance: inst_a,
    }];
    let (from, got, hdr) = exchange(
        &mut t,
        iod_addr,
        inst_a,
        key,
        0x1111_0001,
        &hops,
        false,
        100_000,
    );
    assert_eq!(
        from,
        META.parse::<SocketAddr>().unwrap(),
        "reply source must be the meta-server"
    );
    let mut want = hdr.clone();
    want.extend_from_slice(&data[5000..6001]);
    want.extend_from_slice(&[0; 3]);
    assert_eq!(got.len(), 128 + 1001 + xdr_pad_len(1001));
    assert!(got == want, "small reply bytes differ");

    // 2) 32 KiB read in three hops (straddling: the routing list, B then A
    // twice: A serves its second extent in place) -> fragmented.
    let hops = [
        Hop {
            addr: iod_b.addr,
            local_offset: 60_000,
            len: 16_384,
            instance: inst_b,
        },
        Hop {
            addr: iod_addr,
            local_offset: 10_000,
            len: 8192,
            instance: inst_a,
        },
        Hop {
            addr: iod_addr,
            local_offset: 18_192,
            len: 8192,
            instance: inst_a,
        },
    ];
    let (from, got, hdr) = exchange(
        &mut t,
        iod_b.addr,
        inst_b,
        key,
        0x1111_0002,
        &hops,
        true,
        100_000,
    );
    assert_eq!(from, META.parse::<SocketAddr>().unwrap());
    let mut want = hdr;
    want.extend_from_slice(&data[60_000..76_384]);
    want.extend_from_slice(&data[10_000..26_384]);
    assert_eq!(got.len(), 128 + 32_768);
    assert!(got == want, "large reply bytes differ");
    let (p, d) = ReadReplyPrefix::decode(&got, true).expect("valid NFS reply");
    assert_eq!(
        (p.xid, p.count, p.eof, d.len()),
        (0x1111_0002, 32_768, true, 32_768)
    );

    // Stop the capture and let tshark decode it.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: plain kill(2) on the pid of our own child.
    unsafe { libc::kill(tshark_pid as i32, libc::SIGINT) };
    for c in &mut t.children {
        let _ = c.wait();
    }
    t.children.clear();
    drop(iod);
    drop(iod_b);
    let fields = out(&[
        "tshark",
        "-r",
        pcap.to_str().unwrap(),
        "-Y",
        "nfs && rpc.msgtyp == 1",
        "-T",
        "fields",
        "-e",
        "rpc.xid",
        "-e",
        "nfs.procedure_v3",
        "-e",
        "nfs.count3",
        "-e",
        "nfs.read.eof",
        "-e",
        "ip.src",
        "-e",
        "udp.srcport",
    ]);
    // nfs.read.eof is a boolean: "1"/"0" or "True"/"False" by version.
    let rows: Vec<Vec<&str>> = fields
        .lines()
        .map(|l| {
            l.split('\t')
                .map(|f| match f {
                    "True" => "1",
                    "False" => "0",
                    x => x,
                })
                .collect()
        })
        .collect();
    eprintln!("tshark replies: {rows:?}");
    assert_eq!(rows.len(), 2, "expected two NFS replies, got {fields:?}");
    assert_eq!(
        rows[0],
        vec!["0x11110001", "6", "1001", "0", "10.251.0.1", "2049"]
    );
    assert_eq!(
        rows[1],
        vec!["0x11110002", "6", "32768", "1", "10.251.0.1", "2049"]
    );
    // The large reply really was fragmented on the wire.
    let frags = out(&[
        "tshark",
        "-r",
        pcap.to_str().unwrap(),
        "-Y",
        "ip.flags.mf == 1",
        "-T",
        "fields",
        "-e",
        "ip.id",
    ]);
    assert!(
        frags.lines().count() >= 2,
        "32 KiB reply was not fragmented: {frags:?}"
    );
}
