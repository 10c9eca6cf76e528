# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""openbsd.vmm.vmm_run_lock: a lock file on the controller held by this ansible-playbook run (plugin_utils/run_lock.py)."""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.openbsd.vmm.plugins.plugin_utils.run_lock import RunLockHeld, acquire, describe, holder_of, release, run_pid

ARGUMENT_SPEC = dict(
    path=dict(type='path', required=True),
    state=dict(type='str', default='present', choices=['present', 'absent']),
)


def _command(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as cmdline:
            return cmdline.read().replace(b'\0', b' ').decode('utf-8', 'replace').strip()
    except OSError:
        return 'ansible-playbook'


class ActionModule(ActionBase):
    """Runs on the controller only: the holder is the ansible-playbook process, this worker's parent."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        validated = ArgumentSpecValidator(ARGUMENT_SPEC).validate(self._task.args)
        if validated.error_messages:
            raise AnsibleActionFail('vmm_run_lock: %s' % '; '.join(validated.error_messages))
        path = validated.validated_parameters['path']
        if not os.path.isabs(path):
            raise AnsibleActionFail('vmm_run_lock: path must be absolute (after ~ is expanded), got %r' % path)
        if not os.path.isdir(os.path.dirname(path)):
            raise AnsibleActionFail('vmm_run_lock: the directory of path %s does not exist' % path)
        # each task runs in a worker forked from ansible-playbook: the run is the worker's parent, while it lives
        try:
            run = run_pid()
        except RunLockHeld as error:
            raise AnsibleActionFail('vmm_run_lock: %s' % error)
        me = holder_of(run, _command(run))
        check_mode = bool(self._task.check_mode)
        # a lock is the run's bookkeeping, not a change to what the playbook manages: a no-op run stays changed=0
        if validated.validated_parameters['state'] == 'absent':
            result.update(changed=False, path=path, released=release(path, me, check_mode))
            return result
        try:
            taken, replaced = acquire(path, me, check_mode)
        except RunLockHeld as error:
            raise AnsibleActionFail('vmm_run_lock: %s' % error)
        result.update(changed=False, path=path, taken=taken, holder=me, replaced=replaced)
        if replaced:
            # a warning: the operator learns that a run was killed even when its task output is not shown
            result['msg'] = 'took over the lock of a run that ended without releasing it: %s' % describe(replaced)
            result['warnings'] = [result['msg']]
        return result
