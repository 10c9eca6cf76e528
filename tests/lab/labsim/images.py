"""Disk images for the lab: `vmctl create` and guest-visible data in raw and qcow2 images.

Everything here follows ../shared/reference/qcow2-facts.md and the `vmctl create`
section of vmctl-facts.md (vmctl main.c 1.90, vmctl.c 1.98, vioqcow2.c 1.25,
vioraw.c).  qcow2 is written natively, the way vmctl/vmd write it; qemu-img is
only used by the tests, as the independent checker.
"""

import errno
import os
import stat
import struct
import sys

from labsim.scaled import fmt_scaled, scan_scaled
from labsim.state import strerror

QCOW2_MAGIC = b'QFI\xfb'
CLUSTER_BITS = 16
CLUSTER_SIZE = 1 << CLUSTER_BITS
MIB = 1 << 20
HEADER = struct.Struct('>4sIQIIQIIQQIIQQQQII')  # the 104-byte version 3 header vmd reads
HEADER_LENGTH = HEADER.size
L2_ENTRIES = CLUSTER_SIZE // 8
L1_ENTRY_SPAN = CLUSTER_SIZE * L2_ENTRIES        # 512 MiB of guest data per L1 entry
REFCOUNTS_PER_BLOCK = CLUSTER_SIZE // 2          # 16-bit refcounts
# vmctl sizes the refcount table as ceil(size / 2^47) clusters (clustersz^3 / 2), as the reference says
REFTABLE_ENTRY_SPAN = CLUSTER_SIZE * CLUSTER_SIZE * CLUSTER_SIZE // 2
CHAIN_LIMIT = 4                                  # the disk plus up to 3 bases
FLAG_COPIED = 1 << 63                            # vmd's QCOW2_INPLACE
FLAG_COMPRESSED = 1 << 62
FLAG_ZERO = 1                                    # qemu's "reads as zeros" (v3); vmd never sets it
OFFSET_MASK = 0x00fffffffffffe00

CREATE_USAGE = 'usage:\tvmctl [-v] create [-b base | -i disk] [-s size] disk'


class ImageError(Exception):
    """An image vmd/vmctl cannot use; str() is the message vmd/vmctl logs.

    `fatal` marks errors raised where vmd/vmctl call fatalx() (the process dies
    with the message) rather than warn and fail the open.
    """

    def __init__(self, message, fatal=False):
        super().__init__(message)
        self.fatal = fatal


# ---------------------------------------------------------------------------
# format detection

def split_format_prefix(arg):
    """`raw:path` / `qcow2:path` -> ('raw'|'qcow2', path); anything else -> (None, arg)."""
    for fmt in ('raw', 'qcow2'):
        if arg.startswith(fmt + ':'):
            return fmt, arg[len(fmt) + 1:]
    return None, arg


def _has_qcow2_magic(path):
    try:
        with open(path, 'rb') as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                return False
            return handle.read(len(QCOW2_MAGIC)) == QCOW2_MAGIC
    except OSError:
        return False


def detect_format(path, *, use_extension):
    """'qcow2' or 'raw' for an (unprefixed) path: magic, then extension if asked, then raw.

    vmctl (create target, start -d, create -i) uses the extension; vm.conf does not.
    """
    if _has_qcow2_magic(path):
        return 'qcow2'
    if use_extension:
        extension = os.path.basename(path).rpartition('.')
        if extension[1] and extension[2]:
            if extension[2].lower() == 'raw':
                return 'raw'
            if extension[2].lower() == 'qcow2':
                return 'qcow2'
    return 'raw'


def _vmctl_disktype(arg):
    """vmctl's parse_disktype(): (format, path without prefix)."""
    fmt, path = split_format_prefix(arg)
    if fmt:
        return fmt, path
    if _has_qcow2_magic(path):
        return 'qcow2', path
    # strrchr(s, '.') on the whole argument, directories included
    dot = path.rfind('.')
    if dot != -1 and dot + 1 < len(path):
        extension = path[dot + 1:].lower()
        if extension in ('raw', 'qcow2'):
            return extension, path
    return 'raw', path


# ---------------------------------------------------------------------------
# qcow2 structures

def _align(value, alignment):
    return (value + alignment - 1) // alignment * alignment


def _read_header(handle):
    raw = os.pread(handle, HEADER_LENGTH, 0)
    if len(raw) != HEADER_LENGTH:
        raise ImageError('short read on header')
    fields = HEADER.unpack(raw)
    names = ('magic', 'version', 'backing_file_offset', 'backing_file_size', 'cluster_bits', 'size',
             'crypt_method', 'l1_size', 'l1_table_offset', 'refcount_table_offset',
             'refcount_table_clusters', 'nb_snapshots', 'snapshots_offset', 'incompatible_features',
             'compatible_features', 'autoclear_features', 'refcount_order', 'header_length')
    return dict(zip(names, fields))


def qcow2_layout(size):
    """Offsets vmctl computes for a new qcow2 image of `size` bytes."""
    l1_offset = _align(HEADER_LENGTH, CLUSTER_SIZE)
    l1_size = (size + L1_ENTRY_SPAN - 1) // L1_ENTRY_SPAN
    refcount_table_offset = _align(l1_offset + 8 * l1_size, CLUSTER_SIZE)
    refcount_table_clusters = (size + REFTABLE_ENTRY_SPAN - 1) // REFTABLE_ENTRY_SPAN
    refcount_block_offset = _align(refcount_table_offset + refcount_table_clusters * CLUSTER_SIZE, CLUSTER_SIZE)
    return {
        'l1_table_offset': l1_offset,
        'l1_size': l1_size,
        'refcount_table_offset': refcount_table_offset,
        'refcount_table_clusters': refcount_table_clusters,
        'refcount_block_offset': refcount_block_offset,
        'file_length': refcount_block_offset + CLUSTER_SIZE,
    }


class _Qcow2:
    """One open qcow2 file: lookups, reads and (for the top image) writes like vmd's vioqcow2."""

    def __init__(self, path, writable=False):
        self.path = path
        self.fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        try:
            self._load()
        except BaseException:
            os.close(self.fd)
            raise

    def _load(self):
        header = _read_header(self.fd)
        if header['magic'] != QCOW2_MAGIC:
            raise ImageError('invalid magic numbers', fatal=True)
        unknown = header['incompatible_features'] & ~3
        if unknown:
            raise ImageError('unsupported features %x' % unknown, fatal=True)
        if header['refcount_order'] != 4:
            raise ImageError('unsupported refcount size', fatal=True)
        if header['version'] not in (2, 3):
            raise ImageError('qc2_open: unknown qcow2 version %d' % header['version'], fatal=True)
        self.header = header
        self.cluster_size = 1 << header['cluster_bits']
        self.size = header['size']
        self.l1_offset = header['l1_table_offset']
        raw = os.pread(self.fd, 8 * header['l1_size'], self.l1_offset)
        if len(raw) != 8 * header['l1_size']:
            raise ImageError('qc2_open: unable to read qcow2 L1 table', fatal=True)
        self.l1 = list(struct.unpack('>%dQ' % header['l1_size'], raw))
        self.refcount_table_offset = header['refcount_table_offset']
        self.refcount_table_entries = header['refcount_table_clusters'] * self.cluster_size // 8
        self.end = os.fstat(self.fd).st_size

    def close(self):
        os.close(self.fd)

    def _read_u64(self, offset):
        return struct.unpack('>Q', os.pread(self.fd, 8, offset).ljust(8, b'\0'))[0]

    def _write_u64(self, offset, value):
        os.pwrite(self.fd, struct.pack('>Q', value), offset)

    def l2_entry(self, cluster_index):
        """The raw L2 entry for a guest cluster, or None when beyond the L1 table."""
        l1_index, l2_index = divmod(cluster_index, self.cluster_size // 8)
        if l1_index >= len(self.l1):
            return None
        l2_offset = self.l1[l1_index] & OFFSET_MASK
        if not l2_offset:
            return 0
        return self._read_u64(l2_offset + 8 * l2_index)

    def lookup(self, cluster_index):
        """('data', host offset) | ('zero', None) | ('none', None) for one guest cluster."""
        entry = self.l2_entry(cluster_index)
        if not entry:
            return 'none', None
        if entry & FLAG_COMPRESSED:
            raise ImageError('xlate: compressed clusters unsupported', fatal=True)
        if entry & FLAG_ZERO:
            return 'zero', None
        if entry & OFFSET_MASK:
            return 'data', entry & OFFSET_MASK
        return 'none', None

    def allocated_clusters(self):
        """Guest cluster indexes this file maps (data or zero entries)."""
        per_table = self.cluster_size // 8
        found = []
        for l1_index, l1_entry in enumerate(self.l1):
            l2_offset = l1_entry & OFFSET_MASK
            if not l2_offset:
                continue
            table = struct.unpack('>%dQ' % per_table, os.pread(self.fd, self.cluster_size, l2_offset).ljust(self.cluster_size, b'\0'))
            found.extend(l1_index * per_table + i for i, entry in enumerate(table) if entry)
        return found

    # --- allocation (top image only) -------------------------------------

    def _allocate_cluster(self):
        """Append a zeroed cluster, refcount 1; returns its host offset."""
        offset = _align(self.end, self.cluster_size)
        self.end = offset + self.cluster_size
        os.ftruncate(self.fd, self.end)
        self._set_refcount(offset // self.cluster_size, 1)
        return offset

    def _set_refcount(self, host_cluster, value):
        per_block = self.cluster_size // 2
        table_index, block_index = divmod(host_cluster, per_block)
        if table_index >= self.refcount_table_entries:
            raise ImageError('%s: refcount table full' % self.path)
        entry_offset = self.refcount_table_offset + 8 * table_index
        block = self._read_u64(entry_offset) & OFFSET_MASK
        if not block:
            # a new refcount block; it covers (and counts) itself when it lands in its own range
            block = _align(self.end, self.cluster_size)
            self.end = block + self.cluster_size
            os.ftruncate(self.fd, self.end)
            self._write_u64(entry_offset, block)
            self._set_refcount(block // self.cluster_size, 1)
        os.pwrite(self.fd, struct.pack('>H', value), block + 2 * block_index)

    def _writable_cluster(self, cluster_index, chain, full):
        """Host offset of a private (refcount 1) cluster for a guest cluster, allocating like vmd."""
        per_table = self.cluster_size // 8
        l1_index, l2_index = divmod(cluster_index, per_table)
        l1_entry = self.l1[l1_index]
        l2_offset = l1_entry & OFFSET_MASK
        entry = self._read_u64(l2_offset + 8 * l2_index) if l2_offset else 0
        if l2_offset and not l1_entry & FLAG_COPIED:
            raise ImageError('%s: shared L2 tables (internal snapshots) are not supported' % self.path)
        if entry & FLAG_COMPRESSED:
            raise ImageError('xlate: compressed clusters unsupported', fatal=True)
        host = entry & OFFSET_MASK
        if host and entry & FLAG_COPIED and not entry & FLAG_ZERO:
            return host
        # what the guest sees there now, to keep the bytes the write does not cover
        old = None if full else read_chain_cluster(chain, cluster_index)
        if not l2_offset:
            l2_offset = self._allocate_cluster()
            self.l1[l1_index] = l2_offset | FLAG_COPIED
            self._write_u64(self.l1_offset + 8 * l1_index, self.l1[l1_index])
        if not (host and entry & FLAG_COPIED):
            host = self._allocate_cluster()
        if old is not None and old.count(0) != len(old):
            os.pwrite(self.fd, old, host)
        elif entry & FLAG_ZERO:
            os.pwrite(self.fd, bytes(self.cluster_size), host)
        self._write_u64(l2_offset + 8 * l2_index, host | FLAG_COPIED)
        return host

    def write(self, offset, data, chain):
        if offset < 0 or offset + len(data) > self.size:
            raise ImageError('%s: write beyond the end of the disk' % self.path)
        done = 0
        while done < len(data):
            cluster_index, within = divmod(offset + done, self.cluster_size)
            chunk = data[done:done + self.cluster_size - within]
            host = self._writable_cluster(cluster_index, chain, full=(within == 0 and len(chunk) == self.cluster_size))
            os.pwrite(self.fd, chunk, host + within)
            done += len(chunk)


def read_chain_cluster(chain, cluster_index):
    """Guest-visible content of one cluster through a chain of open _Qcow2 (top first)."""
    for image in chain:
        kind, host = image.lookup(cluster_index)
        if kind == 'data':
            return os.pread(image.fd, image.cluster_size, host).ljust(image.cluster_size, b'\0')
        if kind == 'zero':
            break
    return bytes(chain[0].cluster_size)


def _read_chain(chain, offset, length):
    top = chain[0]
    if offset < 0 or length < 0 or offset + length > top.size:
        raise ImageError('%s: read beyond the end of the disk' % top.path)
    parts = []
    done = 0
    while done < length:
        cluster_index, within = divmod(offset + done, top.cluster_size)
        take = min(top.cluster_size - within, length - done)
        parts.append(read_chain_cluster(chain, cluster_index)[within:within + take])
        done += take
    return b''.join(parts)


# ---------------------------------------------------------------------------
# backing chains

def _stored_backing(handle):
    header = _read_header(handle)
    if header['magic'] != QCOW2_MAGIC:
        raise ImageError('invalid magic numbers')
    if header['backing_file_size'] == 0:
        return None
    if header['backing_file_size'] >= 1024 - 1:  # PATH_MAX
        raise ImageError('snapshot path too long')
    raw = os.pread(handle, header['backing_file_size'], header['backing_file_offset'])
    if len(raw) != header['backing_file_size']:
        raise ImageError('could not read snapshot base name')
    return os.fsdecode(raw)


def backing_file(path):
    """The backing path stored in a qcow2 image, verbatim; None for raw or no base."""
    if not _has_qcow2_magic(path):
        return None
    handle = os.open(path, os.O_RDONLY)
    try:
        return _stored_backing(handle)
    finally:
        os.close(handle)


def _resolve_base(stored, referencing):
    """vmd's virtio_qcow2_get_base(): absolute via realpath, relative to the referencing image's directory."""
    joined = stored if stored.startswith('/') else os.path.join(os.path.dirname(referencing), stored)
    resolved = os.path.realpath(joined)
    if not os.path.exists(resolved):
        raise ImageError('unable to resolve %s' % stored)
    return resolved


def _chain_paths(path, relative_to_top=False):
    """Resolved paths of a qcow2 image and its bases, top first, at most CHAIN_LIMIT.

    vmctl create -i resolves every relative base against the top image (it passes the
    top path to virtio_qcow2_get_base at each level); vmd uses the referencing image.
    """
    top = os.path.realpath(path)
    paths = [top]
    while True:
        handle = os.open(paths[-1], os.O_RDONLY)
        try:
            stored = _stored_backing(handle)
        finally:
            os.close(handle)
        if stored is None:
            return paths
        if len(paths) == CHAIN_LIMIT:
            raise ImageError('qc2_open: missing base image %s' % stored, fatal=True)
        paths.append(_resolve_base(stored, top if relative_to_top else paths[-1]))


def backing_chain(path):
    """Resolved paths of the image and its backing files, top first (one entry for raw)."""
    if not _has_qcow2_magic(path):
        return [os.path.realpath(path)]
    return _chain_paths(path)


def _open_chain(path, writable=False, relative_to_top=False):
    paths = _chain_paths(path, relative_to_top)
    chain = []
    try:
        for index, image_path in enumerate(paths):
            try:
                chain.append(_Qcow2(image_path, writable=writable and index == 0))
            except OSError as exc:
                raise ImageError('open_imagefile: failed to open base %s: %s' % (image_path, strerror(exc.errno)))
            if index and chain[index].cluster_size != chain[0].cluster_size:
                raise ImageError('qc2_open: all disk parts must share clustersize', fatal=True)
    except BaseException:
        for image in chain:
            image.close()
        raise
    return chain


def _close_chain(chain):
    for image in chain:
        image.close()


def virtual_size(path):
    """Guest-visible size: the qcow2 header's size, or the raw file's size."""
    if _has_qcow2_magic(path):
        handle = os.open(path, os.O_RDONLY)
        try:
            return _read_header(handle)['size']
        finally:
            os.close(handle)
    handle = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(handle, 0, os.SEEK_END)
    finally:
        os.close(handle)


def check_disk(path, fmt):
    """What vmd says when it cannot open `path` as `fmt` ('raw'/'qcow2') at VM start; None if usable."""
    try:
        if fmt != 'qcow2':
            os.close(os.open(path, os.O_RDONLY))
            return None
        _close_chain(_open_chain(path))
    except ImageError as exc:
        return str(exc)
    except OSError as exc:
        return '%s: %s' % (path, strerror(exc.errno))
    return None


# ---------------------------------------------------------------------------
# guest-visible data

def read_data(path, offset, length):
    """Bytes the guest reads at `offset`; qcow2 reads fall through the backing chain."""
    if _has_qcow2_magic(path):
        chain = _open_chain(path)
        try:
            return _read_chain(chain, offset, length)
        finally:
            _close_chain(chain)
    size = virtual_size(path)
    if offset < 0 or length < 0 or offset + length > size:
        raise ImageError('%s: read beyond the end of the disk' % path)
    handle = os.open(path, os.O_RDONLY)
    try:
        return os.pread(handle, length, offset).ljust(length, b'\0')
    finally:
        os.close(handle)


def write_data(path, offset, data):
    """Write guest data; qcow2 writes go to the top image, allocating clusters like vmd."""
    data = bytes(data)
    if _has_qcow2_magic(path):
        chain = _open_chain(path, writable=True)
        try:
            chain[0].write(offset, data, chain)
        finally:
            _close_chain(chain)
        return
    size = virtual_size(path)
    if offset < 0 or offset + len(data) > size:
        raise ImageError('%s: write beyond the end of the disk' % path)
    handle = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(handle, data, offset)
    finally:
        os.close(handle)


# ---------------------------------------------------------------------------
# creation (vioraw.c / vioqcow2.c create functions)

class _Exit(Exception):
    """errx()/err(): the message is printed, vmctl exits 1."""


def _warnx(message):
    sys.stderr.write('vmctl: %s\n' % message)
    sys.stderr.flush()


def _errx(message):
    _warnx(message)
    raise _Exit()


def _usage():
    sys.stderr.write(CREATE_USAGE + '\n')
    sys.stderr.flush()
    raise _Exit()


def _create_raw(path, size, disk_full):
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_EXCL, 0o600)
    except OSError as exc:
        return exc.errno
    try:
        if disk_full:
            raise OSError(errno.ENOSPC, strerror(errno.ENOSPC))
        os.ftruncate(handle, size)
    except OSError as exc:
        os.close(handle)
        os.unlink(path)
        return exc.errno
    os.close(handle)
    return 0


def _create_qcow2(path, base, size, disk_full):
    if base is not None:
        try:
            with open(base, 'rb') as handle:
                raw = handle.read(HEADER_LENGTH)
        except OSError:
            raw = b''
        if len(raw) != HEADER_LENGTH:
            _errx('failure to read base image header')
        base_header = dict(zip(('magic', 'size'), (raw[:4], struct.unpack('>Q', raw[24:32])[0])))
        if base_header['magic'] != QCOW2_MAGIC:
            _errx('base image is not a qcow2 file')
        if not size:
            size = base_header['size']
        elif size != base_header['size']:
            _errx('base size does not match requested size')
    if base is None and not size:
        _errx('missing disk size')
    layout = qcow2_layout(size)
    base_bytes = os.fsencode(base) if base is not None else b''
    # the 32-bit fields are truncated like htobe32() does; such sizes then fail with ERANGE below
    header = HEADER.pack(
        QCOW2_MAGIC, 3, HEADER_LENGTH if base is not None else 0, len(base_bytes) & 0xffffffff, CLUSTER_BITS, size,
        0, layout['l1_size'] & 0xffffffff, layout['l1_table_offset'], layout['refcount_table_offset'],
        layout['refcount_table_clusters'] & 0xffffffff, 0, 0, 0, 0, 0, 4, HEADER_LENGTH)
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_EXCL, 0o600)
    except OSError as exc:
        return exc.errno
    try:
        if disk_full:
            raise OSError(errno.ENOSPC, strerror(errno.ENOSPC))
        os.write(handle, header + base_bytes)
        os.ftruncate(handle, layout['file_length'])
        metadata_clusters = layout['refcount_block_offset'] // CLUSTER_SIZE
        if metadata_clusters > CLUSTER_SIZE // 2:
            # the initial metadata would need more than one refcount block
            raise OSError(errno.ERANGE, strerror(errno.ERANGE))
        os.pwrite(handle, struct.pack('>Q', layout['refcount_block_offset']), layout['refcount_table_offset'])
        os.pwrite(handle, struct.pack('>H', 1) * (metadata_clusters + 1), layout['refcount_block_offset'])
    except OSError as exc:
        os.close(handle)
        os.unlink(path)
        return exc.errno
    os.close(handle)
    return 0


def _create_imagefile(fmt, path, base, size, disk_full):
    if fmt == 'qcow2':
        return _create_qcow2(path, base, size, disk_full)
    return _create_raw(path, size, disk_full)


# ---------------------------------------------------------------------------
# create -i: ctl_convert()

def _raw_data_blocks(handle, size):
    """64 KiB block indexes of a raw file that may hold data (holes read as zeros)."""
    blocks = []
    offset = 0
    while offset < size:
        try:
            start = os.lseek(handle, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break
            start = offset  # no SEEK_DATA support: look at everything
            stop = size
        else:
            stop = os.lseek(handle, start, os.SEEK_HOLE)
        first, last = start // CLUSTER_SIZE, (min(stop, size) - 1) // CLUSTER_SIZE
        if blocks and blocks[-1] >= first:
            first = blocks[-1] + 1
        blocks.extend(range(first, last + 1))
        offset = stop
    return blocks


class _Source:
    def __init__(self, fmt, path):
        self.fmt = fmt
        self.chain = None
        self.fd = None
        if fmt == 'qcow2':
            os.close(os.open(path, os.O_RDONLY))
            self.chain = _open_chain(path, relative_to_top=True)
            self.size = self.chain[0].size
        else:
            self.fd = os.open(path, os.O_RDONLY)
            self.size = os.lseek(self.fd, 0, os.SEEK_END)

    def blocks(self):
        if self.chain:
            clusters = set()
            for image in self.chain:
                clusters.update(image.allocated_clusters())
            return sorted(c for c in clusters if c * CLUSTER_SIZE < self.size)
        return _raw_data_blocks(self.fd, self.size)

    def read(self, offset, length):
        if self.chain:
            return _read_chain(self.chain, offset, length)
        return os.pread(self.fd, length, offset).ljust(length, b'\0')

    def close(self):
        if self.chain:
            _close_chain(self.chain)
        if self.fd is not None:
            os.close(self.fd)


def _convert(source_arg, dst_path, dst_fmt, size, disk_full):
    src_fmt, src_path = _vmctl_disktype(source_arg)
    try:
        source = _Source(src_fmt, src_path)
    except ImageError as exc:
        if exc.fatal:
            _errx(str(exc))
        _warnx(str(exc))
        _errx('failed to open source image file')
    except OSError:
        _errx('failed to open source image file')
    try:
        dst_size_wanted = size or source.size
        if dst_size_wanted < source.size:
            _errx('size cannot be smaller than input disk size')
        dst_size = _align(dst_size_wanted, MIB)
        if _create_imagefile(dst_fmt, dst_path, None, dst_size, disk_full) != 0:
            _errx('failed to create destination image file')
        try:
            if dst_fmt == 'qcow2':
                target = _Qcow2(dst_path, writable=True)
                target_chain = [target]
            else:
                target = os.open(dst_path, os.O_RDWR)
        except (OSError, ImageError):
            _errx('failed to open destination image file')
        try:
            zero = bytes(CLUSTER_SIZE)
            for block in source.blocks():
                offset = block * CLUSTER_SIZE
                if offset >= dst_size:
                    break
                length = min(CLUSTER_SIZE, source.size - offset)
                try:
                    buf = source.read(offset, length).ljust(CLUSTER_SIZE, b'\0')
                except (OSError, ImageError):
                    _errx('failed to read from source')
                if buf == zero:
                    continue  # sparse: zero blocks are not written
                try:
                    if dst_fmt == 'qcow2':
                        target.write(offset, buf, target_chain)
                    else:
                        os.pwrite(target, buf, offset)
                except (OSError, ImageError):
                    _errx('failed to write to destination')
        finally:
            if dst_fmt == 'qcow2':
                target.close()
            else:
                os.close(target)
        if dst_size_wanted < dst_size:
            _warnx('destination size rounded to %d megabytes' % (dst_size // MIB))
    finally:
        source.close()
    _warnx('%s imagefile created' % dst_fmt)


# ---------------------------------------------------------------------------
# vmctl create

def _getopt(argv, optstring):
    """OpenBSD getopt(3) without permutation; yields (option, optarg), then sets .optind on argv holder."""
    state = {'optind': 1}

    def generator():
        while state['optind'] < len(argv):
            word = argv[state['optind']]
            if not word.startswith('-') or word == '-':
                return
            if word == '--':
                state['optind'] += 1
                return
            pos = 1
            while pos < len(word):
                char = word[pos]
                pos += 1
                spec = optstring.find(char) if char != ':' else -1
                if spec == -1:
                    if pos >= len(word):
                        state['optind'] += 1
                    sys.stderr.write('vmctl: unknown option -- %s\n' % char)
                    yield '?', None
                    if pos >= len(word):
                        break
                    continue
                if optstring[spec + 1:spec + 2] != ':':
                    if pos >= len(word):
                        state['optind'] += 1
                    yield char, None
                    continue
                if pos < len(word):
                    optarg = word[pos:]
                    state['optind'] += 1
                elif state['optind'] + 1 < len(argv):
                    optarg = argv[state['optind'] + 1]
                    state['optind'] += 2
                else:
                    state['optind'] += 1
                    sys.stderr.write('vmctl: option requires an argument -- %s\n' % char)
                    yield '?', None
                    return
                yield char, optarg
                break
    return generator(), state


def _parse_disk_size(word):
    """vmctl's parse_size(res, word, "disk"): bytes rounded down to a MiB multiple."""
    try:
        value = scan_scaled(word)
    except OSError as exc:
        _errx('invalid disk size: %s: %s' % (word, strerror(exc.errno)))
    if value < MIB:
        _errx('disk size must be at least 1MB')
    rounded = value // MIB * MIB
    if rounded != value:
        _warnx('disk size rounded to %s' % fmt_scaled(rounded))  # rounded >= 1 MiB: no ERANGE
    return rounded


def _ctl_create(args, disk_full):
    argv = ['create'] + list(args)
    base = source = None
    size = 0
    options, state = _getopt(argv, 'b:i:s:')
    for option, optarg in options:
        if option == 'b':
            base = optarg
        elif option == 'i':
            source = optarg
        elif option == 's':
            size = _parse_disk_size(optarg)
        else:
            _usage()
    positional = argv[state['optind']:]
    if len(positional) != 1:
        _usage()
    fmt, disk = _vmctl_disktype(positional[0])
    if source is not None:
        if base is not None:
            _errx('conflicting -b and -i arguments')
        _convert(source, disk, fmt, size, disk_full)
        return
    if base is not None and fmt != 'qcow2':
        _errx('base images require qcow2 disk format')
    if size == 0 and base is None:
        sys.stderr.write('could not create %s: missing size argument\n' % disk)
        _usage()
    result = _create_imagefile(fmt, disk, base, size, disk_full)
    if result:
        _errx('create imagefile operation failed: %s' % strerror(result))
    _warnx('%s imagefile created' % fmt)


def vmctl_create(args, *, disk_full=False):
    """Everything `vmctl create` does with the words after `create`; messages on stderr; exit code."""
    try:
        _ctl_create(args, disk_full)
    except _Exit:
        return 1
    return 0
