# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""Read the header of a qcow2 image the way vmd(8) does, without vmctl.

vmd reads a fixed 104-byte big-endian header (qcow2 version 3 layout) and
refuses images whose refcount width, version or incompatible feature bits it
does not support. ``read_header`` parses and sanity-checks the header;
``vmd_problems`` lists the reasons vmd would refuse to open the image.
"""

from __future__ import annotations

import os
import struct
from dataclasses import asdict, dataclass
from typing import Optional

MAGIC = b'QFI\xfb'

# Field order and widths of the header vmd reads (qcow2-facts.md section 1).
_HEADER = struct.Struct('>4sIQIIQIIQQIIQQQQII')
HEADER_LENGTH = _HEADER.size  # 104
V2_HEADER_LENGTH = 72

# The qcow2 spec bounds; qemu refuses anything outside them as corrupt.
MIN_CLUSTER_BITS = 9
MAX_CLUSTER_BITS = 21
MAX_BACKING_FILE_SIZE = 1023

# vmd tolerates only the dirty (bit 0) and corrupt (bit 1) incompatible bits.
VMD_TOLERATED_INCOMPATIBLE = 0x3
VMD_REFCOUNT_ORDER = 4


class Qcow2Error(ValueError):
    """A file that claims to be qcow2 (or must be) but whose header is unusable."""


@dataclass
class Qcow2Header:
    version: int
    backing_file_offset: int
    backing_file_size: int
    cluster_bits: int
    size: int
    crypt_method: int
    l1_size: int
    l1_table_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    nb_snapshots: int
    snapshots_offset: int
    incompatible_features: int
    compatible_features: int
    autoclear_features: int
    refcount_order: int
    header_length: int
    backing_file: Optional[str] = None
    # The 32 bits vmd reads at offset 96 even for version 2 images, whose
    # header ends at 72 bytes (qcow2-facts.md section 5); None when the data
    # parsed ends before byte 104 (never for read_header: the tables follow).
    vmd_refcount_order: Optional[int] = None

    @property
    def cluster_size(self):
        return 1 << self.cluster_bits

    def as_dict(self):
        return asdict(self)


def has_magic(data):
    """True when ``data`` (the first bytes of a file) starts with the qcow2 magic."""
    return data[:len(MAGIC)] == MAGIC


def is_qcow2(path):
    """True when the file at ``path`` starts with the qcow2 magic (vmctl's format sniff)."""
    with open(path, 'rb') as image:
        return has_magic(image.read(len(MAGIC)))


def parse_header(data, file_length=None, name='image'):
    """Parse the header at the start of ``data`` (bytes; at least the first cluster is best).

    ``file_length`` (the image's size on disk) enables the checks that the
    tables the header points at lie inside the file. Raises Qcow2Error with a
    message that names ``name`` and the broken rule.
    """
    if len(data) < len(MAGIC) or not has_magic(data):
        raise Qcow2Error('%s is not a qcow2 image: it does not start with the qcow2 magic QFI\\xfb' % name)
    if len(data) < V2_HEADER_LENGTH:
        raise Qcow2Error('%s: truncated qcow2 header: %d bytes, a header needs at least %d' % (name, len(data), V2_HEADER_LENGTH))
    version = struct.unpack_from('>I', data, 4)[0]
    if version not in (2, 3):
        raise Qcow2Error('%s: unknown qcow2 version %d (vmd reads versions 2 and 3)' % (name, version))
    if version == 3 and len(data) < HEADER_LENGTH:
        raise Qcow2Error('%s: truncated qcow2 header: %d bytes, a version 3 header needs %d' % (name, len(data), HEADER_LENGTH))

    padded = data[:HEADER_LENGTH].ljust(HEADER_LENGTH, b'\0')
    fields = list(_HEADER.unpack(padded))[1:]
    header = Qcow2Header(*fields)
    if len(data) >= HEADER_LENGTH:
        header.vmd_refcount_order = struct.unpack_from('>I', data, 96)[0]
    if version == 2:
        # Version 2 has no fields past offset 72; the spec fixes them.
        header.incompatible_features = header.compatible_features = header.autoclear_features = 0
        header.refcount_order = 4
        header.header_length = V2_HEADER_LENGTH
    _check_layout(header, data, file_length, name)
    if header.backing_file_offset:
        end = header.backing_file_offset + header.backing_file_size
        if end > len(data):
            raise Qcow2Error('%s: truncated qcow2 header: the backing file name ends at byte %d but only %d bytes were read'
                             % (name, end, len(data)))
        header.backing_file = os.fsdecode(data[header.backing_file_offset:end])
    return header


def _check_layout(header, data, file_length, name):
    """Reject headers whose numbers cannot describe a real image (corrupt or foreign)."""
    if not MIN_CLUSTER_BITS <= header.cluster_bits <= MAX_CLUSTER_BITS:
        raise Qcow2Error('%s: corrupt qcow2 header: cluster_bits %d is outside %d..%d'
                         % (name, header.cluster_bits, MIN_CLUSTER_BITS, MAX_CLUSTER_BITS))
    if header.version == 3 and header.header_length < HEADER_LENGTH:
        raise Qcow2Error('%s: corrupt qcow2 header: header_length %d is below %d' % (name, header.header_length, HEADER_LENGTH))
    if header.version == 3 and header.header_length % 8:
        raise Qcow2Error('%s: corrupt qcow2 header: header_length %d is not a multiple of 8' % (name, header.header_length))
    cluster_size = header.cluster_size
    for field in ('l1_table_offset', 'refcount_table_offset'):
        offset = getattr(header, field)
        if offset == 0 or offset % cluster_size:
            raise Qcow2Error('%s: corrupt qcow2 header: %s %d is not a non-zero multiple of the cluster size %d'
                             % (name, field, offset, cluster_size))
    if header.refcount_table_clusters == 0:
        raise Qcow2Error('%s: corrupt qcow2 header: refcount_table_clusters is 0' % name)
    # Every virtual cluster needs an L2 entry: the L1 table must be big enough for the size.
    entries_per_l2 = cluster_size // 8
    needed_l1 = -(-header.size // (cluster_size * entries_per_l2))
    if header.l1_size < needed_l1:
        raise Qcow2Error('%s: corrupt qcow2 header: l1_size %d is too small for a virtual size of %d bytes (needs %d)'
                         % (name, header.l1_size, header.size, needed_l1))
    if header.backing_file_offset:
        if header.backing_file_size == 0 or header.backing_file_size > MAX_BACKING_FILE_SIZE:
            raise Qcow2Error('%s: corrupt qcow2 header: backing_file_size %d is outside 1..%d'
                             % (name, header.backing_file_size, MAX_BACKING_FILE_SIZE))
        if header.backing_file_offset + header.backing_file_size > cluster_size:
            raise Qcow2Error('%s: corrupt qcow2 header: the backing file name does not fit in the first cluster' % name)
    if file_length is not None:
        tables_end = max(header.l1_table_offset + header.l1_size * 8,
                         header.refcount_table_offset + header.refcount_table_clusters * cluster_size)
        if file_length < tables_end:
            raise Qcow2Error('%s: truncated qcow2 image: %d bytes on disk, but its tables end at byte %d'
                             % (name, file_length, tables_end))


def read_header(path):
    """Read and check the qcow2 header of the file at ``path``."""
    with open(path, 'rb') as image:
        # The header and the backing file name live in the first cluster (at most 2 MiB).
        data = image.read(1 << MAX_CLUSTER_BITS)
        file_length = os.fstat(image.fileno()).st_size
    return parse_header(data, file_length=file_length, name=path)


def vmd_problems(header):
    """The reasons vmd would refuse to open an image with ``header`` (empty when usable).

    Follows vioqcow2.c's order and wording: refcount width first, read at
    offset 96 whatever the version (so a qemu version 2 image fails here),
    then incompatible features. vioqcow2.c's version check (2 or 3) comes
    between them; parse_header refuses any other version before a header
    exists.
    """
    problems = []
    if header.vmd_refcount_order != VMD_REFCOUNT_ORDER:
        problems.append('unsupported refcount size (vmd needs 16-bit refcounts, refcount_order 4)')
    unsupported = header.incompatible_features & ~VMD_TOLERATED_INCOMPATIBLE
    if unsupported:
        problems.append('unsupported features %x' % unsupported)
    if header.crypt_method:
        problems.append('encrypted images are unsupported (crypt_method %d)' % header.crypt_method)
    return problems
