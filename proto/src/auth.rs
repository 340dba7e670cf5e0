// SPDX-License-Identifier: GPL-2.0
//! Message authentication: BLAKE2s (RFC 7693) in its keyed mode with a
//! 16-byte output (BLAKE2s-128), the cluster's keys (two slots, so a key
//! can be rotated without downtime) and the key file's text format.
//!
//! A datagram's tag is `BLAKE2s-128(key, datagram with the tag zeroed)`;
//! the header names the key by its id (see [`super::wire`]). Tags are
//! compared in constant time.

use super::error::{ProtoError, Result};

/// Key length (BLAKE2s's largest key).
pub const KEY_LEN: usize = 32;
/// Tag length carried by every datagram.
pub const TAG_LEN: usize = 16;

const IV: [u32; 8] = [
    0x6A09_E667,
    0xBB67_AE85,
    0x3C6E_F372,
    0xA54F_F53A,
    0x510E_527F,
    0x9B05_688C,
    0x1F83_D9AB,
    0x5BE0_CD19,
];

const SIGMA: [[usize; 16]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

const BLOCK: usize = 64;

/// An incremental BLAKE2s computation (no allocation).
#[derive(Clone)]
pub struct Blake2s {
    h: [u32; 8],
    /// Bytes compressed so far.
    t: u64,
    buf: [u8; BLOCK],
    buf_len: usize,
    out_len: usize,
}

#[inline(always)]
fn g(v: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize, x: u32, y: u32) {
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(12);
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
    v[d] = (v[d] ^ v[a]).rotate_right(8);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(7);
}

/// One round on the state words, with `SIGMA[$r]` as constant indices (so
/// that no index is checked or loaded at run time).
macro_rules! round {
    ($v:ident, $m:ident, $r:expr) => {
        g(&mut $v, 0, 4, 8, 12, $m[SIGMA[$r][0]], $m[SIGMA[$r][1]]);
        g(&mut $v, 1, 5, 9, 13, $m[SIGMA[$r][2]], $m[SIGMA[$r][3]]);
        g(&mut $v, 2, 6, 10, 14, $m[SIGMA[$r][4]], $m[SIGMA[$r][5]]);
        g(&mut $v, 3, 7, 11, 15, $m[SIGMA[$r][6]], $m[SIGMA[$r][7]]);
        g(&mut $v, 0, 5, 10, 15, $m[SIGMA[$r][8]], $m[SIGMA[$r][9]]);
        g(&mut $v, 1, 6, 11, 12, $m[SIGMA[$r][10]], $m[SIGMA[$r][11]]);
        g(&mut $v, 2, 7, 8, 13, $m[SIGMA[$r][12]], $m[SIGMA[$r][13]]);
        g(&mut $v, 3, 4, 9, 14, $m[SIGMA[$r][14]], $m[SIGMA[$r][15]]);
    };
}

fn compress(h: &mut [u32; 8], block: &[u8; BLOCK], t: u64, last: bool) {
    let mut m = [0u32; 16];
    for (w, c) in m.iter_mut().zip(block.chunks_exact(4)) {
        *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    let mut v = [0u32; 16];
    v[..8].copy_from_slice(h);
    v[8..].copy_from_slice(&IV);
    // The counter is the low 64 bits of BLAKE2s's 64-bit byte counter.
    v[12] ^= t as u32;
    v[13] ^= (t >> 32) as u32;
    if last {
        v[14] = !v[14];
    }
    round!(v, m, 0);
    round!(v, m, 1);
    round!(v, m, 2);
    round!(v, m, 3);
    round!(v, m, 4);
    round!(v, m, 5);
    round!(v, m, 6);
    round!(v, m, 7);
    round!(v, m, 8);
    round!(v, m, 9);
    for i in 0..8 {
        h[i] ^= v[i] ^ v[i + 8];
    }
}

impl Blake2s {
    /// A hash of `out_len` bytes (1..=32), keyed when `key` is not empty
    /// (at most 32 bytes). Out-of-range lengths are clamped.
    pub fn new(out_len: usize, key: &[u8]) -> Self {
        let out_len = out_len.clamp(1, 32);
        let key = key.get(..KEY_LEN).unwrap_or(key);
        let mut h = IV;
        h[0] ^= 0x0101_0000 ^ ((key.len() as u32) << 8) ^ out_len as u32;
        let mut s = Blake2s {
            h,
            t: 0,
            buf: [0; BLOCK],
            buf_len: 0,
            out_len,
        };
        if !key.is_empty() {
            s.buf[..key.len()].copy_from_slice(key);
            s.buf_len = BLOCK;
        }
        s
    }

    /// Absorbs `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.buf_len == BLOCK {
                // A full block is compressed only once more input follows:
                // the last block must carry the final flag.
                self.t = self.t.wrapping_add(BLOCK as u64);
                compress(&mut self.h, &self.buf, self.t, false);
                self.buf_len = 0;
            }
            if self.buf_len == 0 {
                while data.len() > BLOCK {
                    let (block, rest) = data.split_at(BLOCK);
                    let mut b = [0u8; BLOCK];
                    b.copy_from_slice(block);
                    self.t = self.t.wrapping_add(BLOCK as u64);
                    compress(&mut self.h, &b, self.t, false);
                    data = rest;
                }
            }
            let take = (BLOCK - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
        }
    }

    /// Absorbs `n` zero bytes.
    pub fn update_zeros(&mut self, mut n: usize) {
        const Z: [u8; BLOCK] = [0; BLOCK];
        while n > 0 {
            let k = n.min(BLOCK);
            self.update(&Z[..k]);
            n -= k;
        }
    }

    /// The digest, in the first `out_len` bytes of `out` (the rest is 0).
    pub fn finalize(mut self) -> [u8; 32] {
        self.t = self.t.wrapping_add(self.buf_len as u64);
        self.buf[self.buf_len..].fill(0);
        compress(&mut self.h, &self.buf, self.t, true);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.h.iter()) {
            o.copy_from_slice(&w.to_le_bytes());
        }
        out[self.out_len..].fill(0);
        out
    }
}

/// Constant-time equality of two tags (no early exit on the first
/// differing byte).
pub fn tags_equal(a: &[u8; TAG_LEN], b: &[u8; TAG_LEN]) -> bool {
    let mut d = 0u8;
    for i in 0..TAG_LEN {
        d |= a[i] ^ b[i];
    }
    // Not a secret-dependent branch on the bytes: one test of the sum.
    core::hint::black_box(d) == 0
}

/// A cluster key and its id (never 0: id 0 marks unauthenticated
/// messages). `Debug` does not print the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    id: u32,
    bytes: [u8; KEY_LEN],
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Key({:08x}, <secret>)", self.id)
    }
}

impl Key {
    /// A key from its id and bytes; id 0 and the all-zero key are refused.
    pub fn new(id: u32, bytes: [u8; KEY_LEN]) -> Result<Self> {
        if id == 0 {
            return Err(ProtoError::InvalidField("key id"));
        }
        if bytes.iter().all(|b| *b == 0) {
            return Err(ProtoError::InvalidField("key"));
        }
        Ok(Key { id, bytes })
    }

    /// The key's id, carried by every message it signs.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The secret bytes (for the key file and the module's control command).
    #[cfg(not(nfsp_kernel))]
    pub fn secret(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The tag of `msg` read with its `TAG_LEN` bytes at `tag_at` as
    /// zeros: `BLAKE2s-128(key, msg')`. `None` if the field does not fit.
    pub fn tag(&self, msg: &[u8], tag_at: usize) -> Option<[u8; TAG_LEN]> {
        let end = tag_at.checked_add(TAG_LEN)?;
        let (before, rest) = (msg.get(..tag_at)?, msg.get(end..)?);
        let mut h = Blake2s::new(TAG_LEN, &self.bytes);
        h.update(before);
        h.update_zeros(TAG_LEN);
        h.update(rest);
        let full = h.finalize();
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&full[..TAG_LEN]);
        Some(t)
    }
}

/// The keys a party holds: one signs (and is accepted), a second one is
/// accepted too (rotation: the new key before everyone signs with it, or
/// the old one after). No key at all is the explicit insecure mode: it
/// signs nothing (key id 0, zero tag) and accepts only unsigned messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Keys {
    sign: Option<Key>,
    accept: Option<Key>,
}

impl Keys {
    /// The insecure mode: no key.
    pub const fn insecure() -> Self {
        Keys {
            sign: None,
            accept: None,
        }
    }

    /// Keys that sign with `sign` and also accept `accept` (ids must
    /// differ).
    pub fn new(sign: Key, accept: Option<Key>) -> Result<Self> {
        if accept.is_some_and(|a| a.id == sign.id) {
            return Err(ProtoError::InvalidField("key ids must differ"));
        }
        Ok(Keys {
            sign: Some(sign),
            accept,
        })
    }

    /// True in the insecure mode.
    pub fn is_insecure(&self) -> bool {
        self.sign.is_none()
    }

    /// The signing key.
    pub fn signing(&self) -> Option<&Key> {
        self.sign.as_ref()
    }

    /// The second, accepted-only key.
    pub fn accepted(&self) -> Option<&Key> {
        self.accept.as_ref()
    }

    /// The key with this id, if held.
    pub fn find(&self, id: u32) -> Option<&Key> {
        [self.sign.as_ref(), self.accept.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id == id)
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses `2 * N` hex digits.
pub fn parse_hex<const N: usize>(s: &str) -> Result<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return Err(ProtoError::InvalidField("hex length"));
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = hex_val(b[2 * i]).ok_or(ProtoError::InvalidField("hex digit"))?;
        let lo = hex_val(b[2 * i + 1]).ok_or(ProtoError::InvalidField("hex digit"))?;
        *o = (hi << 4) | lo;
    }
    Ok(out)
}

/// Parses a key id: 8 hex digits, not 0.
pub fn parse_key_id(s: &str) -> Result<u32> {
    let id = u32::from_be_bytes(parse_hex::<4>(s)?);
    if id == 0 {
        return Err(ProtoError::InvalidField("key id"));
    }
    Ok(id)
}

/// Parses `<id> <hex key>` (the two words after `sign` or `accept`).
pub fn parse_key_words<'a>(words: &mut impl Iterator<Item = &'a str>) -> Result<Key> {
    let id = parse_key_id(words.next().ok_or(ProtoError::MissingArgument("key id"))?)?;
    let bytes = parse_hex::<KEY_LEN>(words.next().ok_or(ProtoError::MissingArgument("key"))?)?;
    Key::new(id, bytes)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as lowercase hex.
pub fn write_hex(w: &mut impl core::fmt::Write, bytes: &[u8]) -> core::fmt::Result {
    for b in bytes {
        w.write_char(HEX[(b >> 4) as usize] as char)?;
        w.write_char(HEX[(b & 15) as usize] as char)?;
    }
    Ok(())
}

/// Writes `<id> <hex key>`.
pub fn write_key_words(w: &mut impl core::fmt::Write, k: &Key) -> core::fmt::Result {
    write_hex(w, &k.id.to_be_bytes())?;
    w.write_char(' ')?;
    write_hex(w, &k.bytes)
}

/// The key file (`/etc/nfsp/cluster.key`, mode 0600): `#` comments, one
/// `sign <id> <key>` line and at most one `accept <id> <key>` line; ids
/// are 8 hex digits, keys 64. Any other line is an error.
#[cfg(not(nfsp_kernel))]
pub mod keyfile {
    use super::*;

    /// Parses a key file's text.
    pub fn parse(text: &str) -> Result<Keys> {
        let mut sign = None;
        let mut accept = None;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_ascii_whitespace();
            let slot = match words.next() {
                Some("sign") => &mut sign,
                Some("accept") => &mut accept,
                _ => return Err(ProtoError::InvalidField("key file line")),
            };
            if slot.is_some() {
                return Err(ProtoError::InvalidField("key file: slot given twice"));
            }
            *slot = Some(parse_key_words(&mut words)?);
            if words.next().is_some() {
                return Err(ProtoError::TrailingGarbage);
            }
        }
        match sign {
            Some(s) => Keys::new(s, accept),
            None => Err(ProtoError::MissingArgument("sign key")),
        }
    }

    /// Writes a key file's text for `keys` (not the insecure mode).
    pub fn write(w: &mut impl core::fmt::Write, keys: &Keys) -> core::fmt::Result {
        w.write_str(
            "# nfsp cluster key (iodctl genkey / rotate-key). Secret: mode 0600,\n\
             # the same file on the meta-server and every iod.\n",
        )?;
        if let Some(k) = keys.signing() {
            w.write_str("sign ")?;
            write_key_words(w, k)?;
            w.write_char('\n')?;
        }
        if let Some(k) = keys.accepted() {
            w.write_str("accept ")?;
            write_key_words(w, k)?;
            w.write_char('\n')?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blake2s(out_len: usize, key: &[u8], data: &[u8]) -> std::vec::Vec<u8> {
        let mut h = Blake2s::new(out_len, key);
        h.update(data);
        h.finalize()[..out_len].to_vec()
    }

    #[test]
    fn rfc7693_appendix_b_abc() {
        let d = blake2s(32, &[], b"abc");
        let want = [
            0x50, 0x8C, 0x5E, 0x8C, 0x32, 0x7C, 0x14, 0xE2, 0xE1, 0xA7, 0x2B, 0xA3, 0x4E, 0xEB,
            0x45, 0x2F, 0x37, 0x45, 0x8B, 0x20, 0x9E, 0xD6, 0x3A, 0x29, 0x4D, 0x99, 0x9B, 0x4C,
            0x86, 0x67, 0x59, 0x82,
        ];
        assert_eq!(d, want);
    }

    /// RFC 7693 Appendix E: the grand hash over unkeyed and keyed hashes
    /// of every output length and input length of the self-test.
    #[test]
    fn rfc7693_appendix_e_selftest() {
        fn seq(out: &mut [u8], seed: u32) {
            let mut a = 0xDEAD_4BADu32.wrapping_mul(seed);
            let mut b = 1u32;
            for o in out.iter_mut() {
                let t = a.wrapping_add(b);
                a = b;
                b = t;
                *o = (t >> 24) as u8;
            }
        }
        let want = [
            0x6A, 0x41, 0x1F, 0x08, 0xCE, 0x25, 0xAD, 0xCD, 0xFB, 0x02, 0xAB, 0xA6, 0x41, 0x45,
            0x1C, 0xEC, 0x53, 0xC5, 0x98, 0xB2, 0x4F, 0x4F, 0xC7, 0x87, 0xFB, 0xDC, 0x88, 0x79,
            0x7F, 0x4C, 0x1D, 0xFE,
        ];
        let mut grand = Blake2s::new(32, &[]);
        for outlen in [16usize, 20, 28, 32] {
            for inlen in [0usize, 3, 64, 65, 255, 1024] {
                let mut input = std::vec![0u8; inlen];
                seq(&mut input, inlen as u32);
                grand.update(&blake2s(outlen, &[], &input));
                let mut key = std::vec![0u8; outlen];
                seq(&mut key, outlen as u32);
                grand.update(&blake2s(outlen, &key, &input));
            }
        }
        assert_eq!(grand.finalize(), want);
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: std::vec::Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let one = blake2s(16, b"k", &data);
        for split in [0, 1, 63, 64, 65, 128, 999, 1000] {
            let mut h = Blake2s::new(16, b"k");
            h.update(&data[..split]);
            h.update(&data[split..]);
            assert_eq!(&h.finalize()[..16], &one[..], "split {split}");
        }
    }

    #[test]
    fn tag_zeroes_the_field() {
        let k = Key::new(1, [7; 32]).unwrap();
        let mut msg = [1u8; 100];
        msg[40..56].fill(0);
        let mut h = Blake2s::new(16, &[7; 32]);
        h.update(&msg);
        let plain = &h.finalize()[..16];
        let mut dirty = msg;
        dirty[40..56].fill(0xee);
        assert_eq!(&k.tag(&dirty, 40).unwrap()[..], plain);
        assert_ne!(&k.tag(&dirty, 41).unwrap()[..], plain);
        assert_eq!(k.tag(&dirty[..50], 40), None);
    }

    #[test]
    fn constant_time_compare() {
        let a = [3u8; 16];
        let mut b = a;
        assert!(tags_equal(&a, &b));
        b[15] ^= 1;
        assert!(!tags_equal(&a, &b));
    }

    #[test]
    fn keys_and_key_file() {
        assert!(Key::new(0, [1; 32]).is_err());
        assert!(Key::new(1, [0; 32]).is_err());
        let a = Key::new(0x1234_5678, [0xab; 32]).unwrap();
        let b = Key::new(0x9abc_def0, [0xcd; 32]).unwrap();
        assert!(Keys::new(a, Some(a)).is_err());
        let ks = Keys::new(a, Some(b)).unwrap();
        assert_eq!(ks.find(a.id()), Some(&a));
        assert_eq!(ks.find(b.id()), Some(&b));
        assert_eq!(ks.find(7), None);
        let mut s = std::string::String::new();
        keyfile::write(&mut s, &ks).unwrap();
        assert!(s.contains("sign 12345678 abab"));
        assert_eq!(keyfile::parse(&s).unwrap(), ks);
        assert!(!std::format!("{a:?}").contains("ab"));
        for bad in [
            "",
            "accept 00000001 ",
            "sign 00000000 abababababababababababababababababababababababababababababababab",
            "sign 00000001 abab",
            "sign 00000001 abababababababababababababababababababababababababababababababab x",
            "sgn 00000001 abababababababababababababababababababababababababababababababab",
        ] {
            assert!(keyfile::parse(bad).is_err(), "{bad:?}");
        }
        let two = "sign 00000001 abababababababababababababababababababababababababababababababab\n\
                   sign 00000002 abababababababababababababababababababababababababababababababab\n";
        assert!(keyfile::parse(two).is_err());
    }
}
