"""Guest-visible data in lab images (labsim.images read_data/write_data, backing chains, -i copies).

What the lab writes must be what a guest reads: qemu-io / qemu-img convert (qemu-utils)
read the same images independently, and qemu-img check must keep finding them valid.
"""

import json
import os
import subprocess
import sys

import pytest

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

from labsim import images  # noqa: E402  pylint: disable=wrong-import-position

CLUSTER = 65536
MIB = 1 << 20
GIB = 1 << 30
TIB = 1 << 40


@pytest.fixture
def create(tmp_path, monkeypatch, capsys):
    """`vmctl create ARGS` in tmp_path; asserts success; returns the absolute path of the new disk."""
    monkeypatch.chdir(tmp_path)

    def creator(*args):
        capsys.readouterr()
        code = images.vmctl_create(list(args))
        err = capsys.readouterr().err
        assert code == 0, err
        return str(tmp_path / images.split_format_prefix(args[-1])[1])
    return creator


def qemu_check(path):
    result = subprocess.run(['qemu-img', 'check', '-f', 'qcow2', '--output=json', path],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report.get('corruptions', 0) == 0 and report.get('leaks', 0) == 0, report
    return report


def qemu_read(path, fmt, offset, length):
    """What qemu reads from the guest's view of the image (through its backing chain)."""
    result = subprocess.run(['qemu-io', '-f', fmt, '-r', '-c', 'read -v %d %d' % (offset, length), path],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    data = bytearray()
    for line in result.stdout.splitlines():
        address, _sep, rest = line.partition(':  ')
        if not _sep or not all(c in '0123456789abcdef' for c in address):
            continue
        # "%08x:  " then "%02x " per byte (16 a line), then the ASCII column
        count = min(16, length - len(data))
        data.extend(bytes.fromhex(rest[:3 * count].replace(' ', '')))
    assert len(data) == length, result.stdout
    return bytes(data)


def qemu_write(path, fmt, offset, pattern, length):
    result = subprocess.run(['qemu-io', '-f', fmt, '-c', 'write -P %d %d %d' % (pattern, offset, length), path],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def qemu_flat(path, fmt, tmp_path):
    """The whole guest-visible disk as qemu-img convert flattens it."""
    out = str(tmp_path / ('flat-%s.raw' % os.path.basename(path)))
    if os.path.exists(out):
        os.unlink(out)
    result = subprocess.run(['qemu-img', 'convert', '-f', fmt, '-O', 'raw', path, out],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    with open(out, 'rb') as handle:
        return handle.read()


def allocated(path):
    return qemu_check(path).get('allocated-clusters', 0)


# ---------------------------------------------------------------------------

def test_raw_write_and_read(create):
    disk = create('-s', '4M', 'disk.raw')
    images.write_data(disk, 1000, b'hello raw')
    assert images.read_data(disk, 998, 13) == b'\0\0hello raw\0\0'
    assert qemu_read(disk, 'raw', 1000, 9) == b'hello raw'
    assert os.path.getsize(disk) == 4 * MIB
    images.write_data(disk, 4 * MIB - 3, b'end')
    assert images.read_data(disk, 4 * MIB - 3, 3) == b'end'
    with pytest.raises(images.ImageError):
        images.write_data(disk, 4 * MIB - 2, b'end')
    with pytest.raises(images.ImageError):
        images.read_data(disk, 4 * MIB - 2, 3)
    assert os.path.getsize(disk) == 4 * MIB


def test_qcow2_write_is_what_qemu_reads(create, tmp_path):
    disk = create('-s', '1G', 'disk.qcow2')
    assert images.read_data(disk, 0, 4096) == bytes(4096)
    pieces = [
        (0, b'MBR!' * 128),                             # first cluster, header area of the guest
        (CLUSTER - 7, b'straddles two clusters'),       # crosses a cluster boundary
        (3 * CLUSTER, bytes(range(256)) * 256),         # exactly one full cluster
        (600 * MIB + 12345, b'second L1 entry'),        # needs a second L2 table
        (GIB - 5, b'last!'),                            # the very end of the disk
    ]
    for offset, data in pieces:
        images.write_data(disk, offset, data)
    qemu_check(disk)
    for offset, data in pieces:
        assert images.read_data(disk, offset, len(data)) == data
        assert qemu_read(disk, 'qcow2', offset, len(data)) == data
    assert allocated(disk) == 5     # clusters 0, 1, 3, one at 600M and the last one
    # the file grows by the data clusters and two L2 tables (0-512M, 512M-1G), nothing else
    assert os.path.getsize(disk) == 4 * CLUSTER + 2 * CLUSTER + 5 * CLUSTER
    images.write_data(disk, 10, b'in place')
    assert os.path.getsize(disk) == 11 * CLUSTER
    expected = bytearray(pieces[0][1][:20])
    expected[10:18] = b'in place'
    assert qemu_read(disk, 'qcow2', 0, 20) == bytes(expected)
    qemu_check(disk)


def test_qcow2_write_beyond_end_refused(create):
    disk = create('-s', '1M', 'disk.qcow2')
    with pytest.raises(images.ImageError):
        images.write_data(disk, MIB - 1, b'xx')
    with pytest.raises(images.ImageError):
        images.read_data(disk, MIB, 1)
    assert os.path.getsize(disk) == 4 * CLUSTER


def test_large_qcow2_write_near_the_end(create):
    disk = create('-s', '2T', 'big.qcow2')
    images.write_data(disk, 2 * TIB - CLUSTER - 3, b'far away')
    assert qemu_read(disk, 'qcow2', 2 * TIB - CLUSTER - 3, 8) == b'far away'
    assert images.read_data(disk, 2 * TIB - CLUSTER - 3, 8) == b'far away'
    qemu_check(disk)


def test_overlay_reads_base_and_copies_on_write(create, tmp_path):
    base = create('-s', '64M', 'base.qcow2')
    base_data = bytes([7]) * CLUSTER + bytes([9]) * CLUSTER
    images.write_data(base, 0, base_data)
    overlay = create('-b', 'base.qcow2', 'over.qcow2')
    assert images.read_data(overlay, 0, 2 * CLUSTER) == base_data
    assert allocated(overlay) == 0
    images.write_data(overlay, 100, b'overlay bytes')
    expected = bytearray(base_data)
    expected[100:113] = b'overlay bytes'
    assert images.read_data(overlay, 0, 2 * CLUSTER) == bytes(expected)
    assert qemu_read(overlay, 'qcow2', 0, 2 * CLUSTER) == bytes(expected)
    # the base is untouched; only the written cluster was copied up
    assert images.read_data(base, 0, 2 * CLUSTER) == base_data
    assert qemu_read(base, 'qcow2', 0, 200) == base_data[:200]
    assert allocated(overlay) == 1
    qemu_check(base)
    flat = qemu_flat(overlay, 'qcow2', tmp_path)
    assert flat[:2 * CLUSTER] == bytes(expected)
    assert flat[2 * CLUSTER:].count(0) == len(flat) - 2 * CLUSTER


def test_chain_of_overlays(create, tmp_path):
    first = create('-s', '8M', 'l0.qcow2')
    images.write_data(first, 0, b'A' * 300)
    create('-b', 'l0.qcow2', 'l1.qcow2')
    images.write_data(str(tmp_path / 'l1.qcow2'), 100, b'B' * 100)
    create('-b', 'l1.qcow2', 'l2.qcow2')
    top = create('-b', 'l2.qcow2', 'l3.qcow2')
    images.write_data(top, 150, b'C' * 10)
    expected = b'A' * 100 + b'B' * 50 + b'C' * 10 + b'B' * 40 + b'A' * 100
    assert images.read_data(top, 0, 300) == expected
    assert qemu_read(top, 'qcow2', 0, 300) == expected
    assert images.backing_chain(top) == [str(tmp_path / name) for name in ('l3.qcow2', 'l2.qcow2', 'l1.qcow2', 'l0.qcow2')]
    for name in ('l0', 'l1', 'l2', 'l3'):
        qemu_check(str(tmp_path / (name + '.qcow2')))
    # a fifth image is over vmd's limit of 4 per disk
    too_deep = create('-b', 'l3.qcow2', 'l4.qcow2')
    with pytest.raises(images.ImageError, match='^qc2_open: missing base image l0.qcow2$'):
        images.backing_chain(too_deep)
    with pytest.raises(images.ImageError):
        images.read_data(too_deep, 0, 1)
    assert images.check_disk(too_deep, 'qcow2') == 'qc2_open: missing base image l0.qcow2'
    assert images.check_disk(top, 'qcow2') is None


def test_relative_bases_resolve_against_the_referencing_image(create, tmp_path, monkeypatch):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    create('-s', '4M', 'a/base.qcow2')
    images.write_data(str(tmp_path / 'a' / 'base.qcow2'), 0, b'base')
    monkeypatch.chdir(tmp_path / 'a')
    assert images.vmctl_create(['-b', 'base.qcow2', 'mid.qcow2']) == 0     # a/mid -> base.qcow2 (in a/)
    monkeypatch.chdir(tmp_path / 'b')
    assert images.vmctl_create(['-b', '../a/mid.qcow2', 'top.qcow2']) == 0  # b/top -> ../a/mid.qcow2
    top = str(tmp_path / 'b' / 'top.qcow2')
    assert images.backing_chain(top) == [top, str(tmp_path / 'a' / 'mid.qcow2'), str(tmp_path / 'a' / 'base.qcow2')]
    assert images.read_data(top, 0, 4) == b'base'
    assert qemu_read(top, 'qcow2', 0, 4) == b'base'


def test_missing_base(create, tmp_path):
    create('-s', '4M', 'base.qcow2')
    overlay = create('-b', 'base.qcow2', 'over.qcow2')
    os.unlink(str(tmp_path / 'base.qcow2'))
    with pytest.raises(images.ImageError, match='^unable to resolve base.qcow2$'):
        images.backing_chain(overlay)
    assert images.check_disk(overlay, 'qcow2') == 'unable to resolve base.qcow2'
    assert images.backing_file(overlay) == 'base.qcow2'


def test_check_disk_like_vmd(create, tmp_path):
    raw = create('-s', '4M', 'plain.raw')
    assert images.check_disk(raw, 'raw') is None
    assert images.check_disk(raw, 'qcow2') == 'invalid magic numbers'
    v2 = str(tmp_path / 'v2.qcow2')
    assert subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', v2, '4M'], check=False).returncode == 0
    assert images.check_disk(v2, 'qcow2') == 'unsupported refcount size'
    bits8 = str(tmp_path / 'bits8.qcow2')
    assert subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'refcount_bits=8', bits8, '4M'], check=False).returncode == 0
    assert images.check_disk(bits8, 'qcow2') == 'unsupported refcount size'
    small = str(tmp_path / 'small-clusters.qcow2')
    assert subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', small, '4M'], check=False).returncode == 0
    overlay = str(tmp_path / 'mixed.qcow2')
    assert subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'small-clusters.qcow2', overlay],
                          check=False, cwd=str(tmp_path)).returncode == 0
    assert images.check_disk(overlay, 'qcow2') == 'qc2_open: all disk parts must share clustersize'


def test_qemu_made_image_is_readable_and_writable(tmp_path):
    disk = str(tmp_path / 'q.qcow2')
    assert subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk, '16M'], check=False).returncode == 0
    qemu_write(disk, 'qcow2', 3 * CLUSTER + 10, 0xab, 100)
    assert images.read_data(disk, 3 * CLUSTER, 120) == bytes(10) + b'\xab' * 100 + bytes(10)
    images.write_data(disk, 3 * CLUSTER + 50, b'lab')
    images.write_data(disk, 8 * MIB, b'lab too')
    qemu_check(disk)
    assert qemu_read(disk, 'qcow2', 3 * CLUSTER + 48, 6) == b'\xab\xablab\xab'
    assert qemu_read(disk, 'qcow2', 8 * MIB, 7) == b'lab too'
    # qemu's "reads as zero" clusters hide the base and can be written
    qemu_write(disk, 'qcow2', 0, 0x11, CLUSTER)
    assert subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -z 0 %d' % CLUSTER, disk],
                          capture_output=True, check=False).returncode == 0
    assert images.read_data(disk, 0, 16) == bytes(16)
    images.write_data(disk, 4, b'z')
    assert images.read_data(disk, 0, 8) == b'\0\0\0\0z\0\0\0'
    assert qemu_read(disk, 'qcow2', 0, 8) == b'\0\0\0\0z\0\0\0'
    qemu_check(disk)


# ---------------------------------------------------------------------------
# -i copies carry the data, sparse

def test_convert_raw_to_qcow2_and_back(create, tmp_path):
    src = create('-s', '64M', 'src.raw')
    images.write_data(src, 0, b'boot' * 100)
    images.write_data(src, 10 * MIB + 5, b'middle')
    images.write_data(src, 64 * MIB - 4, b'tail')
    images.write_data(src, 20 * MIB, bytes(CLUSTER))   # written zeros stay unallocated in the copy
    copy = create('-i', 'src.raw', 'copy.qcow2')
    qemu_check(copy)
    assert allocated(copy) == 3
    with open(src, 'rb') as handle:
        original = handle.read()
    assert qemu_flat(copy, 'qcow2', tmp_path) == original
    back = create('-i', 'copy.qcow2', 'back.raw')
    with open(back, 'rb') as handle:
        assert handle.read() == original
    assert os.stat(back).st_blocks * 512 <= 3 * CLUSTER   # sparse: only the three data blocks


def test_convert_overlay_flattens_the_chain(create, tmp_path):
    base = create('-s', '32M', 'base.qcow2')
    images.write_data(base, 0, b'B' * 1000)
    images.write_data(base, 5 * MIB, b'base only')
    overlay = create('-b', 'base.qcow2', 'over.qcow2')
    images.write_data(overlay, 500, b'O' * 10)
    images.write_data(overlay, 9 * MIB, b'overlay only')
    expected = qemu_flat(overlay, 'qcow2', tmp_path)
    flat_qcow2 = create('-i', 'over.qcow2', 'flat.qcow2')
    qemu_check(flat_qcow2)
    assert images.backing_file(flat_qcow2) is None
    assert qemu_flat(flat_qcow2, 'qcow2', tmp_path) == expected
    flat_raw = create('-i', 'qcow2:over.qcow2', '-s', '40M', 'flat.raw')
    with open(flat_raw, 'rb') as handle:
        assert handle.read() == expected + bytes(8 * MIB)
    assert images.read_data(flat_qcow2, 495, 20) == b'B' * 5 + b'O' * 10 + b'B' * 5
    # the copy is independent: writing it leaves the source alone
    images.write_data(flat_qcow2, 0, b'new')
    assert images.read_data(overlay, 0, 3) == b'BBB'


def test_convert_qcow2_to_qcow2_large_virtual_size(create, tmp_path):
    src = create('-s', '2T', 'src.qcow2')
    images.write_data(src, TIB + 7, b'one terabyte in')
    copy = create('-i', 'src.qcow2', 'copy.qcow2')
    qemu_check(copy)
    assert images.virtual_size(copy) == 2 * TIB
    assert qemu_read(copy, 'qcow2', TIB + 7, 15) == b'one terabyte in'
    assert allocated(copy) == 1
    raw = create('-i', 'src.qcow2', 'copy.raw')
    assert os.path.getsize(raw) == 2 * TIB
    assert images.read_data(raw, TIB + 7, 15) == b'one terabyte in'
    assert os.stat(raw).st_blocks * 512 <= CLUSTER


def test_allocation_past_the_first_refcount_block(create):
    # one refcount block counts 32768 clusters (2 GiB of file).  Rather than writing 2 GiB, the
    # file is extended (sparse, unreferenced clusters are free space for qemu-img check) so the
    # next allocations land past the first block and the lab must add and count a second one.
    disk = create('-s', '3G', 'disk.qcow2')
    os.truncate(disk, (32768 - 2) * CLUSTER)
    for cluster in range(5):
        images.write_data(disk, cluster * CLUSTER + 1, bytes([cluster + 1]))
    report = qemu_check(disk)
    assert report['allocated-clusters'] == 5
    assert os.path.getsize(disk) > 32768 * CLUSTER
    for cluster in range(5):
        assert qemu_read(disk, 'qcow2', cluster * CLUSTER, 2) == bytes([0, cluster + 1])
