# -*- coding: utf-8 -*-
# Copyright: openbsd.vmm contributors
# BSD 2-Clause License (see LICENSE)
"""vm_lifecycle's safety checks at their edges: each test fails if one check is removed or loosened.

Written against the mutants issue 15 lists (scripts/mutate.py finds them): exact limits, the values used
when an option is left out, and the flags _apply acts on (not only the human-readable steps).
"""
from __future__ import annotations

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import vm_lifecycle as lc
from ansible_collections.openbsd.vmm.plugins.module_utils import vmconf as c
from ansible_collections.openbsd.vmm.tests.unit.plugins.module_utils.test_vm_lifecycle import (
    conf, entry, problems_of, requests, status,
)

MIB = 1024 * 1024


# -- owner: a valid named owner is kept, not dropped ------------------------------------------

@pytest.mark.parametrize('owner', ['root', 'root:root', ':root', '0'])
def test_a_valid_owner_is_written(owner):
    request, = requests(entry(owner=owner))
    assert request.definition.owner == owner


def test_allow_instance_owner_is_checked_like_owner():
    request, = requests(entry(allow_instance_owner='root:root'))
    assert request.definition.allow_instance_owner == 'root:root'
    assert problems_of(entry(allow_instance_owner=':')) == [
        "vm 'web1': allow_instance_owner: ':' is not an owner: use 'user', 'user:group', ':group' or a numeric uid"]


def test_an_empty_owner_removes_it():
    request, = requests(entry(owner=''))
    assert request.definition.owner is None


# -- allow_instance ----------------------------------------------------------------------------

def test_allow_instance_keeps_known_flags_once_in_order():
    request, = requests(entry(allow_instance=['memory', 'disk', 'memory']))
    assert request.definition.allow_instance == ['memory', 'disk']


def test_allow_instance_refuses_an_unknown_flag():
    assert problems_of(entry(allow_instance=['disk', 'cpus'])) == [
        "vm 'web1': allow_instance: 'cpus' is not one of boot, cdrom, disk, instance, interface, memory"]


# -- lladdr: exactly six octets ----------------------------------------------------------------

@pytest.mark.parametrize('lladdr', ['fe:e1:ba:d0:00:01:02', 'xfe:e1:ba:d0:00:01', 'fe:e1:ba:d0:00:001'])
def test_an_lladdr_with_more_than_six_octets_or_digits_is_refused(lladdr):
    assert problems_of(entry(interfaces=[{'lladdr': lladdr}])) == [
        "vm 'web1': interfaces[0].lladdr: %r is not a MAC address like fe:e1:ba:d0:00:01" % lladdr]


def test_an_lladdr_with_the_multicast_bit_clear_but_local_bit_set_is_accepted():
    request, = requests(entry(interfaces=[{'lladdr': '02:00:00:00:00:01'}, {'lladdr': 'FE:E1:BA:D0:0:2'}]))
    assert [i.lladdr for i in request.definition.interfaces] == ['02:00:00:00:00:01', 'fe:e1:ba:d0:00:02']


# -- exact limits ------------------------------------------------------------------------------

@pytest.mark.parametrize('memory, expected', [
    ('1M', MIB), (str(MIB), MIB), ('128G', 128 * 1024 * MIB), ('1500K', MIB), ('1.5M', MIB), (str(2 * MIB - 1), MIB),
])
def test_memory_limits_are_inclusive_and_sizes_round_down_to_mib(memory, expected):
    request, = requests(entry(memory=memory))
    assert request.definition.memory == expected


@pytest.mark.parametrize('memory, message', [
    (str(MIB - 1), "memory: '1048575' is 1048575 bytes; vmd needs at least 1M"),
    (str(128 * 1024 * MIB + 1), "memory: '137438953473' is larger than the limit of 128G"),
])
def test_memory_one_byte_past_a_limit_is_refused(memory, message):
    problems = problems_of(entry(memory=memory))
    assert len(problems) == 1 and message in problems[0], problems


def test_name_of_63_characters_is_accepted():
    request, = requests(entry('a' * 63))
    assert request.name == 'a' * 63


def test_four_disks_and_four_interfaces_are_accepted():
    request, = requests(entry(disks=['/var/vmm/%s.qcow2' % n for n in 'abcd'], interfaces=[{}] * 4))
    assert len(request.definition.disks) == 4 and len(request.definition.interfaces) == 4


@pytest.mark.parametrize('rdomain', [0, 255])
def test_rdomain_limits_are_inclusive(rdomain):
    request, = requests(entry(interfaces=[{'rdomain': rdomain}]))
    assert request.definition.interfaces[0].rdomain == rdomain


@pytest.mark.parametrize('rdomain', [-1, True])
def test_rdomain_below_zero_or_a_bool_is_refused(rdomain):
    assert problems_of(entry(interfaces=[{'rdomain': rdomain}])) == [
        "vm 'web1': interfaces[0].rdomain: %r must be a number from 0 to 255" % (rdomain,)]


@pytest.mark.parametrize('group, ok', [('g' * 15, True), ('g' * 16, False), ('vmnet', True), ('0vm', False)])
def test_interface_group_is_at_most_15_characters_and_starts_with_a_letter(group, ok):
    if ok:
        request, = requests(entry(interfaces=[{'group': group}]))
        assert request.definition.interfaces[0].group == group
    else:
        assert problems_of(entry(interfaces=[{'group': group}])) == [
            "vm 'web1': interfaces[0].group: %r is not an interface group name (at most 15 characters, letters first, "
            "not ending in a digit)" % group]


@pytest.mark.parametrize('timeout', [0, -1, '5'])
def test_stop_timeout_must_be_a_positive_int(timeout):
    assert problems_of(entry(stop_timeout=timeout)) == ["vm 'web1': stop_timeout: must be a positive number of seconds"]


# -- defaults used when the option is left out --------------------------------------------------

def test_defaults_of_a_bare_entry():
    request, = requests(dict(name='web1', disks=['/var/vmm/a.qcow2']))
    assert (request.state, request.stop_timeout, request.force, request.restart_on_change) == ('present', 60, False, False)
    assert request.definition == c.VmDefinition(name='web1', enabled=False, disks=[c.Disk('/var/vmm/a.qcow2')])


def test_stop_timeout_of_one_second_is_accepted():
    request, = requests(entry(stop_timeout=1))
    assert request.stop_timeout == 1


def test_a_top_level_stop_timeout_of_0_is_refused_not_read_as_the_default():
    entries = lc.merge_entries(dict(name=None, stop_timeout=0, vms=[dict(entry(), stop_timeout=None)]))
    assert problems_of(entries[0]) == ["vm 'web1': stop_timeout: must be a positive number of seconds"]


def test_memory_left_out_means_512m():
    definition = c.VmDefinition(name='web1', disks=[c.Disk('/var/vmm/a.qcow2')])
    assert lc.DEFAULT_MEMORY == 512 * MIB
    assert lc.configured_memory(None, definition) == 512 * MIB
    assert lc.configured_memory(status('stopped'), c.VmDefinition(name='web1')) == 512 * MIB
    # A running VM with vm.conf's default memory shows 516M: not outdated; with 1G it is.
    assert not lc.runs_older_definition(status('running'), definition)
    assert lc.runs_older_definition(status('running'), c.VmDefinition(name='web1', memory=1024 * MIB))


def test_configured_memory_of_an_instance_is_unknown_while_it_runs():
    instance = c.VmDefinition(name='web1', instance_of='base')
    assert lc.configured_memory(status('running'), instance) is None
    assert lc.configured_memory(status('stopped'), instance) == 512 * MIB  # vmctl status of a stopped VM
    assert not lc.runs_older_definition(status('running'), instance)


# -- what _apply acts on, not only the steps shown -----------------------------------------------

FLAGS = {
    # (desired, current): (stop, unpause_first, start, pause, unpause)
    ('running', 'paused'): (False, False, False, False, True),
    ('running', 'stopped'): (False, False, True, False, False),
    ('stopped', 'paused'): (True, True, False, False, False),
    ('stopped', 'running'): (True, False, False, False, False),
    ('paused', 'running'): (False, False, False, True, False),
    ('paused', 'stopped'): (False, False, True, True, False),
    ('restarted', 'running'): (True, False, True, False, False),
    ('present', 'paused'): (False, False, False, False, False),
    ('running', 'running'): (False, False, False, False, False),
}


@pytest.mark.parametrize('desired, current', sorted(FLAGS))
def test_plan_flags_match_what_the_steps_say(desired, current):
    request, = requests(entry(state=desired))
    plan = lc.plan_vm(request, status(current), request.definition)
    assert (plan.stop, plan.unpause_first, plan.start, plan.pause, plan.unpause) == FLAGS[(desired, current)]
    assert plan.acts == any(FLAGS[(desired, current)])


def test_a_new_vm_has_its_definition_changed_and_an_absent_one_too():
    request, = requests(entry(state='present'))
    assert lc.plan_vm(request, None, None).config_changed
    assert not lc.plan_vm(request, None, request.definition).config_changed
    gone, = requests(entry(state='absent'))
    assert lc.plan_vm(gone, None, request.definition).config_changed
    assert not lc.plan_vm(gone, None, None).config_changed


def test_a_hand_written_vm_in_state_absent_is_refused_but_present_is_run_state_only():
    assert problems_of(dict(name='hand', state='absent'))[0].startswith("vm 'hand': state: the VM is defined by hand")
    request, = lc.build_requests([dict(name='hand', state='running')], conf(), path_exists=lambda path: True)
    assert request.definition is None and request.hand_written.name == 'hand'


def test_an_unknown_state_is_refused():
    assert problems_of(entry(state='started')) == [
        "vm 'web1': state: must be one of present, running, stopped, restarted, paused, absent"]


def test_a_disk_path_of_path_max_bytes_is_refused_and_one_less_accepted():
    ok = '/' + 'd' * 1022
    request, = lc.build_requests([entry(disks=[ok])], conf(), path_exists=lambda path: True)
    assert request.definition.disks == [c.Disk(ok)]
    too_long = '/' + 'd' * 1023
    with pytest.raises(lc.ValidationError) as info:
        lc.build_requests([entry(disks=[too_long])], conf(), path_exists=lambda path: True)
    assert info.value.problems == ["vm 'web1': disks: %r is longer than PATH_MAX" % ('/' + 'd' * 39 + '...')]


def test_a_disk_that_is_neither_path_nor_dict_is_refused_alone():
    assert problems_of(entry(disks=[5, '/var/vmm/missing.qcow2'])) == [
        "vm 'web1': disks: 5 must be a path or a dict with path and format",
        "vm 'web1': disks: /var/vmm/missing.qcow2 does not exist (create it with openbsd.vmm.vmm_disk first)"]


# -- names and instance_of -------------------------------------------------------------------

def test_a_bad_name_is_one_problem_and_the_entry_goes_no_further():
    assert problems_of(entry(name='web 1', memory='1T')) == [
        'vm \'web 1\': name: a VM name may contain only letters, digits, ".", "_" and "-"']


@pytest.mark.parametrize('parent, problem', [
    ('web1', 'a VM cannot be an instance of itself'),
    ('bad parent', 'a VM name may contain only letters, digits, ".", "_" and "-"'),
])
def test_instance_of_is_checked(parent, problem):
    assert problems_of(entry(instance_of=parent)) == ["vm 'web1': instance_of: %s" % problem]


def test_an_empty_instance_of_is_none():
    request, = requests(entry(instance_of=''))
    assert request.definition.instance_of is None


def test_a_relative_disk_is_one_problem():
    # not also "does not exist": a refused path is not looked up
    assert problems_of(entry(disks=['a.qcow2'])) == ["vm 'web1': disks: 'a.qcow2' must be an absolute path"]


def test_an_interface_that_is_not_a_dict_is_one_problem():
    assert problems_of(entry(interfaces=['uplink'])) == ["vm 'web1': interfaces[0]: 'uplink' must be a dict"]


def test_a_parent_kept_with_its_new_instance_is_no_removal():
    parent, child = requests(entry(name='base', allow_instance=['disk']), entry(name='child', instance_of='base'))
    assert (parent.name, child.definition.instance_of) == ('base', 'base')


def test_a_disk_path_vm_conf_cannot_hold_is_one_problem():
    assert problems_of(entry(disks=['/var/vmm/a\nb.qcow2'])) == [
        "vm 'web1': disks: '/var/vmm/a\\nb.qcow2' cannot be written to vm.conf: it contains a line break"]
