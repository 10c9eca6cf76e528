# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_autoinstall's argument spec as Ansible applies it: required options, defaults, what stays out of logs."""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.openbsd.vmm.plugins.module_utils.autoinstall_spec import ARGUMENT_SPEC, module_argument_spec

MAC = 'fe:e1:bb:d1:00:01'


def validate(**params):
    return ArgumentSpecValidator(ARGUMENT_SPEC).validate(params)


def test_the_defaults_of_a_minimal_task():
    result = validate(name='web1', mac=MAC, site=dict(files=[dict(path='/etc/motd', content='aGk=')]))
    assert result.error_messages == []
    assert result.validated_parameters == dict(
        state='installed', name='web1', mac=MAC, hostname=None, root_password=None, bcrypt_rounds=10, root_ssh_key=None,
        allow_root_ssh=None, sshd=True, users=[], timezone='UTC', sets=[],
        network=dict(interface='vio0', ipv4='autoconf', ipv4_gateway=None, ipv6='autoconf', ipv6_gateway=None, domain=None,
                     nameservers=[]),
        disklabel='auto', site=dict(files=[dict(path='/etc/motd', content='aGk=', mode='0644')], install_site=None, per_host=True),
        answers={}, install_server=None, docroot='/var/www/htdocs', file_group='www', disk=None, memory=None, bsd_rd=None,
        release='7.8', arch='amd64', install_timeout=1800, console_log=None, vm_conf='/etc/vm.conf',
        install_clients_table='vmm_install_clients', pf_anchor='openbsd-vmm')


def test_required_options_at_each_level():
    result = validate(users=[dict(fullname='Web Admin')], site=dict(files=[dict(mode='0600')]))
    assert result.error_messages == ['missing required arguments: mac, name',
                                     'missing required arguments: name, password found in users',
                                     'missing required arguments: content, path found in site -> files']


def test_passwords_and_answers_stay_out_of_logs_and_public_keys_do_not():
    result = validate(name='web1', mac=MAC, root_password='R00t-Secret', root_ssh_key='ssh-ed25519 AAAAroot root@admin',
                      users=[dict(name='admin', password='Us3r-Secret', ssh_keys=['ssh-ed25519 AAAAuser admin@desk'])],
                      answers={'Passphrase for the disk': 'Disk-Secret'})
    assert result.error_messages == []
    assert result._no_log_values == {'R00t-Secret', 'Us3r-Secret', 'Disk-Secret'}


def test_the_module_gets_its_own_copy_of_the_spec():
    spec = module_argument_spec()
    assert spec == ARGUMENT_SPEC
    spec['users']['options']['name']['required'] = False
    spec['network']['options']['interface']['default'] = 'em0'
    assert ARGUMENT_SPEC['users']['options']['name']['required'] is True
    assert ARGUMENT_SPEC['network']['options']['interface']['default'] == 'vio0'
