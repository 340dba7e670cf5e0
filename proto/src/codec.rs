// SPDX-License-Identifier: GPL-2.0
//! Bounds-checked cursors over byte slices (internal helpers, public so the
//! kernel module may reuse them). Every read/write returns an error instead
//! of panicking.

use super::error::{ProtoError, Result};

/// Reading cursor over a borrowed slice.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

macro_rules! rd {
    ($name:ident, $ty:ty, $n:expr, $conv:ident) => {
        /// Read one integer.
        pub fn $name(&mut self) -> Result<$ty> {
            let b = self.array::<$n>()?;
            Ok(<$ty>::$conv(b))
        }
    };
}

impl<'a> Reader<'a> {
    /// New cursor at position 0.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    /// Current position.
    #[cfg(not(nfsp_kernel))]
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Take `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(ProtoError::Overflow)?;
        let s = self.buf.get(self.pos..end).ok_or(ProtoError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    /// Take a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    /// Take everything left.
    #[cfg(not(nfsp_kernel))]
    pub fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        s
    }
    /// Fail with [`ProtoError::TrailingBytes`] unless everything was consumed.
    pub fn finish(&self) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(ProtoError::TrailingBytes)
        }
    }
    /// Read one byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    rd!(u16_le, u16, 2, from_le_bytes);
    rd!(u32_le, u32, 4, from_le_bytes);
    rd!(u64_le, u64, 8, from_le_bytes);
    rd!(u32_be, u32, 4, from_be_bytes);
    #[cfg(not(nfsp_kernel))]
    rd!(u64_be, u64, 8, from_be_bytes);
}

/// Writing cursor over a caller buffer.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

macro_rules! wr {
    ($name:ident, $ty:ty, $conv:ident) => {
        /// Write one integer.
        pub fn $name(&mut self, v: $ty) -> Result<()> {
            self.put(&v.$conv())
        }
    };
}

impl<'a> Writer<'a> {
    /// New cursor at position 0.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }
    /// Bytes written so far.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Append bytes.
    pub fn put(&mut self, data: &[u8]) -> Result<()> {
        let end = self
            .pos
            .checked_add(data.len())
            .ok_or(ProtoError::Overflow)?;
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(ProtoError::BufferTooSmall)?;
        dst.copy_from_slice(data);
        self.pos = end;
        Ok(())
    }
    /// Append `n` zero bytes.
    pub fn zeros(&mut self, n: usize) -> Result<()> {
        let end = self.pos.checked_add(n).ok_or(ProtoError::Overflow)?;
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(ProtoError::BufferTooSmall)?;
        dst.fill(0);
        self.pos = end;
        Ok(())
    }
    /// Overwrite 4 bytes at an earlier position (little-endian).
    #[cfg(not(nfsp_kernel))]
    pub fn patch_u32_le(&mut self, at: usize, v: u32) -> Result<()> {
        let end = at.checked_add(4).ok_or(ProtoError::Overflow)?;
        if end > self.pos {
            return Err(ProtoError::BufferTooSmall);
        }
        let dst = self
            .buf
            .get_mut(at..end)
            .ok_or(ProtoError::BufferTooSmall)?;
        dst.copy_from_slice(&v.to_le_bytes());
        Ok(())
    }
    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.pos).unwrap_or(&[])
    }
    /// Write one byte.
    pub fn u8(&mut self, v: u8) -> Result<()> {
        self.put(&[v])
    }
    wr!(u16_le, u16, to_le_bytes);
    wr!(u32_le, u32, to_le_bytes);
    wr!(u64_le, u64, to_le_bytes);
    wr!(u32_be, u32, to_be_bytes);
    wr!(u64_be, u64, to_be_bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_bounds() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16_le(), Ok(0x0201));
        assert_eq!(r.u16_le(), Err(ProtoError::Truncated));
        assert_eq!(r.finish(), Err(ProtoError::TrailingBytes));
        assert_eq!(r.u8(), Ok(3));
        assert_eq!(r.finish(), Ok(()));
        assert_eq!(r.bytes(usize::MAX), Err(ProtoError::Overflow));
    }

    #[test]
    fn writer_bounds() {
        let mut b = [0u8; 5];
        let mut w = Writer::new(&mut b);
        w.u32_be(0x01020304).unwrap();
        assert_eq!(w.u16_le(7), Err(ProtoError::BufferTooSmall));
        w.u8(9).unwrap();
        assert_eq!(w.patch_u32_le(2, 0), Err(ProtoError::BufferTooSmall));
        w.patch_u32_le(0, 0x0a0b0c0d).unwrap();
        assert_eq!(w.written(), &[0x0d, 0x0c, 0x0b, 0x0a, 9]);
    }
}
