# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""A disk image sent as the blocks that changed since a copy was made (vmm_disk_delta).

The target digests its copy block by block (``digest``); the source writes the blocks whose sha256 differs, and its
final length, into a delta file (``delta``); the target patches its copy with it and renames it onto the destination
only when the result has the expected sha256 (``apply``).

Delta file: the magic ``VMMDELTA1\\n``, then a header of block size, final length, number of blocks (three unsigned
64-bit big-endian integers) and the final file's sha256 (32 bytes); then per block its index (64-bit) and length
(32-bit) and its bytes. Standard library only: it runs on the vmm host's python3.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import tempfile

MAGIC = b'VMMDELTA1\n'
HEADER = struct.Struct('>QQQ32s')
ENTRY = struct.Struct('>QI')
MIN_BLOCK = 4096
MAX_BLOCK = 16 * 1024 * 1024
MAX_DIGESTS = 16384
DIGEST = re.compile(r'[0-9a-f]{64}')
OPERATIONS = ('digest', 'delta', 'apply')
CHUNK = 1024 * 1024


class DeltaError(Exception):
    """A request or a delta file that cannot be used; the message names the parameter or the file."""


def validate_block_size(block_size):
    if isinstance(block_size, bool) or not isinstance(block_size, int) or not MIN_BLOCK <= block_size <= MAX_BLOCK \
            or block_size & (block_size - 1):
        raise DeltaError('block_size: must be a power of two from %d to %d (got %r)' % (MIN_BLOCK, MAX_BLOCK, block_size))
    return block_size


def validate_path(option, path, must_exist=False):
    if not isinstance(path, str) or not path.startswith('/'):
        raise DeltaError('%s: must be an absolute path (got %r)' % (option, path))
    if must_exist and not os.path.isfile(path):
        raise DeltaError('%s: %s is not a regular file' % (option, path))
    if not must_exist and not os.path.isdir(os.path.dirname(path)):
        raise DeltaError('%s: the directory of %s does not exist' % (option, path))
    return path


def validate_digests(digests):
    if not isinstance(digests, list):
        raise DeltaError('digests: must be a list of sha256 hex digests (got %r)' % type(digests).__name__)
    for index, digest in enumerate(digests):
        if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
            raise DeltaError('digests: item %d must be 64 lower-case hex digits (a sha256), got %r' % (index, digest))
    return digests


def validate_sha256(sha256):
    if not isinstance(sha256, str) or not DIGEST.fullmatch(sha256):
        raise DeltaError('sha256: must be 64 lower-case hex digits (got %r)' % (sha256,))
    return sha256


def validate_request(params):
    """The module's parameters checked for their operation: a dict of what it needs."""
    operation = params.get('operation')
    if operation not in OPERATIONS:
        raise DeltaError('operation: must be one of %s (got %r)' % (', '.join(OPERATIONS), operation))
    request = dict(operation=operation, path=validate_path('path', params.get('path'), must_exist=True))
    needed = dict(digest=('block_size',), delta=('block_size', 'digests', 'delta'), apply=('delta', 'dest', 'sha256'))
    unused = dict(digest=('digests', 'delta', 'dest', 'sha256', 'mode'), delta=('dest', 'sha256', 'mode'), apply=('digests',))
    for option in needed[operation]:
        if params.get(option) is None:
            raise DeltaError('%s: required when operation is %s' % (option, operation))
    for option in unused[operation]:
        if params.get(option) is not None:
            raise DeltaError('%s: not used when operation is %s' % (option, operation))
    if operation in ('digest', 'delta'):
        request['block_size'] = validate_block_size(params['block_size'])
    if operation == 'delta':
        request['digests'] = validate_digests(params['digests'])
        request['delta'] = validate_path('delta', params['delta'])
        if request['delta'] == request['path']:
            raise DeltaError('delta: must not be path (%s)' % request['path'])
    if operation == 'apply':
        request['delta'] = validate_path('delta', params['delta'], must_exist=True)
        request['dest'] = validate_path('dest', params['dest'])
        request['sha256'] = validate_sha256(params['sha256'])
        mode = params.get('mode')
        if mode is not None and not re.fullmatch(r'0?[0-7]{3}', str(mode)):
            raise DeltaError("mode: must be an octal mode such as '0600' (got %r)" % (mode,))
        request['mode'] = None if mode is None else int(str(mode), 8)
        if len({request['path'], request['delta'], request['dest']}) != 3:
            raise DeltaError('path, delta and dest: must be three different files')
    return request


def _blocks(handle, block_size):
    while True:
        data = handle.read(block_size)
        if not data:
            return
        yield data


def digest_block_size(size, block_size):
    """``block_size``, doubled (up to MAX_BLOCK) until a file of ``size`` bytes has at most MAX_DIGESTS blocks: the
    digests go through Ansible twice (registered, then the delta's argument), and 64 KiB blocks would give a 20 GiB
    overlay 327,680 of them (about 21 MB of JSON); 2 MiB blocks give it 10,240."""
    while block_size < MAX_BLOCK and -(-size // block_size) > MAX_DIGESTS:
        block_size *= 2
    return block_size


def digest(path, block_size):
    """{'size', 'block_size', 'digests'}: the sha256 of each block of ``path`` (the last one may be shorter), in
    blocks of ``block_size`` or larger (digest_block_size); the delta must be made with the block_size returned."""
    block_size = digest_block_size(os.path.getsize(path), block_size)
    with open(path, 'rb') as handle:
        digests = [hashlib.sha256(data).hexdigest() for data in _blocks(handle, block_size)]
    return dict(size=os.path.getsize(path), block_size=block_size, digests=digests)


def _temporary(path):
    fd, temp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=os.path.dirname(path))
    return os.fdopen(fd, 'wb'), temp


def make_delta(path, block_size, digests, delta_path, write=True):
    """Write the blocks of ``path`` whose sha256 is not ``digests``' at the same index into ``delta_path`` (a
    temporary file renamed into place). Returns {'size', 'sha256', 'blocks', 'blocks_changed', 'bytes'}; with
    write=False only reads ``path`` and writes nothing."""
    whole = hashlib.sha256()
    handle, temp = _temporary(delta_path) if write else (None, None)
    try:
        changed = total = size = written = 0
        if handle:
            handle.write(MAGIC + HEADER.pack(block_size, 0, 0, b'\0' * 32))
        with open(path, 'rb') as source:
            for index, data in enumerate(_blocks(source, block_size)):
                whole.update(data)
                total += 1
                size += len(data)
                if index < len(digests) and hashlib.sha256(data).hexdigest() == digests[index]:
                    continue
                changed += 1
                written += ENTRY.size + len(data)
                if handle:
                    handle.write(ENTRY.pack(index, len(data)) + data)
        length = len(MAGIC) + HEADER.size + written
        if handle:
            handle.seek(len(MAGIC))
            handle.write(HEADER.pack(block_size, size, changed, whole.digest()))
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), 0o600)
            handle.close()
            os.rename(temp, delta_path)
    except BaseException:
        if handle:
            handle.close()
            if os.path.exists(temp):
                os.unlink(temp)
        raise
    return dict(size=size, sha256=whole.hexdigest(), blocks=total, blocks_changed=changed, bytes=length)


def read_delta(delta_path):
    """The delta file's header and its entries (index, offset of the bytes in the file, length), each checked: a
    damaged or cut delta is refused before anything is written."""
    problem = 'delta: %s is not a complete delta file (%%s)' % delta_path
    with open(delta_path, 'rb') as handle:
        if handle.read(len(MAGIC)) != MAGIC:
            raise DeltaError(problem % 'no VMMDELTA1 header')
        header = handle.read(HEADER.size)
        if len(header) != HEADER.size:
            raise DeltaError(problem % 'its header is cut')
        block_size, size, count, sha256 = HEADER.unpack(header)
        try:
            validate_block_size(block_size)
        except DeltaError:
            raise DeltaError(problem % 'block size %d' % block_size)
        entries, last, offset = [], -1, len(MAGIC) + HEADER.size
        for dummy in range(count):
            raw = handle.read(ENTRY.size)
            if len(raw) != ENTRY.size:
                raise DeltaError(problem % 'it ends after %d of %d blocks' % (len(entries), count))
            index, length = ENTRY.unpack(raw)
            end = min(size, (index + 1) * block_size)
            if index <= last or index * block_size >= size or length != end - index * block_size:
                raise DeltaError(problem % 'block %d of %d bytes is out of order or does not fit a %d-byte file' % (index, length, size))
            offset += ENTRY.size
            entries.append((index, offset, length))
            offset += length
            last = index
            if offset > os.path.getsize(delta_path):
                raise DeltaError(problem % 'it ends inside block %d' % index)
            handle.seek(offset)
        if handle.read(1) or os.path.getsize(delta_path) != offset:
            raise DeltaError(problem % 'its size is not what its blocks make')
    return dict(block_size=block_size, size=size, sha256=sha256.hex(), entries=entries)


def apply_delta(path, delta_path, dest, sha256, mode=None, write=True):
    """Patch ``path`` (the pre-copied file) in place with the delta, check that it has ``sha256``, and only then
    rename it onto ``dest`` and remove the delta. On a wrong sha256 ``dest`` is untouched and the patched file
    (no longer the pre-copy) is removed, so a new run copies the whole file."""
    delta = read_delta(delta_path)
    if delta['sha256'] != sha256:
        raise DeltaError('sha256: %s was made from a file with sha256 %s, not %s; nothing was written (%s untouched)'
                         % (delta_path, delta['sha256'], sha256, dest))
    result = dict(size=delta['size'], sha256=sha256, block_size=delta['block_size'], blocks_changed=len(delta['entries']), bytes=os.path.getsize(delta_path))
    if not write:
        return result
    with open(delta_path, 'rb') as source, open(path, 'r+b') as target:
        for index, offset, length in delta['entries']:
            source.seek(offset)
            data = source.read(length)
            if len(data) != length:
                raise DeltaError('delta: %s ends inside block %d' % (delta_path, index))
            target.seek(index * delta['block_size'])
            target.write(data)
        target.truncate(delta['size'])
        target.flush()
        os.fsync(target.fileno())
        if mode is not None:
            os.fchmod(target.fileno(), mode)
    whole = hashlib.sha256()
    with open(path, 'rb') as patched:
        for data in _blocks(patched, CHUNK):
            whole.update(data)
    if whole.hexdigest() != sha256:
        os.unlink(path)
        raise DeltaError('sha256: %s patched with %s has sha256 %s, not %s; %s was left untouched and the patched file '
                         'removed (a new run copies the whole file)' % (path, delta_path, whole.hexdigest(), sha256, dest))
    os.rename(path, dest)
    os.unlink(delta_path)
    return result
