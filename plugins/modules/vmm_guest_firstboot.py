#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: vmm_guest_firstboot
short_description: First-boot configuration of an OpenBSD guest, in one run on the guest
version_added: 0.1.0
description:
  - Runs on a guest cloned from a golden image (over SSH with the image's key) and gives it its own host name
    (C(/etc/myname) and the running system), the static IPv6 line of its C(hostname.if), its users with their
    keys and passwords, and root's extra keys. Everything in one module run, so a fleet's first boot costs one
    round trip per guest; the role C(openbsd.vmm.guest_firstboot) is the usual way to call it.
  - Each part compares the guest's files with what is asked and changes only what differs (a file is written
    whole, under a temp name renamed into place). A second run changes nothing.
  - Passwords arrive hashed (bcrypt, hashed on the controller). A random password is delivered once, as a comment
    line in its user's C(authorized_keys), and only to a user created in this run.
author:
  - openbsd.vmm contributors (@openbsd-vmm)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows the files it writes (C(/etc/myname), C(hostname.if), C(authorized_keys)); a random password
      shows as C(********).
  platform:
    platforms: openbsd
options:
  hostname:
    description:
      - The guest's host name, short or fully qualified (OpenBSD keeps the FQDN in C(/etc/myname)). Left as it is
        when not given.
    type: str
  interface:
    description: The interface whose C(hostname.if) gets O(address6).
    type: str
    default: vio0
  address6:
    description:
      - A static IPv6 address (prefix length 64) for O(interface), written as C(inet6 ADDRESS 64) over the last
        static C(inet6) line of C(/etc/hostname.IF) (taken at the next boot or C(sh /etc/netstart IF)). When
        empty, the file is left alone.
    type: str
    default: ''
  users:
    description: Users, created with C(useradd -m), updated with C(usermod), removed with C(userdel) (home kept).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Login name.
        type: str
        required: true
      state:
        description: Whether the user exists.
        type: str
        choices: [present, absent]
        default: present
      groups:
        description: Secondary groups the user is added to (other memberships are kept).
        type: list
        elements: str
        default: []
      shell:
        description: Login shell.
        type: str
        default: /bin/ksh
      authorized_keys:
        description: OpenSSH public key lines added to C(~/.ssh/authorized_keys) (other lines are kept).
        type: list
        elements: str
        default: []
      password_hash:
        description: The user's password as a bcrypt hash (C($2b$...)); none means no password login.
        type: str
      update_password:
        description: C(always) sets O(users[].password_hash) whenever the stored hash differs; C(on_create) only
          when the user is created.
        type: str
        choices: [always, on_create]
        default: always
      random_password:
        description:
          - The plain text of a random password whose hash is O(users[].password_hash), delivered once as a
            comment line at the top of the user's C(authorized_keys) when the user is created in this run.
            Needs O(users[].update_password=on_create).
        type: str
  root_keys:
    description: OpenSSH public key lines added to root's C(authorized_keys) (the image's key stays).
    type: list
    elements: str
    default: []
notes:
  - Secondary groups are added with C(usermod -G) on OpenBSD (it appends; C(-S) would set them) and C(usermod -a -G)
    elsewhere. The stored hash is read from C(/etc/master.passwd) on OpenBSD and C(/etc/shadow) elsewhere.
'''

EXAMPLES = r'''
- name: First boot of a guest, on the guest
  openbsd.vmm.vmm_guest_firstboot:
    hostname: web1.example.org
    address6: "fd00:198:51:100::b"
    users:
      - name: alice
        groups: [staff]
        authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHm1wW5sGHt3dXn2xW6wgh5Dn8CGZ3+V5Go5kYxlS8Vd alice@laptop"]
        # a new random salt at every run: set it only when the user is created, or a second run would change it
        password_hash: "{{ alice_password | password_hash('bcrypt') }}"
        update_password: on_create
  no_log: true
'''

RETURN = r'''
changes:
  description: What the run changed (or would change in check mode), in the order it did it.
  returned: always
  type: list
  elements: str
  sample: ["write /etc/myname", "hostname web1.example.org", "useradd alice", "mkdir /home/alice/.ssh",
           "write /home/alice/.ssh/authorized_keys"]
created_users:
  description: The users created in this run (a random password was delivered to each of them that has one).
  returned: always
  type: list
  elements: str
  sample: [alice]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openbsd.vmm.plugins.module_utils import guest_firstboot

USER_SPEC = dict(
    name=dict(type='str', required=True),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    groups=dict(type='list', elements='str', default=[]),
    shell=dict(type='str', default='/bin/ksh'),
    authorized_keys=dict(type='list', elements='str', default=[], no_log=False),
    password_hash=dict(type='str', no_log=True),
    update_password=dict(type='str', choices=['always', 'on_create'], default='always', no_log=False),
    random_password=dict(type='str', no_log=True),
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            hostname=dict(type='str'),
            interface=dict(type='str', default='vio0'),
            address6=dict(type='str', default=''),
            users=dict(type='list', elements='dict', default=[], options=USER_SPEC),
            root_keys=dict(type='list', elements='str', default=[], no_log=False),
        ),
        supports_check_mode=True,
    )
    refused = guest_firstboot.problems(module.params)
    if refused:
        module.fail_json(msg=' '.join(refused))
    # LANG=C: `hostname` and the user tools print in the C locale, as parsed here
    module.run_command_environ_update = dict(LANG='C', LC_ALL='C', LC_MESSAGES='C')
    guest = guest_firstboot.Guest(module.run_command, module.check_mode)
    try:
        created = guest_firstboot.configure(guest, module.params)
    except (guest_firstboot.FirstbootError, OSError) as exc:
        module.fail_json(msg=str(exc), changes=guest.changes)
    result = dict(changed=bool(guest.changes), changes=guest.changes, created_users=created)
    if module._diff and guest.diffs:
        result['diff'] = guest.diffs
    module.exit_json(**result)


if __name__ == '__main__':
    main()
