# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# BSD 2-Clause License (see LICENSE)
"""What the benchmarks share: a module run as Ansible runs it, and this checkout as the collection Python imports.

Not a benchmark (``make bench`` runs benchmarks/[!_]*.py); the scripts import it from their own directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_BIN = os.path.join(ROOT, 'tests', 'lab', 'bin')


def collection_module(collections_dir, name):
    """The file of module ``name`` in the collection below ``collections_dir`` (an ansible_collections directory)."""
    return os.path.join(collections_dir, 'openbsd', 'vmm', 'plugins', 'modules', name + '.py')


def checkout_lab_env(workdir):
    """Make ``workdir/ansible_collections/openbsd/vmm`` this checkout (a link); return (lab root, environment) for
    modules and lab commands run from it: the lab's executables first on PATH, the collection on PYTHONPATH."""
    os.makedirs(os.path.join(workdir, 'ansible_collections', 'openbsd'))
    os.symlink(ROOT, os.path.join(workdir, 'ansible_collections', 'openbsd', 'vmm'))
    lab_root = os.path.join(workdir, 'lab')
    env = dict(os.environ, VMM_LAB_ROOT=lab_root, PATH=LAB_BIN + os.pathsep + os.environ.get('PATH', ''),
               PYTHONPATH=workdir + os.pathsep + os.environ.get('PYTHONPATH', ''))
    return lab_root, env


def run_module(module, workdir, env, args):
    """Run the module file ``module`` once as Ansible runs it: its own Python process, the arguments in a JSON file in
    ``workdir``. Return (result, seconds); exit naming the module when it prints no JSON or fails."""
    name = os.path.splitext(os.path.basename(module))[0]
    args_file = os.path.join(workdir, 'args.json')
    with open(args_file, 'w', encoding='utf-8') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, handle)
    started = time.monotonic()
    process = subprocess.run([sys.executable, module, args_file], env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    try:
        result = json.loads(process.stdout)
    except ValueError:
        raise SystemExit('%s printed no JSON (exit %d):\n%s\n%s' % (name, process.returncode, process.stdout, process.stderr))
    if result.get('failed'):
        raise SystemExit('%s failed: %s' % (name, result.get('msg')))
    return result, elapsed
