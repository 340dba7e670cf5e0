#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""uncommitted-write.py SRC DST READY GO: write SRC's bytes to DST on an
NFS mount as UNSTABLE WRITEs the server has answered but not committed
(background writeback, then a wait for it; no fsync, no close), create
READY, wait for GO to exist, then fsync (COMMIT) and close."""
import ctypes
import os
import sys
import time

SYNC_FILE_RANGE_WAIT_AFTER = 4
SYNC_FILE_RANGE_WRITE = 2


def sync_range(libc, fd, flags):
    if libc.sync_file_range(fd, ctypes.c_longlong(0), ctypes.c_longlong(0), flags) != 0:
        raise OSError(ctypes.get_errno(), "sync_file_range")


def main():
    src, dst, ready, go = sys.argv[1:5]
    libc = ctypes.CDLL(None, use_errno=True)
    with open(src, "rb") as f:
        data = f.read()
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    # Writeback that is not for data integrity: the NFS client sends
    # UNSTABLE WRITEs and keeps the pages until a COMMIT.
    sync_range(libc, fd, SYNC_FILE_RANGE_WRITE)
    sync_range(libc, fd, SYNC_FILE_RANGE_WAIT_AFTER)
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.1)
    os.fsync(fd)
    os.close(fd)


if __name__ == "__main__":
    main()
