#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: vmm_host_info
short_description: Check an OpenBSD host for everything the openbsd.vmm collection relies on
version_added: 0.1.0
description:
  - Reads the host in one run and reports one check per fact the collection relies on, each with its status
    (C(pass), C(fail), C(skip)), what was found, and for a failed check how to fix it (a command or a role variable).
  - "The checks: OpenBSD release and architecture (C(os)); the Python running the module (C(python)); running as root
    (C(become)); vmd enabled with flags that read O(vm_conf) (C(vmd_enabled)); vmd running (C(vmd_running)); C(vmctl status)
    answers (C(vmctl)); O(vm_conf) passes C(vmd -n -f) (C(vm_conf)); C(/dev/tapN) nodes for the interfaces of O(vms)
    (C(taps)); pty pairs for their consoles and O(pty_spare) logins (C(ptys)); each of O(sysctls) (C(sysctl NAME));
    pf enabled (C(pf_enabled)); the anchor O(pf_anchor) loaded and called from the main rule set (C(pf_anchor));
    httpd and dhcpd configuration valid, enabled with flags that read it, running (C(httpd), C(dhcpd)); the files the
    installer fetches present and readable by O(www_user) (C(docroot)); the release's signify key (C(signify_key));
    free space in O(image_dir) (C(free_space)); the install server answering on each of O(listen) (fetched with
    C(ftp -o -)) and the anchor's C(rdr-to) rules sending the VMs' port 80 there, from the taps and from each of
    O(switches) with an address (C(install_server))."
  - Changes nothing; every command it runs only reports (C(rcctl get), C(rcctl check), C(vmctl status), C(vmd -n),
    C(sysctl -n), C(pfctl -si), C(pfctl -sr), C(httpd -n), C(dhcpd -n), C(ftp -o -)).
author:
  - openbsd.vmm contributors (@openbsd-vmm)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - openbsd.vmm.attributes.info_module
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  action_group:
    support: full
    membership: [openbsd.vmm.vmm]
options:
  vm_conf:
    description: Path of vm.conf (C(vmm_host_vm_conf)).
    type: path
    default: /etc/vm.conf
  dev_dir:
    description: Directory of the tap and pty device nodes (C(vmm_host_dev_dir)).
    type: path
    default: /dev
  vms:
    description:
      - The VMs the host must be able to run (the host's C(vmm_guests)); entries with C(state=absent) are left out.
      - Each takes one tap per interface (C(interfaces) as a list or a number, else 1) and one pty for its console.
    type: list
    elements: dict
    default: []
  pty_spare:
    description: Pty pairs wanted besides the VMs' consoles (logins, C(vmctl console), tmux).
    type: int
    default: 8
  sysctls:
    description: Kernel settings the host needs, as the vmm_host role sets them.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: sysctl name.
        type: str
        required: true
      value:
        description: Wanted value.
        type: str
        required: true
      variable:
        description: The role variable that sets it (named in the advice).
        type: str
  pf:
    description: Whether pf and the collection's anchor are used (C(vmm_host_pf)).
    type: bool
    default: true
  pf_anchor:
    description: Name of the collection's pf anchor (C(vmm_host_pf_anchor)).
    type: str
    default: openbsd-vmm
  switches:
    description:
      - The host's switches (C(vmm_host_switches)). For each with C(address) (the host's address on the switch network,
        a next-server) and C(address_interface), the anchor must redirect port 80 arriving there to the install server.
      - Other keys are ignored.
    type: list
    elements: dict
    default: []
  httpd:
    description: Whether the host serves installs with httpd (C(install_server_httpd)).
    type: bool
    default: true
  httpd_conf:
    description: httpd.conf (C(install_server_httpd_conf)).
    type: path
    default: /etc/httpd.conf
  listen:
    description: Addresses httpd listens on for installs (C(install_server_listen)); the first is the C(rdr-to) target.
    type: list
    elements: str
    default: [127.0.0.1]
  port:
    description: Port httpd listens on (C(install_server_port)).
    type: int
    default: 80
  dhcpd:
    description: Whether the host runs dhcpd for switches (C(install_server_dhcpd)).
    type: bool
    default: false
  dhcpd_conf:
    description: dhcpd.conf (C(install_server_dhcpd_conf)).
    type: path
    default: /etc/dhcpd.conf
  chroot:
    description: httpd's chroot (C(install_server_chroot)).
    type: path
    default: /var/www
  docroot:
    description: The install docroot (C(install_server_docroot)).
    type: path
    default: /var/www/htdocs
  sets_dir:
    description: Directory of the sets (C(install_server_sets_dir)); default C(<docroot>/pub/OpenBSD/<release>/<arch>).
    type: path
  release:
    description: OpenBSD release whose sets are served (C(install_server_release)).
    type: str
    default: '7.8'
  arch:
    description: Architecture whose sets are served (C(install_server_arch)).
    type: str
    default: amd64
  www_user:
    description: The user httpd serves files as.
    type: str
    default: www
  signify_key:
    description: signify public key of the release; default C(/etc/signify/openbsd-<XY>-base.pub) (C(install_server_signify_key)).
    type: path
  image_dir:
    description: Directory where disk images live (C(vmm_disk_dir)).
    type: path
    default: /var/vmm
  min_free:
    description: Free space wanted in O(image_dir) (scan_scaled syntax).
    type: str
    default: 4G
notes:
  - Only Python's standard library is used on the target.
  - Run it with C(become) (C(become_method=community.general.doas)); C(vmctl), C(pfctl) and C(rcctl) need root.
seealso:
  - module: openbsd.vmm.vmm_vm_info
'''

EXAMPLES = r'''
- name: Check the host before using the collection
  openbsd.vmm.vmm_host_info:
    vms: "{{ vmm_guests | default([]) }}"
    sysctls:
      - {name: net.inet.ip.forwarding, value: "1", variable: vmm_host_forwarding}
  become: true
  become_method: community.general.doas
  register: preflight

- name: The checks that failed, with their fixes
  ansible.builtin.debug:
    msg: "{{ preflight.checks | selectattr('status', 'eq', 'fail') | map(attribute='fix') | list }}"
'''

RETURN = r'''
checks:
  description: One record per check, in a fixed order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the check (C(os), C(taps), C(sysctl net.inet.ip.forwarding), ...).
      type: str
      sample: taps
    status:
      description: C(pass), C(fail) or C(skip) (not used on this host).
      type: str
      sample: fail
    detail:
      description: What was found.
      type: str
      sample: 16 usable taps in /dev, the planned VMs need 40; 24 missing
    fix:
      description: How to fix a failed check (empty otherwise).
      type: str
      sample: cd /dev && sh MAKEDEV tap16 ... tap39 (or the vmm_host role with vmm_host_tap_count 40)
    facts:
      description: The values the check read.
      type: dict
failed_checks:
  description: Names of the failed checks.
  returned: always
  type: list
  elements: str
  sample: [vmd_running, taps]
ok:
  description: Whether no check failed.
  returned: always
  type: bool
commands:
  description: The commands run.
  returned: always
  type: list
  elements: list
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openbsd.vmm.plugins.module_utils.host_preflight import FAIL, Probe, run_checks


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vm_conf=dict(type='path', default='/etc/vm.conf'),
            dev_dir=dict(type='path', default='/dev'),
            vms=dict(type='list', elements='dict', default=[]),
            pty_spare=dict(type='int', default=8),
            sysctls=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                value=dict(type='str', required=True),
                variable=dict(type='str'),
            )),
            pf=dict(type='bool', default=True),
            pf_anchor=dict(type='str', default='openbsd-vmm'),
            switches=dict(type='list', elements='dict', default=[]),
            httpd=dict(type='bool', default=True),
            httpd_conf=dict(type='path', default='/etc/httpd.conf'),
            listen=dict(type='list', elements='str', default=['127.0.0.1']),
            port=dict(type='int', default=80),
            dhcpd=dict(type='bool', default=False),
            dhcpd_conf=dict(type='path', default='/etc/dhcpd.conf'),
            chroot=dict(type='path', default='/var/www'),
            docroot=dict(type='path', default='/var/www/htdocs'),
            sets_dir=dict(type='path'),
            release=dict(type='str', default='7.8'),
            arch=dict(type='str', default='amd64'),
            www_user=dict(type='str', default='www'),
            signify_key=dict(type='path'),
            image_dir=dict(type='path', default='/var/vmm'),
            min_free=dict(type='str', default='4G'),
        ),
        supports_check_mode=True,
    )
    probe = Probe()
    checks = run_checks(module.params, probe)
    failed = [check['name'] for check in checks if check['status'] == FAIL]
    module.exit_json(changed=False, checks=checks, failed_checks=failed, ok=not failed, commands=probe.commands)


if __name__ == '__main__':
    main()
