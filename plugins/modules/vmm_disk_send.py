#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: vmm_disk_send
short_description: Send a file (a disk image, a pre-copy or a delta) from a vmm host to another host over SSH
version_added: 0.1.0
description:
  - Runs on the host that has O(src) (the source) and sends it to O(dest) on O(host) (the peer) with the source's
    C(ssh), at most O(bwlimit) bytes per second, writing its progress into the file O(progress) on the source while it
    runs (C(playbooks/migrate.yml) uses it under C(async) and follows that file).
  - The file goes through C(ssh) to C(cat) on the peer into V(<dest>.send) (created with umask 077), its sha256
    computed while it is read. A second C(ssh) then checks on the peer that C(sha256 -q) of V(<dest>.send) is the
    sha256 sent, sets O(mode) and renames it onto O(dest). When the sha256 differs, V(<dest>.send) is removed, O(dest)
    is left as it was and the module fails; run it again.
  - A file that changes while it is sent (the disk of a running VM) arrives as the bytes that were read; the sha256
    checked and returned is theirs.
  - C(ssh) runs with C(BatchMode=yes) (no password or passphrase prompts) as O(user), so the source's key must be
    accepted by the peer and the peer's host key known (O(ssh_options) can name another C(UserKnownHostsFile) or
    C(IdentityFile)). The peer needs a POSIX shell, C(cat), C(sha256) (OpenBSD's), C(chmod) and C(mv); no Python.
  - The progress file is written line by line, each line flushed. First V(pid <pid>) (this run's process), then
    V(<N>%) each time a multiple of ten percent of O(src) has been handed to C(ssh) (V(0%) to V(100%), an empty file
    V(0%) then V(100%)), and last either V(done <bytes> bytes in <seconds> s) once the peer has the file, or
    V(failed:) followed by the reason the module fails with.
  - While it sends, the module holds an exclusive lock (flock) on the progress file. A run that finds the lock held
    (an earlier run's module still sending, for example after its C(ansible-playbook) was killed) stops the process
    that the file names with SIGTERM, and SIGKILL if it is still there 10 seconds later, then starts over with an empty
    progress file. A stopped send ends its C(ssh) and writes a V(failed:) line naming SIGTERM; it may leave a partial
    V(<dest>.send) on the peer, which the next send overwrites. A progress file that nobody holds locked names no live
    sender and is simply emptied (its pid, perhaps used again since by another process, is not signalled).
author:
  - openbsd.vmm contributors (@openbsd-vmm)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: >-
      Sends nothing and leaves O(progress) untouched. Checks the options and that O(src) is a regular file, then runs
      one C(ssh) with the same options, C(test -d DIR && test -w DIR) on the peer for the directory of O(dest) (it
      reads, never writes), and fails naming O(user), O(host), the directory and ssh's message when that fails;
      reports the C(ssh) command a send would run.
  diff_mode:
    support: none
  platform:
    platforms: openbsd
options:
  src:
    description: The file to send, on the source; an absolute path to a regular file.
    type: path
    required: true
  dest:
    description:
      - Where the file goes on the peer, an absolute path not ending in V(/), without line breaks, NULs or other control
        characters. Its directory must exist there. Given as is to the peer (not expanded on the source).
      - The file arrives as V(<dest>.send) beside it first, renamed onto O(dest) once its sha256 is checked.
    type: str
    required: true
  host:
    description:
      - The peer, as C(ssh) reaches it from the source; a host name (letters, digits, V(-), V(_) and dots, starting and
        ending with a letter or digit), an IPv4 address, or an IPv6 address without brackets.
    type: str
    required: true
  user:
    description:
      - The login name on the peer (C(ssh -l)); lower-case letters, digits, V(_), V(.) and V(-), not starting with a digit,
        V(.) or V(-), at most 32 characters.
    type: str
    default: root
  port:
    description: The peer's SSH port (C(ssh -p)), from 1 to 65535.
    type: int
    default: 22
  ssh_options:
    description:
      - Options for C(ssh), each given as C(-o Name=value) after C(-o BatchMode=yes), for example V(StrictHostKeyChecking=accept-new)
        or V(IdentityFile=/root/.ssh/migrate). Each is a letter, then letters and digits, V(=), then a value without blanks.
    type: list
    elements: str
    default: []
  bwlimit:
    description:
      - At most this many bytes per second, as a size such as V(20M) or V(512K) (scan_scaled(3), 1024-based; a bare
        number means bytes); at least V(64K). The bytes sent by any time t after the start never exceed O(bwlimit)
        times t plus one 64 KiB chunk.
      - No limit when left out.
    type: str
  mode:
    description: The mode of O(dest) on the peer, an octal string such as V('0600') (quote it in YAML).
    type: str
    default: '0600'
  progress:
    description:
      - The progress file on the source (see the description), an absolute path in an existing directory; not a
        symbolic link. Created with mode 0644 if missing, emptied at the start of each run.
    type: path
    required: true
notes:
  - The module is meant to run under C(async) with C(poll) set to 0; follow O(progress) with M(ansible.builtin.wait_for)
    and its C(search_regex), then collect the result with M(ansible.builtin.async_status).
  - The progress file keeps the last line of an earlier run until the new run has emptied it (at once, or after an
    older sender has stopped); check the result with M(ansible.builtin.async_status) rather than relying on a
    V(done) line read right after the start.
seealso:
  - module: openbsd.vmm.vmm_disk_delta
  - module: ansible.builtin.async_status
  - module: ansible.builtin.wait_for
'''

EXAMPLES = r'''
- name: Send the pre-copy of web1's disk to vmm2 at 20 MiB/s, in the background
  openbsd.vmm.vmm_disk_send:
    src: /var/vmm/web1.qcow2
    dest: /var/vmm/web1.qcow2.precopy
    host: vmm2.example.org
    bwlimit: 20M
    ssh_options:
      - StrictHostKeyChecking=accept-new
    progress: /var/vmm/web1.qcow2.send-progress
  delegate_to: vmm1
  async: 7200
  poll: 0
  register: web1_send

- name: Follow the progress file until the send ends
  ansible.builtin.wait_for:
    path: /var/vmm/web1.qcow2.send-progress
    search_regex: "^{{ item }}%$|^done.*$|^failed.*$"
    timeout: 3600
  delegate_to: vmm1
  loop: [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]

- name: The result of the send
  ansible.builtin.async_status:
    jid: "{{ web1_send.ansible_job_id }}"
  delegate_to: vmm1
  register: web1_sent
  until: web1_sent.finished
  retries: 720
  delay: 5
'''

RETURN = r'''
bytes:
  description: The number of bytes sent (in check mode, the size of O(src)).
  returned: success
  type: int
  sample: 2147483648
sha256:
  description: The sha256 of the bytes sent, which the file on the peer has.
  returned: success and not check mode
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
seconds:
  description: How long the send took, from the start of the first C(ssh) to the end of the check on the peer.
  returned: success and not check mode
  type: float
  sample: 102.4
rate:
  description: RV(bytes) divided by RV(seconds), in bytes per second (V(0.0) when too short to time).
  returned: success and not check mode
  type: float
  sample: 20971520.0
dest:
  description: O(dest), where the file is on the peer.
  returned: success
  type: str
  sample: /var/vmm/web1.qcow2.precopy
host:
  description: O(host), the peer.
  returned: success
  type: str
  sample: vmm2.example.org
cmd:
  description: The argv of the C(ssh) that carries the file, for the record.
  returned: success
  type: list
  elements: str
  sample:
    - /usr/bin/ssh
    - -o
    - BatchMode=yes
    - -p
    - '22'
    - -l
    - root
    - --
    - vmm2.example.org
    - umask 077 && rm -f /var/vmm/web1.qcow2.precopy.send && exec cat > /var/vmm/web1.qcow2.precopy.send
stopped:
  description: The pid of an older send of the same progress file that this run stopped, or null.
  returned: success and not check mode
  type: int
  sample: 4711
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openbsd.vmm.plugins.module_utils import disk_send


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type='path', required=True),
            dest=dict(type='str', required=True),
            host=dict(type='str', required=True),
            user=dict(type='str', default='root'),
            port=dict(type='int', default=22),
            ssh_options=dict(type='list', elements='str', default=[]),
            bwlimit=dict(type='str'),
            mode=dict(type='str', default='0600'),
            progress=dict(type='path', required=True),
        ),
        supports_check_mode=True,
    )
    # not required=True here: a missing ssh is reported like every other failure, on the progress file's failed: line too
    ssh = module.get_bin_path('ssh')
    try:
        result = disk_send.run(module.params, ssh, check_mode=module.check_mode)
    except disk_send.SendError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
