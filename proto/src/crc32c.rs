// SPDX-License-Identifier: GPL-2.0
//! CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table driven,
//! table computed at compile time. Same values as the kernel's `crc32c()`
//! with seed !0 and final inversion, and as iSCSI/ext4.

const POLY: u32 = 0x82F6_3B78;

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            k += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static TABLE: [u32; 256] = make_table();

/// Continue a CRC32C over `data`. Start with `state = 0`; the returned value
/// is the finished CRC of everything fed so far (it can be fed back in).
pub fn crc32c_update(state: u32, data: &[u8]) -> u32 {
    let mut crc = !state;
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// CRC32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_update(0, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        let inc: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(crc32c(&inc), 0x46DD_794E);
    }

    #[test]
    fn incremental() {
        let a = crc32c_update(0, b"1234");
        assert_eq!(crc32c_update(a, b"56789"), 0xE306_9283);
    }
}
