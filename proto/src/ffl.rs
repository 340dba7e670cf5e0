// SPDX-License-Identifier: GPL-2.0
//! pNFS flexfiles layout bodies (RFC 8435) that the module hands nfsd: the
//! `ff_layout4` of a LAYOUTGET and the `ff_device_addr4` of a GETDEVICEINFO
//! (XDR, big-endian; nfsd adds the opaque's length), and the data-server
//! errors of the `ff_layoutreturn4` a client returns a layout with.
//!
//! A layout names its data servers by device id: nfsd's `{fsid_idx,
//! generation}` (host byte order, as `svcxdr_encode_deviceid4` writes it),
//! whose generation is the module's number of an iod.

use core::fmt::Write as _;
use core::net::SocketAddr;

use super::codec::{Reader, Writer};
use super::dsfh::DS_FH_LEN;
use super::error::{ProtoError, Result};

/// `ffds_user` / `ffds_group` of every data server: the data servers check
/// filehandles, not credentials (numeric strings, as clients require).
const FF_ID: &[u8] = b"0";
/// NFSv3 for the data servers.
const DS_VERSION: u32 = 3;

fn opaque(w: &mut Writer<'_>, b: &[u8]) -> Result<()> {
    let len = u32::try_from(b.len()).map_err(|_| ProtoError::Overflow)?;
    w.u32_be(len)?;
    w.put(b)?;
    w.zeros((4 - b.len() % 4) % 4)
}

/// Which clients get layouts (the `layouts` control command).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LayoutRule {
    /// Striped layouts to clients known to handle them (Linux 7.3.3 and
    /// later), layouts of files of width 1 to every client.
    #[default]
    Auto,
    /// Every layout to every client.
    Striped,
    /// Layouts of files of width 1 only.
    Single,
    /// No layouts: all I/O through the meta-server.
    Off,
}

impl LayoutRule {
    /// The keyword.
    pub fn as_str(&self) -> &'static str {
        match self {
            LayoutRule::Auto => "auto",
            LayoutRule::Striped => "striped",
            LayoutRule::Single => "single",
            LayoutRule::Off => "off",
        }
    }

    /// Parses the keyword.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => LayoutRule::Auto,
            "striped" => LayoutRule::Striped,
            "single" => LayoutRule::Single,
            "off" => LayoutRule::Off,
            _ => return Err(ProtoError::InvalidField("layouts")),
        })
    }

    /// Whether a client whose EXCHANGE_ID implementation name is `impl_name`
    /// gets the layout of a file striped over `width` viods. Linux clients
    /// before 6.18 fail I/O (EIO, no fallback) with several data servers
    /// per mirror, and 6.18 to 7.3.2 misroute I/O at large offsets; every
    /// flexfiles client handles one data server per mirror.
    pub fn allows(&self, impl_name: &[u8], width: u32) -> bool {
        match self {
            LayoutRule::Off => false,
            LayoutRule::Single => width == 1,
            LayoutRule::Striped => true,
            LayoutRule::Auto => width == 1 || linux_release(impl_name) >= Some((7, 3, 3)),
        }
    }
}

/// The release of a Linux client from its implementation name (`Linux
/// 7.3.4-amd64 #1 SMP ...`): major, minor, patch (0 if absent).
fn linux_release(name: &[u8]) -> Option<(u32, u32, u32)> {
    let rest = name.strip_prefix(b"Linux ")?;
    let mut parts = [0u32; 3];
    let mut i = 0;
    let mut digits = 0;
    for &b in rest {
        match b {
            b'0'..=b'9' => {
                let p = parts.get_mut(i)?;
                *p = p.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
                digits += 1;
            }
            b'.' if digits > 0 && i < 2 => {
                i += 1;
                digits = 0;
            }
            _ => break,
        }
    }
    (i >= 1 && digits > 0).then_some((parts[0], parts[1], parts[2]))
}

/// One data server of a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataServer {
    /// Its device number (the generation of its device id).
    pub device: u32,
    /// Its filehandle for the file ([`super::dsfh::DsHandle::seal`]).
    pub fh: [u8; DS_FH_LEN],
}

/// Encodes an `ff_layout4` into `buf`: `mirrors` mirrors of `width` data
/// servers each, `ds(mirror, index)` the data server at `index` in the
/// stripe of `mirror` (read first from mirror 0: the most efficient).
/// Returns the length written.
pub fn encode_layout(
    buf: &mut [u8],
    fsid_idx: u64,
    stripe_unit: u64,
    mirrors: u32,
    width: u32,
    mut ds: impl FnMut(u32, u32) -> Result<DataServer>,
) -> Result<usize> {
    if mirrors == 0 || width == 0 {
        return Err(ProtoError::InvalidField("empty layout"));
    }
    let mut w = Writer::new(buf);
    w.u64_be(stripe_unit)?;
    w.u32_be(mirrors)?;
    for m in 0..mirrors {
        w.u32_be(width)?;
        for j in 0..width {
            let d = ds(m, j)?;
            // deviceid4
            w.put(&fsid_idx.to_ne_bytes())?;
            w.put(&d.device.to_ne_bytes())?;
            w.u32_be(0)?;
            // ffds_efficiency
            w.u32_be(mirrors - m)?;
            // ffds_stateid: anonymous
            w.zeros(16)?;
            // ffds_fh_vers<>: one filehandle
            w.u32_be(1)?;
            opaque(&mut w, &d.fh)?;
            opaque(&mut w, FF_ID)?;
            opaque(&mut w, FF_ID)?;
        }
    }
    // ffl_flags: I/O through the meta-server allowed, LAYOUTCOMMIT wanted.
    w.u32_be(0)?;
    // ffl_stats_collect_hint
    w.u32_be(0)?;
    Ok(w.position())
}

/// A universal address (RFC 5665): `h1.h2.h3.h4.p1.p2` or `IPv6.p1.p2`.
struct Uaddr {
    buf: [u8; 64],
    len: usize,
}

impl core::fmt::Write for Uaddr {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(core::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Encodes the `ff_device_addr4` of a data server at `addr` (TCP), NFSv3
/// with `rsize`/`wsize`, into `buf`; returns the length written.
pub fn encode_device(buf: &mut [u8], addr: &SocketAddr, rsize: u32, wsize: u32) -> Result<usize> {
    let mut u = Uaddr {
        buf: [0; 64],
        len: 0,
    };
    let p = addr.port();
    write!(u, "{}.{}.{}", addr.ip(), p >> 8, p & 0xff).map_err(|_| ProtoError::Overflow)?;
    let netid: &[u8] = if addr.is_ipv4() { b"tcp" } else { b"tcp6" };
    let mut w = Writer::new(buf);
    // ffda_netaddrs: one
    w.u32_be(1)?;
    opaque(&mut w, netid)?;
    opaque(&mut w, u.buf.get(..u.len).ok_or(ProtoError::Overflow)?)?;
    // ffda_versions: one
    w.u32_be(1)?;
    w.u32_be(DS_VERSION)?;
    w.u32_be(0)?;
    w.u32_be(rsize)?;
    w.u32_be(wsize)?;
    // ffdv_tightly_coupled: no (AUTH_SYS with ffds_user/ffds_group)
    w.u32_be(0)?;
    Ok(w.position())
}

/// A data-server error a client reports when it returns a layout (a
/// `device_error4` of an `ff_ioerr4`, RFC 8435 section 9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DsError {
    /// The data server's device number.
    pub device: u32,
    /// The NFSv4 status (`nfsstat4`) the client saw.
    pub status: u32,
    /// The operation (`nfs_opnum4`: READ 25, WRITE 38, COMMIT 5).
    pub opnum: u32,
}

/// Most errors taken from one LAYOUTRETURN (a client sends a few).
const MAX_RETURN_ERRORS: u32 = 256;

/// Calls `f` on each data-server error of `body`, the `ff_layoutreturn4`
/// of a LAYOUTRETURN (its statistics, after the errors, are skipped).
/// An empty body reports nothing.
pub fn for_each_return_error(body: &[u8], mut f: impl FnMut(DsError)) -> Result<()> {
    if body.is_empty() {
        return Ok(());
    }
    let mut r = Reader::new(body);
    let reports = r.u32_be()?;
    let mut seen = 0u32;
    for _ in 0..reports {
        // ffie_offset, ffie_length, ffie_stateid
        r.bytes(8 + 8 + 16)?;
        let errors = r.u32_be()?;
        for _ in 0..errors {
            seen += 1;
            if seen > MAX_RETURN_ERRORS {
                return Err(ProtoError::TooMany("layoutreturn errors"));
            }
            let id = r.array::<16>()?;
            let mut generation = [0u8; 4];
            generation.copy_from_slice(id.get(8..12).ok_or(ProtoError::Truncated)?);
            f(DsError {
                device: u32::from_ne_bytes(generation),
                status: r.u32_be()?,
                opnum: r.u32_be()?,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(b: &[u8], i: usize) -> u32 {
        u32::from_be_bytes(b[i..i + 4].try_into().unwrap())
    }

    #[test]
    fn layout_of_two_mirrors_of_three() {
        let mut buf = [0u8; 4096];
        let n = encode_layout(&mut buf, 7, 65536, 2, 3, |m, j| {
            Ok(DataServer {
                device: 10 * m + j,
                fh: [j as u8; DS_FH_LEN],
            })
        })
        .unwrap();
        // stripe unit, mirror count, then per mirror a count and 3 entries
        // of 16 + 4 + 16 + 4 + 68 + 8 + 8 bytes, then flags and hint.
        let entry = 16 + 4 + 16 + 4 + 4 + DS_FH_LEN + 8 + 8;
        assert_eq!(n, 8 + 4 + 2 * (4 + 3 * entry) + 8);
        assert_eq!(u64::from_be_bytes(buf[..8].try_into().unwrap()), 65536);
        assert_eq!(be(&buf, 8), 2);
        assert_eq!(be(&buf, 12), 3);
        let second = 16 + 3 * entry; // mirror 1's count
        assert_eq!(be(&buf, second), 3);
        let dev = &buf[second + 4..second + 20];
        assert_eq!(&dev[..8], &7u64.to_ne_bytes());
        assert_eq!(&dev[8..12], &10u32.to_ne_bytes(), "mirror 1, index 0");
        assert_eq!(be(&buf, second + 20), 1, "mirror 1 is less efficient");
        assert_eq!(be(&buf, n - 8), 0, "flags");
        assert!(encode_layout(&mut buf, 7, 65536, 0, 3, |_, _| unreachable!()).is_err());
        assert!(encode_layout(&mut buf[..100], 7, 65536, 2, 3, |m, j| {
            Ok(DataServer {
                device: m + j,
                fh: [0; DS_FH_LEN],
            })
        })
        .is_err());
    }

    #[test]
    fn which_clients_get_layouts() {
        let auto = LayoutRule::Auto;
        assert!(auto.allows(b"Linux 7.3.4-amd64 #1 SMP PREEMPT_DYNAMIC Debian x86_64", 4));
        assert!(auto.allows(b"Linux 7.3.3 #1", 4));
        assert!(auto.allows(b"Linux 8.0 #1", 4));
        assert!(
            !auto.allows(b"Linux 7.3.2-1 #1", 4),
            "misroutes at large offsets"
        );
        assert!(
            !auto.allows(b"Linux 6.12.48+deb13-amd64 #1", 4),
            "EIO with striping"
        );
        assert!(
            auto.allows(b"Linux 6.12.48+deb13-amd64 #1", 1),
            "one data server is fine"
        );
        assert!(!auto.allows(b"", 2), "no implementation id");
        assert!(!auto.allows(b"FreeBSD 15.0", 2));
        assert!(!auto.allows(b"Linux x.y", 2));
        assert!(!auto.allows(b"Linux 99999999999.1", 2), "overflow");
        assert!(LayoutRule::Striped.allows(b"", 8));
        assert!(!LayoutRule::Single.allows(b"Linux 7.4", 2));
        assert!(LayoutRule::Single.allows(b"", 1));
        assert!(!LayoutRule::Off.allows(b"Linux 7.4", 1));
        for r in ["auto", "striped", "single", "off"] {
            assert_eq!(LayoutRule::parse(r).unwrap().as_str(), r);
        }
    }

    #[test]
    fn devices() {
        let mut buf = [0u8; 256];
        let n = encode_device(
            &mut buf,
            &"10.0.0.3:7000".parse().unwrap(),
            1 << 20,
            1 << 20,
        )
        .unwrap();
        assert_eq!(be(&buf, 0), 1);
        assert_eq!(be(&buf, 4), 3);
        assert_eq!(&buf[8..11], b"tcp");
        let ulen = be(&buf, 12) as usize;
        assert_eq!(&buf[16..16 + ulen], b"10.0.0.3.27.88");
        let v = 16 + ulen.div_ceil(4) * 4;
        assert_eq!([be(&buf, v), be(&buf, v + 4), be(&buf, v + 8)], [1, 3, 0]);
        assert_eq!(n, v + 24);
        let n6 = encode_device(&mut buf, &"[fe80::1]:2049".parse().unwrap(), 4096, 4096).unwrap();
        assert_eq!(&buf[8..12], b"tcp6");
        assert!(n6 > 0);
        assert_eq!(&buf[16..16 + be(&buf, 12) as usize], b"fe80::1.8.1");
    }

    #[test]
    fn return_errors() {
        let mut b = [0u8; 256];
        let mut w = Writer::new(&mut b);
        w.u32_be(1).unwrap(); // one ff_ioerr4
        w.u64_be(0).unwrap();
        w.u64_be(u64::MAX).unwrap();
        w.zeros(16).unwrap();
        w.u32_be(2).unwrap();
        for (dev, status, op) in [(7u32, 10008u32, 38u32), (9, 5, 25)] {
            w.put(&42u64.to_ne_bytes()).unwrap();
            w.put(&dev.to_ne_bytes()).unwrap();
            w.zeros(4).unwrap();
            w.u32_be(status).unwrap();
            w.u32_be(op).unwrap();
        }
        w.u32_be(0).unwrap(); // no statistics
        let n = w.position();
        let mut got = Vec::new();
        for_each_return_error(&b[..n], |e| got.push(e)).unwrap();
        assert_eq!(
            got,
            [
                DsError {
                    device: 7,
                    status: 10008,
                    opnum: 38
                },
                DsError {
                    device: 9,
                    status: 5,
                    opnum: 25
                }
            ]
        );
        assert!(
            for_each_return_error(&b[..n - 20], |_| ()).is_err(),
            "cut short"
        );
        for_each_return_error(&[], |_| panic!("no body, no error")).unwrap();
    }
}
