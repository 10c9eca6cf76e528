"""`make integration` runs the targets by group (shippable/posix/groupN, as its INTEGRATION_GROUPS names them): a
target in no group, or in a group the Makefile does not run, would never run."""
from __future__ import annotations

import os
import re

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
TARGETS = os.path.join(ROOT, 'tests', 'integration', 'targets')


def groups_run():
    with open(os.path.join(ROOT, 'Makefile'), encoding='utf-8') as stream:
        found = re.search(r'^INTEGRATION_GROUPS \?= (.+)$', stream.read(), re.MULTILINE)
    assert found, 'Makefile: no INTEGRATION_GROUPS'
    return ['shippable/posix/group%s' % group for group in found.group(1).split()]


def aliases(target):
    with open(os.path.join(TARGETS, target, 'aliases'), encoding='utf-8') as stream:
        return [line.strip() for line in stream if line.strip() and not line.startswith('#')]


def test_every_target_is_in_exactly_one_group_that_make_integration_runs():
    run = groups_run()
    assert len(run) == 2
    members = {group: [] for group in run}
    for target in sorted(os.listdir(TARGETS)):
        names = aliases(target)
        if 'hidden' in names:      # setup_lab: pulled in by needs/target/
            continue
        groups = [name for name in names if name.startswith('shippable/')]
        assert len(groups) == 1 and groups[0] in run, (target, groups, run)
        members[groups[0]].append(target)
    assert all(members.values()), members
