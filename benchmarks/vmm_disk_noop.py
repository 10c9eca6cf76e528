# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_disk on an existing disk: vmctl calls (goal 0) and wall time of a no-op vs a create.

A fresh lab; for each format, N disks are created (one module run each), then the same
requests run N times again and must find nothing to do. Then the batch case: M overlays on
a golden image (--batch, default 40) made in one run with disks:, and their no-op as M
single runs against ONE run with disks: (the ratio of the two totals). The module runs as Ansible runs it:
its own Python process, arguments in a JSON file. vmctl calls are counted twice: from the
module's returned `commands`, and independently by a counting `vmctl` wrapper first on PATH
(it logs every invocation, then runs the lab's vmctl). Measurement only: nothing here asserts
a time; the script exits 1 only if a no-op ran vmctl.

    make collection && .venv/bin/python benchmarks/vmm_disk_noop.py [--runs 10] [--size 20G] [--batch 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

from _bench import LAB_BIN, ROOT, collection_module, run_module

COLL_ROOT = os.environ.get('COLL_ROOT', os.path.join(ROOT, '.build', 'ansible_collections'))
MODULE = collection_module(COLL_ROOT, 'vmm_disk')

COUNTING_VMCTL = '''#!/bin/sh
# Counts vmctl invocations for the benchmark, then runs the lab's vmctl.
echo "$*" >> "{log}"
exec "{real}" "$@"
'''


def counted_calls(log):
    if not os.path.exists(log):
        return 0
    with open(log) as handle:
        return sum(1 for line in handle if line.strip())


def measure(workdir, env, log, requests):
    """Run every request once; return (seconds per run, vmctl calls returned, vmctl calls counted, changed runs)."""
    before = counted_calls(log)
    times, returned, changed = [], 0, 0
    for args in requests:
        result, elapsed = run_module(MODULE, workdir, env, args)
        times.append(elapsed)
        returned += len(result['commands'])
        changed += bool(result['changed'])
    return times, returned, counted_calls(log) - before, changed


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=10, help='disks per format (default 10)')
    parser.add_argument('--size', default='20G', help='disk size (default 20G; images are sparse)')
    parser.add_argument('--batch', type=int, default=40, help='overlays in the disks: case (default 40, 0 to skip)')
    options = parser.parse_args(argv)
    if not os.path.exists(MODULE):
        raise SystemExit('%s not found: run `make collection` first (or set COLL_ROOT)' % MODULE)

    with tempfile.TemporaryDirectory(prefix='vmm-disk-bench-') as workdir:
        lab_root = os.path.join(workdir, 'lab')
        shim_dir = os.path.join(workdir, 'shim')
        log = os.path.join(workdir, 'vmctl-calls.log')
        os.makedirs(shim_dir)
        shim = os.path.join(shim_dir, 'vmctl')
        with open(shim, 'w') as handle:
            handle.write(COUNTING_VMCTL.format(log=log, real=os.path.join(LAB_BIN, 'vmctl')))
        os.chmod(shim, 0o755)
        env = dict(os.environ, VMM_LAB_ROOT=lab_root,
                   PATH=os.pathsep.join([shim_dir, LAB_BIN, os.environ.get('PATH', '')]),
                   PYTHONPATH=os.pathsep.join([os.path.dirname(COLL_ROOT), os.environ.get('PYTHONPATH', '')]))
        subprocess.run(['lab', 'init'], env=env, check=True, stdout=subprocess.DEVNULL)
        disks = os.path.join(workdir, 'disks')
        os.makedirs(disks)

        failed = False
        print('vmm_disk, %d disks per format, size %s' % (options.runs, options.size))
        for fmt in ('qcow2', 'raw'):
            requests = [dict(path=os.path.join(disks, 'disk%02d.%s' % (index, fmt)), size=options.size)
                        for index in range(options.runs)]
            create = measure(workdir, env, log, requests)
            noop = measure(workdir, env, log, requests)
            for label, (times, returned, counted, changed) in (('create', create), ('no-op ', noop)):
                print('  %-5s %s: changed %2d/%d, vmctl calls returned %d, counted %d, wall time median %.3f s, total %.2f s'
                      % (fmt, label, changed, len(times), returned, counted, statistics.median(times), sum(times)))
            ratio = statistics.median(noop[0]) / statistics.median(create[0])
            print('  %-5s no-op / create wall time (median): %.2f' % (fmt, ratio))
            if noop[1] or noop[2] or noop[3]:
                failed = True
                print('  %-5s NO-OP RAN VMCTL OR CHANGED SOMETHING (goal: 0 calls, 0 changed)' % fmt)
        if options.batch:
            failed = batch_case(workdir, env, log, disks, options) or failed
        print('no-op vmctl calls: %s' % ('FAIL, not 0' if failed else '0 (goal 0)'))
        return 1 if failed else 0


def batch_case(workdir, env, log, disks, options):
    """M overlays: created in one disks: run; their no-op as M single runs vs one disks: run. True if a no-op ran vmctl."""
    count = options.batch
    golden = os.path.join(disks, 'golden.qcow2')
    run_module(MODULE, workdir, env, dict(path=golden, size=options.size))
    paths = [os.path.join(disks, 'vm%02d.qcow2' % index) for index in range(count)]
    batch = dict(base='golden.qcow2', mode='0600', disks=[dict(path=path) for path in paths])
    before = counted_calls(log)
    created, create_time = run_module(MODULE, workdir, env, batch)
    create_calls = counted_calls(log) - before
    singles = measure(workdir, env, log, [dict(path=path, base='golden.qcow2', mode='0600') for path in paths])
    before = counted_calls(log)
    noop, noop_time = run_module(MODULE, workdir, env, batch)
    noop_counted = counted_calls(log) - before
    noop_returned = sum(len(item['commands']) for item in noop['disks'])
    print('batch of %d overlays on golden.qcow2 (%s):' % (count, options.size))
    print('  create, 1 run with disks:   changed %2d/%d, vmctl calls returned %d, counted %d, wall time %.3f s'
          % (sum(item['changed'] for item in created['disks']), count,
             sum(len(item['commands']) for item in created['disks']), create_calls, create_time))
    print('  no-op, %d single runs:      changed %2d/%d, vmctl calls returned %d, counted %d, wall time total %.3f s'
          % (count, singles[3], count, singles[1], singles[2], sum(singles[0])))
    print('  no-op, 1 run with disks:    changed %2d/%d, vmctl calls returned %d, counted %d, wall time %.3f s'
          % (sum(item['changed'] for item in noop['disks']), count, noop_returned, noop_counted, noop_time))
    print('  no-op wall time, %d single runs / 1 run with disks: %.1f' % (count, sum(singles[0]) / noop_time))
    if singles[1] or singles[2] or singles[3] or noop_returned or noop_counted or noop['changed']:
        print('  BATCH NO-OP RAN VMCTL OR CHANGED SOMETHING (goal: 0 calls, 0 changed)')
        return True
    return False


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
