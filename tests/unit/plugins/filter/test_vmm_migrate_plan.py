# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_migrate_plan: which VMs move where, from the journal, the hosts' VMs and their room; refused before any change."""

from __future__ import annotations

import copy

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.filter.vmm_migrate_leases import vmm_migrate_leases
from ansible_collections.openbsd.vmm.plugins.filter.vmm_migrate_plan import vmm_migrate_plan
from ansible_collections.openbsd.vmm.plugins.filter.vmm_vm_options import vmm_vm_options
from ansible_collections.openbsd.vmm.plugins.plugin_utils import vm_move

MIB = 1 << 20
INTERFACE = dict(switch='uplink', lladdr='fe:e1:ba:d0:01:02', locked=False, group=None, rdomain=None, local=False)


def config(name, memory=512 * MIB, **extra):
    """A vmm_vm_info config as the module reports it."""
    return dict(dict(name=name, instance_of=None, enabled=True, memory=memory, boot=None, boot_device=None,
                     cdrom=None, disks=[dict(path='/var/vmm/%s.qcow2' % name, format=None)], interfaces=[INTERFACE],
                     owner=None, allow_instance=[], allow_instance_owner=None), **extra)


def vm(name, state='running', **extra):
    return dict(name=name, state=state, memory=None, config=config(name, **extra))


def hosts(**reports):
    """vmm1 with web1 (running) and web2 (stopped); vmm2 and vmm3 empty with 2G each; overrides by keyword."""
    base = dict(vmm1=dict(vars={}, vms=[vm('web1'), vm('web2', state='stopped')]),
                vmm2=dict(vars=dict(vmm_host_memory='2G'), vms=[]),
                vmm3=dict(vars=dict(vmm_host_memory='2G'), vms=[]))
    base.update(reports)
    return base


def plan(journal=None, **kwargs):
    kwargs.setdefault('source', 'vmm1')
    kwargs.setdefault('hosts', hosts())
    return vmm_migrate_plan(journal, **kwargs)


def test_one_vm_to_a_given_target():
    result = plan(vms=['web1'], target='vmm3')
    assert [(m['vm'], m['source'], m['target'], m['step'], m['was_running']) for m in result['moves']] == [
        ('web1', 'vmm1', 'vmm3', 'planned', True)]
    assert result['moves'][0]['definition'] == config('web1')
    assert result['journal'] == {'version': 1, 'moves': {'web1': dict(
        source='vmm1', target='vmm3', step='planned', definition=config('web1'), was_running=True)}}


def test_a_stopped_vm_is_recorded_as_not_running():
    assert plan(vms=['web2'], target='vmm2')['moves'][0]['was_running'] is False


def test_placed_by_room_most_free_memory_then_fewest_vms_then_name():
    # vmm2 and vmm3 have the same room: the name decides; the second VM then goes to the emptier vmm3
    result = plan(drain=True)
    assert [(m['vm'], m['target']) for m in result['moves']] == [('web1', 'vmm2'), ('web2', 'vmm3')]
    reports = hosts(vmm2=dict(vars=dict(vmm_host_memory='4G'), vms=[]))
    assert [m['target'] for m in plan(drain=True, hosts=reports)['moves']] == ['vmm2', 'vmm2']


def test_the_target_vms_count_against_its_room():
    # 1G used of 2G on vmm2: a 1G VM fits, a second does not; vmm3 is not a candidate when the target is given
    reports = hosts(vmm1=dict(vars={}, vms=[vm('a', memory=1024 * MIB), vm('b', memory=1024 * MIB)]),
                    vmm2=dict(vars=dict(vmm_host_memory='2G'), vms=[vm('old', memory=1024 * MIB)]))
    with pytest.raises(AnsibleFilterError, match=r"^vmm_migrate_plan: no vmm host has room for b \(memory 1G\): "
                       r"vmm2 has 0B of memory free; nothing was moved$"):
        plan(drain=True, target='vmm2', hosts=reports)
    assert [m['vm'] for m in plan(vms=['a'], target='vmm2', hosts=reports)['moves']] == ['a']


def test_taps_and_max_vms_are_room_too():
    reports = hosts(vmm2=dict(vars=dict(vmm_host_tap_count=1), vms=[vm('old')]),
                    vmm3=dict(vars=dict(vmm_host_max_vms='1'), vms=[vm('old3')]))
    with pytest.raises(AnsibleFilterError, match=r'no vmm host has room for web1 \(memory 512M\): '
                       r'vmm2 has 0 taps free \(1 in use\), vmm3 has room for 0 more VMs \(vmm_host_max_vms 1\)'):
        plan(vms=['web1'], hosts=reports)


def test_every_problem_named_before_any_move():
    reports = hosts(vmm1=dict(vars={}, vms=[vm('web1'), vm('child', instance_of='web1'),
                                            dict(name='ghost', state='running', config=None)]),
                    vmm2=dict(vars={}, vms=[vm('web1')]))
    with pytest.raises(AnsibleFilterError) as error:
        plan(vms=['web1', 'child', 'ghost', 'nosuch'], target='vmm2', hosts=reports)
    assert str(error.value) == (
        'vmm_migrate_plan: child is an instance of web1: move its parent; ghost is not defined in the vm.conf of vmm1; '
        'nosuch is not defined in the vm.conf of vmm1')
    with pytest.raises(AnsibleFilterError, match=r'^vmm_migrate_plan: a VM named web1 is already on vmm2; nothing was moved$'):
        plan(vms=['web1'], target='vmm2', hosts=reports)


@pytest.mark.parametrize('kwargs, message', [
    (dict(vms=['web1'], target='vmm1'), r"the target host 'vmm1' must be another of the vmm hosts \(vmm2, vmm3\)"),
    (dict(vms=['web1'], target='vmm9'), r"the target host 'vmm9' must be another"),
    (dict(vms=['web1'], source='vmm9'), r"the source host 'vmm9' is not among the vmm hosts \(vmm1, vmm2, vmm3\)"),
    (dict(vms=[]), r'vms must be a list of VM names \(or drain the host\)'),
    (dict(vms='web1'), r'vms must be a list of VM names'),
    (dict(vms=['web1\n']), r'vms must be a list of VM names'),
    (dict(vms=['web1'], hosts={'vmm1': dict(vars={}, vms=[vm('web1')])}), r'there is no other vmm host to move to'),
    (dict(vms=['web1'], hosts=dict(vmm1=dict(vars={}, vms=[vm('web1')]), vmm2=dict(vars={}))),
     r'no VM report \(vmm_vm_info vms\) for vmm host vmm2'),
    (dict(vms=['web1'], hosts={}), r'hosts must map vmm hosts'),
])
def test_bad_requests_refused(kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        plan(**kwargs)


def journal_with(step, vm_name='web1', target='vmm3'):
    return {'version': 1, 'moves': {vm_name: dict(source='vmm1', target=target, step=step, definition=config(vm_name),
                                                  was_running=True)}}


def test_a_rerun_finishes_the_journal_move_with_its_target_first():
    # web1 is half moved to vmm3 (the placement would say vmm2 now); web2 is new
    result = plan(journal_with('stopped'), drain=True)
    assert [(m['vm'], m['target'], m['step']) for m in result['moves']] == [('web1', 'vmm3', 'stopped'), ('web2', 'vmm2', 'planned')]
    # the journal's move counts against vmm3's room: with room for one VM on vmm3, web2 must go to vmm2
    reports = hosts(vmm2=dict(vars=dict(vmm_host_max_vms=1), vms=[]), vmm3=dict(vars=dict(vmm_host_max_vms=1), vms=[]))
    assert [m['target'] for m in plan(journal_with('stopped'), drain=True, hosts=reports)['moves']] == ['vmm3', 'vmm2']


def test_asking_again_for_a_finished_move_changes_nothing():
    reports = hosts(vmm1=dict(vars={}, vms=[vm('web2')]), vmm3=dict(vars={}, vms=[vm('web1')]))
    assert plan(journal_with('done'), vms=['web1'], hosts=reports)['moves'] == []
    # ... but a VM of that name back on the source is moved again; one that left another host is not known here
    again = plan(journal_with('done'), vms=['web1'])
    assert [(m['vm'], m['step'], m['target']) for m in again['moves']] == [('web1', 'planned', 'vmm2')]
    with pytest.raises(AnsibleFilterError, match='web1 is not defined in the vm.conf of vmm2'):
        plan(journal_with('done'), vms=['web1'], source='vmm2', hosts=reports)


def test_a_finished_move_is_not_done_again():
    journal = journal_with('done')
    reports = hosts(vmm1=dict(vars={}, vms=[vm('web2')]), vmm3=dict(vars={}, vms=[vm('web1')]))
    result = plan(journal, vms=['web2'], hosts=reports)
    assert [(m['vm'], m['step']) for m in result['moves']] == [('web2', 'planned')]
    assert result['journal']['moves']['web1']['step'] == 'done'


def test_a_journal_move_past_its_source_is_not_refused_as_missing():
    # after 'done' the VM is gone from vmm1; asked again, it is in the journal's pending moves while unfinished
    reports = hosts(vmm1=dict(vars={}, vms=[]), vmm3=dict(vars={}, vms=[vm('web1')]))
    assert [m['step'] for m in plan(journal_with('answering'), vms=['web1'], hosts=reports)['moves']] == ['answering']


@pytest.mark.parametrize('step', ['planned', 'base_ready', 'stopped', 'copied'])
def test_cancel_before_the_vm_ran_on_its_target(step):
    result = plan(journal_with(step), cancel=True, vms=None, source=None)
    assert [(m['vm'], m['step'], m['cancel']) for m in result['moves']] == [('web1', step, True)]


@pytest.mark.parametrize('step', ['defined', 'answering'])
def test_cancel_refused_once_the_vm_ran_on_its_target(step):
    with pytest.raises(AnsibleFilterError, match=r'cannot cancel the move of web1: the VM was started on its target '
                       r'\(step %s\); move it back with another migration' % step):
        plan(journal_with(step), cancel=True)


def test_cancel_leaves_finished_moves_alone():
    assert plan(journal_with('done'), cancel=True)['moves'] == []


@pytest.mark.parametrize('journal, message', [
    ({'version': 2, 'moves': {}}, r'the journal must be \{"version": 1'),
    ({'version': 1, 'moves': []}, r'the journal must be'),
    ({'version': 1, 'moves': {'web1': dict(source='vmm1', target='vmm2', step='halfway', definition={})}},
     r"the journal's move of web1 needs a source, a target and a step \(one of planned, base_ready, stopped, copied, "
     r'defined, answering, done\)'),
    ({'version': 1, 'moves': {'web1': dict(source='', target='vmm2', step='planned', definition={})}}, r'needs a source'),
    ({'version': 1, 'moves': {'web1': dict(source='vmm1', target='vmm2', step='planned')}}, r'has no definition of the VM'),
])
def test_bad_journals_refused(journal, message):
    with pytest.raises(AnsibleFilterError, match=message):
        plan(journal, vms=['web1'])


def test_the_callers_journal_is_not_changed():
    journal = journal_with('stopped')
    before = copy.deepcopy(journal)
    plan(journal, vms=['web2'], target='vmm2')
    assert journal == before


def test_vm_options_as_vmm_vm_takes_them():
    assert vmm_vm_options(config('web1', owner='alice', boot_device='disk', cdrom='/var/vmm/install.iso')) == dict(
        name='web1', memory=str(512 * MIB), disks=[dict(path='/var/vmm/web1.qcow2')], interfaces=[INTERFACE],
        owner='alice', boot_device='disk')
    raw = dict(config('db1', memory=None), disks=[dict(path='/data/db1.raw', format='raw')], interfaces=[])
    assert vmm_vm_options(raw) == dict(name='db1', disks=[dict(path='/data/db1.raw', format='raw')], interfaces=[])
    with pytest.raises(AnsibleFilterError, match=r'vmm_vm_options: expected a VM definition'):
        vmm_vm_options(None)


# --- vmm_migrate_disks: which files move where, and chains that would not resolve on the target

from ansible_collections.openbsd.vmm.plugins.filter.vmm_migrate_disks import vmm_migrate_disks  # noqa: E402


def image(path, base=None, chain=None):
    """A vmm_image_info record."""
    return dict(path=path, format='qcow2', base=base, chain=chain or [path], problems=[])


def test_relative_base_moves_with_the_directory():
    images = [image('/var/vmm/web1.qcow2', 'golden.qcow2', ['/var/vmm/web1.qcow2', '/var/vmm/golden.qcow2']),
              image('/var/vmm/golden.qcow2')]
    moved = vmm_migrate_disks(config('web1'), images, source_dir='/var/vmm', target_dir='/data/vmm')
    assert moved['disks'] == [dict(source='/var/vmm/web1.qcow2', target='/data/vmm/web1.qcow2')]
    assert moved['bases'] == [dict(source='/var/vmm/golden.qcow2', target='/data/vmm/golden.qcow2')]
    assert moved['definition']['disks'] == [dict(path='/data/vmm/web1.qcow2', format=None)]
    assert moved['definition']['interfaces'] == [INTERFACE]


def test_absolute_base_with_the_same_directories_keeps_every_path():
    images = [image('/var/vmm/web1.qcow2', '/var/vmm/images/golden.qcow2',
                    ['/var/vmm/web1.qcow2', '/var/vmm/images/golden.qcow2', '/var/vmm/images/os.qcow2']),
              image('/var/vmm/images/golden.qcow2', 'os.qcow2', ['/var/vmm/images/golden.qcow2', '/var/vmm/images/os.qcow2']),
              image('/var/vmm/images/os.qcow2')]
    moved = vmm_migrate_disks(config('web1'), images)
    assert moved['disks'] == [dict(source='/var/vmm/web1.qcow2', target='/var/vmm/web1.qcow2')]
    assert moved['bases'] == [dict(source='/var/vmm/images/golden.qcow2', target='/var/vmm/images/golden.qcow2'),
                              dict(source='/var/vmm/images/os.qcow2', target='/var/vmm/images/os.qcow2')]
    # a file outside the disk directory keeps its path whatever the directories
    outside = dict(config('db1'), disks=[dict(path='/data/db1.raw', format='raw')])
    moved = vmm_migrate_disks(outside, [dict(image('/data/db1.raw'), format='raw')], target_dir='/srv/vmm')
    assert moved['disks'] == [dict(source='/data/db1.raw', target='/data/db1.raw')] and moved['bases'] == []


def test_absolute_base_refused_when_the_directories_differ():
    images = [image('/var/vmm/web1.qcow2', '/var/vmm/golden.qcow2', ['/var/vmm/web1.qcow2', '/var/vmm/golden.qcow2']),
              image('/var/vmm/golden.qcow2')]
    with pytest.raises(AnsibleFilterError) as error:
        vmm_migrate_disks(config('web1'), images, target_dir='/data/vmm')
    assert str(error.value) == (
        'vmm_migrate_disks: web1 cannot move: /var/vmm/web1.qcow2 names its base /var/vmm/golden.qcow2, which would be '
        '/var/vmm/golden.qcow2 on the target, not /data/vmm/golden.qcow2 where the base goes (keep the same vmm_disk_dir '
        'on both hosts, or make overlays with a base relative to their directory)')


def test_relative_base_leaving_the_directory_refused():
    images = [image('/var/vmm/web1.qcow2', '../golden.qcow2', ['/var/vmm/web1.qcow2', '/var/golden.qcow2']),
              image('/var/golden.qcow2')]
    with pytest.raises(AnsibleFilterError, match=r'names its base \.\./golden\.qcow2, which would be /data/golden\.qcow2 on '
                       r'the target, not /var/golden\.qcow2'):
        vmm_migrate_disks(config('web1'), images, target_dir='/data/vmm')


def test_unreadable_disks_and_bad_directories_refused():
    broken = dict(image('/var/vmm/web1.qcow2'), problems=['/var/vmm/golden.qcow2: missing'], chain=[])
    with pytest.raises(AnsibleFilterError, match=r'web1 cannot move: disk /var/vmm/web1\.qcow2 cannot be read: /var/vmm/golden\.qcow2: missing$'):
        vmm_migrate_disks(config('web1'), [broken])
    with pytest.raises(AnsibleFilterError, match=r'disk /var/vmm/web1\.qcow2 cannot be read: no report'):
        vmm_migrate_disks(config('web1'), [])
    with pytest.raises(AnsibleFilterError, match=r"target_dir must be an absolute, normalised directory \(vmm_disk_dir\), got 'data'"):
        vmm_migrate_disks(config('web1'), [image('/var/vmm/web1.qcow2')], target_dir='data')
    with pytest.raises(AnsibleFilterError, match=r'source_dir must be an absolute, normalised directory'):
        vmm_migrate_disks(config('web1'), [image('/var/vmm/web1.qcow2')], source_dir='/var/../vmm')
    # a trailing slash is the same directory
    assert vmm_migrate_disks(config('web1'), [image('/var/vmm/web1.qcow2')], source_dir='/var/vmm/',
                             target_dir='/data/vmm/')['disks'][0]['target'] == '/data/vmm/web1.qcow2'


def test_cancel_with_nothing_to_cancel_needs_no_hosts():
    assert vmm_migrate_plan(None, cancel=True, hosts={}) == {'moves': [], 'journal': {'version': 1, 'moves': {}}}
    with pytest.raises(AnsibleFilterError, match='hosts must map vmm hosts'):
        vmm_migrate_plan(None, source='vmm1', vms=['web1'], hosts={})


def test_the_plan_defaults_are_neither_drain_nor_cancel():
    from ansible_collections.openbsd.vmm.plugins.plugin_utils.vm_move import MovePlanError, migrate_plan
    # no drain by default: without vms the request is refused (a drain would move web1 and web2)
    with pytest.raises(MovePlanError, match='vms must be a list of VM names'):
        migrate_plan(None, 'vmm1', hosts())
    # no cancel by default: a pending move is continued, not marked for roll back
    assert [('cancel' in m, m['step']) for m in migrate_plan(journal_with('stopped'), 'vmm1', hosts(), vms=['web1'])['moves']] == [
        (False, 'stopped')]


def test_a_pending_move_counts_once_against_its_target():
    # web1 is moving to vmm2 (room for 2 VMs): web2 goes to vmm3, whose one other VM makes it no emptier than vmm2
    reports = hosts(vmm2=dict(vars=dict(vmm_host_max_vms=1), vms=[]), vmm3=dict(vars={}, vms=[]))
    assert [m['target'] for m in plan(journal_with('stopped', target='vmm2'), drain=True, hosts=reports)['moves']] == ['vmm2', 'vmm3']
    # once defined there, vmm2 reports web1 itself: it is not counted twice (vmm2 has room for one more, and wins by name)
    reports = hosts(vmm2=dict(vars=dict(vmm_host_max_vms=2), vms=[vm('web1')]), vmm3=dict(vars={}, vms=[vm('other')]))
    assert [m['target'] for m in plan(journal_with('defined', target='vmm2'), drain=True, hosts=reports)['moves']] == ['vmm2', 'vmm2']


def test_a_name_taken_on_a_full_target_is_named_once():
    reports = hosts(vmm2=dict(vars=dict(vmm_host_max_vms=1), vms=[vm('web1')]))
    with pytest.raises(AnsibleFilterError, match=r'^vmm_migrate_plan: a VM named web1 is already on vmm2; nothing was moved$'):
        plan(vms=['web1'], target='vmm2', hosts=reports)


def test_a_base_without_its_report_refused():
    images = [image('/var/vmm/web1.qcow2', None, ['/var/vmm/web1.qcow2', '/var/vmm/golden.qcow2']), image('/var/vmm/golden.qcow2')]
    with pytest.raises(AnsibleFilterError, match=r'^vmm_migrate_disks: web1 cannot move: the base of /var/vmm/web1\.qcow2 is not reported$'):
        vmm_migrate_disks(config('web1'), images)


@pytest.mark.parametrize('definition, images', [(None, []), (dict(name=1), []), (config('web1'), None)])
def test_migrate_disks_input_refused(definition, images):
    with pytest.raises(AnsibleFilterError, match=r'^vmm_migrate_disks: expected a VM definition and vmm_image_info images$'):
        vmm_migrate_disks(definition, images)


# DHCP leases: the VM keeps its address, so its lease goes along to a host serving that network.
LEASE = dict(name='web1', mac='FE:E1:BA:D0:01:02', address='198.51.100.10')
NET = [dict(network='198.51.100.0/24', routers='198.51.100.1')]


def dhcp_hosts(vmm2_vars=None, vmm3_vars=None, source_vars=None):
    return hosts(vmm1=dict(vars=dict(dict(install_server_dhcpd=True, install_server_dhcp_subnets=NET,
                                          vmm_guest_leases=[dict(name='web0', mac='fe:e1:ba:d0:01:01', address='198.51.100.9'),
                                                            LEASE]), **(source_vars or {})),
                           vms=[vm('web1'), vm('web2', state='stopped')]),
                 vmm2=dict(vars=dict(dict(vmm_host_memory='2G', install_server_dhcpd='yes', install_server_dhcp_subnets=NET,
                                          vmm_guest_leases=[]), **(vmm2_vars or {})), vms=[]),
                 vmm3=dict(vars=dict(dict(vmm_host_memory='4G'), **(vmm3_vars or {})), vms=[]))


def test_a_lease_goes_along_to_a_host_of_its_network():
    # vmm3 has more room but serves no DHCP: web1 goes to vmm2, its lease (MAC in lower case) recorded in the journal
    result = plan(vms=['web1'], hosts=dhcp_hosts())
    assert result['moves'][0]['target'] == 'vmm2'
    assert result['moves'][0]['lease'] == dict(name='web1', mac='fe:e1:ba:d0:01:02', address='198.51.100.10')
    assert result['journal']['moves']['web1']['lease'] == result['moves'][0]['lease']
    # a VM without a lease takes none along, and may go anywhere
    assert 'lease' not in plan(vms=['web2'], hosts=dhcp_hosts())['moves'][0]
    assert plan(vms=['web2'], hosts=dhcp_hosts())['moves'][0]['target'] == 'vmm3'
    # no DHCP on the source: nothing to take along
    assert 'lease' not in plan(vms=['web1'], target='vmm3', hosts=dhcp_hosts(source_vars=dict(install_server_dhcpd=False)))['moves'][0]


@pytest.mark.parametrize('target, vmm2_vars, message', [
    ('vmm3', None, r'web1 has the DHCP lease 198\.51\.100\.10 \(fe:e1:ba:d0:01:02\) on vmm1, and vmm3 serves no DHCP '
                   r'\(install_server_dhcpd\): the VM would lose its address; nothing was moved$'),
    ('vmm2', dict(install_server_dhcp_subnets=[dict(network='203.0.113.0/24')]),
     r'on vmm1, which is in none of the DHCP subnets of vmm2 \(203\.0\.113\.0/24\): the VM keeps its address only on a '
     r'host of that network; nothing was moved$'),
    ('vmm2', dict(install_server_dhcp_subnets=[]), r'in none of the DHCP subnets of vmm2 \(none\)'),
    ('vmm2', dict(vmm_guest_leases=[dict(name='db1', mac='fe:e1:ba:d0:09:09', address='198.51.100.10')]),
     r'and vmm2 has a lease of db1 for the same address or MAC \(198\.51\.100\.10, fe:e1:ba:d0:09:09\)'),
    ('vmm2', dict(vmm_guest_leases=[dict(name='db1', mac='fe:e1:ba:d0:01:02', address='198.51.100.99')]),
     r'and vmm2 has a lease of db1 for the same address or MAC'),
])
def test_a_move_that_would_lose_the_address_is_refused(target, vmm2_vars, message):
    with pytest.raises(AnsibleFilterError, match=message):
        plan(vms=['web1'], target=target, hosts=dhcp_hosts(vmm2_vars=vmm2_vars))


def test_placement_names_every_host_that_cannot_give_the_address():
    reports = dhcp_hosts(vmm2_vars=dict(install_server_dhcp_subnets=[dict(network='203.0.113.0/24')]))
    with pytest.raises(AnsibleFilterError) as error:
        plan(vms=['web1'], hosts=reports)
    assert 'none of the DHCP subnets of vmm2' in str(error.value) and 'vmm3 serves no DHCP' in str(error.value)


def test_the_target_may_already_hold_the_vms_own_lease():
    # a re-run after the target's dhcpd.conf got the lease, or an inventory that lists it there already
    reports = dhcp_hosts(vmm2_vars=dict(vmm_guest_leases=[dict(LEASE, mac='fe:e1:ba:d0:01:02')]))
    assert plan(vms=['web1'], target='vmm2', hosts=reports)['moves'][0]['lease']['address'] == '198.51.100.10'


def test_moving_a_lease_without_netaddr_says_what_to_install(monkeypatch):
    monkeypatch.setattr(vm_move, 'netaddr', None)
    with pytest.raises(AnsibleFilterError, match=r'moving a DHCP lease needs the Python library netaddr on the controller'):
        plan(vms=['web1'], target='vmm2', hosts=dhcp_hosts())
    # a VM without a lease does not need it
    assert plan(vms=['web2'], target='vmm2', hosts=dhcp_hosts())['moves'][0]['target'] == 'vmm2'


@pytest.mark.parametrize('source_vars, message', [
    (dict(install_server_dhcpd='maybe'), r"install_server_dhcpd must be a boolean, got 'maybe'"),
    (dict(vmm_guest_leases=[dict(LEASE, address='198.51.100.300')]), r'web1 has the DHCP lease 198\.51\.100\.300 .*is not valid'),
])
def test_bad_dhcp_variables_refused(source_vars, message):
    with pytest.raises(AnsibleFilterError, match=message):
        plan(vms=['web1'], target='vmm2', hosts=dhcp_hosts(source_vars=source_vars))


def lease_journal(**steps):
    """Moves of web1 (vmm1 -> vmm2, with its lease) and web2 (vmm1 -> vmm3, no lease) at the given steps."""
    moves = {'web1': dict(source='vmm1', target='vmm2', step=steps.get('web1', 'planned'), definition=config('web1'),
                          was_running=True, lease=dict(LEASE, mac='fe:e1:ba:d0:01:02'))}
    if 'web2' in steps:
        moves['web2'] = dict(source='vmm1', target='vmm3', step=steps['web2'], definition=config('web2'), was_running=True)
    return {'version': 1, 'moves': moves}


INVENTORY_VMM1 = [dict(name='web0', mac='fe:e1:ba:d0:01:01', address='198.51.100.9'), dict(LEASE, mac='fe:e1:ba:d0:01:02')]
INVENTORY_VMM2 = [dict(name='db1', mac='fe:e1:ba:d0:02:01', address='198.51.100.20')]


@pytest.mark.parametrize('step, on_source, on_target', [
    ('planned', True, True),     # written to the target while the VM runs on the source (not in its downtime)
    ('base_ready', True, True),
    ('stopped', True, True),
    ('copied', True, True),
    ('defined', True, True),
    ('answering', True, True),
    ('done', False, True),
])
def test_a_moving_lease_is_on_its_target_from_the_plan_on_and_on_its_source_until_done(step, on_source, on_target):
    journal = lease_journal(web1=step)
    source = vmm_migrate_leases(journal, 'vmm1', leases=INVENTORY_VMM1)
    target = vmm_migrate_leases(journal, 'vmm2', leases=INVENTORY_VMM2)
    assert ('web1' in [lease['name'] for lease in source]) is on_source
    assert ('web1' in [lease['name'] for lease in target]) is on_target
    assert [lease['name'] for lease in source if lease['name'] != 'web1'] == ['web0']
    assert [lease['name'] for lease in target if lease['name'] != 'web1'] == ['db1']


def test_the_leaving_vm_loses_its_source_lease_and_other_moves_keep_theirs():
    # a drain: web1's lease is on vmm2 already when web3 moves there; web1 leaving vmm1 takes only its own
    journal = lease_journal(web1='answering', web2='copied')
    journal['moves']['web3'] = dict(source='vmm1', target='vmm2', step='planned', definition=config('web3'), was_running=True,
                                    lease=dict(name='web3', mac='fe:e1:ba:d0:01:03', address='198.51.100.11'))
    assert [lease['name'] for lease in vmm_migrate_leases(journal, 'vmm2', leases=INVENTORY_VMM2)] == ['db1', 'web1', 'web3']
    assert [lease['name'] for lease in vmm_migrate_leases(journal, 'vmm1', leases=INVENTORY_VMM1, leaving='web1')] == ['web0', 'web3']
    # the inventory already placing web1 on vmm2 (the state file was written) gives the same leases, once
    assert [lease['name'] for lease in vmm_migrate_leases(journal, 'vmm2', leases=INVENTORY_VMM2 + [INVENTORY_VMM1[1]])] == [
        'db1', 'web1', 'web3']
    # a host the moves do not touch keeps its inventory leases
    assert vmm_migrate_leases(journal, 'vmm3', leases=[]) == []


def test_bad_lease_arguments_refused():
    with pytest.raises(AnsibleFilterError, match=r'^vmm_migrate_leases: host must be a vmm host name'):
        vmm_migrate_leases(lease_journal(), None)
    with pytest.raises(AnsibleFilterError, match=r'^vmm_migrate_leases: the journal must be'):
        vmm_migrate_leases({'moves': {}}, 'vmm1')


def test_a_guest_listed_under_its_source_in_the_fleet_file_is_refused():
    reports = hosts()
    reports['vmm1']['vars'] = dict(vmm_guests_listed=['web1'])
    with pytest.raises(AnsibleFilterError, match=r'^vmm_migrate_plan: web1 is listed under vmm1 in the fleet file, which keeps '
                       r'it there \(provision\.yml would define it there again\): list it under the host it goes to, or '
                       r'among the guests to place, first; nothing was moved$'):
        plan(vms=['web1'], hosts=reports)
    # web2 is not listed: it moves
    assert [m['vm'] for m in plan(vms=['web2'], hosts=reports)['moves']] == ['web2']


def test_a_guest_listed_under_another_host_goes_there():
    # vmm3 has more room, but the fleet file lists web1 under vmm2 already (the operator moved its entry)
    reports = hosts(vmm3=dict(vars=dict(vmm_host_memory='8G'), vms=[]))
    reports['vmm2']['vars'] = dict(vmm_host_memory='2G', vmm_guests_listed=['web1'])
    assert plan(vms=['web1'], hosts=reports)['moves'][0]['target'] == 'vmm2'
    assert plan(vms=['web2'], hosts=reports)['moves'][0]['target'] == 'vmm3'
    with pytest.raises(AnsibleFilterError, match=r'^vmm_migrate_plan: web1 is listed under vmm2 in the fleet file: it can move only '
                       r'there; nothing was moved$'):
        plan(vms=['web1'], target='vmm3', hosts=reports)
    reports['vmm2']['vars']['vmm_host_memory'] = '256M'
    with pytest.raises(AnsibleFilterError, match=r'no vmm host has room for web1'):
        plan(vms=['web1'], hosts=reports)
    reports['vmm2']['vars']['vmm_guests_listed'] = 'web1'
    with pytest.raises(AnsibleFilterError, match=r'vmm_guests_listed of vmm2 must be a list of guest names'):
        plan(vms=['web1'], hosts=reports)
