# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_catalog: images, their manifests, their sha256 and the overlays built on them."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import image_catalog
from ansible_collections.openbsd.vmm.plugins.module_utils.image_catalog import CatalogError
from ansible_collections.openbsd.vmm.tests.unit.plugins.module_utils.test_qcow2 import write_vmctl_qcow2

MIB = 1024 * 1024
GIB = 1024 * MIB
# sha256 of 1 MiB of zero bytes (sha256sum, written down)
ZERO_MIB_SHA256 = '30e14955ebf1352266dc2ff8067e68104607e750abb9d3b36582b8af909fcb58'


def golden(directory, name='golden.raw', manifest=None):
    image = os.path.join(str(directory), name)
    with open(image, 'wb') as handle:
        handle.truncate(MIB)
    if manifest is not None:
        with open(image + '.manifest.json', 'w', encoding='utf-8') as handle:
            handle.write(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return image


def test_a_directory_lists_the_images_with_a_manifest(tmp_path):
    first = golden(tmp_path, 'a.raw', {'release': '7.8'})
    golden(tmp_path, 'plain.raw')                       # no manifest: not a golden image
    (tmp_path / 'orphan.qcow2.manifest.json').write_text('{}')   # a manifest without its image
    (tmp_path / '.manifest.json').write_text('{}')
    second = golden(tmp_path, 'b.raw', {'release': '7.7'})
    assert image_catalog.images_in([str(tmp_path)]) == [first, second]
    # a file given by name is listed without a manifest, and once
    plain = str(tmp_path / 'plain.raw')
    assert image_catalog.images_in([plain, str(tmp_path), plain]) == [plain, first, second]


def test_paths_that_are_not_there_are_refused(tmp_path):
    with pytest.raises(CatalogError) as caught:
        image_catalog.images_in([str(tmp_path / 'missing.qcow2')])
    assert str(caught.value) == 'path: %s does not exist' % (tmp_path / 'missing.qcow2')
    fifo = str(tmp_path / 'fifo')
    os.mkfifo(fifo)
    with pytest.raises(CatalogError) as caught:
        image_catalog.images_in([fifo])
    assert str(caught.value) == 'path: %s is neither an image file nor a directory' % fifo


def test_describe_reads_header_and_manifest(tmp_path):
    manifest = {'release': '7.8', 'arch': 'amd64', 'sha256': ZERO_MIB_SHA256, 'built_at': '2026-11-30T12:00:00Z'}
    image = golden(tmp_path, manifest=manifest)
    found = image_catalog.describe(image)
    assert found == {'path': image, 'format': 'raw', 'virtual_size': MIB, 'base': None, 'chain': [image],
                     'manifest_path': image + '.manifest.json', 'manifest': manifest, 'intact': None,
                     'overlays': [], 'problems': []}


def test_checksum_says_whether_the_image_is_the_one_described(tmp_path):
    image = golden(tmp_path, manifest={'sha256': ZERO_MIB_SHA256})
    assert image_catalog.describe(image, checksum=True)['intact'] is True
    with open(image, 'r+b') as handle:
        handle.seek(MIB - 1)
        handle.write(b'\x01')
    found = image_catalog.describe(image, checksum=True)
    assert found['intact'] is False
    assert found['problems'] == ['%s no longer has the sha256 its manifest records (%s)' % (image, ZERO_MIB_SHA256)]
    bare = golden(tmp_path, 'bare.raw')
    found = image_catalog.describe(bare, checksum=True)
    assert found['intact'] is None
    assert found['problems'] == ['no sha256 in a manifest to check %s against' % bare]


@pytest.mark.parametrize('text, problem', [
    ('{"release": ', 'is not JSON: '),
    ('["7.8"]', 'is not a JSON object'),
    ('\xff', 'is not JSON: '),
])
def test_an_unreadable_manifest_is_a_problem_not_a_failure(tmp_path, text, problem):
    image = golden(tmp_path)
    with open(image + '.manifest.json', 'wb') as handle:
        handle.write(text.encode('latin-1'))
    found = image_catalog.describe(image)
    assert found['manifest'] is None
    assert len(found['problems']) == 1
    assert found['problems'][0].startswith('manifest %s.manifest.json %s' % (image, problem))


def test_a_manifest_that_cannot_be_read(tmp_path):
    image = golden(tmp_path)
    os.mkdir(image + '.manifest.json')
    found = image_catalog.describe(image)
    assert found['manifest'] is None
    assert found['problems'] == ['manifest %s.manifest.json cannot be read: Is a directory' % image]


def test_a_manifest_too_large_to_be_one(tmp_path):
    image = golden(tmp_path)
    with open(image + '.manifest.json', 'wb') as handle:
        handle.write(b' ' * (image_catalog.MANIFEST_MAX + 1))
    assert image_catalog.describe(image)['problems'] == [
        'manifest %s.manifest.json is larger than 1048576 bytes: not a manifest' % image]
    with open(image + '.manifest.json', 'wb') as handle:
        handle.write(b'{}' + b' ' * (image_catalog.MANIFEST_MAX - 2))   # exactly the limit: read
    assert image_catalog.describe(image)['manifest'] == {}


def test_a_file_that_is_no_image_is_a_problem(tmp_path):
    image = str(tmp_path / 'broken.qcow2')
    with open(image, 'wb') as handle:
        handle.write(b'not qcow2')
    found = image_catalog.describe(image)
    assert found['format'] is None and found['virtual_size'] is None
    assert 'it has no qcow2 header' in found['problems'][0]


def test_overlays_built_on_the_image_here_and_in_other_directories(tmp_path):
    images = tmp_path / 'images'
    vms = tmp_path / 'vms'
    images.mkdir()
    vms.mkdir()
    base = str(images / 'golden.qcow2')
    write_vmctl_qcow2(base, GIB)
    write_vmctl_qcow2(str(images / 'web1.qcow2'), GIB, base='golden.qcow2')    # relative, as vmd reads it
    write_vmctl_qcow2(str(vms / 'db1.qcow2'), GIB, base=base)
    write_vmctl_qcow2(str(vms / 'db2.qcow2'), GIB, base=str(vms / 'db1.qcow2'))   # through db1
    write_vmctl_qcow2(str(vms / 'other.qcow2'), GIB)
    found = image_catalog.describe(base)
    assert found['format'] == 'qcow2' and found['virtual_size'] == GIB and found['base'] is None
    assert found['overlays'] == [str(images / 'web1.qcow2')]
    found = image_catalog.describe(base, overlay_dirs=[str(vms), str(images)])
    assert found['overlays'] == [str(images / 'web1.qcow2'), str(vms / 'db1.qcow2'), str(vms / 'db2.qcow2')]
    assert image_catalog.describe(str(vms / 'db2.qcow2'))['base'] == str(vms / 'db1.qcow2')


def test_the_backing_chain_as_vmd_opens_it(tmp_path):
    images = tmp_path / 'images'
    vms = tmp_path / 'vms'
    images.mkdir()
    vms.mkdir()
    base = str(images / 'golden.qcow2')
    write_vmctl_qcow2(base, GIB)
    layer = str(images / 'dev.qcow2')
    write_vmctl_qcow2(layer, GIB, base='golden.qcow2')
    top = str(vms / 'web1.qcow2')
    write_vmctl_qcow2(top, GIB, base=layer)
    assert image_catalog.describe(base)['chain'] == [base]
    found = image_catalog.describe(top)
    assert found['chain'] == [top, layer, base] and found['problems'] == []
    # a relative base is read from the real directory of the image naming it, not from a link's
    link = str(vms / 'dev-link.qcow2')
    os.symlink(layer, link)
    assert image_catalog.backing_chain(link) == ([link, base], [])
    # a raw disk is a chain of itself
    raw = golden(tmp_path)
    assert image_catalog.backing_chain(raw) == ([raw], [])


def test_a_chain_longer_than_vmd_opens_is_a_problem(tmp_path):
    chain = [str(tmp_path / 'l0.qcow2')]
    write_vmctl_qcow2(chain[0], GIB)
    for depth in range(1, 5):
        chain.append(str(tmp_path / ('l%d.qcow2' % depth)))
        write_vmctl_qcow2(chain[-1], GIB, base=chain[-2])
    four = chain[3]
    assert image_catalog.backing_chain(four) == ([four, chain[2], chain[1], chain[0]], [])
    five = chain[4]
    assert image_catalog.backing_chain(five) == (
        list(reversed(chain)), ['the backing chain of %s has 5 images; vmd opens at most 4 per disk' % five])
    assert image_catalog.describe(five)['problems'] == [
        'the backing chain of %s has 5 images; vmd opens at most 4 per disk' % five]


def test_a_chain_that_cannot_be_followed_is_a_problem(tmp_path):
    top = str(tmp_path / 'top.qcow2')
    write_vmctl_qcow2(top, GIB, base='gone.qcow2')
    assert image_catalog.backing_chain(top) == ([top], ['base %s of %s does not exist' % (tmp_path / 'gone.qcow2', top)])
    first, second = str(tmp_path / 'a.qcow2'), str(tmp_path / 'b.qcow2')
    write_vmctl_qcow2(first, GIB, base='b.qcow2')
    write_vmctl_qcow2(second, GIB, base='a.qcow2')
    assert image_catalog.backing_chain(first) == ([first, second], [
        'the backing chain of %s loops back to %s' % (first, first)])
    broken = str(tmp_path / 'broken.qcow2')
    with open(broken, 'wb') as handle:
        handle.write(b'QFI\xfb' + b'\0' * 10)
    over_broken = str(tmp_path / 'over.qcow2')
    write_vmctl_qcow2(over_broken, GIB, base='broken.qcow2')
    chain, problems = image_catalog.backing_chain(over_broken)
    assert chain == [over_broken] and len(problems) == 1
    assert problems[0].startswith('%s in the backing chain of %s cannot be read: ' % (broken, over_broken))


def test_the_manifest_layers_name_the_backing_chain(tmp_path):
    base = str(tmp_path / 'golden.qcow2')
    write_vmctl_qcow2(base, GIB)
    layer = str(tmp_path / 'dev.qcow2')
    write_vmctl_qcow2(layer, GIB, base='golden.qcow2')
    with open(layer + '.manifest.json', 'w', encoding='utf-8') as handle:
        json.dump({'layers': [{'image': base, 'sha256': 'x'}, {'image': layer, 'sha256': 'y'}]}, handle)
    assert image_catalog.describe(layer)['problems'] == []
    # from the base up: the other order is another chain
    with open(layer + '.manifest.json', 'w', encoding='utf-8') as handle:
        json.dump({'layers': [{'image': layer}, {'image': base}]}, handle)
    assert image_catalog.describe(layer)['problems'] == [
        'manifest %s.manifest.json names the layers %s, %s (top first), but the backing chain of %s is %s, %s'
        % (layer, base, layer, layer, layer, base)]
    # a copy keeps the manifest of the image it was copied from: it is not that chain
    with open(layer + '.manifest.json', 'w', encoding='utf-8') as handle:
        json.dump({'layers': [{'image': base}]}, handle)
    assert image_catalog.describe(layer)['problems'] == [
        'manifest %s.manifest.json names the layers %s (top first), but the backing chain of %s is %s, %s'
        % (layer, base, layer, layer, base)]
    for layers in ('golden.qcow2', [base], [{'sha256': 'x'}], [{'image': 7}]):
        with open(layer + '.manifest.json', 'w', encoding='utf-8') as handle:
            json.dump({'layers': layers}, handle)
        assert image_catalog.describe(layer)['problems'] == [
            'manifest %s.manifest.json: layers is not a list of {image, sha256}' % layer], layers
    # without layers (a manifest from before them) nothing is compared
    with open(layer + '.manifest.json', 'w', encoding='utf-8') as handle:
        json.dump({'release': '7.8'}, handle)
    assert image_catalog.describe(layer)['problems'] == []
