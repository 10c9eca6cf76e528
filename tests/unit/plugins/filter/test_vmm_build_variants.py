# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_build_variants: a host's build_image_variants checked, one build per variant; every error names the variant."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.filter.vmm_build_variants import vmm_build_variants

# vmm_lladdr of the names, written down (tests/unit/plugins/filter/test_fleet_net_pinned.py pins the derivation)
MAC_A = 'fe:e1:ba:d0:d1:95'   # golden-a
MAC_B = 'fe:e1:ba:d0:b9:87'   # golden-b


def variant(name, **more):
    return dict(name=name, path='/var/vmm/%s.qcow2' % name, **more)


def test_one_build_per_variant_in_order():
    builds = vmm_build_variants([variant('golden-a', release='7.8', sets=['-x*']), variant('golden-b', base='/var/vmm/golden.qcow2')],
                                'vmm1')
    assert builds == [
        {'host': 'vmm1/golden-a', 'variant': 'golden-a',
         'vars': {'build_image_name': 'golden-a', 'build_image_path': '/var/vmm/golden-a.qcow2', 'build_image_release': '7.8',
                  'build_image_sets': ['-x*']}},
        {'host': 'vmm1/golden-b', 'variant': 'golden-b',
         'vars': {'build_image_name': 'golden-b', 'build_image_path': '/var/vmm/golden-b.qcow2',
                  'build_image_base': '/var/vmm/golden.qcow2'}}]


def test_no_variants_no_builds():
    assert vmm_build_variants(None, 'vmm1') == []
    assert vmm_build_variants([], 'vmm1') == []
    assert vmm_build_variants((), 'vmm1') == []


@pytest.mark.parametrize('value, kind', [('golden', 'str'), ({'name': 'a'}, 'dict'), (3, 'int'), (b'x', 'bytes')])
def test_not_a_list(value, kind):
    with pytest.raises(AnsibleFilterError) as error:
        vmm_build_variants(value, 'vmm1')
    assert str(error.value) == 'build_image_variants must be a list of dicts (each with name and path), not %s' % kind


def refused(variants):
    with pytest.raises(AnsibleFilterError) as error:
        vmm_build_variants(variants, 'vmm1')
    return str(error.value)


def test_a_variant_that_is_not_a_dict():
    assert refused([variant('golden-a'), 'golden-b']) == \
        'build_image_variants[1]: each variant must be a dict with name and path, not str'


def test_unknown_keys_are_listed():
    message = refused([variant('golden-a', docroot='/var/www', Size='4G')])
    assert message.startswith("build_image_variants[0] (golden-a): unknown key(s) Size, docroot; a variant sets only name, path, size, ")
    assert message.endswith("fetch, fetch_dest (build_image.yml's variables without build_image_)")


NAME_RULE = ('name %s must be 1 to 51 letters, digits, ".", "_" or "-", starting with a letter or a digit, not digits only '
             '(its VMs are <name>-ai-<digest> and <name>-build; vmctl reads a number as a VM id)')


@pytest.mark.parametrize('name, label', [
    ('', ''), ('-golden', ' (-golden)'), ('.golden', ' (.golden)'), ('gold en', ' (gold en)'), ('golden\n', ' (golden\n)'),
    ('g' * 52, ' (%s)' % ('g' * 52)), (None, ''), (7, ''), ('78', ' (78)'),
])
def test_bad_names(name, label):
    assert refused([dict(name=name, path='/var/vmm/x.qcow2')]) == 'build_image_variants[0]%s: %s' % (label, NAME_RULE % repr(name))


def test_the_longest_and_shortest_names():
    assert [build['variant'] for build in vmm_build_variants([variant('g' * 51), variant('7a')], 'vmm1')] == ['g' * 51, '7a']


@pytest.mark.parametrize('path', ['golden.qcow2', '/var/vmm/', '/var/vmm/../vmm/golden.qcow2', '/var//vmm/golden.qcow2', None])
def test_bad_paths(path):
    assert refused([dict(name='golden', path=path)]) == \
        'build_image_variants[0] (golden): path %r must be an absolute, normalised file path' % (path,)


@pytest.mark.parametrize('second, key, value', [
    (dict(name='golden-a', path='/var/vmm/other.qcow2'), 'name', 'golden-a'),
    (dict(name='golden-b', path='/var/vmm/golden-a.qcow2'), 'path', '/var/vmm/golden-a.qcow2'),
    (dict(variant('golden-b'), lladdr=MAC_A.upper()), 'lladdr', MAC_A),
    (dict(variant('golden-b'), console_log='/var/vmm/golden-a.qcow2.install.log'), 'console_log',
     '/var/vmm/golden-a.qcow2.install.log'),
])
def test_what_concurrent_builds_would_share_is_refused(second, key, value):
    assert refused([variant('golden-a'), second]) == (
        'build_image_variants[1] (%s): %s %s is also that of build_image_variants[0]: every variant needs its own '
        '(concurrent builds would share it)' % (second['name'], key, value))


def test_given_macs_and_transcripts_count_as_they_are_given():
    builds = vmm_build_variants([variant('golden-a', lladdr=MAC_B, console_log='/var/log/a.log'),
                                 variant('golden-b', lladdr='fe:e1:ba:d0:00:01')], 'vmm1')
    assert [build['vars'].get('build_image_lladdr') for build in builds] == [MAC_B, 'fe:e1:ba:d0:00:01']
    assert refused([variant('golden-a', lladdr=MAC_B), variant('golden-b')]).startswith(
        'build_image_variants[1] (golden-b): lladdr %s is also that of build_image_variants[0]' % MAC_B)


def test_a_base_built_in_the_same_run_is_refused():
    assert refused([variant('golden-b', base='/var/vmm/golden-a.qcow2'), variant('golden-a')]) == (
        'build_image_variants[0] (golden-b): base /var/vmm/golden-a.qcow2 is build_image_variants[1], built in this same run '
        '(concurrently): build the base in an earlier run')
    assert len(vmm_build_variants([variant('golden-b', base='/var/vmm/golden.qcow2'), variant('golden-a', base='')], 'vmm1')) == 2
