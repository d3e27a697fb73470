"""SIF v01 writer/reader: byte layout, round trip, and siftool's view of our files."""

from __future__ import annotations

import io
import struct
import uuid
from pathlib import Path

import pytest

from hpcbridge import runner
from hpcbridge.errors import ImageError
from hpcbridge.images.sif import format as sif

OBJECTS = [
    sif.SmallObject(sif.DATA_DEFFILE, "", b"bootstrap: docker\nfrom: alpine\n\n"),
    sif.SmallObject(sif.DATA_GENERIC_JSON, "inspect-metadata.json", b'{"data":{}}'),
    sif.SmallObject(sif.DATA_GENERIC_JSON, "oci-config.json", b'{"Cmd":["sh"]}'),
]
ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def build(partition: bytes = b"hsqs" + b"\x01" * 5000) -> bytes:
    buf = io.BytesIO()
    layout = sif.plan(
        OBJECTS, partition_size=len(partition), arch="amd64", sif_id=ID, created=1704067200
    )
    sif.write_prefix(buf, layout)
    buf.write(partition)
    return buf.getvalue()


def test_header_layout() -> None:
    data = build()
    assert data[0:32] == b"#!/usr/bin/env run-singularity\n\x00"
    assert data[32:42] == b"SIF_MAGIC\x00"
    assert data[42:45] == b"01\x00"
    assert data[45:48] == b"02\x00"
    assert data[48:64] == ID.bytes
    created, modified, free, total, doff, dsize, dataoff, datasize = struct.unpack_from(
        "<8q", data, 64
    )
    assert (created, modified) == (1704067200, 1704067200)
    assert (free, total, doff, dsize, dataoff) == (44, 48, 4096, 28080, 32176)
    assert datasize == len(data) - 32176
    assert data[128:4096] == bytes(4096 - 128)


def test_descriptor_layout_and_alignment() -> None:
    data = build()
    d = data[4096 : 4096 + 585]
    dtype, used, did, group, link, off, size, swp = struct.unpack_from("<i?IIIqqq", d, 0)
    assert (dtype, used, did, group, link) == (0x4001, True, 1, 0xF0000001, 0)
    assert (off, size, swp) == (32176, 32, 32)
    assert d[73 : 73 + 128] == bytes(128)
    json1 = data[4096 + 585 : 4096 + 2 * 585]
    assert json1[73 : 73 + 21] == b"inspect-metadata.json" and json1[73 + 21] == 0
    part = data[4096 + 3 * 585 : 4096 + 4 * 585]
    dtype, used, did, group, link, off, size, swp = struct.unpack_from("<i?IIIqqq", part, 0)
    assert dtype == 0x4004 and did == 4 and off % 4096 == 0
    assert off == 32768 and size == 5004
    prev_end = 32176 + 32 + 11 + 14
    assert swp == off - prev_end + size
    assert struct.unpack_from("<ii3s", part, 201) == (1, 2, b"02\x00")
    assert data[off : off + 4] == b"hsqs"
    assert data[prev_end:off] == bytes(off - prev_end)
    assert data[4096 + 4 * 585 : 32176] == bytes(32176 - 4096 - 4 * 585)


def test_round_trip() -> None:
    data = build()
    f = io.BytesIO(data)
    s = sif.read_sif(f)
    assert s.header.id == ID and s.header.launch == sif.LAUNCH_SCRIPT
    assert [(d.datatype, d.name) for d in s.descriptors] == [
        (0x4001, ""),
        (0x4006, "inspect-metadata.json"),
        (0x4006, "oci-config.json"),
        (0x4004, ""),
    ]
    for d, obj in zip(s.descriptors, OBJECTS):
        assert sif.read_object(f, d) == obj.data
    p = s.primary_partition()
    assert (p.fstype, p.parttype, p.arch) == (1, 2, "02")
    assert sif.read_object(f, p)[:4] == b"hsqs"
    assert s.find("oci-config.json") is not None


def test_plan_twice_keeps_the_partition_offset() -> None:
    first = sif.plan(OBJECTS, partition_size=0, arch="arm64", sif_id=ID, created=0)
    final = sif.plan(
        OBJECTS,
        partition_size=10,
        arch="arm64",
        sif_id=ID,
        created=0,
        partition_offset=first.partition_offset,
    )
    assert final.partition_offset == first.partition_offset == 32768
    assert final.header.arch == b"04\x00"
    assert len(sif.prefix_bytes(final)) == 32768


def test_bad_files_are_refused() -> None:
    with pytest.raises(ImageError):
        sif.read_sif(io.BytesIO(b"short"))
    with pytest.raises(ImageError):
        sif.read_sif(io.BytesIO(bytes(200)))


def test_deterministic_uuid() -> None:
    a = sif.deterministic_uuid("sha256:" + "a" * 64, "gzip-9")
    assert a == sif.deterministic_uuid("sha256:" + "a" * 64, "gzip-9")
    assert a != sif.deterministic_uuid("sha256:" + "b" * 64, "gzip-9")
    assert a.version == 5


@pytest.mark.skipif(runner.which("siftool") is None, reason="siftool not installed")
def test_siftool_reads_our_file(tmp_path: Path) -> None:
    path = tmp_path / "x.sif"
    path.write_bytes(build())
    out = runner.run(["siftool", "list", str(path)]).stdout
    assert "32176-32208" in out and "Def.FILE" in out
    assert out.count("JSON.Generic") == 2
    assert "32768-37772" in out and "FS (Squashfs/*System/amd64)" in out
    header = runner.run(["siftool", "header", str(path)]).stdout
    assert "12345678-1234-5678-1234-567812345678" in header
    assert "2024-01-01 00:00:00 +0000 UTC" in header
    dump = runner.run(["siftool", "dump", "3", str(path)]).stdout
    assert dump == '{"Cmd":["sh"]}'
