"""benchmarks/README.md's tables say what results/fleet_scale.json, vmm_backup.json and vmm_migrate.json recorded."""
from __future__ import annotations

import json
import os
import re

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')


def recorded_and_section(results, title):
    """The JSON a benchmark recorded, and its section of benchmarks/README.md (up to the next heading)."""
    with open(os.path.join(ROOT, 'benchmarks', 'results', results), encoding='utf-8') as stream:
        recorded = json.load(stream)
    with open(os.path.join(ROOT, 'benchmarks', 'README.md'), encoding='utf-8') as stream:
        readme = stream.read()
    section = readme[readme.index(title):]
    end = section.find('\n## ', 1)
    return recorded, section if end < 0 else section[:end]


def mib_rows(section):
    """The table rows of a section whose first cell is a size in MiB, as lists of cells."""
    return [[cell.strip() for cell in line.strip('|').split('|')] for line in section.splitlines()
            if re.fullmatch(r'\| [0-9]+ MiB \|.*\|', line)]


def test_the_fleet_scale_table_is_the_recorded_run():
    with open(os.path.join(ROOT, 'benchmarks', 'results', 'fleet_scale.json'), encoding='utf-8') as stream:
        recorded = json.load(stream)
    with open(os.path.join(ROOT, 'benchmarks', 'README.md'), encoding='utf-8') as stream:
        readme = stream.read()
    rows = {int(cells[0]): cells for cells in
            ([cell.strip() for cell in line.strip('|').split('|')] for line in readme.splitlines()
             if re.fullmatch(r'\| [0-9]+ +\|.*\|', line))}
    assert sorted(rows) == [row['guests_per_host'] for row in recorded['sizes']]
    for row in recorded['sizes']:
        size = row['guests_per_host']
        ratio = recorded['noop_ratio_to_smallest'][str(size)]
        # the median first run, then every first run of the size in the order they were made
        expected = ['%.1f s' % row['first_run_s'], ', '.join('%.1f' % seconds for seconds in row['first_runs_s']) + ' s',
                    '%.1f s' % row['first_run_host_side_s'], '%.1f s' % row['first_run_first_boot_s'],
                    '%.2f' % row['first_boot_to_ping'], '%.1f s' % row['noop_s'], '%.2f' % ratio, '%.1f s' % row['noop_host_side_s'],
                    '/'.join(map(str, row['noop_vmctl_calls_per_host'])), '%.1f s' % row['per_task_noop_s'],
                    '/'.join(map(str, row['per_task_noop_vmctl_calls_per_host'])), '%.1f s' % row['ping_s'],
                    '%d/%d' % (row['ping_ok'], size * row['hosts'])]
        assert rows[size][1:] == expected, size


def test_the_backup_table_is_the_recorded_run():
    recorded, section = recorded_and_section('vmm_backup.json', '## vmm_backup_pause.py')
    rows = mib_rows(section)
    assert [row[0] for row in rows] == ['%d MiB' % size['written_mib'] for size in recorded['sizes']]
    for row, size in zip(rows, recorded['sizes']):
        assert row[1:] == ['%.3f s' % size['paused_seconds'], '%.1f MiB' % (size['overlay_bytes'] / 1048576),
                           '%.2f s' % size['run_seconds'], '%.1f MiB' % (size['backup_bytes'] / 1048576),
                           '%.1f %%' % (100.0 * size['backup_bytes'] / size['virtual_size']), str(size['vmctl_calls'])]


def test_the_migrate_table_is_the_recorded_run():
    recorded, section = recorded_and_section('vmm_migrate.json', '## vmm_migrate.py')
    rows = mib_rows(section)
    assert 'load %.2f as it started' % recorded['load_before'] in section
    # each row: the size written, the way the copies went (through the controller, or host to host over ssh)
    assert [row[:2] for row in rows] == [['%d MiB' % move['written_mib'], move['transfer']] for move in recorded['records']]
    assert {move['transfer'] for move in recorded['records']} == {'controller', 'ssh'}
    for row, move in zip(rows, recorded['records']):
        assert row[2:] == ['%.2f s' % move[key] for key in ('downtime_seconds', 'stop_seconds', 'copy_seconds', 'define_seconds',
                                                            'answer_seconds')] + [
            '%.1f MiB' % (move['bytes_while_down'] / 1048576), '%.1f MiB' % (move['bytes_while_running'] / 1048576),
            '%.2f %%' % move['copied_percent_of_disk'], '%.1f s' % move['move_seconds']]


def test_the_poll_ab_figures_are_the_recorded_runs():
    recorded, section = recorded_and_section('fleet_scale_poll_ab.json', '## fleet_scale.py')
    for key, label in (('poll_2s', '2 s poll'), ('poll_1s', '1 s poll')):
        (row,) = recorded[key]['sizes']
        assert row['guests_per_host'] == 40 and row['ping_ok'] == 80
        assert '- %s: %.2f s (%s s)' % (label, row['first_run_s'], ', '.join('%.1f' % run for run in row['first_runs_s'])) in section
