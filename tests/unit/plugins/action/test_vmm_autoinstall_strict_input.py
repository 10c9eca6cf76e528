# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_autoinstall refuses, on the controller and before the target is touched, what the installer or vmd cannot use.

Each message names the option and the rule (issue 10, point 8: full matches, no trailing line break).
"""

from __future__ import annotations

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.openbsd.vmm.plugins.action.vmm_autoinstall import ARGUMENT_SPEC, AutoinstallError, build_payload


def options(**overrides):
    base = dict(name='web1', mac='fe:e1:bb:d1:00:01', root_password='s3cret pass', bcrypt_rounds=10)
    base.update(overrides)
    result = ArgumentSpecValidator(ARGUMENT_SPEC).validate(base)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


@pytest.mark.parametrize('overrides, message', [
    (dict(name='web1\n', hostname='web1'), r"^name 'web1\\n': a VM name may contain only letters"),
    (dict(name='-web1', hostname='web1'), r"^name '-web1': a VM name must not start with"),
    (dict(mac='01:00:5e:00:00:01'), r'^mac 01:00:5e:00:00:01 is a multicast address'),
    (dict(mac='ff:ff:ff:ff:ff:ff'), r'^mac ff:ff:ff:ff:ff:ff is a multicast address'),
    (dict(arch='foo'), r"^arch 'foo': vmm\(4\) runs amd64 and i386 guests only"),
    (dict(install_timeout=0), r'^install_timeout 0 must be a positive number of seconds'),
    (dict(install_timeout=-5), r'^install_timeout -5 must be a positive number of seconds'),
    (dict(memory='0'), r"^memory '0' is 0 bytes; vmd needs at least 1M"),
    (dict(memory='lots'), r"^memory: invalid size 'lots'"),
    (dict(memory='1G\n'), r"^memory: invalid size '1G\\n': blanks and line breaks"),
    (dict(memory='200G'), r"^memory '200G' is larger than the limit of 128G"),
    (dict(site=dict(files=[dict(path='./install.site', content='x')])), r"^site file path './install.site'"),
    (dict(site=dict(files=[dict(path='/install.site', content='x')])), r"^site file path '/install.site'"),
    (dict(site=dict(files=[dict(path='etc//x', content='x')])), r"^site file path 'etc//x'"),
    (dict(site=dict(files=[dict(path='etc/x\n', content='x')])), r"^site file path 'etc/x\\n'"),
    (dict(site=dict(files=[dict(path='etc/./x', content='x')])), r"^site file path 'etc/./x'"),
    (dict(file_group='www\n'), r"^file_group 'www\\n' is not a group name or number"),
    (dict(docroot='htdocs'), r"^docroot 'htdocs' must be an absolute path"),
    (dict(docroot='/var/www/htdocs\n'), r"^docroot '/var/www/htdocs\\n' contains a control character"),
    (dict(state='installed', disk='/var/vmm/web1.qcow2\n'), r"^disk '/var/vmm/web1.qcow2\\n' contains a control character"),
    (dict(bsd_rd='/var/www/bsd.rd\n'), r"^bsd_rd '/var/www/bsd.rd\\n' contains a control character"),
    (dict(console_log='/tmp/console\n'), r"^console_log '/tmp/console\\n' contains a control character"),
    (dict(vm_conf='/etc/vm.conf\n'), r"^vm_conf '/etc/vm.conf\\n' contains a control character"),
], ids=['name-newline', 'name-dash', 'multicast-mac', 'broadcast-mac', 'arch', 'timeout-0', 'timeout-negative',
        'memory-0', 'memory-garbage', 'memory-newline', 'memory-too-large', 'site-dot-install.site',
        'site-absolute-install.site', 'site-empty-component', 'site-newline', 'site-dot-component', 'file-group-newline',
        'docroot-relative', 'docroot-newline', 'disk-newline', 'bsd-rd-newline', 'console-log-newline', 'vm-conf-newline'])
def test_bad_options_are_refused_naming_option_and_rule(overrides, message):
    with pytest.raises(AutoinstallError, match=message):
        build_payload(options(**overrides))


@pytest.mark.parametrize('overrides', [
    dict(arch='i386'),
    dict(memory='512M'),
    dict(file_group='67'),
    dict(site=dict(files=[dict(path='/etc/rc.local', content='x')])),
    dict(site=dict(files=[dict(path='root/.profile', content='x')])),
    dict(install_timeout=1),
], ids=['i386', 'memory', 'numeric-group', 'absolute-site-path', 'dot-file', 'timeout-1'])
def test_good_options_still_pass(overrides):
    build_payload(options(**overrides))
