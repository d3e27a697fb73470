"""A pure-Python writer and reader of SIF v01 (Singularity Image Format) files.

Layout (see docs/reference sif-format.md; sylabs/sif ``pkg/sif``): a 128-byte
little-endian global header at 0, 48 descriptors of 585 bytes at 4096, data from
32176.  Objects are placed in order; partitions are 4096-aligned, everything
else unaligned.  The writer is split so that the big squashfs partition can be
written *in place* by ``mksquashfs -offset``: :func:`plan` computes every
offset from the small objects and the partition's position, and
:func:`write_prefix` fills in header, descriptors and small objects afterwards.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO, Optional

from hpcbridge.errors import ImageError

HEADER = struct.Struct("<32s10s3s3s16sqqqqqqqq")
DESCRIPTOR = struct.Struct("<i?IIIqqqqqqq128s384s")
assert HEADER.size == 128 and DESCRIPTOR.size == 585

MAGIC = b"SIF_MAGIC\x00"
VERSION = b"01\x00"
LAUNCH_SCRIPT = b"#!/usr/bin/env run-singularity\n"
DESCRIPTORS_OFFSET = 4096
DESCRIPTORS_TOTAL = 48
DATA_OFFSET = DESCRIPTORS_OFFSET + DESCRIPTORS_TOTAL * DESCRIPTOR.size  # 32176
PARTITION_ALIGN = 4096
GROUP_MASK = 0xF0000000

DATA_DEFFILE = 0x4001
DATA_ENVVAR = 0x4002
DATA_LABELS = 0x4003
DATA_PARTITION = 0x4004
DATA_SIGNATURE = 0x4005
DATA_GENERIC_JSON = 0x4006
DATA_GENERIC = 0x4007

FS_SQUASHFS = 1
PART_SYSTEM = 1
PART_PRIMSYS = 2
PART_DATA = 3

ARCH_CODES = {
    "386": "01",
    "amd64": "02",
    "arm": "03",
    "arm64": "04",
    "ppc64": "05",
    "ppc64le": "06",
    "mips": "07",
    "mipsle": "08",
    "mips64": "09",
    "mips64le": "10",
    "s390x": "11",
    "riscv64": "12",
    "loong64": "13",
}


def arch_code(goarch: str) -> bytes:
    """The 3-byte SIF arch field for a Go/OCI architecture name (``00`` if unknown)."""
    return ARCH_CODES.get(goarch, "00").encode() + b"\x00"


def deterministic_uuid(manifest_digest: str, flavour: str = "") -> uuid.UUID:
    """The SIF ID of an image: a name-based (v5) UUID of its manifest digest.

    Apptainer's reproducible mode writes the nil UUID; a digest-derived one is
    just as reproducible and keeps different images distinguishable.
    """
    return uuid.uuid5(uuid.NAMESPACE_URL, f"hpcbridge:sif:{manifest_digest}:{flavour}")


@dataclass(frozen=True)
class Descriptor:
    datatype: int
    id: int
    group: int
    link: int
    offset: int
    size: int
    size_with_padding: int
    created: int
    modified: int
    name: str
    extra: bytes

    @property
    def fstype(self) -> int:
        return (
            int(struct.unpack_from("<i", self.extra, 0)[0])
            if self.datatype == DATA_PARTITION
            else 0
        )

    @property
    def parttype(self) -> int:
        return (
            int(struct.unpack_from("<i", self.extra, 4)[0])
            if self.datatype == DATA_PARTITION
            else 0
        )

    @property
    def arch(self) -> str:
        return self.extra[8:10].decode() if self.datatype == DATA_PARTITION else ""

    def pack(self) -> bytes:
        return DESCRIPTOR.pack(
            self.datatype,
            True,
            self.id,
            self.group,
            self.link,
            self.offset,
            self.size,
            self.size_with_padding,
            self.created,
            self.modified,
            0,
            0,
            self.name.encode(),
            self.extra,
        )


@dataclass(frozen=True)
class Header:
    launch: bytes
    arch: bytes
    id: uuid.UUID
    created: int
    modified: int
    descriptors_free: int
    descriptors_total: int
    descriptors_offset: int
    descriptors_size: int
    data_offset: int
    data_size: int

    def pack(self) -> bytes:
        return HEADER.pack(
            self.launch,
            MAGIC,
            VERSION,
            self.arch,
            self.id.bytes,
            self.created,
            self.modified,
            self.descriptors_free,
            self.descriptors_total,
            self.descriptors_offset,
            self.descriptors_size,
            self.data_offset,
            self.data_size,
        )


@dataclass(frozen=True)
class SmallObject:
    """A non-partition object held in memory (definition file, JSON)."""

    datatype: int
    name: str
    data: bytes


@dataclass(frozen=True)
class Plan:
    header: Header
    descriptors: tuple[Descriptor, ...]
    objects: tuple[SmallObject, ...]
    partition_offset: int


def plan(
    objects: Sequence[SmallObject],
    *,
    partition_size: int,
    arch: str,
    sif_id: uuid.UUID,
    created: int,
    partition_offset: Optional[int] = None,
) -> Plan:
    """Lay out ``objects`` followed by one squashfs PrimSys partition of ``partition_size``.

    With ``partition_size`` unknown yet, call it with 0 to learn the partition
    offset, run mksquashfs there, then call again with the real size.
    """
    if len(objects) + 1 > DESCRIPTORS_TOTAL:
        raise ValueError("too many SIF objects")
    descs: list[Descriptor] = []
    end = DATA_OFFSET
    for i, obj in enumerate(objects):
        descs.append(
            Descriptor(
                obj.datatype,
                i + 1,
                GROUP_MASK | 1,
                0,
                end,
                len(obj.data),
                len(obj.data),
                created,
                created,
                obj.name,
                b"",
            )
        )
        end += len(obj.data)
    off = -(-end // PARTITION_ALIGN) * PARTITION_ALIGN
    if partition_offset is not None and partition_offset != off:
        raise ValueError("partition offset changed between plan calls")
    extra = struct.pack("<ii3s", FS_SQUASHFS, PART_PRIMSYS, arch_code(arch))
    descs.append(
        Descriptor(
            DATA_PARTITION,
            len(objects) + 1,
            GROUP_MASK | 1,
            0,
            off,
            partition_size,
            off - end + partition_size,
            created,
            created,
            "",
            extra,
        )
    )
    data_end = off + partition_size
    header = Header(
        launch=LAUNCH_SCRIPT,
        arch=arch_code(arch),
        id=sif_id,
        created=created,
        modified=created,
        descriptors_free=DESCRIPTORS_TOTAL - len(descs),
        descriptors_total=DESCRIPTORS_TOTAL,
        descriptors_offset=DESCRIPTORS_OFFSET,
        descriptors_size=DESCRIPTORS_TOTAL * DESCRIPTOR.size,
        data_offset=DATA_OFFSET,
        data_size=data_end - DATA_OFFSET,
    )
    return Plan(header, tuple(descs), tuple(objects), off)


def prefix_bytes(p: Plan) -> bytes:
    """Everything before the partition: header, descriptor table, small objects, padding."""
    buf = bytearray(p.partition_offset)
    buf[0 : HEADER.size] = p.header.pack()
    table = b"".join(d.pack() for d in p.descriptors)
    buf[DESCRIPTORS_OFFSET : DESCRIPTORS_OFFSET + len(table)] = table
    for d, obj in zip(p.descriptors, p.objects):
        buf[d.offset : d.offset + len(obj.data)] = obj.data
    return bytes(buf)


def write_prefix(f: BinaryIO, p: Plan) -> None:
    """Write header, descriptors and small objects into an open SIF (partition already there)."""
    f.seek(0)
    f.write(prefix_bytes(p))


# -- reading ---------------------------------------------------------------


@dataclass(frozen=True)
class SifFile:
    header: Header
    descriptors: tuple[Descriptor, ...]

    def primary_partition(self) -> Descriptor:
        for d in self.descriptors:
            if d.datatype == DATA_PARTITION and d.parttype == PART_PRIMSYS:
                return d
        raise ImageError("SIF file has no primary system partition", "rebuild the image")

    def find(self, name: str) -> Optional[Descriptor]:
        for d in self.descriptors:
            if d.name == name:
                return d
        return None


def read_sif(f: BinaryIO) -> SifFile:
    """Parse the header and used descriptors of a SIF file."""
    f.seek(0)
    raw = f.read(HEADER.size)
    if len(raw) < HEADER.size:
        raise ImageError("file is too short to be a SIF image", "convert the image again")
    h = HEADER.unpack(raw)
    if h[1] != MAGIC or h[2] != VERSION:
        raise ImageError("not a SIF v01 file (bad magic or version)", "convert the image again")
    header = Header(h[0].rstrip(b"\x00"), h[3], uuid.UUID(bytes=h[4]), *h[5:])
    f.seek(header.descriptors_offset)
    table = f.read(header.descriptors_total * DESCRIPTOR.size)
    descs = []
    for i in range(header.descriptors_total):
        d = DESCRIPTOR.unpack_from(table, i * DESCRIPTOR.size)
        if not d[1]:
            continue
        descs.append(
            Descriptor(
                d[0],
                d[2],
                d[3],
                d[4],
                d[5],
                d[6],
                d[7],
                d[8],
                d[9],
                d[12].rstrip(b"\x00").decode("utf-8", "replace"),
                d[13],
            )
        )
    return SifFile(header, tuple(descs))


def read_object(f: BinaryIO, d: Descriptor) -> bytes:
    f.seek(d.offset)
    return f.read(d.size)
