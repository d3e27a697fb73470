"""Recipes of the testbed's images (plain data; tests/testbed/images.py builds them).

An image is built once and cached under a hash of its recipe (this data, the files named
here, the host inputs such as the busybox binary and MPI versions, and the builder's
version): change anything here and the next ``up`` rebuilds that image.

Layer kinds:
  ``busybox``      /bin/busybox (host's busybox-static) + applet symlinks + small /etc + files
  ``debootstrap``  a whole Debian root filesystem (``suite``, ``variant``)
  ``apt``          the parent's rootfs plus ``packages`` installed with apt (as a diff layer:
                   changed/new files, ``.wh.`` whiteouts for removed ones), then ``mkdirs``,
                   ``files`` (dest -> file in this directory) and, with ``mpi_hello``, the
                   MPI hello worlds compiled on the host
  ``entries``      a layer written entry by entry: ``whiteouts`` (paths deleted from lower
                   layers), ``opaque`` (directories whose lower content disappears), ``files``
                   (path -> text), ``dirs``, ``symlinks`` (path -> target) and ``hardlinks``
                   (path -> earlier path in the same layer)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RECIPE_DIR = Path(__file__).resolve().parent

# OCI config `created` of every testbed image (fixed, so rebuilding identical inputs gives
# identical config blobs).
CREATED = "2024-01-01T00:00:00Z"

BASE_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]

LONG_PATH = "/opt/hpcb/" + "long-directory-name-" * 4 + "/" + "long-file-name-" * 7 + ".txt"

DEBIAN_BASE: dict[str, Any] = {"kind": "debootstrap", "suite": "bookworm", "variant": "minbase"}

RECIPES: dict[str, dict[str, Any]] = {
    "busybox": {
        "tag": "1.35",
        # also pushed as a Docker schema 2 manifest, an OCI index and a Docker manifest
        # list (tests/testbed/image_variants.py)
        "variants": True,
        "layers": [
            {
                "kind": "busybox",
                "files": {"/usr/local/bin/entry.sh": "entry.sh"},
            }
        ],
        "config": {
            "Env": [*BASE_ENV, "GREETING=hello world", "HPCB_IMAGE=busybox"],
            "Entrypoint": ["/usr/local/bin/entry.sh"],
            "Cmd": ["default", "cmd"],
            # deliberately NOT in the layers: convert must create it
            "WorkingDir": "/work/not-in-layers",
            "Labels": {
                "org.opencontainers.image.title": "hpcbridge testbed busybox",
                "org.hpcbridge.test": "busybox",
                "org.hpcbridge.note": "a label with spaces, 'quotes' and $dollar",
            },
        },
    },
    "debian-python": {
        "tag": "bookworm",
        "layers": [
            DEBIAN_BASE,
            {"kind": "apt", "packages": ["python3"], "mkdirs": ["/srv/app"]},
        ],
        "config": {
            "Env": [*BASE_ENV, "LANG=C.UTF-8", "PYTHONUNBUFFERED=1", "HPCB_IMAGE=debian-python"],
            "Entrypoint": ["python3"],
            "Cmd": ["-c", "print('hello from debian-python')"],
            "WorkingDir": "/srv/app",
            "Labels": {
                "org.opencontainers.image.title": "hpcbridge testbed debian-python",
                "org.hpcbridge.test": "debian-python",
            },
        },
    },
    "whiteout": {
        "tag": "1",
        "parent": "debian-python",
        "layers": [
            {
                "kind": "entries",
                "whiteouts": ["/etc/issue", "/usr/share/doc/python3", "/usr/bin/pydoc3"],
                "files": {
                    "/etc/hpcb-layer3.txt": "added by layer 3\n",
                    # a directory of the lower layers becomes a file ...
                    "/usr/local/games": "was a directory\n",
                    # ... and a file becomes a directory
                    "/etc/motd/inside.txt": "motd was a file\n",
                    "/opt/hpcb/hardlink-a": "one inode, two names\n",
                    "/opt/hpcb/na\u00efve name with spaces.txt": "non-ASCII and spaces\n",
                    LONG_PATH: "a path longer than 100 bytes (PAX header)\n",
                },
                "hardlinks": {"/opt/hpcb/hardlink-b": "/opt/hpcb/hardlink-a"},
                "symlinks": {
                    "/opt/hpcb/link-to-etc": "../../etc",
                    "/opt/hpcb/dangling": "/nowhere",
                },
            },
            {
                "kind": "entries",
                "opaque": ["/etc/skel"],
                "files": {"/etc/skel/hpcb-opaque.txt": "the only file left in /etc/skel\n"},
            },
        ],
        "config": {
            "Env": [*BASE_ENV, "LANG=C.UTF-8", "HPCB_IMAGE=whiteout"],
            "Cmd": ["/bin/ls", "-a", "/etc/skel"],
            "WorkingDir": "/",
            "Labels": {
                "org.opencontainers.image.title": "hpcbridge testbed whiteouts",
                "org.hpcbridge.test": "whiteout",
                "org.hpcbridge.test.deleted": "/etc/issue,/usr/share/doc/python3,/usr/bin/pydoc3",
                "org.hpcbridge.test.opaque": "/etc/skel",
                "org.hpcbridge.test.opaque-content": "hpcb-opaque.txt",
                "org.hpcbridge.test.replaced": "/usr/local/games:dir->file,/etc/motd:file->dir",
                "org.hpcbridge.test.hardlink": "/opt/hpcb/hardlink-b=/opt/hpcb/hardlink-a",
            },
        },
    },
    "mpi": {
        "tag": "bookworm",
        "layers": [
            DEBIAN_BASE,
            {
                "kind": "apt",
                "packages": ["openmpi-bin", "libopenmpi3", "libpmix2", "mpich", "libmpich12"],
                "pin_host_versions": True,
                "mpi_hello": True,
            },
        ],
        "config": {
            "Env": [*BASE_ENV, "HPCB_IMAGE=mpi"],
            "Cmd": ["/opt/hello-ompi"],
            "WorkingDir": "/opt",
            "Labels": {
                "org.opencontainers.image.title": "hpcbridge testbed MPI",
                "org.hpcbridge.test": "mpi",
                "org.hpcbridge.mpi": "openmpi,mpich",
                "org.hpcbridge.mpi.openmpi.binary": "/opt/hello-ompi",
                "org.hpcbridge.mpi.mpich.binary": "/opt/hello-mpich",
            },
        },
    },
}

# The MPI hello worlds: (destination in the image, host compiler, flavour name)
MPI_HELLO = (
    ("/opt/hello-ompi", "mpicc.openmpi", "openmpi"),
    ("/opt/hello-mpich", "mpicc.mpich", "mpich"),
)
MPI_HELLO_SOURCE = "hello-mpi.c"
