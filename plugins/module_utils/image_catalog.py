# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Golden images and their manifests (<image>.manifest.json, written by playbooks/build_image.yml).

Reads only: what each image is (format, size, base, from its header), its backing chain as vmd opens it
(and whether the manifest's layers name that chain), what its manifest says, whether the file still has
the manifest's sha256 (on request: it reads the whole image), and which overlays are built on it (their
backing chains, as vmd opens them). Standard library only: runs on the vmm host.
"""

from __future__ import annotations

import hashlib
import json
import os

from ansible_collections.openbsd.vmm.plugins.module_utils import disk_image
from ansible_collections.openbsd.vmm.plugins.module_utils import qcow2

MANIFEST_SUFFIX = '.manifest.json'
# A manifest is a few KiB; a larger file is not one (and is not read whole into memory).
MANIFEST_MAX = 1024 * 1024
CHUNK = 1024 * 1024


class CatalogError(Exception):
    """A path that cannot be read as an image or a directory of images."""


def manifest_path(image):
    return image + MANIFEST_SUFFIX


def read_manifest(image):
    """(manifest dict or None, problem text or None) for the manifest beside ``image``."""
    path = manifest_path(image)
    try:
        with open(path, 'rb') as handle:
            data = handle.read(MANIFEST_MAX + 1)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, 'manifest %s cannot be read: %s' % (path, exc.strerror)
    if len(data) > MANIFEST_MAX:
        return None, 'manifest %s is larger than %d bytes: not a manifest' % (path, MANIFEST_MAX)
    try:
        content = json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as exc:
        return None, 'manifest %s is not JSON: %s' % (path, exc)
    if not isinstance(content, dict):
        return None, 'manifest %s is not a JSON object' % path
    return content, None


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def backing_chain(image):
    """(chain, problems): ``image`` and every base below it, as vmd opens them, and what keeps vmd from opening them.

    A relative base is read from the real directory of the image that names it (vioqcow2.c
    virtio_qcow2_get_base). vmd opens at most disk_image.MAX_CHAIN images per disk; a longer chain, a
    loop, a base that is not there or cannot be read are problems. The chain holds the files found.
    """
    chain, problems, seen = [], [], set()
    current, named_by = image, None
    while current is not None:
        real = os.path.realpath(current)
        if real in seen:
            problems.append('the backing chain of %s loops back to %s' % (image, current))
            break
        seen.add(real)
        try:
            backing = qcow2.read_header(current).backing_file if qcow2.is_qcow2(current) else None
        except FileNotFoundError:
            problems.append('base %s of %s does not exist' % (current, named_by))
            break
        except (OSError, qcow2.Qcow2Error) as exc:
            problems.append('%s in the backing chain of %s cannot be read: %s' % (current, image, exc))
            break
        chain.append(current)
        current, named_by = (disk_image.resolve_base(real, backing) if backing else None), current
    if len(chain) > disk_image.MAX_CHAIN:
        problems.append('the backing chain of %s has %d images; vmd opens at most %d per disk'
                        % (image, len(chain), disk_image.MAX_CHAIN))
    return chain, problems


def layer_problems(image, manifest, chain):
    """Does the manifest's ``layers`` (from the base up, each with its ``image``) name the image's backing chain?"""
    layers = (manifest or {}).get('layers')
    if layers is None:
        return []
    if not isinstance(layers, list) or not all(isinstance(layer, dict) and isinstance(layer.get('image'), str) for layer in layers):
        return ['manifest %s: layers is not a list of {image, sha256}' % manifest_path(image)]
    named = [layer['image'] for layer in reversed(layers)]
    if len(named) != len(chain) or not all(disk_image.same_file(first, second) for first, second in zip(named, chain)):
        return ['manifest %s names the layers %s (top first), but the backing chain of %s is %s'
                % (manifest_path(image), ', '.join(named), image, ', '.join(chain))]
    return []


def images_in(paths):
    """The image files ``paths`` name: a file as given, a directory's images that have a manifest beside them."""
    images = []
    for path in paths:
        if os.path.isdir(path):
            for entry in sorted(os.listdir(path)):
                if entry.endswith(MANIFEST_SUFFIX):
                    # a bare ".manifest.json" names the directory itself, which is no file
                    image = os.path.join(path, entry[:-len(MANIFEST_SUFFIX)])
                    if os.path.isfile(image) and image not in images:
                        images.append(image)
        elif os.path.isfile(path):
            if path not in images:
                images.append(path)
        elif os.path.lexists(path):
            raise CatalogError('path: %s is neither an image file nor a directory' % path)
        else:
            raise CatalogError('path: %s does not exist' % path)
    return images


def describe(image, checksum=False, overlay_dirs=None):
    """One image: its header, its manifest, whether it still has the manifest's sha256, its overlays."""
    problems = []
    try:
        found = disk_image.inspect_image(image, name='path')
    except disk_image.DiskError as exc:
        found = None
        problems.append(str(exc))
    manifest, problem = read_manifest(image)
    if problem:
        problems.append(problem)
    intact = None
    if checksum:
        recorded = (manifest or {}).get('sha256')
        if not recorded:
            problems.append('no sha256 in a manifest to check %s against' % image)
        else:
            intact = sha256_of(image) == recorded
            if not intact:
                problems.append('%s no longer has the sha256 its manifest records (%s)' % (image, recorded))
    chain, chain_problems = backing_chain(image) if found else ([], [])
    problems.extend(chain_problems)
    if not chain_problems:
        problems.extend(layer_problems(image, manifest, chain))
    overlays = disk_image.images_based_on(image, directories=overlay_dirs or None)
    return {
        'path': image,
        'format': found.format if found else None,
        'virtual_size': found.size if found else None,
        'base': found.base if found else None,
        'chain': chain,
        'manifest_path': manifest_path(image),
        'manifest': manifest,
        'intact': intact,
        'overlays': overlays,
        'problems': problems,
    }
