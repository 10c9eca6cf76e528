# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""The argument spec of openbsd.vmm.vmm_autoinstall, shared by its action plugin and its module.

The action plugin validates the task's arguments against ARGUMENT_SPEC; the module
receives the same options plus ``payload``, the path of the file holding what the action plugin
rendered (transferred into the task's remote temporary directory). ``payload`` is not part of the
module's spec: users cannot set it (the action plugin validates the task against ARGUMENT_SPEC), and the
action plugin runs the module with ``ignore_unknown_opts`` so that AnsibleModule keeps it in its params.
"""

from __future__ import annotations

import copy

USER_SPEC = dict(
    name=dict(type='str', required=True),
    fullname=dict(type='str'),
    password=dict(type='str', required=True, no_log=True),
    ssh_keys=dict(type='list', elements='str', default=[], no_log=False),
)
NETWORK_SPEC = dict(
    interface=dict(type='str', default='vio0'),
    ipv4=dict(type='str', default='autoconf'),
    ipv4_gateway=dict(type='str'),
    ipv6=dict(type='str', default='autoconf'),
    ipv6_gateway=dict(type='str'),
    domain=dict(type='str'),
    nameservers=dict(type='list', elements='str', default=[]),
)
SITE_FILE_SPEC = dict(
    path=dict(type='str', required=True),
    content=dict(type='str', required=True),
    mode=dict(type='str', default='0644'),
)
SITE_SPEC = dict(
    files=dict(type='list', elements='dict', default=[], options=SITE_FILE_SPEC),
    install_site=dict(type='str'),
    per_host=dict(type='bool', default=True),
)
ARGUMENT_SPEC = dict(
    state=dict(type='str', default='installed', choices=['published', 'installed', 'absent']),
    name=dict(type='str', required=True),
    mac=dict(type='str', required=True),
    hostname=dict(type='str'),
    root_password=dict(type='str', no_log=True),
    bcrypt_rounds=dict(type='int', default=10),
    root_ssh_key=dict(type='str', no_log=False),
    allow_root_ssh=dict(type='str', choices=['yes', 'no', 'prohibit-password']),
    sshd=dict(type='bool', default=True),
    users=dict(type='list', elements='dict', default=[], options=USER_SPEC),
    timezone=dict(type='str', default='UTC'),
    sets=dict(type='list', elements='str', default=[]),
    network=dict(type='dict', default={}, options=NETWORK_SPEC),
    disklabel=dict(type='raw', default='auto'),
    site=dict(type='dict', options=SITE_SPEC),
    # Answers may carry passphrases (disk encryption, ...): their values are secret.
    answers=dict(type='dict', default={}, no_log=True),
    install_server=dict(type='str'),
    docroot=dict(type='path', default='/var/www/htdocs'),
    file_group=dict(type='str', default='www'),
    disk=dict(type='path'),
    memory=dict(type='str'),
    bsd_rd=dict(type='path'),
    release=dict(type='str', default='7.8'),
    arch=dict(type='str', default='amd64'),
    install_timeout=dict(type='int', default=1800),
    console_log=dict(type='path'),
    vm_conf=dict(type='path', default='/etc/vm.conf'),
    install_clients_table=dict(type='str', default='vmm_install_clients'),
    pf_anchor=dict(type='str', default='openbsd-vmm'),
)


def module_argument_spec():
    """The module's spec: the task's options, a fresh copy for AnsibleModule (``payload`` comes on top, unlisted)."""
    return copy.deepcopy(ARGUMENT_SPEC)
