// SPDX-License-Identifier: GPL-2.0
//! Errno names for the errors the control file's write(2) can return
//! (numbers of the generic Linux ABI: x86, arm, riscv).

/// `EINVAL`-style name of a raw errno, or `errno N`.
pub fn name(errno: i32) -> String {
    let n = match errno {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        22 => "EINVAL",
        28 => "ENOSPC",
        34 => "ERANGE",
        36 => "ENAMETOOLONG",
        61 => "ENODATA",
        75 => "EOVERFLOW",
        95 => "EOPNOTSUPP",
        110 => "ETIMEDOUT",
        _ => return format!("errno {errno}"),
    };
    n.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::name(22), "EINVAL");
        assert_eq!(super::name(2), "ENOENT");
        assert_eq!(super::name(17), "EEXIST");
        assert_eq!(super::name(95), "EOPNOTSUPP");
        assert_eq!(super::name(4242), "errno 4242");
    }
}
