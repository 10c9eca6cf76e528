"""`vmctl create` in the lab (labsim.images) against vmctl-facts.md §5 and qcow2-facts.md.

qemu-img (qemu-utils) is the independent judge of every image written here.
"""

import errno
import json
import os
import struct
import subprocess
import sys

import pytest

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if LAB_DIR not in sys.path:
    sys.path.insert(0, LAB_DIR)

from labsim import images, scaled  # noqa: E402  pylint: disable=wrong-import-position

from conftest import reference_text  # noqa: E402  pylint: disable=wrong-import-position

USAGE = 'usage:\tvmctl [-v] create [-b base | -i disk] [-s size] disk\n'
MIB = 1 << 20
GIB = 1 << 30
TIB = 1 << 40

# Every constant message the tests expect, as quoted in the reference (checked below).
REFERENCE_QUOTES = {
    'vmctl-facts.md': [
        '[-b base \\| -i disk] [-s size] disk',
        'vmctl: disk size must be at least 1MB',
        'vmctl: invalid disk size: <arg>: <strerror>',
        'vmctl: disk size rounded to <fmt_scaled>',
        'could not create <disk>: missing size argument',
        'vmctl: base images require qcow2 disk format',
        'vmctl: failure to read base image header',
        'vmctl: base image is not a qcow2 file',
        'vmctl: base size does not match requested size',
        'vmctl: size cannot be smaller than input disk size',
        'vmctl: destination size rounded to <N> megabytes',
        'vmctl: conflicting -b and -i arguments',
        'vmctl: failed to open source image file',
        'vmctl: failed to create destination image file',
        'vmctl: create imagefile operation failed: File exists',
        'vmctl: create imagefile operation failed: <strerror>',
        'vmctl: raw imagefile created',
        'vmctl: qcow2 imagefile created',
        '`-s 1500K` → `vmctl: disk size rounded to 1.0M`',
    ],
    'qcow2-facts.md': [
        '| 4 | 4 | version | 3 |',
        '| 20 | 4 | cluster_bits | 16 (64 KiB clusters) |',
        '| 96 | 4 | refcount_order | 4 (16-bit refcounts) |',
        '| 100 | 4 | header_length | 104 |',
        '| 40 | 8 | l1_table_offset | 65536 (cluster 1) |',
        'e.g. 256 KiB for ordinary sizes',
    ],
}


def test_expected_messages_are_quoted_in_the_reference():
    for name, quotes in REFERENCE_QUOTES.items():
        text = reference_text(name)  # line wrapping is not part of a message
        for quote in quotes:
            assert quote in text, '%s does not say %r' % (name, quote)


# ---------------------------------------------------------------------------
# helpers

@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """Run `vmctl create ARGS` in tmp_path; returns (exit code, stderr)."""
    monkeypatch.chdir(tmp_path)

    def runner(*args, disk_full=False):
        capsys.readouterr()
        code = images.vmctl_create(list(args), disk_full=disk_full)
        out, err = capsys.readouterr()
        assert out == '', 'vmctl create prints nothing on stdout'
        return code, err
    return runner


def qemu_img(*args):
    return subprocess.run(['qemu-img'] + list(args), capture_output=True, text=True, check=False)


def qemu_check(path, fmt='qcow2'):
    result = qemu_img('check', '-f', fmt, '--output=json', str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report.get('corruptions', 0) == 0 and report.get('leaks', 0) == 0, report
    return report


def qemu_info(path, *extra):
    result = qemu_img('info', '--output=json', *(list(extra) + [str(path)]))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_qemu_qcow2(path, size, backing=None):
    """qemu-img agrees: valid, compat 1.1, 16-bit refcounts, virtual size, backing file."""
    qemu_check(path)
    info = qemu_info(path)
    assert info['format'] == 'qcow2'
    assert info['virtual-size'] == size
    assert info['cluster-size'] == 65536
    assert info['format-specific']['data']['compat'] == '1.1'
    assert info['format-specific']['data']['refcount-bits'] == 16
    assert info.get('backing-filename') == backing
    return info


def header(path):
    with open(path, 'rb') as handle:
        raw = handle.read(104)
    fields = struct.unpack('>4sIQIIQIIQQIIQQQQII', raw)
    names = ('magic', 'version', 'backing_file_offset', 'backing_file_size', 'cluster_bits', 'size',
             'crypt_method', 'l1_size', 'l1_table_offset', 'refcount_table_offset',
             'refcount_table_clusters', 'nb_snapshots', 'snapshots_offset', 'incompatible_features',
             'compatible_features', 'autoclear_features', 'refcount_order', 'header_length')
    return dict(zip(names, fields))


def created(fmt):
    return 'vmctl: %s imagefile created\n' % fmt


# ---------------------------------------------------------------------------
# scan_scaled / fmt_scaled

@pytest.mark.parametrize('text, value', [
    ('1048576', MIB), ('1M', MIB), ('1m', MIB), ('1G', GIB), ('1g', GIB), ('2T', 2 * TIB),
    ('1.5G', GIB + GIB // 2), ('1500K', 1500 * 1024), ('  3M', 3 * MIB), ('+1G', GIB),
    ('1.5', 1), ('512B', 512), ('1P', 1 << 50), ('1E', 1 << 60), ('-1M', -MIB), ('', 0), ('1G ', GIB),
])
def test_scan_scaled_values(text, value):
    assert scaled.scan_scaled(text) == value


@pytest.mark.parametrize('text, number', [
    ('abc', errno.EINVAL), ('1x', errno.EINVAL), ('1Gb', errno.EINVAL), ('1.2.3', errno.EINVAL),
    ('--1', errno.EINVAL), ('1MB', errno.EINVAL), ('8E', errno.ERANGE), ('99999999999999999999', errno.ERANGE),
    ('9999999999999T', errno.ERANGE),
])
def test_scan_scaled_errors(text, number):
    with pytest.raises(OSError) as caught:
        scaled.scan_scaled(text)
    assert caught.value.errno == number


@pytest.mark.parametrize('value, text', [
    (512 * MIB, '512M'), (GIB, '1.0G'), (GIB + GIB // 2, '1.5G'), (2 * GIB, '2.0G'), (16 * GIB, '16.0G'),
    (64 * MIB, '64.0M'), (100 * MIB, '100M'), (1000 * MIB, '1000M'), (1023 * MIB, '1023M'),
    (128 * GIB, '128G'), (0, '0B'), (MIB, '1.0M'), (1023, '1023B'),
])
def test_fmt_scaled_matches_reference_examples(value, text):
    assert scaled.fmt_scaled(value) == text


# ---------------------------------------------------------------------------
# command line

@pytest.mark.parametrize('args', [
    [],
    ['disk.raw', '-s', '1G'],            # no permutation: options after the disk
    ['-s', '1G', 'a.raw', 'b.raw'],
    ['-s', '1G'],
])
def test_usage_errors(run, tmp_path, args):
    code, err = run(*args)
    assert (code, err) == (1, USAGE)
    assert os.listdir(tmp_path) == []


def test_unknown_option_and_missing_argument(run, tmp_path):
    assert run('-x', 'disk.raw') == (1, 'vmctl: unknown option -- x\n' + USAGE)
    assert run('-s') == (1, 'vmctl: option requires an argument -- s\n' + USAGE)
    assert os.listdir(tmp_path) == []


def test_double_dash_ends_options(run, tmp_path):
    assert run('-s', '1M', '--', '-odd.raw') == (0, created('raw'))
    assert os.path.getsize(tmp_path / '-odd.raw') == MIB


def test_attached_option_argument(run, tmp_path):
    assert run('-s1M', 'a.raw') == (0, created('raw'))
    assert os.path.getsize(tmp_path / 'a.raw') == MIB


def test_missing_size(run, tmp_path):
    code, err = run('disk.qcow2')
    assert (code, err) == (1, 'could not create disk.qcow2: missing size argument\n' + USAGE)
    code, err = run('qcow2:disk')
    assert (code, err) == (1, 'could not create disk: missing size argument\n' + USAGE)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('size, message', [
    ('1K', 'vmctl: disk size must be at least 1MB\n'),
    ('1048575', 'vmctl: disk size must be at least 1MB\n'),
    ('0', 'vmctl: disk size must be at least 1MB\n'),
    ('-5G', 'vmctl: disk size must be at least 1MB\n'),
    ('abc', 'vmctl: invalid disk size: abc: Invalid argument\n'),
    ('1GB', 'vmctl: invalid disk size: 1GB: Invalid argument\n'),
    ('99999999999999999999', 'vmctl: invalid disk size: 99999999999999999999: Result too large\n'),
])
def test_size_errors(run, tmp_path, size, message):
    assert run('-s', size, 'disk.raw') == (1, message)
    assert os.listdir(tmp_path) == []


def test_size_error_comes_before_usage_check(run):
    # getopt handles -s before the positional count is looked at
    assert run('-s', '1K') == (1, 'vmctl: disk size must be at least 1MB\n')


@pytest.mark.parametrize('size, rounded, shown', [
    ('1500K', MIB, '1.0M'),
    (str(GIB + 1), GIB, '1.0G'),
    ('1.7M', MIB, '1.0M'),
    ('2.5m', 2 * MIB, '2.0M'),
])
def test_size_rounded_down_with_warning(run, tmp_path, size, rounded, shown):
    assert run('-s', size, 'a.raw') == (0, 'vmctl: disk size rounded to %s\n' % shown + created('raw'))
    assert os.path.getsize(tmp_path / 'a.raw') == rounded
    assert run('-s', size, 'a.qcow2') == (0, 'vmctl: disk size rounded to %s\n' % shown + created('qcow2'))
    assert_qemu_qcow2(tmp_path / 'a.qcow2', rounded)


def test_bare_number_is_bytes(run, tmp_path):
    assert run('-s', str(3 * MIB), 'a.raw') == (0, created('raw'))
    assert os.path.getsize(tmp_path / 'a.raw') == 3 * MIB


# ---------------------------------------------------------------------------
# format selection

@pytest.mark.parametrize('arg, path, fmt', [
    ('disk.qcow2', 'disk.qcow2', 'qcow2'),
    ('disk.QCOW2', 'disk.QCOW2', 'qcow2'),
    ('disk.QCow2', 'disk.QCow2', 'qcow2'),
    ('disk.raw', 'disk.raw', 'raw'),
    ('disk.RAW', 'disk.RAW', 'raw'),
    ('disk.img', 'disk.img', 'raw'),
    ('disk.qcow', 'disk.qcow', 'raw'),
    ('disk.qc2', 'disk.qc2', 'raw'),
    ('disk', 'disk', 'raw'),
    ('disk.', 'disk.', 'raw'),
    ('qcow2:disk.img', 'disk.img', 'qcow2'),
    ('qcow2:disk', 'disk', 'qcow2'),
    ('raw:disk.qcow2', 'disk.qcow2', 'raw'),
])
def test_format_selection(run, tmp_path, arg, path, fmt):
    assert run('-s', '1G', arg) == (0, created(fmt))
    assert os.listdir(tmp_path) == [path]
    with open(tmp_path / path, 'rb') as handle:
        magic = handle.read(4)
    if fmt == 'qcow2':
        assert magic == b'QFI\xfb'
        assert_qemu_qcow2(tmp_path / path, GIB)
    else:
        assert magic == b'\0\0\0\0'
        assert os.path.getsize(tmp_path / path) == GIB


def test_existing_file_magic_beats_extension(run, tmp_path):
    # an existing qcow2 named .raw is taken as qcow2, so -b passes the format check
    assert run('-s', '1G', 'base.qcow2') == (0, created('qcow2'))
    os.rename(tmp_path / 'base.qcow2', tmp_path / 'looks.raw')
    assert run('-s', '1G', 'other.qcow2') == (0, created('qcow2'))
    assert run('-b', 'other.qcow2', 'looks.raw') == (1, 'vmctl: create imagefile operation failed: File exists\n')
    assert run('-b', 'other.qcow2', 'new.raw') == (1, 'vmctl: base images require qcow2 disk format\n')


def test_detect_format_and_prefix(tmp_path, run):
    assert images.split_format_prefix('qcow2:/x/y.raw') == ('qcow2', '/x/y.raw')
    assert images.split_format_prefix('raw:/x/y') == ('raw', '/x/y')
    assert images.split_format_prefix('/x/qcow2:y') == (None, '/x/qcow2:y')
    assert images.split_format_prefix('vmdk:y') == (None, 'vmdk:y')
    run('-s', '1G', 'raw:q.qcow2')
    run('-s', '1G', 'qcow2:q.raw')
    assert images.detect_format(str(tmp_path / 'q.raw'), use_extension=True) == 'qcow2'
    assert images.detect_format(str(tmp_path / 'q.raw'), use_extension=False) == 'qcow2'
    # no magic: an existing raw file named .qcow2 still goes by its extension for vmctl, not for vm.conf
    assert images.detect_format(str(tmp_path / 'q.qcow2'), use_extension=True) == 'qcow2'
    assert images.detect_format(str(tmp_path / 'q.qcow2'), use_extension=False) == 'raw'
    assert images.detect_format(str(tmp_path / 'new.QCOW2'), use_extension=True) == 'qcow2'
    assert images.detect_format(str(tmp_path / 'new.QCOW2'), use_extension=False) == 'raw'
    assert images.detect_format(str(tmp_path / 'new.img'), use_extension=True) == 'raw'


# ---------------------------------------------------------------------------
# raw images

def test_raw_is_sparse_and_private(run, tmp_path):
    assert run('-s', '2G', 'disk.raw') == (0, created('raw'))
    st = os.stat(tmp_path / 'disk.raw')
    assert st.st_size == 2 * GIB
    assert st.st_blocks == 0
    assert st.st_mode & 0o777 == 0o600
    assert images.virtual_size(str(tmp_path / 'disk.raw')) == 2 * GIB
    assert images.backing_file(str(tmp_path / 'disk.raw')) is None
    assert qemu_info(tmp_path / 'disk.raw')['virtual-size'] == 2 * GIB


def test_mode_is_subject_to_umask(run, tmp_path):
    old = os.umask(0o277)
    try:
        assert run('-s', '1M', 'a.raw') == (0, created('raw'))
        assert run('-s', '1M', 'a.qcow2') == (0, created('qcow2'))
    finally:
        os.umask(old)
    assert os.stat(tmp_path / 'a.raw').st_mode & 0o777 == 0o400
    assert os.stat(tmp_path / 'a.qcow2').st_mode & 0o777 == 0o400


def test_large_raw(run, tmp_path):
    assert run('-s', '2T', 'big.raw') == (0, created('raw'))
    assert os.path.getsize(tmp_path / 'big.raw') == 2 * TIB
    assert os.stat(tmp_path / 'big.raw').st_blocks == 0


# ---------------------------------------------------------------------------
# qcow2 layout

@pytest.mark.parametrize('size_arg, size, l1_size, refcount_table_offset, refcount_table_clusters, length', [
    ('1M', MIB, 1, 131072, 1, 262144),
    ('1G', GIB, 2, 131072, 1, 262144),
    ('1500M', 1500 * MIB, 3, 131072, 1, 262144),
    ('2T', 2 * TIB, 4096, 131072, 1, 262144),
    ('4T', 4 * TIB, 8192, 131072, 1, 262144),
    ('5T', 5 * TIB, 10240, 196608, 1, 327680),
    ('200T', 200 * TIB, 409600, 65536 + 50 * 65536, 2, 65536 + 50 * 65536 + 3 * 65536),
])
def test_qcow2_header_per_reference(run, tmp_path, size_arg, size, l1_size, refcount_table_offset,
                                    refcount_table_clusters, length):
    assert run('-s', size_arg, 'disk.qcow2') == (0, created('qcow2'))
    path = tmp_path / 'disk.qcow2'
    assert header(path) == {
        'magic': b'QFI\xfb', 'version': 3, 'backing_file_offset': 0, 'backing_file_size': 0,
        'cluster_bits': 16, 'size': size, 'crypt_method': 0, 'l1_size': l1_size,
        'l1_table_offset': 65536, 'refcount_table_offset': refcount_table_offset,
        'refcount_table_clusters': refcount_table_clusters, 'nb_snapshots': 0, 'snapshots_offset': 0,
        'incompatible_features': 0, 'compatible_features': 0, 'autoclear_features': 0,
        'refcount_order': 4, 'header_length': 104,
    }
    assert os.path.getsize(path) == length
    with open(path, 'rb') as handle:
        data = handle.read()
    # L1 all zero; refcount table's first entry -> the refcount block, which counts every metadata cluster
    assert data[65536:65536 + 8 * l1_size].count(0) == 8 * l1_size
    block = length - 65536
    assert struct.unpack('>Q', data[refcount_table_offset:refcount_table_offset + 8])[0] == block
    metadata = block // 65536 + 1
    assert data[block:block + 2 * metadata] == b'\0\x01' * metadata
    assert data[block + 2 * metadata:].count(0) == len(data) - block - 2 * metadata
    assert data[104:65536].count(0) == 65536 - 104
    assert_qemu_qcow2(path, size)
    assert images.virtual_size(str(path)) == size
    assert images.backing_chain(str(path)) == [str(path)]


@pytest.mark.parametrize('size', ['128P', '7E'])
def test_qcow2_too_large_for_one_refcount_block(run, tmp_path, size):
    assert run('-s', size, 'huge.qcow2') == (1, 'vmctl: create imagefile operation failed: Result too large\n')
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# refusing to overwrite, failures

@pytest.mark.parametrize('name', ['a.raw', 'a.qcow2'])
def test_refuses_to_overwrite(run, tmp_path, name):
    (tmp_path / name).write_bytes(b'precious')
    assert run('-s', '1G', name) == (1, 'vmctl: create imagefile operation failed: File exists\n')
    assert (tmp_path / name).read_bytes() == b'precious'


def test_missing_directory(run, tmp_path):
    assert run('-s', '1G', 'nodir/a.qcow2') == (
        1, 'vmctl: create imagefile operation failed: No such file or directory\n')


@pytest.mark.parametrize('name', ['a.raw', 'a.qcow2'])
def test_disk_full_leaves_nothing(run, tmp_path, name):
    assert run('-s', '1G', name, disk_full=True) == (
        1, 'vmctl: create imagefile operation failed: No space left on device\n')
    assert os.listdir(tmp_path) == []


def test_disk_full_does_not_touch_an_existing_file(run, tmp_path):
    (tmp_path / 'a.raw').write_bytes(b'precious')
    assert run('-s', '1G', 'a.raw', disk_full=True) == (1, 'vmctl: create imagefile operation failed: File exists\n')
    assert (tmp_path / 'a.raw').read_bytes() == b'precious'


# ---------------------------------------------------------------------------
# -b base

def test_overlay_of_base(run, tmp_path):
    assert run('-s', '3G', 'base.qcow2') == (0, created('qcow2'))
    assert run('-b', 'base.qcow2', 'over.qcow2') == (0, created('qcow2'))
    path = tmp_path / 'over.qcow2'
    fields = header(path)
    assert (fields['backing_file_offset'], fields['backing_file_size'], fields['size']) == (104, 10, 3 * GIB)
    with open(path, 'rb') as handle:
        assert handle.read(120)[104:115] == b'base.qcow2\0'
    assert os.path.getsize(path) == 262144
    assert_qemu_qcow2(path, 3 * GIB, backing='base.qcow2')
    chain = qemu_info(path, '--backing-chain')
    assert [entry['filename'] for entry in chain] == [str(path), str(tmp_path / 'base.qcow2')]
    assert images.backing_file(str(path)) == 'base.qcow2'
    assert images.backing_chain(str(path)) == [str(path), str(tmp_path / 'base.qcow2')]


def test_overlay_with_matching_size(run, tmp_path):
    assert run('-s', '1G', 'base.qcow2') == (0, created('qcow2'))
    assert run('-b', 'base.qcow2', '-s', str(GIB), 'over.qcow2') == (0, created('qcow2'))
    assert_qemu_qcow2(tmp_path / 'over.qcow2', GIB, backing='base.qcow2')


def test_backing_path_stored_verbatim(run, tmp_path, monkeypatch):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'vms').mkdir()
    assert run('-s', '1G', 'images/base.qcow2') == (0, created('qcow2'))
    # vmctl reads the base relative to its working directory but stores the path as given
    assert run('-b', 'images/base.qcow2', 'vms/wrong.qcow2') == (0, created('qcow2'))
    assert images.backing_file(str(tmp_path / 'vms' / 'wrong.qcow2')) == 'images/base.qcow2'
    with pytest.raises(images.ImageError, match='^unable to resolve images/base.qcow2$'):
        images.backing_chain(str(tmp_path / 'vms' / 'wrong.qcow2'))
    assert run('-b', '../images/base.qcow2', 'vms/rel.qcow2') == (1, 'vmctl: failure to read base image header\n')
    monkeypatch.chdir(tmp_path / 'vms')
    assert run('-b', '../images/base.qcow2', 'rel.qcow2') == (0, created('qcow2'))
    monkeypatch.chdir(tmp_path)
    absolute = str(tmp_path / 'images' / 'base.qcow2')
    assert run('-b', absolute, 'vms/abs.qcow2') == (0, created('qcow2'))
    assert images.backing_file(str(tmp_path / 'vms' / 'rel.qcow2')) == '../images/base.qcow2'
    assert images.backing_file(str(tmp_path / 'vms' / 'abs.qcow2')) == absolute
    assert header(tmp_path / 'vms' / 'abs.qcow2')['backing_file_size'] == len(absolute)
    # relative paths resolve against the overlay's directory, for vmd as for qemu
    assert images.backing_chain(str(tmp_path / 'vms' / 'rel.qcow2'))[1] == absolute
    info = assert_qemu_qcow2(tmp_path / 'vms' / 'rel.qcow2', GIB, backing='../images/base.qcow2')
    assert info['full-backing-filename'] == str(tmp_path / 'vms' / '..' / 'images' / 'base.qcow2')
    assert_qemu_qcow2(tmp_path / 'vms' / 'abs.qcow2', GIB, backing=absolute)


@pytest.mark.parametrize('setup, args, message', [
    (None, ['-b', 'base.qcow2', 'over.raw'], 'vmctl: base images require qcow2 disk format\n'),
    (None, ['-b', 'base.qcow2', 'over'], 'vmctl: base images require qcow2 disk format\n'),
    (None, ['-b', 'missing.qcow2', 'over.qcow2'], 'vmctl: failure to read base image header\n'),
    ('short', ['-b', 'short.qcow2', 'over.qcow2'], 'vmctl: failure to read base image header\n'),
    ('raw', ['-b', 'plain.raw', 'over.qcow2'], 'vmctl: base image is not a qcow2 file\n'),
    (None, ['-b', 'base.qcow2', '-s', '2G', 'over.qcow2'], 'vmctl: base size does not match requested size\n'),
    (None, ['-b', 'base.qcow2', '-s', '1025M', 'over.qcow2'], 'vmctl: base size does not match requested size\n'),
])
def test_base_errors(run, tmp_path, setup, args, message):
    assert run('-s', '1G', 'base.qcow2') == (0, created('qcow2'))
    if setup == 'short':
        (tmp_path / 'short.qcow2').write_bytes(b'QFI\xfb' + bytes(50))
    if setup == 'raw':
        assert run('-s', '1G', 'plain.raw') == (0, created('raw'))
    before = sorted(os.listdir(tmp_path))
    assert run(*args) == (1, message)
    assert sorted(os.listdir(tmp_path)) == before


def test_base_checked_before_overwrite(run, tmp_path):
    (tmp_path / 'over.qcow2').write_bytes(b'x')
    assert run('-b', 'missing.qcow2', 'over.qcow2') == (1, 'vmctl: failure to read base image header\n')


def test_overlay_of_qemu_made_base(run, tmp_path):
    assert qemu_img('create', '-q', '-f', 'qcow2', str(tmp_path / 'q.qcow2'), '1G').returncode == 0
    assert run('-b', 'q.qcow2', 'over.qcow2') == (0, created('qcow2'))
    assert_qemu_qcow2(tmp_path / 'over.qcow2', GIB, backing='q.qcow2')


def test_overlay_of_large_base(run, tmp_path):
    assert run('-s', '2T', 'base.qcow2') == (0, created('qcow2'))
    assert run('-b', 'base.qcow2', 'over.qcow2') == (0, created('qcow2'))
    assert header(tmp_path / 'over.qcow2')['l1_size'] == 4096
    assert_qemu_qcow2(tmp_path / 'over.qcow2', 2 * TIB, backing='base.qcow2')


# ---------------------------------------------------------------------------
# -i input

def test_conflicting_base_and_input(run, tmp_path):
    assert run('-s', '1G', 'base.qcow2') == (0, created('qcow2'))
    assert run('-b', 'base.qcow2', '-i', 'base.qcow2', 'x.qcow2') == (1, 'vmctl: conflicting -b and -i arguments\n')
    assert run('-i', 'base.qcow2', '-b', 'base.qcow2', 'x.qcow2') == (1, 'vmctl: conflicting -b and -i arguments\n')
    assert sorted(os.listdir(tmp_path)) == ['base.qcow2']


def test_input_missing(run, tmp_path):
    assert run('-i', 'nothere.raw', 'x.qcow2') == (1, 'vmctl: failed to open source image file\n')
    assert os.listdir(tmp_path) == []


def test_input_named_qcow2_but_raw(run, tmp_path):
    (tmp_path / 'fake.qcow2').write_bytes(bytes(MIB))
    assert run('-i', 'fake.qcow2', 'x.raw') == (
        1, 'vmctl: invalid magic numbers\nvmctl: failed to open source image file\n')
    assert run('-i', 'raw:fake.qcow2', 'x.raw') == (0, created('raw'))


def test_input_size_rules(run, tmp_path):
    assert run('-s', '2G', 'src.raw') == (0, created('raw'))
    assert run('-i', 'src.raw', '-s', '1G', 'small.qcow2') == (1, 'vmctl: size cannot be smaller than input disk size\n')
    assert run('-i', 'src.raw', '-s', '3G', 'bigger.qcow2') == (0, created('qcow2'))
    assert_qemu_qcow2(tmp_path / 'bigger.qcow2', 3 * GIB)
    assert run('-i', 'src.raw', 'same.qcow2') == (0, created('qcow2'))
    assert_qemu_qcow2(tmp_path / 'same.qcow2', 2 * GIB)
    assert sorted(os.listdir(tmp_path)) == ['bigger.qcow2', 'same.qcow2', 'src.raw']


def test_input_size_rounded_up(run, tmp_path):
    (tmp_path / 'odd.raw').write_bytes(b'\x01' * (MIB + 4096))
    assert run('-i', 'odd.raw', 'up.raw') == (0, 'vmctl: destination size rounded to 2 megabytes\n' + created('raw'))
    assert os.path.getsize(tmp_path / 'up.raw') == 2 * MIB
    assert run('-i', 'odd.raw', 'up.qcow2') == (0, 'vmctl: destination size rounded to 2 megabytes\n' + created('qcow2'))
    assert_qemu_qcow2(tmp_path / 'up.qcow2', 2 * MIB)
    expected = b'\x01' * (MIB + 4096) + bytes(MIB - 4096)
    assert (tmp_path / 'up.raw').read_bytes() == expected
    assert images.read_data(str(tmp_path / 'up.qcow2'), 0, 2 * MIB) == expected


def test_input_destination_exists(run, tmp_path):
    assert run('-s', '1G', 'src.qcow2') == (0, created('qcow2'))
    (tmp_path / 'dst.raw').write_bytes(b'precious')
    assert run('-i', 'src.qcow2', 'dst.raw') == (1, 'vmctl: failed to create destination image file\n')
    assert (tmp_path / 'dst.raw').read_bytes() == b'precious'


def test_input_disk_full(run, tmp_path):
    assert run('-s', '1G', 'src.qcow2') == (0, created('qcow2'))
    assert run('-i', 'src.qcow2', 'dst.raw', disk_full=True) == (1, 'vmctl: failed to create destination image file\n')
    assert sorted(os.listdir(tmp_path)) == ['src.qcow2']
