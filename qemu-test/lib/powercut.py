#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Power-cut load and check for nfsp exports.

  powercut.py load DIR ACKS   write, fsync, truncate, create, rename,
                              hard-link and remove files (or one of their
                              names) under DIR until killed; after
                              each operation is acknowledged (fsync or a
                              synchronous NFS call returned), append a line
                              saying so to ACKS, a file outside the VM
  powercut.py check DIR ACKS  after the power cut: every acknowledged byte,
                              size, creation, rename, link and removal is
                              there (the names of a file: one inode)

Blocks are 64 KiB; each 4 KiB page of one holds a pattern naming its
file's birth id, the block, the page and a version (a counter of the
writer), so that a page read back tells which write it came from (a write
the power cut tore leaves pages of two versions). A page may hold a newer
version than the last acknowledged one (written, not yet synced, but
persisted anyway), never an older one, and zeros only where no write was
acknowledged (or a cut since).
"""
import os
import random
import struct
import sys
import time

BLOCK = 64 * 1024
PAGE = 4096
MAX_BLOCKS = 48
MAGIC = 0x6E667370  # "nfsp"
HEAD = struct.Struct("<IIIIQ")


def page_pattern(fid, block, page, version):
    head = HEAD.pack(MAGIC, fid, block, page, version)
    seed = (fid * 1000003 + block * 7919 + page * 131 + version) & 0xFFFFFFFF
    return head + random.Random(seed).randbytes(PAGE - HEAD.size)


def pattern(fid, block, version):
    return b"".join(page_pattern(fid, block, i, version) for i in range(BLOCK // PAGE))


class Ack:
    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def __call__(self, *words):
        os.write(self.fd, (" ".join(str(w) for w in words) + "\n").encode())


def load(top, acks):
    ack = Ack(acks)
    os.makedirs(top, exist_ok=True)
    rng = random.Random(os.getpid() ^ int(time.time()))
    version = 0
    serial = 0  # for new names
    next_fid = 1
    files = {}  # fid -> [[names], fd, {block: version} written since the last fsync]

    def create():
        nonlocal next_fid, version
        fid = next_fid
        next_fid += 1
        name = f"f{fid}"
        fd = os.open(os.path.join(top, name), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        version += 1
        os.pwrite(fd, pattern(fid, 0, version), 0)
        os.fsync(fd)
        ack("C", fid, name)
        ack("W", fid, 0, version)
        files[fid] = [[name], fd, {}]

    for _ in range(3):
        create()
    ack("started")
    while True:
        op = rng.random()
        fid = rng.choice(list(files))
        names, fd, pending = files[fid]
        serial += 1
        if op < 0.70:
            block = rng.randrange(MAX_BLOCKS)
            version += 1
            os.pwrite(fd, pattern(fid, block, version), block * BLOCK)
            pending[block] = version
            if rng.random() < 0.3:
                os.fsync(fd)
                for b, v in sorted(pending.items()):
                    ack("W", fid, b, v)
                pending.clear()
        elif op < 0.77:
            keep = rng.randrange(MAX_BLOCKS // 2)
            ack("t", fid, keep)
            os.ftruncate(fd, keep * BLOCK)
            os.fsync(fd)
            for b in [b for b in pending if b >= keep]:
                del pending[b]
            ack("T", fid, keep, version)
        elif op < 0.84:
            create()
        elif op < 0.89:
            old, new = names[0], f"f{fid}.r{serial}"
            ack("n", fid, old, new)
            os.rename(os.path.join(top, old), os.path.join(top, new))
            names[0] = new
            ack("N", fid, old, new)
        elif op < 0.94:
            if len(names) < 3:
                new = f"f{fid}.l{serial}"
                ack("l", fid, new)
                os.link(os.path.join(top, names[0]), os.path.join(top, new))
                names.append(new)
                ack("L", fid, new)
        elif len(names) > 1:
            # One name of several: the data stays.
            gone = names.pop()
            ack("u", fid, gone)
            os.unlink(os.path.join(top, gone))
            ack("U", fid, gone)
        elif len(files) > 2:
            os.close(fd)
            ack("r", fid, names[0])
            os.unlink(os.path.join(top, names[0]))
            del files[fid]
            ack("R", fid, names[0])


def check(top, acks):
    # fid -> state; a block's rule is (zeros allowed, lowest version allowed)
    state = {}
    lines = 0
    for line in open(acks):
        w = line.split()
        if not line.endswith("\n") or not w or w[0] == "started":
            continue  # "started", or a line cut by the power cut
        # Lower case: an operation about to be made (the last one may have
        # been applied when the power went, without its acknowledgement).
        if w[0] in ("t", "n", "r", "l", "u"):
            state[int(w[1])]["maybe"] = w
            continue
        lines += 1
        if w[0] != "C":
            state[int(w[1])].pop("maybe", None)
        if w[0] == "C":
            state[int(w[1])] = {"names": {w[2]}, "unlinked": set(), "gone": False,
                                "blocks": {}, "floor": {}, "size": BLOCK}
        elif w[0] == "W":
            s = state[int(w[1])]
            b, v = int(w[2]), int(w[3])
            s["blocks"][b] = (False, v)
            s["size"] = max(s["size"], (b + 1) * BLOCK)
        elif w[0] == "T":
            s = state[int(w[1])]
            keep, at = int(w[2]), int(w[3])
            s["blocks"] = {b: r for b, r in s["blocks"].items() if b < keep}
            # What was past the cut is gone: a block there holds zeros or
            # a later write, whatever later cuts keep.
            for b in range(keep, MAX_BLOCKS):
                s["floor"][b] = max(s["floor"].get(b, 0), at + 1)
            s["size"] = keep * BLOCK
        elif w[0] == "N":
            s = state[int(w[1])]
            s["names"].discard(w[2])
            s["unlinked"].add(w[2])
            s["names"].add(w[3])
        elif w[0] == "L":
            state[int(w[1])]["names"].add(w[2])
        elif w[0] == "U":
            s = state[int(w[1])]
            s["names"].discard(w[2])
            s["unlinked"].add(w[2])
        elif w[0] == "R":
            s = state[int(w[1])]
            s["gone"] = True
            s["unlinked"] |= s["names"]
    errors = []
    checked = 0
    for fid, s in sorted(state.items()):
        maybe = s.get("maybe", [""])
        # A name that went (renamed away, unlinked) must not be there,
        # unless an unacknowledged rename brought it... never: names are
        # never reused.
        for n in sorted(s["unlinked"]):
            if os.path.lexists(os.path.join(top, n)):
                errors.append(f"{n} (file {fid}): its removal or rename was acknowledged, it exists")
        if s["gone"]:
            continue
        # The names it must have, less what an unacknowledged operation
        # may have taken (the rename's old name, the removed name).
        inodes, present = set(), []
        for n in sorted(s["names"]):
            path = os.path.join(top, n)
            if maybe[0] == "n" and n == maybe[2] and not os.path.lexists(path):
                n, path = maybe[3], os.path.join(top, maybe[3])
            try:
                inodes.add(os.stat(path).st_ino)
                present.append(n)
            except OSError as e:
                if not (maybe[0] in ("r", "u") and n == maybe[2]):
                    errors.append(f"{n} (file {fid}): acknowledged, cannot be found: {e}")
        if maybe[0] == "l" and os.path.lexists(os.path.join(top, maybe[2])):
            inodes.add(os.stat(os.path.join(top, maybe[2])).st_ino)
        if len(inodes) > 1:
            errors.append(f"file {fid}: its names {present} are {len(inodes)} different files")
        if not present:
            continue
        s["name"] = present[0]
        path = os.path.join(top, present[0])
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            errors.append(f"{s['name']} (file {fid}): acknowledged, cannot be opened: {e}")
            continue
        size = os.fstat(fd).st_size
        # cut, not acknowledged: shorter, and zeros past the cut allowed
        maybe_keep = int(maybe[2]) if maybe[0] == "t" else MAX_BLOCKS
        need = min(s["size"], maybe_keep * BLOCK)
        if size < need:
            errors.append(f"{s['name']} (file {fid}): {size} bytes, acknowledged at least {need}")
        for b in range((max(size, s["size"]) + BLOCK - 1) // BLOCK):
            data = os.pread(fd, BLOCK, b * BLOCK)
            zeros_ok, lowest = s["blocks"].get(b, (True, 0))
            zeros_ok = zeros_ok or b >= maybe_keep
            lowest = max(lowest, s["floor"].get(b, 0))
            checked += 1
            data = data + bytes(BLOCK - len(data))  # past the end: zeros
            for i in range(BLOCK // PAGE):
                pg = data[i * PAGE:(i + 1) * PAGE]
                where = f"{s['name']} block {b} page {i}"
                if pg.count(0) == PAGE:
                    if not zeros_ok:
                        errors.append(f"{where}: zeros, version {lowest} was acknowledged")
                    continue
                magic, f, blk, page, v = HEAD.unpack_from(pg)
                if (magic, f, blk, page) != (MAGIC, fid, b, i) or pg != page_pattern(fid, b, i, v):
                    errors.append(f"{where}: not a page this file ever had there "
                                  f"(header {magic:#x} file {f} block {blk} page {page} version {v})")
                elif v < lowest:
                    errors.append(f"{where}: version {v}, older than the acknowledged {lowest}")
        os.close(fd)
    live = sum(1 for s in state.values() if not s["gone"])
    print(f"powercut check {top}: {lines} acknowledged operations, {live} files, "
          f"{checked} blocks checked, {len(errors)} errors")
    for e in errors[:30]:
        print("  " + e)
    return 1 if errors else 0


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("load", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "load":
        load(sys.argv[2], sys.argv[3])
        return 0
    return check(sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    sys.exit(main())
