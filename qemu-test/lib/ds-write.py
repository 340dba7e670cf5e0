#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Send one NFSv3 WRITE (FILE_SYNC) to a pNFS data server, as anyone on the
storage network could with a filehandle seen there, and print the
NFSv3 status of the answer (0: written, 70: NFS3ERR_STALE, ...).

usage: ds-write.py HOST PORT FH_HEX OFFSET LENGTH BYTE
"""
import socket
import struct
import sys


def opaque(b):
    return struct.pack(">I", len(b)) + b + b"\0" * (-len(b) % 4)


def main():
    host, port, fh_hex, offset, length, byte = sys.argv[1:7]
    fh = bytes.fromhex(fh_hex.replace(":", ""))
    data = bytes([int(byte, 0)]) * int(length)
    xid = 0x6e667370
    # AUTH_SYS: stamp, machine name, uid 0, gid 0, no groups.
    cred = struct.pack(">I", 0) + opaque(b"") + struct.pack(">III", 0, 0, 0)
    call = struct.pack(">IIIIII", xid, 0, 2, 100003, 3, 7)
    call += struct.pack(">I", 1) + opaque(cred) + struct.pack(">II", 0, 0)
    call += opaque(fh) + struct.pack(">QII", int(offset), len(data), 2) + opaque(data)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(struct.pack(">I", 0x80000000 | len(call)) + call)
    reply = b""
    while len(reply) < 4 or len(reply) < 4 + (struct.unpack(">I", reply[:4])[0] & 0x7FFFFFFF):
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("data server closed the connection")
        reply += chunk
    body = reply[4:]
    rxid, mtype, stat = struct.unpack(">III", body[:12])
    if rxid != xid or mtype != 1 or stat != 0:
        sys.exit(f"not an accepted reply: xid {rxid:#x} type {mtype} stat {stat}")
    verf_len = struct.unpack(">I", body[16:20])[0]
    at = 20 + verf_len + (-verf_len % 4)
    accept, status = struct.unpack(">II", body[at:at + 8])
    if accept != 0:
        sys.exit(f"call not executed: accept_stat {accept}")
    print(status)


main()
