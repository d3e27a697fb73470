"""A tiny static executable: it writes one line and exits 0 (pure).

The image the zstd probe runs (:mod:`hpcbridge.doctor.zstd`) must not depend on
anything but the runtime reading its squashfs: no shell, no libc.  So it holds
one hand-assembled ELF64 program per architecture (Linux system calls
``write(1, msg, len)`` then ``exit(0)``), one ``PT_LOAD`` segment, no sections:

x86_64::

    mov eax, 1 ; mov edi, 1 ; lea rsi, [rip+msg] ; mov edx, len ; syscall
    mov eax, 60 ; xor edi, edi ; syscall

aarch64::

    movz x0, #1 ; adr x1, msg ; movz x2, #len ; movz x8, #64 ; svc #0
    movz x0, #0 ; movz x8, #93 ; svc #0
"""

from __future__ import annotations

import struct
from typing import Optional

__all__ = ["MARKER", "executable", "supported"]

MARKER = b"hpcbridge-probe-ok\n"
_BASE = 0x400000
_HEADERS = 64 + 56  # ELF header + one program header
_ALIGN = 0x10000  # 64 KiB: fine for 4 KiB and 64 KiB pages


def _x86_64(msg: bytes) -> bytes:
    code = b"\xb8\x01\x00\x00\x00"  # mov eax, 1 (write)
    code += b"\xbf\x01\x00\x00\x00"  # mov edi, 1
    code += b"\x48\x8d\x35" + struct.pack("<i", 16)  # lea rsi, [rip+16] (msg after the code)
    code += b"\xba" + struct.pack("<I", len(msg))  # mov edx, len
    code += b"\x0f\x05"  # syscall
    code += b"\xb8\x3c\x00\x00\x00"  # mov eax, 60 (exit)
    code += b"\x31\xff"  # xor edi, edi
    code += b"\x0f\x05"  # syscall
    return code + msg


def _aarch64(msg: bytes) -> bytes:
    words = [
        0xD2800020,  # movz x0, #1
        0x10000000 | (7 << 5) | 1,  # adr x1, .+28 (msg, after the 8 instructions)
        0xD2800002 | (len(msg) << 5),  # movz x2, #len
        0xD2800808,  # movz x8, #64 (write)
        0xD4000001,  # svc #0
        0xD2800000,  # movz x0, #0
        0xD2800BA8,  # movz x8, #93 (exit)
        0xD4000001,  # svc #0
    ]
    return struct.pack("<8I", *words) + msg


#: ``uname -m`` / ``platform.machine()`` -> (e_machine, code builder)
_ARCHES = {"x86_64": (62, _x86_64), "aarch64": (183, _aarch64)}
#: the same machines by their OCI/Go names
_GO_NAMES = {"amd64": "x86_64", "arm64": "aarch64"}


def supported(machine: str) -> bool:
    return _GO_NAMES.get(machine, machine) in _ARCHES


def executable(machine: str, msg: bytes = MARKER) -> Optional[bytes]:
    """The program for ``machine`` (``x86_64``/``amd64``, ``aarch64``/``arm64``); None for others."""
    arch = _ARCHES.get(_GO_NAMES.get(machine, machine))
    if arch is None or len(msg) > 255:
        return None
    e_machine, build = arch
    body = build(msg)
    size = _HEADERS + len(body)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, v1, SysV
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", 2, e_machine, 1, _BASE + _HEADERS, 64, 0, 0, 64, 56, 1, 0, 0, 0
    )
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, _ALIGN)
    return header + segment + body
