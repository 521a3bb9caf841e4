"""``python -m kubelet.runtime.images``: load, list and remove images in a runtime's image store.

A node without a registry gets its images as tarballs (``docker save``, ``ctr export``, ``skopeo copy …
oci-archive:``); this is how they get in, like ``docker load`` / ``ctr images import`` / ``crictl images`` /
``crictl rmi``. It works on the store directly, also while the runtime is running on it (the store is safe for
several processes, see ``store.py``): a loaded image is visible to the runtime's next ImageStatus, and an image a
container uses cannot be removed. Examples::

    python -m kubelet.runtime.images load busybox.tar app-oci.tar
    python -m kubelet.runtime.images --root /tmp/rt/images list
    python -m kubelet.runtime.images rm docker.io/library/app:1 sha256:4f0c…

Bad input (a file that is not an image archive, an unknown image, an image in use) prints one ``error: …`` line
and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from kubelet.runtime.__main__ import DEFAULT_ROOT as RUNTIME_ROOT
from kubelet.runtime.errors import NotFound, RuntimeFailure
from kubelet.runtime.images.archive import load_archive
from kubelet.runtime.images.reference import parse
from kubelet.runtime.images.store import Image, ImageStore

DEFAULT_ROOT = str(Path(RUNTIME_ROOT) / "images")  # where the runtime keeps its store under its default --root
ID_LENGTH = 13  # crictl's truncated image id
MIN_COLUMN, PADDING = 20, 3  # crictl's tabwriter


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one ``error: …`` line and exit status 1."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"error: {message} (see {self.prog} --help)\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = _Parser(prog="python -m kubelet.runtime.images",
                     description="Load, list and remove images in kubemini's runtime image store.")
    parser.add_argument("--root", default=DEFAULT_ROOT, type=Path,
                        help=f"the image store: the runtime's --root + /images (default {DEFAULT_ROOT})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    load = commands.add_parser("load", help="import OCI layout or docker-archive tarballs (plain or compressed)",
                               description="Import every image in each tarball, like docker load / ctr import.")
    load.add_argument("files", nargs="+", type=Path, metavar="FILE")
    load.add_argument("--base-name", default=None, metavar="REPO",
                      help="repository for OCI entries named only by a tag (org.opencontainers.image.ref.name), "
                           "like ctr import --base-name")
    listing = commands.add_parser("list", aliases=["ls"], help="list images (IMAGE TAG IMAGE ID SIZE, like crictl)",
                                  description="List the store's images like crictl images.")
    listing.add_argument("-q", "--quiet", action="store_true", help="print full image ids only")
    remove = commands.add_parser("rm", aliases=["rmi"], help="remove images by reference or id",
                                 description="Remove images with all their names, and the layers and blobs no "
                                             "other image uses. Refused for an image a container uses.")
    remove.add_argument("refs", nargs="+", metavar="REF", help="a reference (busybox:1) or an id (or a prefix)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stdout
    try:
        if args.command != "load" and not args.root.is_dir():
            raise NotFound(f"no image store at {args.root}")
        store = ImageStore(args.root)
        try:
            if args.command == "load":
                load(store, args.files, args.base_name, out)
            elif args.command in ("list", "ls"):
                list_images(store, args.quiet, out)
            else:
                remove(store, args.refs, out)
        finally:
            store.close()
    except (RuntimeFailure, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def load(store: ImageStore, files: Sequence[Path], base_name: str | None, out) -> None:
    """``Loaded image: <name>`` per name of every image loaded, or ``Loaded image ID: <id>`` for a nameless one."""
    for path in files:
        for image in load_archive(store, path, base_name=base_name):
            for tag in image.repo_tags:
                print(f"Loaded image: {tag}", file=out)
            if not image.repo_tags:
                print(f"Loaded image ID: {image.id}", file=out)


def list_images(store: ImageStore, quiet: bool, out) -> None:
    images = store.list()
    if quiet:
        for image in images:
            print(image.id, file=out)
        return
    rows = sorted(row for image in images for row in _rows(image))
    table = [("IMAGE", "TAG", "IMAGE ID", "SIZE"), *rows]
    widths = [max(MIN_COLUMN, *(len(row[i]) + PADDING for row in table)) for i in range(3)]
    for row in table:
        print("".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + row[3], file=out)


def remove(store: ImageStore, refs: Sequence[str], out) -> None:
    """Every ref must name an image before anything is removed; ``Deleted: <id>`` per image."""
    ids = list(dict.fromkeys(store.get(ref).id for ref in refs))
    for image_id in ids:
        store.remove(image_id)
        print(f"Deleted: {image_id}", file=out)


def _rows(image: Image) -> list[tuple[str, str, str, str]]:
    """crictl's rows: one per repo tag; an untagged image shows the repository of its digests, tag ``<none>``."""
    short_id = image.id.removeprefix("sha256:")[:ID_LENGTH]
    size = human_size(image.size)
    names = [(ref.name, ref.tag or "<none>") for ref in map(parse, image.repo_tags)]
    if not names:
        repos = sorted({parse(digest).name for digest in image.repo_digests}) or ["<none>"]
        names = [(repo, "<none>") for repo in repos]
    return [(repo, tag, short_id, size) for repo, tag in names]


def human_size(size: float) -> str:
    """Decimal units with 3 significant digits, as crictl (go-units HumanSizeWithPrecision) prints them."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    index = 0
    while size >= 1000 and index < len(units) - 1:
        size /= 1000
        index += 1
    return f"{size:.3g}{units[index]}"


if __name__ == "__main__":
    sys.exit(main())
