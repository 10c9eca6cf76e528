# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The qcow2 header reader against images made by qemu-img and by the header layout vmctl writes."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import qcow2

CLUSTER = 65536
MIB = 1024 * 1024

needs_qemu_img = pytest.mark.skipif(shutil.which('qemu-img') is None, reason='qemu-img (qemu-utils) is not installed')

# The lab's vmctl (tests/lab) writes images the way vmctl create does; it is the independent maker here.
LAB_VMCTL = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'lab', 'bin', 'vmctl'))
needs_lab = pytest.mark.skipif(not os.access(LAB_VMCTL, os.X_OK), reason='the lab (tests/lab) is not present')


def write_vmctl_qcow2(path, size, base=None):
    """Write a fresh qcow2 image exactly as qcow2-facts.md section 1 says vmctl create does."""
    backing = os.fsencode(base) if base else b''
    l1_size = -(-size // (512 * MIB))
    l1_clusters = max(1, -(-(l1_size * 8) // CLUSTER))
    refcount_table_offset = CLUSTER + l1_clusters * CLUSTER
    refcount_table_clusters = max(1, -(-size // 2 ** 47))
    refcount_block_offset = refcount_table_offset + refcount_table_clusters * CLUSTER
    metadata_clusters = 1 + l1_clusters + refcount_table_clusters + 1
    header = struct.pack('>4sIQIIQIIQQIIQQQQII', b'QFI\xfb', 3, 104 if base else 0, len(backing), 16, size, 0,
                         l1_size, CLUSTER, refcount_table_offset, refcount_table_clusters, 0, 0, 0, 0, 0, 4, 104)
    with open(path, 'xb') as image:
        image.truncate(metadata_clusters * CLUSTER)
        image.write(header + backing)
        image.seek(refcount_table_offset)
        image.write(struct.pack('>Q', refcount_block_offset))
        image.seek(refcount_block_offset)
        image.write(struct.pack('>H', 1) * metadata_clusters)
    os.chmod(path, 0o600)
    return path


def qemu_img_create(path, size, *options):
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2'] + list(options) + [str(path), str(size)], check=True)
    return str(path)


def patch(path, offset, fmt, value):
    with open(path, 'r+b') as image:
        image.seek(offset)
        image.write(struct.pack(fmt, value))


# -- images vmctl would write --------------------------------------------

@pytest.mark.parametrize('size', [MIB, 512 * MIB, 10 * 1024 * MIB, 3 * 1024 * 1024 * MIB])
def test_reads_vmctl_layout(tmp_path, size):
    path = write_vmctl_qcow2(str(tmp_path / 'disk.qcow2'), size)
    header = qcow2.read_header(path)
    assert (header.version, header.size, header.cluster_size, header.refcount_order) == (3, size, CLUSTER, 4)
    assert header.backing_file is None
    assert header.l1_size == -(-size // (512 * MIB))
    assert qcow2.vmd_problems(header) == []


@pytest.mark.parametrize('base', ['base.qcow2', '/var/vmm/golden image.qcow2', '../up/b.qcow2'])
def test_backing_path_is_returned_verbatim(tmp_path, base):
    path = write_vmctl_qcow2(str(tmp_path / 'overlay.qcow2'), 1024 * MIB, base=base)
    assert qcow2.read_header(path).backing_file == base


@needs_qemu_img
def test_vmctl_layout_passes_qemu_img_check(tmp_path):
    """Guards the fixture writer itself: qemu agrees it is a consistent image."""
    base = write_vmctl_qcow2(str(tmp_path / 'base.qcow2'), 64 * MIB)
    overlay = write_vmctl_qcow2(str(tmp_path / 'overlay.qcow2'), 64 * MIB, base='base.qcow2')
    for image in (base, overlay):
        subprocess.run(['qemu-img', 'check', '-q', '-f', 'qcow2', image], check=True)


def test_is_qcow2_sniffs_the_magic(tmp_path):
    qcow = write_vmctl_qcow2(str(tmp_path / 'a.img'), MIB)
    raw = tmp_path / 'b.qcow2'
    raw.write_bytes(b'\0' * 4096)
    assert qcow2.is_qcow2(qcow)
    assert not qcow2.is_qcow2(str(raw))


# -- images the lab's vmctl create makes ----------------------------------------

def lab_vmctl(directory, *args):
    env = dict(os.environ, VMM_LAB_ROOT=str(directory / 'lab-root'), LANG='C')
    subprocess.run([LAB_VMCTL, 'create'] + list(args), cwd=str(directory), env=env, check=True, capture_output=True)


@needs_lab
@pytest.mark.parametrize('size, expected', [('1G', 1024 * MIB), ('1500K', MIB), ('50G', 50 * 1024 * MIB), ('3T', 3 * 1024 * 1024 * MIB)])
def test_reads_lab_vmctl_images(tmp_path, size, expected):
    lab_vmctl(tmp_path, '-s', size, 'disk.qcow2')
    header = qcow2.read_header(str(tmp_path / 'disk.qcow2'))
    assert (header.version, header.size, header.cluster_bits, header.refcount_order, header.header_length) == (3, expected, 16, 4, 104)
    assert header.backing_file is None and qcow2.vmd_problems(header) == []


@needs_lab
def test_reads_lab_vmctl_overlays_and_copies(tmp_path):
    lab_vmctl(tmp_path, '-s', '2G', 'base.qcow2')
    lab_vmctl(tmp_path, '-b', 'base.qcow2', 'relative.qcow2')
    lab_vmctl(tmp_path, '-b', str(tmp_path / 'base.qcow2'), 'absolute.qcow2')
    lab_vmctl(tmp_path, '-i', 'relative.qcow2', '-s', '3G', 'copy.img.qcow2')
    lab_vmctl(tmp_path, '-s', '8M', 'raw.img')
    headers = {name: qcow2.read_header(str(tmp_path / name)) for name in ('relative.qcow2', 'absolute.qcow2', 'copy.img.qcow2')}
    assert headers['relative.qcow2'].backing_file == 'base.qcow2'
    assert headers['absolute.qcow2'].backing_file == str(tmp_path / 'base.qcow2')
    assert headers['copy.img.qcow2'].backing_file is None and headers['copy.img.qcow2'].size == 3 * 1024 * MIB
    assert {header.size for name, header in headers.items() if name != 'copy.img.qcow2'} == {2 * 1024 * MIB}
    assert not qcow2.is_qcow2(str(tmp_path / 'raw.img'))
    with pytest.raises(qcow2.Qcow2Error, match='does not start with the qcow2 magic'):
        qcow2.read_header(str(tmp_path / 'raw.img'))


# -- images qemu-img makes -------------------------------------------------

@needs_qemu_img
def test_reads_qemu_img_compat_1_1(tmp_path):
    base = qemu_img_create(tmp_path / 'base.qcow2', '1G', '-o', 'compat=1.1')
    overlay = qemu_img_create(tmp_path / 'overlay.qcow2', '1G', '-o', 'compat=1.1', '-b', 'base.qcow2', '-F', 'qcow2')
    header = qcow2.read_header(base)
    assert (header.version, header.size, header.refcount_order) == (3, 1024 * MIB, 4)
    assert qcow2.vmd_problems(header) == []
    assert qcow2.read_header(overlay).backing_file == 'base.qcow2'


@needs_qemu_img
def test_qemu_version_2_is_refused_like_vmd(tmp_path):
    """qemu's 72-byte v2 header leaves no refcount_order at offset 96: vmd says unsupported refcount size."""
    path = qemu_img_create(tmp_path / 'v2.qcow2', '10M', '-o', 'compat=0.10')
    header = qcow2.read_header(path)
    assert header.version == 2 and header.size == 10 * MIB
    problems = qcow2.vmd_problems(header)
    assert problems and problems[0].startswith('unsupported refcount size')
    # Version 2 has no feature fields: whatever the bytes after offset 72 hold, they count as none.
    assert (header.incompatible_features, header.compatible_features, header.autoclear_features) == (0, 0, 0)
    assert (header.refcount_order, header.header_length) == (4, 72)
    assert problems == ['unsupported refcount size (vmd needs 16-bit refcounts, refcount_order 4)']


@needs_qemu_img
@pytest.mark.parametrize('bits', ['8', '32'])
def test_other_refcount_widths_are_refused(tmp_path, bits):
    path = qemu_img_create(tmp_path / 'r.qcow2', '10M', '-o', 'refcount_bits=' + bits)
    assert qcow2.vmd_problems(qcow2.read_header(path))[0].startswith('unsupported refcount size')


@needs_qemu_img
def test_extended_l2_is_an_unsupported_feature(tmp_path):
    path = qemu_img_create(tmp_path / 'l2.qcow2', '10M', '-o', 'extended_l2=on')
    problems = qcow2.vmd_problems(qcow2.read_header(path))
    assert any(problem.startswith('unsupported features') for problem in problems)


# -- what vmd tolerates and refuses in the header fields --------------------

def test_dirty_and_corrupt_bits_are_tolerated(tmp_path):
    path = write_vmctl_qcow2(str(tmp_path / 'd.qcow2'), MIB)
    patch(path, 72, '>Q', 0x3)
    assert qcow2.vmd_problems(qcow2.read_header(path)) == []


def test_external_data_file_bit_is_refused(tmp_path):
    path = write_vmctl_qcow2(str(tmp_path / 'd.qcow2'), MIB)
    patch(path, 72, '>Q', 0x4)
    assert qcow2.vmd_problems(qcow2.read_header(path)) == ['unsupported features 4']


def test_encryption_is_refused(tmp_path):
    path = write_vmctl_qcow2(str(tmp_path / 'e.qcow2'), MIB)
    patch(path, 32, '>I', 1)
    assert any('encrypted' in problem for problem in qcow2.vmd_problems(qcow2.read_header(path)))


# -- truncated and corrupt headers --------------------------------------------

@pytest.mark.parametrize('length, message', [
    (0, ' is not a qcow2 image: it does not start with the qcow2 magic'),
    (3, ' is not a qcow2 image: it does not start with the qcow2 magic'),
    # the whole magic and no more: a qcow2 file, cut short
    (4, ': truncated qcow2 header: 4 bytes, a header needs at least 72'),
    (50, ': truncated qcow2 header: 50 bytes, a header needs at least 72'),
    (71, ': truncated qcow2 header: 71 bytes, a header needs at least 72'),
])
def test_truncated_before_the_v2_fields(tmp_path, length, message):
    source = write_vmctl_qcow2(str(tmp_path / 'full.qcow2'), MIB)
    with open(source, 'rb') as image:
        data = image.read(length)
    path = tmp_path / 'cut.qcow2'
    path.write_bytes(data)
    with pytest.raises(qcow2.Qcow2Error, match=re.escape(str(path) + message)):
        qcow2.read_header(str(path))


@pytest.mark.parametrize('length', [72, 100, 103])
def test_truncated_version_3_header(tmp_path, length):
    source = write_vmctl_qcow2(str(tmp_path / 'full.qcow2'), MIB)
    with open(source, 'rb') as image:
        data = image.read(length)
    path = tmp_path / 'cut.qcow2'
    path.write_bytes(data)
    with pytest.raises(qcow2.Qcow2Error, match=r'truncated qcow2 header: %d bytes, a version 3 header needs 104' % length):
        qcow2.read_header(str(path))


def test_truncated_image_behind_a_whole_header(tmp_path):
    """A header that survived while the tables it points at did not (a copy cut short)."""
    source = write_vmctl_qcow2(str(tmp_path / 'full.qcow2'), MIB)
    with open(source, 'rb') as image:
        data = image.read(CLUSTER + 512)
    path = tmp_path / 'cut.qcow2'
    path.write_bytes(data)
    with pytest.raises(qcow2.Qcow2Error, match='truncated qcow2 image'):
        qcow2.read_header(str(path))


@pytest.mark.parametrize('length', [110, 118])
def test_backing_name_cut_off(tmp_path, length):
    path = write_vmctl_qcow2(str(tmp_path / 'o.qcow2'), MIB, base='some/base.qcow2')
    with open(path, 'rb') as image:
        data = image.read(length)
    with pytest.raises(qcow2.Qcow2Error, match=re.escape('image: truncated qcow2 header: the backing file name ends at byte 119 '
                                                         'but only %d bytes were read' % length)):
        qcow2.parse_header(data)


def test_data_ending_with_the_backing_name_is_enough(tmp_path):
    path = write_vmctl_qcow2(str(tmp_path / 'o.qcow2'), MIB, base='some/base.qcow2')
    with open(path, 'rb') as image:
        data = image.read(119)          # the 104-byte header and the 15 bytes of the name
    assert qcow2.parse_header(data).backing_file == 'some/base.qcow2'


def test_not_qcow2(tmp_path):
    with pytest.raises(qcow2.Qcow2Error, match='does not start with the qcow2 magic'):
        qcow2.parse_header(b'\0' * 104)


@pytest.mark.parametrize('offset, fmt, value, message', [
    (4, '>I', 1, 'unknown qcow2 version 1'),
    (4, '>I', 4, 'unknown qcow2 version 4'),
    (20, '>I', 8, 'cluster_bits 8 is outside 9..21'),
    (20, '>I', 40, 'cluster_bits 40 is outside 9..21'),
    (40, '>Q', 1000, 'l1_table_offset 1000 is not a non-zero multiple'),
    (48, '>Q', 0, 'refcount_table_offset 0 is not a non-zero multiple'),
    (56, '>I', 0, 'refcount_table_clusters is 0'),
    (36, '>I', 0, 'l1_size 0 is too small'),
    (100, '>I', 96, 'header_length 96 is below 104'),
    (100, '>I', 108, 'header_length 108 is not a multiple of 8'),
])
def test_corrupt_fields(tmp_path, offset, fmt, value, message):
    path = write_vmctl_qcow2(str(tmp_path / 'c.qcow2'), 2048 * MIB)
    patch(path, offset, fmt, value)
    with pytest.raises(qcow2.Qcow2Error, match=message):
        qcow2.read_header(path)


def test_backing_name_length_out_of_range(tmp_path):
    path = write_vmctl_qcow2(str(tmp_path / 'c.qcow2'), MIB, base='b.qcow2')
    patch(path, 16, '>I', 5000)
    with pytest.raises(qcow2.Qcow2Error, match='backing_file_size 5000 is outside 1..1023'):
        qcow2.read_header(path)


def test_errors_name_the_file(tmp_path):
    path = write_vmctl_qcow2(str(tmp_path / 'named.qcow2'), MIB)
    patch(path, 20, '>I', 3)
    with pytest.raises(qcow2.Qcow2Error) as caught:
        qcow2.read_header(path)
    assert str(caught.value).startswith(path + ': corrupt qcow2 header')


# -- exact limits of the header checks ----------------------------------------------------------

@needs_qemu_img
@pytest.mark.parametrize('cluster_size, bits', [('512', 9), ('2M', 21)])
def test_qemu_img_images_at_the_cluster_size_limits_are_read(tmp_path, cluster_size, bits):
    base = qemu_img_create(tmp_path / 'base.qcow2', '64M', '-o', 'cluster_size=%s' % cluster_size)
    overlay = qemu_img_create(tmp_path / 'overlay.qcow2', '64M', '-o', 'cluster_size=%s' % cluster_size,
                              '-b', 'base.qcow2', '-F', 'qcow2')
    assert (qcow2.read_header(base).cluster_bits, qcow2.read_header(base).size) == (bits, 64 * MIB)
    assert qcow2.read_header(overlay).backing_file == 'base.qcow2'


@pytest.mark.parametrize('bits', [8, 22])
def test_cluster_bits_one_past_a_limit_is_corrupt(tmp_path, bits):
    path = write_vmctl_qcow2(str(tmp_path / 'c.qcow2'), MIB)
    patch(path, 20, '>I', bits)
    with pytest.raises(qcow2.Qcow2Error, match='corrupt qcow2 header: cluster_bits %d is outside 9..21' % bits):
        qcow2.read_header(path)


def test_backing_name_must_end_inside_the_first_cluster(tmp_path):
    path = write_vmctl_qcow2(str(tmp_path / 'o.qcow2'), MIB, base='b.qcow2')
    patch(path, 8, '>Q', CLUSTER - 7)         # the 7 bytes of 'b.qcow2' end exactly at the cluster's end
    assert qcow2.read_header(path).backing_file == '\0' * 7
    patch(path, 8, '>Q', CLUSTER - 6)
    with pytest.raises(qcow2.Qcow2Error, match='the backing file name does not fit in the first cluster'):
        qcow2.read_header(path)


@pytest.mark.parametrize('length, ok', [(1023, True), (1024, False), (0, False)])
def test_backing_name_length_limits(tmp_path, length, ok):
    path = write_vmctl_qcow2(str(tmp_path / 'o.qcow2'), MIB, base='b.qcow2')
    patch(path, 16, '>I', length)
    if ok:
        assert len(qcow2.read_header(path).backing_file) == 1023
    else:
        with pytest.raises(qcow2.Qcow2Error, match='backing_file_size %d is outside 1..1023' % length):
            qcow2.read_header(path)


@pytest.mark.parametrize('size, l1_size, needed', [(2048 * MIB, 3, 4), (2048 * MIB + 1, 4, 5)])
def test_l1_table_one_entry_short_is_corrupt(tmp_path, size, l1_size, needed):
    path = write_vmctl_qcow2(str(tmp_path / 'c.qcow2'), 2048 * MIB)
    patch(path, 24, '>Q', size)
    patch(path, 36, '>I', l1_size)
    with pytest.raises(qcow2.Qcow2Error, match='l1_size %d is too small for a virtual size of %d bytes \\(needs %d\\)'
                       % (l1_size, size, needed)):
        qcow2.read_header(path)


def test_l1_table_of_exactly_the_needed_size_is_fine(tmp_path):
    path = write_vmctl_qcow2(str(tmp_path / 'c.qcow2'), 2048 * MIB)
    assert qcow2.read_header(path).l1_size == 4       # 64K clusters: one L1 entry maps 512M


def test_file_ending_exactly_where_its_tables_end_is_fine(tmp_path):
    path = write_vmctl_qcow2(str(tmp_path / 'c.qcow2'), MIB)
    # header cluster, one L1 cluster, one refcount table cluster: the tables end at byte 196608
    os.truncate(path, 3 * CLUSTER)
    assert qcow2.read_header(path).size == MIB
    os.truncate(path, 3 * CLUSTER - 1)
    with pytest.raises(qcow2.Qcow2Error, match='truncated qcow2 image: 196607 bytes on disk, but its tables end at byte 196608'):
        qcow2.read_header(path)


def test_header_length_112_is_accepted(tmp_path):
    path = write_vmctl_qcow2(str(tmp_path / 'c.qcow2'), MIB)
    patch(path, 100, '>I', 112)
    assert qcow2.read_header(path).header_length == 112


# -- headers written byte by byte: the exact lengths parse_header accepts -------------------------

def v2_header(refcount_table_offset=2 * CLUSTER):
    """The 72 bytes of a version 2 header (qcow2 spec): a 1 MiB disk, 64K clusters, L1 at 64K."""
    return struct.pack('>4sIQIIQIIQQIIQ', b'QFI\xfb', 2, 0, 0, 16, MIB, 0, 1, CLUSTER, refcount_table_offset, 1, 0, 0)


def v3_fields(refcount_order=4):
    """The 32 bytes a version 3 header adds at offset 72: features, refcount_order, header_length."""
    return struct.pack('>QQQII', 0, 0, 0, refcount_order, 104)


def test_version_2_header_of_exactly_72_bytes_is_read():
    """72 bytes are a whole version 2 header; only a version 3 header needs 104."""
    header = qcow2.parse_header(v2_header())
    assert (header.version, header.size, header.cluster_bits, header.l1_table_offset) == (2, MIB, 16, CLUSTER)
    # the spec's fixed values for the fields version 2 does not have
    assert (header.incompatible_features, header.compatible_features, header.autoclear_features) == (0, 0, 0)
    assert (header.refcount_order, header.header_length) == (4, 72)
    # nothing at offset 96 to read: vmd would find no 16-bit refcounts there
    assert header.vmd_refcount_order is None
    assert qcow2.vmd_problems(header) == ['unsupported refcount size (vmd needs 16-bit refcounts, refcount_order 4)']


@pytest.mark.parametrize('at_96, problems', [
    (4, []),
    (0, ['unsupported refcount size (vmd needs 16-bit refcounts, refcount_order 4)']),
])
def test_version_2_header_is_judged_by_the_word_vmd_reads_at_offset_96(at_96, problems):
    """vmd reads refcount_order at offset 96 whatever the version; bytes 72..103 are not part of a v2 header."""
    data = v2_header() + struct.pack('>QQQII', 7, 7, 7, at_96, 0)
    header = qcow2.parse_header(data)
    assert (header.version, header.vmd_refcount_order, header.refcount_order, header.header_length) == (2, at_96, 4, 72)
    assert (header.incompatible_features, header.compatible_features, header.autoclear_features) == (0, 0, 0)
    assert qcow2.vmd_problems(header) == problems


def test_version_3_header_of_exactly_104_bytes_is_read():
    data = struct.pack('>4sIQIIQIIQQIIQ', b'QFI\xfb', 3, 0, 0, 16, MIB, 0, 1, CLUSTER, 2 * CLUSTER, 1, 0, 0) + v3_fields()
    assert len(data) == 104
    header = qcow2.parse_header(data)
    assert (header.version, header.header_length, header.refcount_order, header.vmd_refcount_order) == (3, 104, 4, 4)
    assert qcow2.vmd_problems(header) == []
    with pytest.raises(qcow2.Qcow2Error, match=re.escape('image: truncated qcow2 header: 103 bytes, a version 3 header needs 104')):
        qcow2.parse_header(data[:103])


def test_version_3_refcount_order_other_than_4_is_refused():
    data = struct.pack('>4sIQIIQIIQQIIQ', b'QFI\xfb', 3, 0, 0, 16, MIB, 0, 1, CLUSTER, 2 * CLUSTER, 1, 0, 0) + v3_fields(5)
    assert qcow2.vmd_problems(qcow2.parse_header(data)) == ['unsupported refcount size (vmd needs 16-bit refcounts, refcount_order 4)']


def write_l1_last(path):
    """A consistent 1 MiB image whose L1 table, not its refcount table, ends the file.

    Clusters: 0 header, 1 refcount table, 2 refcount block, 3 the L1 table (one 8-byte entry, the file ends after it).
    """
    header = struct.pack('>4sIQIIQIIQQIIQQQQII', b'QFI\xfb', 3, 0, 0, 16, MIB, 0, 1, 3 * CLUSTER, CLUSTER, 1, 0, 0,
                         0, 0, 0, 4, 104)
    with open(path, 'wb') as image:
        image.write(header)
        image.seek(CLUSTER)
        image.write(struct.pack('>Q', 2 * CLUSTER))
        image.seek(2 * CLUSTER)
        image.write(struct.pack('>H', 1) * 4)
        image.seek(3 * CLUSTER)
        image.write(struct.pack('>Q', 0))
    return path


@needs_qemu_img
def test_l1_last_layout_passes_qemu_img_check(tmp_path):
    """Guards the fixture below: qemu reads it as a consistent 1 MiB image."""
    path = write_l1_last(str(tmp_path / 'l1last.qcow2'))
    subprocess.run(['qemu-img', 'check', '-q', '-f', 'qcow2', path], check=True)
    info = subprocess.run(['qemu-img', 'info', '--output=json', path], check=True, capture_output=True, text=True).stdout
    assert '"virtual-size": 1048576' in info


def test_file_ending_exactly_where_its_l1_table_ends_is_fine(tmp_path):
    path = write_l1_last(str(tmp_path / 'l1last.qcow2'))
    # the L1 table starts at 196608 and holds one 8-byte entry: the tables end at byte 196616
    assert os.path.getsize(path) == 196616
    assert qcow2.read_header(path).l1_size == 1
    os.truncate(path, 196615)
    with pytest.raises(qcow2.Qcow2Error, match='truncated qcow2 image: 196615 bytes on disk, but its tables end at byte 196616'):
        qcow2.read_header(path)
