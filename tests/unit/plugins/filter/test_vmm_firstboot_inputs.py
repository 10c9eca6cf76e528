from __future__ import annotations

import os

import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.filter.vmm_firstboot_inputs import vmm_firstboot_inputs

ROLE = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'guest_firstboot')


def test_a_guest_that_sets_nothing_gets_the_roles_defaults():
    assert vmm_firstboot_inputs([{'inventory_hostname': 'web1', 'vmm_guest': {'name': 'web1-vm'}}]) == [
        {'guest': 'web1', 'vm': 'web1-vm', 'hostname': 'web1', 'domain': '', 'address6': '', 'interface': 'vio0',
         'users': [], 'root_keys': [], 'bcrypt_rounds': 10}]


def test_what_a_guest_sets_wins_and_address6_comes_from_the_inventory_plugin():
    alice = [{'name': 'alice', 'password': 'random'}]
    guest = {'inventory_hostname': 'web2', 'address6': 'fd00::2', 'guest_firstboot_hostname': 'www',
             'guest_firstboot_domain': 'example.org', 'guest_firstboot_interface': 'vio1', 'guest_firstboot_users': alice,
             'guest_firstboot_root_keys': ['ssh-ed25519 AAAA k'], 'guest_firstboot_bcrypt_rounds': 12}
    assert vmm_firstboot_inputs([guest]) == [
        {'guest': 'web2', 'vm': 'web2', 'hostname': 'www', 'domain': 'example.org', 'address6': 'fd00::2',
         'interface': 'vio1', 'users': alice, 'root_keys': ['ssh-ed25519 AAAA k'], 'bcrypt_rounds': 12}]
    # the role's own variable beats the plugin's address, even when empty
    assert vmm_firstboot_inputs([dict(guest, guest_firstboot_address6='')])[0]['address6'] == ''


def test_a_generator_is_read_in_order():
    names = ['a1', 'b2', 'c3']
    assert [inputs['guest'] for inputs in vmm_firstboot_inputs({'inventory_hostname': name} for name in names)] == names


@pytest.mark.parametrize('bad', ['web1', {'inventory_hostname': 'web1'}, [{'name': 'web1'}], ['web1']])
def test_anything_but_host_variables_is_refused(bad):
    with pytest.raises(AnsibleFilterError, match=r'vmm_firstboot_inputs: the input must be a list of host variables, each with inventory_hostname'):
        vmm_firstboot_inputs(bad)


def test_the_defaults_are_the_roles():
    # the role's defaults/main.yml and its argument_specs say the same as the filter
    with open(os.path.join(ROLE, 'defaults', 'main.yml'), encoding='utf-8') as stream:
        defaults = yaml.safe_load(stream)
    with open(os.path.join(ROLE, 'meta', 'argument_specs.yml'), encoding='utf-8') as stream:
        specs = yaml.safe_load(stream)['argument_specs']
    computed = vmm_firstboot_inputs([{'inventory_hostname': 'web1', 'address6': 'fd00::1'}])[0]
    assert defaults['guest_firstboot_hostname'] == '{{ inventory_hostname }}' and computed['hostname'] == 'web1'
    assert defaults['guest_firstboot_address6'] == "{{ address6 | default('') }}" and computed['address6'] == 'fd00::1'
    for key in ('domain', 'interface', 'users', 'root_keys', 'bcrypt_rounds'):
        assert defaults['guest_firstboot_' + key] == computed[key], key
        for entry, spec in specs.items():
            option = spec['options'].get('guest_firstboot_' + key)
            if option is not None and 'default' in option:
                assert option['default'] == computed[key], (entry, key)
