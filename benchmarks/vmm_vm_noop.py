# -*- coding: utf-8 -*-
# Copyright: openbsd.vmm contributors
# BSD 2-Clause License (see LICENSE)
"""vmm_vm with 40 VMs in one `vms:` run: vmctl calls and wall time, converge vs no-op.

A fresh lab; 40 sparse raw disks; then the same `vms:` list twice: the first run defines
every VM (and starts the first --running of them), the second finds nothing to do. The
module runs as Ansible runs it: its own Python process, arguments in a JSON file. Printed:
vmctl calls (from the module's returned `commands`) and wall time of each run, and the ratio.
The no-op must make exactly one vmctl call (status), change nothing and need no restart (each VM
has a local interface and restart_on_change is on); the script exits 1 otherwise.
Measurement only: nothing here asserts a time.

    .venv/bin/python benchmarks/vmm_vm_noop.py [--vms 40] [--running 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from _bench import checkout_lab_env, collection_module, run_module

DISK_SIZE = 64 * 1024 * 1024


def vmctl_calls(result):
    return [argv for argv in result['commands'] if argv[0] == 'vmctl']


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--vms', type=int, default=40)
    parser.add_argument('--running', type=int, default=10, help='how many of the VMs run (the rest are stopped)')
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix='vmm-vm-noop-') as workdir:
        # The collection as Python imports it: .../ansible_collections/openbsd/vmm -> this checkout.
        lab_root, env = checkout_lab_env(workdir)
        module = collection_module(os.path.join(workdir, 'ansible_collections'), 'vmm_vm')
        subprocess.run(['lab', 'init', '--taps', str(max(16, options.running))], env=env, check=True)
        subprocess.run(['lab', 'vmd', 'start'], env=env, check=True)
        try:
            disk_dir = os.path.join(lab_root, 'vmm')
            os.makedirs(disk_dir, exist_ok=True)
            vms = []
            for index in range(options.vms):
                path = os.path.join(disk_dir, 'bench%02d.raw' % index)
                with open(path, 'wb') as disk:
                    disk.truncate(DISK_SIZE)        # what `vmctl create` writes for raw: a sparse file
                # One local interface each: the run counts the lab's /dev/tapN first (dev_dir).
                vms.append(dict(name='bench%02d' % index, memory='64M', disks=[dict(path=path, format='raw')],
                                interfaces=[dict(local=True)], state='running' if index < options.running else 'stopped'))
            # restart_on_change: an unchanged running VM (vmctl shows 68.0M for 64M) must not be restarted.
            args = dict(vms=vms, vm_conf=os.path.join(lab_root, 'etc', 'vm.conf'), dev_dir=os.path.join(lab_root, 'dev'),
                        restart_on_change=True)
            converge, converge_time = run_module(module, workdir, env, args)
            noop, noop_time = run_module(module, workdir, env, args)
        finally:
            subprocess.run(['lab', 'vmd', 'stop'], env=env, check=False)

    converge_calls, noop_calls = vmctl_calls(converge), vmctl_calls(noop)
    print('vmm_vm, %d VMs in one vms: run (%d running, %d stopped)' % (options.vms, options.running, options.vms - options.running))
    print('%-9s %8s %12s %11s' % ('run', 'changed', 'vmctl calls', 'wall time'))
    print('%-9s %8s %12d %10.2fs' % ('converge', converge['changed'], len(converge_calls), converge_time))
    print('%-9s %8s %12d %10.2fs' % ('no-op', noop['changed'], len(noop_calls), noop_time))
    print('no-op / converge wall time: %.3f' % (noop_time / converge_time))
    print('no-op vmctl calls: %s' % ' | '.join(' '.join(argv) for argv in noop_calls))
    print('no-op restart_required: %s' % noop.get('restart_required'))
    if noop['changed'] or noop_calls != [['vmctl', 'status']] or noop.get('restart_required'):
        print('FAIL: the no-op run must make exactly one vmctl call (status) and change nothing')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
