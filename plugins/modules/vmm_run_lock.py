#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vmm_run_lock
short_description: A lock file on the controller held by one ansible-playbook run
version_added: 0.1.0
description:
  - Keeps two runs of a playbook that works from a journal on the controller (playbooks/migrate.yml) from running at
    once. Runs on the controller only (an action plugin); use it in a play on C(localhost).
  - The lock is a JSON file naming its holder, the ansible-playbook process of this run (pid, host name, and on Linux
    the boot id and the process's start time, so that a pid used again is not taken for the holder). Every task of
    the run holds it; another run is refused, with the holder named.
  - A run that is killed or fails leaves the file; the next run on the same controller finds that its holder no longer
    runs and takes the lock over (RV(replaced) names that run, and a warning says so). A holder on another host, for example with the journal
    on a shared home directory, cannot be checked and is refused; remove the file when that run is known to be gone.
  - The check of the holder and the replacement of a stale lock are serialised with an flock(2) on the lock's
    directory, so two runs that find the same stale lock do not both take it.
  - The task never reports C(changed), since the lock is the run's own bookkeeping; a run that changes nothing else stays
    C(changed=0). RV(taken) and RV(released) say what it did.
author:
  - openbsd.vmm contributors (@openbsd-vmm)
options:
  path:
    description:
      - The lock file, an absolute path on the controller (C(~) is expanded). Its directory must exist.
    type: path
    required: true
  state:
    description:
      - V(present) takes the lock (or keeps it, when this run holds it already).
      - V(absent) releases it when this run holds it, and leaves another run's lock alone.
    type: str
    default: present
    choices: [present, absent]
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    description: Reports whether the lock would be taken or released, and refuses a held lock, without writing the file.
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
"""

EXAMPLES = r"""
- name: One run at a time works from the journal
  openbsd.vmm.vmm_run_lock:
    path: "{{ journal }}.lock"

- name: Let the next run in
  openbsd.vmm.vmm_run_lock:
    path: "{{ journal }}.lock"
    state: absent
"""

RETURN = r"""
path:
  description: The lock file.
  returned: always
  type: str
  sample: /home/op/fleet.vmm.migrate.json.lock
taken:
  description: Whether this task took the lock (false when this run held it already).
  returned: state=present
  type: bool
  sample: true
released:
  description: Whether this task removed the lock (false when the lock was not this run's, or there was none).
  returned: state=absent
  type: bool
  sample: true
holder:
  description: This run as the lock names it.
  returned: state=present
  type: dict
  sample: {"pid": 4242, "host": "controller", "start": "6f1c...:81231", "since": "2026-12-02T04:40:00Z",
           "command": "/usr/bin/python3 /usr/bin/ansible-playbook playbooks/migrate.yml"}
replaced:
  description: The holder of a stale lock this run took over (a run that ended without releasing it), else null.
  returned: state=present
  type: dict
  sample: {"pid": 4100, "host": "controller", "start": null, "since": "2026-12-02T03:10:00Z", "command": "ansible-playbook"}
"""
