# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A disk image sent as its changed blocks: digest of the copy, delta from the image, the copy patched and checked."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import disk_delta
from ansible_collections.openbsd.vmm.plugins.module_utils.disk_delta import DeltaError

BLOCK = 4096


def sha(data):
    return hashlib.sha256(data).hexdigest()


def rand(size, seed):
    return random.Random(seed).randbytes(size)


def patched(data, offset, length, seed):
    return data[:offset] + rand(length, seed) + data[offset + length:]


def send(tmp_path, old, new, block=BLOCK):
    """old pre-copied, new the image: digest, delta, apply; returns (delta result, apply result, dest path)."""
    copy, image, delta, dest = (str(tmp_path / name) for name in ('copy', 'image', 'delta', 'dest'))
    with open(copy, 'wb') as handle:
        handle.write(old)
    with open(image, 'wb') as handle:
        handle.write(new)
    digests = disk_delta.digest(copy, block)
    made = disk_delta.make_delta(image, block, digests['digests'], delta)
    applied = disk_delta.apply_delta(copy, delta, dest, sha(new))
    return made, applied, dest


OLD = rand(10 * BLOCK + 123, 1)


@pytest.mark.parametrize('new, changed', [
    (OLD, 0),
    (patched(OLD, 0, 10, 2), 1),                           # first block
    (patched(OLD, 5 * BLOCK - 1, 2, 3), 2),                # across the boundary of blocks 4 and 5
    (patched(OLD, len(OLD) - 1, 1, 4), 1),                 # the last, short block
    (OLD + rand(3 * BLOCK, 5), 4),                         # grown: the short last block and three more
    (OLD[:4 * BLOCK + 7], 1),                              # shrunk: only the new short last block differs
    (OLD[:4 * BLOCK], 0),                                  # shrunk on a block boundary: nothing to send but the length
    (b'', 0),                                              # emptied
    (rand(len(OLD), 6), 11),                               # all new
])
def test_the_patched_copy_is_the_image(tmp_path, new, changed):
    made, applied, dest = send(tmp_path, OLD, new)
    with open(dest, 'rb') as handle:
        assert handle.read() == new
    assert made['blocks_changed'] == applied['blocks_changed'] == changed
    assert made['sha256'] == applied['sha256'] == sha(new) and made['size'] == applied['size'] == len(new)
    # what is sent: the header, and per block that differs from the copy's (compared byte for byte) its bytes
    differing = [new[at:at + BLOCK] for at in range(0, len(new), BLOCK) if new[at:at + BLOCK] != OLD[at:at + BLOCK]]
    assert len(differing) == changed
    assert made['bytes'] == applied['bytes'] == len(MAGIC_AND_HEADER()) + sum(disk_delta.ENTRY.size + len(b) for b in differing)
    # the delta and the copy are consumed; nothing but the image and the destination is left
    assert sorted(os.listdir(str(tmp_path))) == ['dest', 'image']


def MAGIC_AND_HEADER():
    return disk_delta.MAGIC + b'\0' * disk_delta.HEADER.size


def test_a_delta_is_small_when_few_blocks_changed(tmp_path):
    old = rand(256 * BLOCK, 7)
    made = send(tmp_path, old, patched(old, 100 * BLOCK + 5, 3, 8))[0]
    assert made['blocks_changed'] == 1 and made['blocks'] == 256
    assert made['bytes'] == len(MAGIC_AND_HEADER()) + disk_delta.ENTRY.size + BLOCK


def test_the_copy_grown_from_nothing(tmp_path):
    new = rand(3 * BLOCK + 1, 9)
    made, dummy, dest = send(tmp_path, b'', new)
    assert made['blocks_changed'] == 4
    with open(dest, 'rb') as handle:
        assert handle.read() == new


def test_digest_of_each_block(tmp_path):
    path = tmp_path / 'image'
    data = rand(2 * BLOCK + 1, 10)
    path.write_bytes(data)
    result = disk_delta.digest(str(path), BLOCK)
    assert result == dict(size=len(data), block_size=BLOCK,
                          digests=[sha(data[:BLOCK]), sha(data[BLOCK:2 * BLOCK]), sha(data[2 * BLOCK:])])
    assert path.read_bytes() == data


@pytest.mark.parametrize('size, block_size', [
    (16384 * BLOCK, BLOCK),              # exactly the most digests: the block size asked for
    (16384 * BLOCK + 1, 2 * BLOCK),      # one byte more: the next power of two
    (16384 * 4 * BLOCK + 1, 8 * BLOCK),
    (16384 * disk_delta.MAX_BLOCK + 1, disk_delta.MAX_BLOCK),   # no block larger than MAX_BLOCK, however large
    (0, BLOCK),
])
def test_digest_block_size_keeps_the_digests_to_16384(size, block_size):
    assert disk_delta.digest_block_size(size, BLOCK) == block_size


def test_a_large_file_is_digested_in_larger_blocks_and_its_delta_applies(tmp_path):
    # 16384 blocks of 4 KiB and one byte more: 8 KiB blocks, 8193 digests; the delta made with that block size
    # (what the playbook passes on) brings the copy up to date
    size = 16384 * BLOCK + 1
    old = bytearray(size)
    new = bytearray(old)
    new[5 * BLOCK:5 * BLOCK + 10] = b'x' * 10
    copy, image, delta, dest = (tmp_path / name for name in ('copy', 'image', 'delta', 'dest'))
    copy.write_bytes(old)
    image.write_bytes(new)
    result = disk_delta.digest(str(copy), BLOCK)
    assert (result['block_size'], len(result['digests'])) == (2 * BLOCK, 8193)
    made = disk_delta.make_delta(str(image), result['block_size'], result['digests'], str(delta))
    assert made['blocks_changed'] == 1
    disk_delta.apply_delta(str(copy), str(delta), str(dest), sha(bytes(new)))
    assert dest.read_bytes() == bytes(new)


def prepared(tmp_path, old, new):
    copy, image, delta = (tmp_path / name for name in ('copy', 'image', 'delta'))
    copy.write_bytes(old)
    image.write_bytes(new)
    disk_delta.make_delta(str(image), BLOCK, disk_delta.digest(str(copy), BLOCK)['digests'], str(delta))
    return copy, delta, tmp_path / 'dest'


def test_a_wrong_sha256_leaves_the_destination_untouched(tmp_path):
    new = patched(OLD, 3 * BLOCK, 100, 11)
    copy, delta, dest = prepared(tmp_path, OLD, new)
    dest.write_bytes(b'the old destination')
    copy.write_bytes(patched(OLD, 7 * BLOCK, 1, 12))          # the copy changed after its digest
    with pytest.raises(DeltaError) as caught:
        disk_delta.apply_delta(str(copy), str(delta), str(dest), sha(new))
    assert str(caught.value).startswith('sha256: %s patched with %s has sha256 ' % (copy, delta))
    assert '%s was left untouched and the patched file removed' % dest in str(caught.value)
    assert dest.read_bytes() == b'the old destination' and not copy.exists()


def test_a_delta_of_another_image_is_refused_before_writing(tmp_path):
    new = patched(OLD, 0, 1, 13)
    copy, delta, dest = prepared(tmp_path, OLD, new)
    other = sha(b'another image')
    with pytest.raises(DeltaError, match='^sha256: .* was made from a file with sha256 %s, not %s; nothing was written' % (sha(new), other)):
        disk_delta.apply_delta(str(copy), str(delta), str(dest), other)
    assert copy.read_bytes() == OLD and not dest.exists() and delta.exists()


@pytest.mark.parametrize('damage, reason', [
    (lambda data: data[:-1], 'it ends inside block 9)'),
    (lambda data: data[:66 + 12 + 4096 + 5], 'it ends after 1 of 2 blocks)'),
    (lambda data: data + b'x', 'its size is not what its blocks make'),
    (lambda data: b'VMMDELTA2\n' + data[10:], 'no VMMDELTA1 header'),
    (lambda data: data[:20], 'its header is cut'),
    (lambda data: data[:10] + (3000).to_bytes(8, 'big') + data[18:], 'block size 3000'),
    # the first block's index made 99, beyond the file
    (lambda data: data[:66] + (99).to_bytes(8, 'big') + data[74:], 'block 99 of 4096 bytes is out of order or does not fit'),
])
def test_a_damaged_delta_is_refused_before_writing(tmp_path, damage, reason):
    new = patched(patched(OLD, 0, 1, 14), 9 * BLOCK, 1, 15)
    copy, delta, dest = prepared(tmp_path, OLD, new)
    delta.write_bytes(damage(delta.read_bytes()))
    with pytest.raises(DeltaError) as caught:
        disk_delta.apply_delta(str(copy), str(delta), str(dest), sha(new))
    assert str(caught.value).startswith('delta: %s is not a complete delta file (%s' % (delta, reason))
    assert copy.read_bytes() == OLD and not dest.exists()


def entry(index, data):
    return disk_delta.ENTRY.pack(index, len(data)) + data


@pytest.mark.parametrize('entries, reason', [
    ([entry(1, b'a' * BLOCK), entry(1, b'b' * BLOCK)], 'block 1 of 4096 bytes is out of order'),   # the same block twice
    ([entry(2, b'a' * BLOCK), entry(1, b'b' * BLOCK)], 'block 1 of 4096 bytes is out of order'),
    ([entry(4, b'')], 'block 4 of 0 bytes is out of order or does not fit a 16384-byte file'),      # past the end
    ([entry(0, b'a' * 100)], 'block 0 of 100 bytes is out of order or does not fit'),               # a short block
])
def test_a_forged_delta_is_refused_before_writing(tmp_path, entries, reason):
    copy, delta, dest = tmp_path / 'copy', tmp_path / 'delta', tmp_path / 'dest'
    copy.write_bytes(OLD[:4 * BLOCK])
    delta.write_bytes(disk_delta.MAGIC + disk_delta.HEADER.pack(BLOCK, 4 * BLOCK, len(entries), bytes.fromhex(sha(OLD[:4 * BLOCK])))
                      + b''.join(entries))
    with pytest.raises(DeltaError) as caught:
        disk_delta.apply_delta(str(copy), str(delta), str(dest), sha(OLD[:4 * BLOCK]))
    assert str(caught.value).startswith('delta: %s is not a complete delta file (%s' % (delta, reason))
    assert copy.read_bytes() == OLD[:4 * BLOCK] and not dest.exists()


def test_nothing_is_written_without_write(tmp_path):
    new = patched(OLD, 0, 1, 16)
    (tmp_path / 'copy').write_bytes(OLD)
    (tmp_path / 'image').write_bytes(new)
    digests = disk_delta.digest(str(tmp_path / 'copy'), BLOCK)['digests']
    made = disk_delta.make_delta(str(tmp_path / 'image'), BLOCK, digests, str(tmp_path / 'delta'), write=False)
    assert made['blocks_changed'] == 1 and made['sha256'] == sha(new)
    assert sorted(os.listdir(str(tmp_path))) == ['copy', 'image']
    copy, delta, dest = prepared(tmp_path, OLD, new)
    applied = disk_delta.apply_delta(str(copy), str(delta), str(dest), sha(new), write=False)
    assert applied['bytes'] == made['bytes'] and copy.read_bytes() == OLD and not dest.exists() and delta.exists()


def test_a_failed_delta_leaves_no_temporary_file(tmp_path, monkeypatch):
    (tmp_path / 'image').write_bytes(OLD)

    def broken(*args):
        raise OSError('disk full')
    monkeypatch.setattr(disk_delta.os, 'fsync', broken)
    with pytest.raises(OSError, match='disk full'):
        disk_delta.make_delta(str(tmp_path / 'image'), BLOCK, [], str(tmp_path / 'delta'))
    assert os.listdir(str(tmp_path)) == ['image']


def test_apply_sets_the_mode(tmp_path):
    new = patched(OLD, 0, 1, 17)
    copy, delta, dest = prepared(tmp_path, OLD, new)
    os.chmod(str(copy), 0o644)
    disk_delta.apply_delta(str(copy), str(delta), str(dest), sha(new), mode=0o600)
    assert os.stat(str(dest)).st_mode & 0o777 == 0o600


@pytest.mark.parametrize('block_size', [0, 1, 2048, 4095, 4097, 3 * 4096, 32 * 1024 * 1024, True, '4096', None])
def test_block_size_is_a_power_of_two_in_range(block_size):
    with pytest.raises(DeltaError, match=r'^block_size: must be a power of two from 4096 to 16777216 \(got '):
        disk_delta.validate_block_size(block_size)


@pytest.mark.parametrize('block_size', [4096, 65536, 16 * 1024 * 1024])
def test_block_sizes_accepted(block_size):
    assert disk_delta.validate_block_size(block_size) == block_size


def request(tmp_path, **params):
    (tmp_path / 'image').write_bytes(b'x')
    (tmp_path / 'delta').write_bytes(b'x')
    base = dict(operation='delta', path=str(tmp_path / 'image'), block_size=BLOCK, digests=[], delta=str(tmp_path / 'new'),
                dest=None, sha256=None, mode=None)
    base.update(params)
    return disk_delta.validate_request(base)


@pytest.mark.parametrize('params, message', [
    (dict(operation='patch'), "operation: must be one of digest, delta, apply (got 'patch')"),
    (dict(path='image'), "path: must be an absolute path (got 'image')"),
    (dict(path='/nonexistent/image'), 'path: /nonexistent/image is not a regular file'),
    (dict(digests=['ab' * 32, 'AB' * 32]), "digests: item 1 must be 64 lower-case hex digits (a sha256), got '%s'" % ('AB' * 32)),
    (dict(digests=['ab' * 32 + '\n']), 'digests: item 0 must be 64 lower-case hex digits'),
    (dict(digests='ab'), 'digests: must be a list of sha256 hex digests'),
    (dict(digests=None), 'digests: required when operation is delta'),
    (dict(delta='/nonexistent/delta'), 'delta: the directory of /nonexistent/delta does not exist'),
    (dict(sha256='ab' * 32), 'sha256: not used when operation is delta'),
    (dict(operation='digest', digests=None, delta=None, dest='/tmp/x'), 'dest: not used when operation is digest'),
    (dict(operation='apply', block_size=None, digests=None, dest='/nonexistent/d', sha256='ab' * 32), 'delta: %(tmp)s/new is not a regular file'),
    (dict(operation='apply', block_size=None, digests=None, delta='%(tmp)s/delta', dest='%(tmp)s/d', sha256='AB' * 32),
     "sha256: must be 64 lower-case hex digits (got '%s')" % ('AB' * 32)),
    (dict(operation='apply', block_size=None, digests=None, delta='%(tmp)s/delta', dest='%(tmp)s/d', sha256='ab' * 32, mode='rw'),
     "mode: must be an octal mode such as '0600' (got 'rw')"),
    (dict(operation='apply', block_size=None, digests=None, delta='%(tmp)s/delta', dest='%(tmp)s/delta', sha256='ab' * 32),
     'path, delta and dest: must be three different files'),
    (dict(operation='apply', block_size=None, digests=None, delta='%(tmp)s/delta', sha256='ab' * 32), 'dest: required when operation is apply'),
])
def test_requests_refused(tmp_path, params, message):
    params = {key: value % dict(tmp=tmp_path) if isinstance(value, str) else value for key, value in params.items()}
    with pytest.raises(DeltaError) as caught:
        request(tmp_path, **params)
    assert str(caught.value).startswith(message % dict(tmp=tmp_path))


def test_requests_accepted(tmp_path):
    assert request(tmp_path)['digests'] == []
    applied = request(tmp_path, operation='apply', block_size=None, digests=None, delta=str(tmp_path / 'delta'),
                      dest=str(tmp_path / 'dest'), sha256='ab' * 32, mode='0640')
    assert applied['mode'] == 0o640 and applied['dest'] == str(tmp_path / 'dest')
