# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How long vmm_autoinstall takes to return once the install VM has terminated (goal: <= 1 s).

For each run a fresh disk is installed in a lab of its own. The module runs as Ansible runs
it (its own process, arguments in a JSON file, the payload rendered by the action plugin's
code). Meanwhile this script finds the install VM's process in `vmctl status` and watches it
with a pidfd, so the moment the VM process exits is known to the microsecond (the vmd log
only has whole seconds). The delay printed is: module process exit - VM process exit.

    make collection && .venv/bin/python benchmarks/autoinstall_latency.py [RUNS]
"""

from __future__ import annotations

import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLL_ROOT = os.environ.get('COLL_ROOT', os.path.join(ROOT, '.build', 'ansible_collections'))
LAB_BIN = os.path.join(ROOT, 'tests', 'lab', 'bin')
MODULE = os.path.join(COLL_ROOT, 'openbsd', 'vmm', 'plugins', 'modules', 'vmm_autoinstall.py')


def lab_env(lab_root):
    env = dict(os.environ, VMM_LAB_ROOT=lab_root, PATH=LAB_BIN + os.pathsep + os.environ.get('PATH', ''))
    env['PYTHONPATH'] = os.path.dirname(COLL_ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    return env


def run(argv, env):
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)


def watch_vm_exit(name, env, found, stop):
    """Find VM ``name``'s process in vmctl status and record when it exits (pidfd, no polling of the exit)."""
    while not stop.is_set():
        output = subprocess.run(['vmctl', 'status'], env=env, capture_output=True, text=True, check=False).stdout
        for line in output.splitlines()[1:]:
            words = line.split()
            if words and words[-1] == name and words[-2] == 'running' and words[1] != '-':
                try:
                    pidfd = os.pidfd_open(int(words[1]))
                except ProcessLookupError:
                    found['exited'] = time.monotonic()
                    return
                select.select([pidfd], [], [])
                found['exited'] = time.monotonic()
                os.close(pidfd)
                return


def one_run(index, base):
    from ansible_collections.openbsd.vmm.plugins.action.vmm_autoinstall import ARGUMENT_SPEC, build_payload
    from ansible_collections.openbsd.vmm.plugins.modules.vmm_autoinstall import temp_vm_definition
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    lab_root = os.path.join(base, 'lab%d' % index)
    env = lab_env(lab_root)
    run(['lab', 'init'], env)
    run(['lab', 'vmd', 'start'], env)
    try:
        docroot = os.path.join(lab_root, 'var', 'www', 'htdocs')
        run(['lab', 'mirror', os.path.join(docroot, 'pub', 'OpenBSD'), '7.8', 'amd64'], env)
        disk = os.path.join(lab_root, 'disk%d.qcow2' % index)
        subprocess.run(['vmctl', 'create', '-s', '4G', disk], env=env, check=True, capture_output=True)
        options = dict(name='bench%d' % index, mac='fe:e1:bb:d1:be:%02x' % index, root_password='benchmark-pw',
                       docroot=docroot, disk=disk, install_timeout=120, state='installed')
        validated = ArgumentSpecValidator(ARGUMENT_SPEC).validate(options).validated_parameters
        payload, _summary = build_payload(validated)
        module_args = dict((key, validated.get(key)) for key in (
            'state', 'name', 'mac', 'hostname', 'docroot', 'disk', 'memory', 'bsd_rd', 'release', 'arch',
            'install_timeout', 'console_log'))
        module_args['payload'] = json.dumps(payload)
        args_path = os.path.join(lab_root, 'args.json')
        with open(args_path, 'w', encoding='utf-8') as handle:
            json.dump(dict(ANSIBLE_MODULE_ARGS=module_args), handle)
        vm_name = temp_vm_definition(dict(module_args, disk=disk), os.path.join(
            docroot, 'pub', 'OpenBSD', '7.8', 'amd64', 'bsd.rd')).name

        found, stop = {}, threading.Event()
        watcher = threading.Thread(target=watch_vm_exit, args=(vm_name, env, found, stop), daemon=True)
        watcher.start()
        started = time.monotonic()
        module = subprocess.run([sys.executable, MODULE, args_path], env=env, capture_output=True, text=True, check=False)
        returned = time.monotonic()
        stop.set()
        watcher.join(5)
        result = json.loads(module.stdout)
        if result.get('failed') or 'exited' not in found:
            raise SystemExit('run %d failed: %s' % (index, result.get('msg') or 'VM exit not observed'))
        return dict(total=returned - started, install=result['install']['duration'], delay=returned - found['exited'])
    finally:
        run(['lab', 'vmd', 'stop'], env)


def main(argv):
    runs = int(argv[0]) if argv else 5
    if not os.path.exists(MODULE):
        raise SystemExit('%s not found: run `make collection` first (or set COLL_ROOT)' % MODULE)
    sys.path.insert(0, os.path.dirname(COLL_ROOT))
    base = tempfile.mkdtemp(prefix='vmm-bench-autoinstall-')
    try:
        results = [one_run(index, base) for index in range(1, runs + 1)]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    delays = [item['delay'] for item in results]
    for index, item in enumerate(results, 1):
        print('run %d: module %.3f s, install (VM start to end) %.3f s, VM exit -> module return %.3f s'
              % (index, item['total'], item['install'], item['delay']))
    print('VM exit -> module return over %d runs: min %.3f s, median %.3f s, max %.3f s (goal <= 1 s): %s'
          % (runs, min(delays), statistics.median(delays), max(delays), 'met' if max(delays) <= 1.0 else 'NOT met'))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
