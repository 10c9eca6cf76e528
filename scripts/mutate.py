#!/usr/bin/env python
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small AST mutation tester for the collection's Python plugins (`make mutate`).

mutmut and cosmic-ray expect a package at the repository root; this collection only imports as
ansible_collections.openbsd.vmm, so this script works on a built copy (`make collection`):

  * for every source file (plugins/module_utils, plugins/plugin_utils, plugins/filter) it finds the
    unit test files that import it (directly, or through a plugin that imports it);
  * one traced run of those tests records the lines they execute: a mutant on a line no test runs
    survives without being run ("not covered");
  * every other mutant is written into a private copy of the collection and the tests run with
    pytest -x and a timeout; a failing run (or a timeout) kills it;
  * results go to a JSON file (per file: mutants, killed, survived, score, survivors with line and
    the reason when the survivor is known to be harmless, see HARMLESS) and a table on stdout.

Mutations: comparison flips and off-by-one (== !=, < <=, > >=, in/not in, is/is not), negated
conditions (if/while/ternary/assert), and/or swap, arithmetic swaps, integer constant +1,
True/False swap, re.fullmatch -> re.match / re.search, and deleting a raise, a call statement, a
`continue`/`break` or an early return (replaced with `pass`).
"""

from __future__ import annotations

import argparse
import ast
import copy
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SOURCES = ('plugins/module_utils/*.py', 'plugins/plugin_utils/*.py', 'plugins/filter/*.py')
TESTS = 'tests/unit/**/test_*.py'

# Survivors that cannot be killed because the mutant behaves the same as the original.
# Key: (file, stripped source line, mutation); value: why it is harmless. Where the line's text occurs
# more than once in the file (a bare `return`, a `continue`), the key names one place: the stripped line
# above it, a newline, then the line (see harmless_reason).
HARMLESS = {
    ('plugins/module_utils/guest_firstboot.py', 'return None', 'delete early return'):
        "in _account's except clause: without it the function ends there and returns None all the same",
    ('plugins/module_utils/guest_firstboot.py', "shown = '\\n'.join([comment.rsplit(': ', 1)[0] + ': ********'] + lines) + '\\n'", '1 -> 2'):
        "the comment holds one ': ' only (a random password has no blank), so a second split point does not exist",
    ('plugins/module_utils/sizes.py', 'return text', 'delete early return'):
        'an int then goes through str(): the same number of bytes comes back',
    ('plugins/module_utils/sizes.py', 'fraction = 0', '0 -> 1'):
        'only read when the exponent is 0, where (10 * 1 + 512) // 1024 is 0 just like (10 * 0 + 512) // 1024',
    ('plugins/module_utils/sizes.py', 'fraction = (10 * fraction + 512) // 1024', '512 -> 513'):
        '10 * fraction + 512 is even, so it never lands one below a multiple of 1024: 513 rounds the same',
    ('plugins/module_utils/sizes.py', 'if exponent > 0:', '> -> >='):
        'at exponent 0, absolute % 1 is 0: the fraction stays 0 (a float 0.0), and exponent 0 prints only the whole number',
    ('plugins/module_utils/sizes.py', "return '0B'", 'delete early return'):
        "fmt_scaled.c's number == 0 case: whole is 0 only for 0 bytes (exponent 0), which the general path prints as '0B' too",
    ('plugins/module_utils/sizes.py', "sign = '-' if number < 0 else ''", '< -> <='):
        "only 0 changes sign, and 0 returns '0B' before the sign is used",
    ('plugins/module_utils/sizes.py', "sign = '-' if number < 0 else ''", '0 -> 1'):
        "only 0 changes sign, and 0 returns '0B' before the sign is used",
    ('plugins/plugin_utils/fleet_net.py', 'if not values[0] & 0x02:', '2 -> 3'):
        'bit 0 (multicast) was refused just above, so & 3 and & 2 agree',
    ('plugins/module_utils/vm_lifecycle.py', "outdated: bool = False              # runs with an older definition than vm.conf's",
     'False -> True'): 'plan_vm, the only maker of a VmPlan, always sets outdated',
    ('plugins/module_utils/site_set.py', 'return found', 'delete early return'):
        'a missing file reads as None: BytesIO(None) is empty, tarfile raises ReadError (a TarError), caught, and the same dict returns',
    ('plugins/module_utils/console_follow.py', 'data = os.read(self.master, 65536)', '65536 -> 65537'):
        'a read size: a pty hands over at most its buffer (far below 64 KiB) per read, one byte more changes nothing',
    ('plugins/module_utils/console_follow.py', 'if remaining <= 0:', '<= -> <'):
        'remaining is a float difference of clock readings: at exactly 0.0 select(timeout=0) polls once more and the next turn breaks',
    ('plugins/module_utils/install_run.py', 'if remaining <= 0:', '<= -> <'):
        'the same float deadline as console_follow.drain: at exactly 0.0 select(timeout=0) polls once more, the next turn gives up',
    ('plugins/module_utils/secret_seal.py', 'while sum(len(block) for block in blocks) < length:', '< -> <='):
        'at a length that is a multiple of 32 it makes one block more, which [:length] cuts off: the same key stream',
    ('plugins/module_utils/install_run.py', 'super().__init__(message)', 'delete call statement'):
        "BaseException.__new__ already keeps the arguments: str(exc) is the message without __init__",
    ('plugins/module_utils/install_run.py', 'fd = os.open(console_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)', '384 -> 385'):
        'the fchmod(fd, 0o600) on the next line sets the mode before anything is written (0o601 adds only execute for others)',
    ('plugins/module_utils/install_run.py', 'data = os.read(wait_fd, 4096)', '4096 -> 4097'):
        'a read size on a pipe read until end of file: the same bytes arrive in one more or one fewer read',
    ('plugins/module_utils/vmctl.py', 'super().__init__(message)', 'delete call statement'):
        "BaseException.__new__ already keeps the arguments: str(exc) is the message without __init__",
    ('plugins/module_utils/qcow2.py', 'data = image.read(1 << MAX_CLUSTER_BITS)', '1 -> 2'):
        'reads 4 MiB instead of 2: parse_header uses only the first cluster (at most 2 MiB, the backing file name must '
        'end inside it) and takes the file length from fstat, so the bytes past 2 MiB change nothing',
    ('plugins/module_utils/installer.py', 'start = question.find(key, start + 1)', '1 -> 2'):
        'a response-file key never starts with a blank (parse_response_file strips the line): where it was found at '
        'start, question[start] is no blank, so an occurrence at start + 1 fails the word-start test all the same',
    ('plugins/module_utils/installer.py', 'width = max(1, len(key_words))', '1 -> 2'):
        'the 1 only counts for a key without words, whose empty text matches no window (ratio 0) either way',
    ('plugins/module_utils/vm_lifecycle.py', 'restart_required: bool = False', 'False -> True'):
        'plan_vm, the one maker of a VmPlan, always assigns restart_required before it returns the plan',
    ('plugins/module_utils/vm_lifecycle.py', "problem(option, '%s does not exist' % value)\ncontinue", 'delete continue'):
        'the entry has a problem already, so build_requests drops its request and raises: the boot or cdrom path '
        'the rest of the loop sets on its definition is never used',
    ('plugins/module_utils/vm_lifecycle.py', "problem('disks', '%s is listed twice' % path)\ncontinue", 'delete continue'):
        'the entry has a problem already, so build_requests drops its request and raises: the second copy of the disk '
        'the rest of the loop adds is never used',
    ('plugins/module_utils/vm_lifecycle.py',
     "problem(where + '.rdomain', '%r must be a number from 0 to 255' % (rdomain,))\ncontinue", 'delete continue'):
        'the last check of an interface: the entry has a problem already, so build_requests drops its request and '
        'raises; the interface the rest of the loop keeps is never used',
    ('plugins/module_utils/vm_lifecycle.py', 'if not needed:\nreturn []', 'delete early return'):
        'a shortcut that spares reading dev_dir: with no interface needed, tap_capacity finds none missing and the '
        'same empty list comes back',
    ('plugins/module_utils/vm_lifecycle.py', 'if time.monotonic() >= deadline:', '>= -> >'):
        "_wait_down's deadline, a float of the monotonic clock: a reading equal to it to the last digit is chance, and "
        'then one more poll, the next turn gives up',
    ('plugins/module_utils/vm_lifecycle.py',
     "elif hand.path == vmconf.path and vmconf.block is not None and hand.line > vmconf.before.count('\\n') + 1:", '> -> >='):
        'before.count + 1 is the BEGIN line, a comment where no vm statement starts: > and >= pick the same parents',
    ('plugins/module_utils/vm_lifecycle.py',
     "elif hand.path == vmconf.path and vmconf.block is not None and hand.line > vmconf.before.count('\\n') + 1:", '1 -> 2'):
        'it differs only for a vm statement on the line after BEGIN, which is the END line at the earliest (a comment) '
        'or inside the managed block: a hand-written VM below the block starts two lines after BEGIN or later',
    ('plugins/module_utils/disk_image.py', 'if wanted_size < current.size:', '< -> <='):
        "equal sizes returned the 'none' plan on the line above, so < and <= refuse the same sizes",
    ('plugins/module_utils/disk_image.py', 'while offset < size:', '< -> <='):
        'at offset == size the extra turn reads min(chunk, 0) = 0 bytes, gets b"" and breaks: the same copy',
    ('plugins/module_utils/disk_image.py', 'os.ftruncate(descriptor, 0)', '0 -> 1'):
        "the pid written next from offset 0 is at least two bytes ('N\\n'): it covers the one byte a truncate to 1 keeps",
    ('plugins/module_utils/image_catalog.py', 'CHUNK = 1024 * 1024', '* -> //'):
        'the read size of the sha256 loop: any positive size gives the same digest (1024 // 1024 is 1 byte per read)',
    ('plugins/module_utils/image_catalog.py', 'CHUNK = 1024 * 1024', '1024 -> 1025'):
        'the read size of the sha256 loop: any positive size gives the same digest',
    ('plugins/module_utils/image_catalog.py', 'data = handle.read(MANIFEST_MAX + 1)', '1 -> 2'):
        'one byte past the limit is what tells a file over it; reading two past gives the same length test',
    ('plugins/module_utils/vmconf.py', 'self.lexer, self.peeked = lexer, peeked\nreturn', 'delete early return'):
        "after an include (grammar: include '\\n'): the later tests in _statement look at the same first token, which "
        "none matches, and its closing _skip_line passes over the rest of the line: only the newline in a file vmd accepts",
    ('plugins/module_utils/vmconf.py', 'self.macros[token.value] = value\nreturn', 'delete early return'):
        "after a macro (varset '\\n'): the later tests in _statement look at the macro's name token, which none matches, "
        "and its closing _skip_line passes over the rest of the line: only the newline in a file vmd accepts",
    ('plugins/module_utils/vmconf.py', 'self.summary.vms.append(self._vm(path, token.line))\nreturn', 'delete early return'):
        "after a vm block (vm '\\n'): the later tests in _statement look at the same 'vm' token, which none matches, and "
        "its closing _skip_line passes over the rest of the line: only the newline in a file vmd accepts",
    ('plugins/module_utils/vmconf.py', 'vm.interfaces.append(self._interface(local))\nreturn', 'delete early return'):
        "after an interface option (vm_opts nl): _interface stops at the newline or brace that ends it, and the "
        "skip after the option chain finds nothing more to pass over",
    ('plugins/module_utils/vmconf.py', 'if not braced:\nreturn', 'delete early return'):
        "after the one flag of an unbraced allow instance (ALLOW INSTANCE instance_flags, then nl): the loop's next "
        "token is that newline, where the unbraced loop returns all the same",
    ('plugins/module_utils/vmconf.py', 'return\nself._skip_to_newline_in_block()', 'delete call statement'):
        "after an option the collection reads, a file vmd accepts has only the newline or the closing brace, which _vm's "
        "loop passes over itself (vm_opts_l: vm_opts nl)",
    ('plugins/module_utils/vmconf.py', 'return token.value', 'delete early return'):
        'a NUMBER owner is followed by the newline in a file vmd accepts (owner_id: NUMBER | STRING): the string-joining '
        'loop after it adds nothing',
    ('plugins/module_utils/vmconf.py', "if word == 'local' and self._peek().value == 'interface':", 'and -> or'):
        "it differs only for another option word followed on its line by 'interface', which parse.y refuses (each "
        "option ends at a newline)",
    ('plugins/module_utils/vmconf.py', "braced = self._peek().kind == 'punct' and self._peek().value == '{'", 'and -> or'):
        "in _allow_instance: parse.y wants '{' or one flag keyword after 'allow instance', any other punctuation mark "
        "there is a syntax error (the same line in _interface is killed by tests)",
    ('plugins/module_utils/vmconf.py', "elif token.kind == 'punct' and token.value == '}':", 'and -> or'):
        "in _skip_line: the top-level statements it passes over in a file vmd accepts (switch blocks, socket owner, "
        "staggered start, local inet6) hold no punctuation but braces (the same line in _skip_to_newline_in_block is "
        "killed by tests)",
    ('plugins/module_utils/vmconf.py', "raise self.error('reached end of file while parsing quoted string', line)", 'delete raise'):
        'after a backslash at the end of the file: the None pushed back is read next and the check at the top of the '
        'loop raises the same error for the same line (the first of these raises is killed by tests)',
    ('plugins/module_utils/vmconf.py', "last = first + (self.block or '').count('\\n') - 1", '1 -> 2'):
        "last is the END line, a comment where no vm statement starts: the line above is as good a bound",
    ('plugins/module_utils/vmconf.py', 'if self.block is not None and definition.path == path and first <= definition.line <= last:', '<= -> <'):
        'first and last are the BEGIN and END lines, comments where no vm statement starts: inclusive or exclusive '
        'bounds select the same VMs',
    ('plugins/module_utils/vmconf.py', 'if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:', '< -> <='):
        'no line starts with both markers, so the END line is never the BEGIN line',
    ('plugins/plugin_utils/vm_move.py',
     "'%s has %s' % (host.name, ' and '.join(host.lacks(guest))) for host in room.values())))" + '\n' + 'continue',
     'delete continue'):
        'after "no vmm host has room": with no host with room, the lease check that follows finds no host either, '
        'adds no problem and continues all the same',
}

_CMP_SWAP = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_BIN_SWAP = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult, ast.Div: ast.Mult,
    ast.Mod: ast.FloorDiv, ast.LShift: ast.RShift, ast.RShift: ast.LShift, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
}
_SYMBOL = {
    ast.Eq: '==', ast.NotEq: '!=', ast.Lt: '<', ast.LtE: '<=', ast.Gt: '>', ast.GtE: '>=', ast.In: 'in',
    ast.NotIn: 'not in', ast.Is: 'is', ast.IsNot: 'is not', ast.Add: '+', ast.Sub: '-', ast.Mult: '*',
    ast.FloorDiv: '//', ast.Div: '/', ast.Mod: '%', ast.LShift: '<<', ast.RShift: '>>', ast.BitAnd: '&',
    ast.BitOr: '|', ast.And: 'and', ast.Or: 'or',
}


# -- finding mutation points ----------------------------------------------------------------

_NOT_MUTATED = ('DOCUMENTATION', 'EXAMPLES', 'RETURN', '__metaclass__')


def _skipped_nodes(tree):
    """Ids of nodes never mutated: docstrings, annotations, DOCUMENTATION/EXAMPLES/RETURN, __future__."""
    skip = set()

    def mark(node):
        for sub in ast.walk(node):
            skip.add(id(sub))

    for node in ast.walk(tree):
        body = getattr(node, 'body', None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            mark(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.returns is not None:
                mark(node.returns)
            for arg in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                if arg.annotation is not None:
                    mark(arg.annotation)
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in _NOT_MUTATED for t in node.targets):
            mark(node)
        if isinstance(node, ast.ImportFrom):
            mark(node)
    return skip


def mutation_points(tree, lines):
    """List of (node index in ast.walk order, kind, description, line)."""
    skip = _skipped_nodes(tree)
    points = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        line = getattr(node, 'lineno', None)
        if line is not None and 'no mutate' in lines[line - 1]:
            continue
        if isinstance(node, ast.Compare):
            for position, op in enumerate(node.ops):
                if type(op) in _CMP_SWAP:
                    points.append((index, ('cmp', position), '%s -> %s' % (_SYMBOL[type(op)], _SYMBOL[_CMP_SWAP[type(op)]]), line))
        elif isinstance(node, (ast.If, ast.While, ast.IfExp, ast.Assert)):
            points.append((index, ('negate',), 'negate condition', node.test.lineno))
        elif isinstance(node, ast.BoolOp):
            other = 'or' if isinstance(node.op, ast.And) else 'and'
            points.append((index, ('boolop',), '%s -> %s' % (_SYMBOL[type(node.op)], other), line))
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BIN_SWAP:
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, (ast.Constant, ast.JoinedStr)):
                continue  # '%s' % x string formatting
            points.append((index, ('binop',), '%s -> %s' % (_SYMBOL[type(node.op)], _SYMBOL[_BIN_SWAP[type(node.op)]]), line))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            points.append((index, ('const',), '%s -> %s' % (node.value, not node.value), line))
        elif isinstance(node, ast.Constant) and isinstance(node.value, int):
            points.append((index, ('const',), '%d -> %d' % (node.value, node.value + 1), line))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == 'fullmatch':
            points.append((index, ('call', 'match'), 'fullmatch -> match', line))
            points.append((index, ('call', 'search'), 'fullmatch -> search', line))
        elif isinstance(node, ast.Raise):
            points.append((index, ('delete',), 'delete raise', line))
        elif isinstance(node, (ast.Continue, ast.Break)):
            points.append((index, ('delete',), 'delete %s' % type(node).__name__.lower(), line))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            points.append((index, ('delete',), 'delete call statement', line))
        elif isinstance(node, ast.Return) and _is_early(node, tree):
            points.append((index, ('delete',), 'delete early return', line))
    return points


def _is_early(node, tree):
    """A return that is not the last statement of its function (deleting that one is usually a NameError)."""
    for parent in ast.walk(tree):
        for field in ('body', 'orelse'):
            block = getattr(parent, field, None)
            if isinstance(block, list) and node in block:
                return not isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)) or block[-1] is not node
    return False


def apply(tree, index, kind):
    """Return the source of ``tree`` with mutation ``kind`` applied to the index-th node."""
    tree = copy.deepcopy(tree)
    node = list(ast.walk(tree))[index]
    if kind[0] == 'cmp':
        node.ops[kind[1]] = _CMP_SWAP[type(node.ops[kind[1]])]()
    elif kind[0] == 'negate':
        test = node.test
        node.test = test.operand if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) else ast.UnaryOp(ast.Not(), test)
    elif kind[0] == 'boolop':
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind[0] == 'binop':
        node.op = _BIN_SWAP[type(node.op)]()
    elif kind[0] == 'const':
        node.value = (not node.value) if isinstance(node.value, bool) else node.value + 1
    elif kind[0] == 'call':
        node.func.attr = kind[1]
    elif kind[0] == 'delete':
        for parent in ast.walk(tree):
            for field in ('body', 'orelse', 'finalbody', 'handlers'):
                block = getattr(parent, field, None)
                if isinstance(block, list) and node in block:
                    block[block.index(node)] = ast.copy_location(ast.Pass(), node)
    return ast.unparse(ast.fix_missing_locations(tree)) + '\n'


# -- which tests cover which file -------------------------------------------------------------

def module_name(relpath):
    return 'ansible_collections.openbsd.vmm.' + relpath[:-3].replace('/', '.')


def _imports(path):
    with open(path, encoding='utf-8') as handle:
        tree = ast.parse(handle.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                base = '<relative>.' + base
            for alias in node.names:
                names.add(base + '.' + alias.name)
                names.add(base)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _imports_module(imports, relpath):
    name = module_name(relpath)
    short = '.'.join(name.split('.')[-2:])  # e.g. module_utils.sizes for relative imports
    return any(imp == name or imp.endswith('.' + short) or imp == '<relative>.' + name.split('.')[-1]
               for imp in imports)


def test_map(root, sources, wide=False):
    """source relpath -> the test files that cover it (see below)."""
    tests = sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, TESTS), recursive=True))
    test_imports = {t: _imports(os.path.join(root, t)) for t in tests}
    plugins = sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, 'plugins', '*', '*.py')))
    plugin_imports = {p: _imports(os.path.join(root, p)) for p in plugins}
    result = {}
    for source in sources:
        # Plugins that import it, directly or through other plugins (vmm_vm -> vm_lifecycle -> host_lock).
        users, frontier = set(), {source}
        while frontier:
            found = {p for p in plugins if p not in users and p != source
                     and any(_imports_module(plugin_imports[p], user) for user in frontier)}
            users |= found
            frontier = found
        covering = [t for t in tests if _imports_module(test_imports[t], source)
                    or any(_imports_module(test_imports[t], user) for user in users)]
        # The test files that import it themselves, and the tests of the modules and filters built on it (a
        # module test sees what the module does with it); all of them with ``wide`` or when none imports it.
        direct = [t for t in covering if _imports_module(test_imports[t], source)]
        own = [t for t in covering if t in direct or t.split('/')[-2] in ('modules', 'filter')]
        result[source] = sorted(own) if direct and not wide else sorted(covering)
    return result


# -- running ----------------------------------------------------------------------------------

PLUGIN = r"""
# Loaded into pytest by scripts/mutate.py (-p mutate_plugin).
import json, os, sys, threading

import pytest

TRACE, SELECT = os.environ.get('MUTATE_TRACE'), os.environ.get('MUTATE_SELECT')
_lines, _current = {}, [None]


def _local(frame, event, arg):
    if event == 'line' and _current[0] is not None:
        _current[0].add(frame.f_lineno)
    return _local


def _global(frame, event, arg):
    if frame.f_code.co_filename == TRACE:
        if _current[0] is not None:
            _current[0].add(frame.f_lineno)
        return _local
    return None


_MONITOR = getattr(sys, 'monitoring', None)   # Python 3.12: line events at a fraction of settrace's cost


def _monitor_line(code, line):
    if code.co_filename != TRACE:
        return _MONITOR.DISABLE                   # never again for this line of another file
    if _current[0] is not None:
        _current[0].add(line)
    return None


def pytest_configure(config):
    if TRACE and _MONITOR is not None:
        _MONITOR.use_tool_id(_MONITOR.COVERAGE_ID, 'mutate')
        _MONITOR.register_callback(_MONITOR.COVERAGE_ID, _MONITOR.events.LINE, _monitor_line)
        _MONITOR.set_events(_MONITOR.COVERAGE_ID, _MONITOR.events.LINE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not TRACE:
        yield
        return
    _current[0] = _lines.setdefault(item.nodeid, set())
    if _MONITOR is None:
        sys.settrace(_global)
        threading.settrace(_global)
    try:
        yield
    finally:
        if _MONITOR is None:
            sys.settrace(None)
            threading.settrace(None)
        _current[0] = None


def pytest_collection_modifyitems(config, items):
    if SELECT:
        with open(SELECT) as handle:
            wanted = set(json.load(handle))
        keep = [item for item in items if item.nodeid in wanted]
        config.hook.pytest_deselected(items=[item for item in items if item.nodeid not in wanted])
        items[:] = keep


_failed, _broken = set(), set()


def pytest_runtest_logreport(report):
    if report.failed:
        _failed.add(report.nodeid)


def pytest_collectreport(report):
    if report.failed:
        _broken.add(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if TRACE:
        with open(os.environ['MUTATE_TRACE_OUT'], 'w') as handle:
            json.dump(dict(lines={nodeid: sorted(lines) for nodeid, lines in _lines.items() if nodeid not in _failed},
                           failed=sorted(_failed), broken=sorted(_broken)), handle)
"""


def _ansible_test_plugins():
    """ansible-test's pytest plugins (its collection loader), as `ansible-test units` loads them; None without it."""
    try:
        import ansible_test
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(ansible_test.__file__), '_util', 'target', 'pytest', 'plugins')
    return path if os.path.exists(os.path.join(path, 'ansible_pytest_collections.py')) else None


def _env(coll_dir, workdir, **extra):
    coll_root = os.path.dirname(os.path.dirname(os.path.dirname(coll_dir)))
    paths = [coll_root, workdir] + ([_PLUGINS] if _PLUGINS else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PYTHONDONTWRITEBYTECODE='1', LANG='C',
               ANSIBLE_COLLECTIONS_PATH=coll_root, ANSIBLE_CONTROLLER_MIN_PYTHON_VERSION='%d.%d' % sys.version_info[:2])
    for name in ('MUTATE_TRACE', 'MUTATE_SELECT'):
        env.pop(name, None)
    env.update(extra)
    return env


_PLUGINS = _ansible_test_plugins()
_PYTEST_ARGS = ['-q', '-p', 'no:cacheprovider', '-p', 'mutate_plugin'] + (['-p', 'ansible_pytest_collections'] if _PLUGINS else [])


def _pytest(python, tests):
    return [python, '-m', 'pytest'] + _PYTEST_ARGS + tests


SERVER = r"""
# A fork server: imports pytest and the third-party libraries once, then forks one child per mutant.
# The collection itself is never imported here, so each child imports the mutated file afresh.
# Each child leads its own process group, and the whole group is killed when the child is done, runs out of
# time, or this server is stopped (SIGTERM, SIGINT, SIGHUP, or mutate.py gone): a test's own subprocesses
# (a `python -c` that a mutant keeps looping) must not outlive the mutant as orphans.
import json, os, signal, sys, time
import pytest
for name in ('ansible.module_utils.basic', 'ansible.errors', 'ansible.plugins.inventory', 'netaddr', 'cryptography'):
    try:
        __import__(name)
    except Exception:
        pass
parent = os.getppid()
current = [None]


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop(signum, frame):
    if current[0] is not None:
        kill_group(current[0])
        try:
            os.kill(current[0], signal.SIGKILL)   # if the signal came before its group existed
            os.waitpid(current[0], 0)
        except OSError:
            pass                                  # reaped already
    os._exit(128 + signum)


for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, stop)
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        os.environ['MUTATE_SELECT'] = request['select']
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        try:
            rc = pytest.main(['-x'] + request['args'] + request['files'])
        except BaseException:
            rc = 3
        os._exit(int(rc))
    current[0] = pid
    try:
        os.setpgid(pid, pid)              # also here: the group must exist before a kill, whichever runs first
    except (PermissionError, ProcessLookupError):
        pass                              # the child set it already (and may have exec'd or exited)
    deadline = time.monotonic() + request['timeout']
    while True:
        # WNOWAIT: the child stays a zombie, so its pid (the group's id) cannot be reused before the group is killed
        done = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if done is not None:
            kill_group(pid)               # what its tests left running
            rc = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            break
        if time.monotonic() > deadline or os.getppid() != parent:
            kill_group(pid)
            os.waitpid(pid, 0)
            rc = 'timeout'
            break
        time.sleep(0.02)
    current[0] = None
    if os.getppid() != parent:
        break
    print(json.dumps(rc), flush=True)
"""


class TestRunner:
    """Runs selected tests against the (mutated) copy through one fork server per source file."""

    def __init__(self, python, coll_dir, workdir):
        self.workdir = workdir
        self.server = subprocess.Popen([python, '-c', SERVER], cwd=coll_dir, env=_env(coll_dir, workdir), text=True,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def run(self, tests, nodeids, timeout):
        """True if the selected tests pass; 'timeout' if they ran out of time; False if one fails."""
        select = os.path.join(self.workdir, 'select.json')
        with open(select, 'w') as handle:
            json.dump(sorted(nodeids), handle)
        # Only the files that hold the selected tests: importing the others costs more than running the tests.
        files = sorted({nodeid.split('::')[0] for nodeid in nodeids}, key=tests.index)
        self.server.stdin.write(json.dumps(dict(select=select, files=files, timeout=timeout, args=_PYTEST_ARGS)) + '\n')
        self.server.stdin.flush()
        answer = self.server.stdout.readline()
        if not answer:                        # stopped by a signal (Ctrl-C reaches it too): it killed the mutant's group
            raise RuntimeError('the test server stopped (rc %s)' % self.server.wait())
        rc = json.loads(answer)
        if rc == 'timeout':
            return rc
        if rc in (3, 4):                      # pytest's internal or usage error: not a kill
            raise RuntimeError('pytest could not run %s (rc %d)' % (' '.join(files), rc))
        return rc == 0                        # 1: a test failed; 2: a test file no longer imports

    def close(self, interrupted=False):
        """Stop the server; an interrupted run (an exception, SIGTERM) stops it at once: it kills the mutant's process group."""
        if interrupted and self.server.poll() is None:
            self.server.terminate()
        try:
            self.server.stdin.close()
        except OSError:
            pass
        self.server.wait()


def covered_lines(python, coll_dir, workdir, source, tests):
    """{nodeid: lines of ``source`` the test runs}, the seconds the clean run took, and the tests left out.

    Tests that fail (or files that do not import) without any mutation are left out, and named: in a tree
    several people edit at once, someone's half-written test must not make every mutant look killed.
    """
    out = os.path.join(workdir, 'lines.json')
    started = time.monotonic()
    # Its own process group, killed whole when the run ends or is interrupted: no test's subprocess outlives it.
    with subprocess.Popen(_pytest(python, ['--continue-on-collection-errors'] + tests), cwd=coll_dir,
                          env=_env(coll_dir, workdir, MUTATE_TRACE=os.path.join(coll_dir, source), MUTATE_TRACE_OUT=out),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=0) as process:
        try:
            output = process.communicate()[0]
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    if not os.path.exists(out):
        raise RuntimeError('the tests for %s did not run:\n%s' % (source, output.decode()[-3000:]))
    with open(out) as handle:
        found = json.load(handle)
    os.unlink(out)
    by_test = {nodeid: set(lines) for nodeid, lines in found['lines'].items()}
    return by_test, time.monotonic() - started, found['failed'] + found['broken']


def _at_import(line, tree):
    """True if ``line`` runs when the module is imported, outside any test: not inside a function body."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            body = node.body if isinstance(node.body, list) else [node.body]
            if body[0].lineno <= line <= max(getattr(n, 'end_lineno', n.lineno) for n in body):
                return False
    return True


def harmless_reason(source, lines, line, description):
    """The HARMLESS reason for a survivor on ``line`` (1-based), keyed by the line above and its own, or its own."""
    text = lines[line - 1].strip()
    above = lines[line - 2].strip() if line > 1 else ''
    return HARMLESS.get((source, above + '\n' + text, description)) or HARMLESS.get((source, text, description))


def mutate_file(python, coll_dir, source, tests, args, workdir):
    path = os.path.join(coll_dir, source)
    with open(path, encoding='utf-8') as handle:
        original = handle.read()
    lines = original.splitlines()
    tree = ast.parse(original)
    points = mutation_points(tree, lines)
    entry = dict(tests=tests, mutants=len(points), sampled=len(points), killed=0, survived=0, not_covered=0, timeouts=0,
                 survivors=[])
    if not tests:
        entry.update(survived=len(points), not_covered=len(points), score=0.0)
        return entry
    by_test, baseline, left_out = covered_lines(python, coll_dir, workdir, source, tests)
    if left_out:
        entry['left_out'] = left_out
        files = sorted({nodeid.split('::')[0] for nodeid in left_out})
        print('  %s: %d tests left out (they fail without a mutation) in %s' % (source, len(left_out), ' '.join(files)), flush=True)
        tests = [test for test in tests if test not in left_out]
    by_line = {}
    for nodeid, lines_run in by_test.items():
        for number in lines_run:
            by_line.setdefault(number, set()).add(nodeid)
    # Lines run only at import (module constants, signatures with defaults): every test may depend on them.
    if args.max_per_file and len(points) > args.max_per_file:
        points = sorted(random.Random('%s:%s' % (args.seed, source)).sample(points, args.max_per_file), key=lambda p: (p[3], p[0]))
        entry['sampled'] = len(points)
    timeout = max(args.timeout, 3 * baseline + 5)
    runner = TestRunner(python, coll_dir, workdir)
    interrupted = True
    try:
        for index, kind, description, line in points:
            text = lines[line - 1].strip()
            nodeids = set(by_test) if _at_import(line, tree) else by_line.get(line, set())
            if not nodeids:
                outcome = 'not covered'
            else:
                with open(path, 'w', encoding='utf-8') as handle:
                    handle.write(apply(tree, index, kind))
                result = runner.run(tests, nodeids, timeout)
                outcome = 'survived' if result is True else ('timeout' if result == 'timeout' else 'killed')
            if outcome in ('killed', 'timeout'):
                entry['killed'] += 1
                entry['timeouts'] += outcome == 'timeout'
                continue
            entry['survived'] += 1
            entry['not_covered'] += outcome == 'not covered'
            survivor = dict(line=line, mutation=description, code=text, outcome=outcome)
            reason = harmless_reason(source, lines, line, description)
            if reason:
                survivor['harmless'] = reason
            entry['survivors'].append(survivor)
            if args.verbose:
                print('  survived %s:%d %s: %s' % (source, line, description, text), flush=True)
        interrupted = False
    finally:
        runner.close(interrupted)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(original)
    entry['score'] = round(100.0 * entry['killed'] / entry['sampled'], 1) if entry['sampled'] else 100.0
    harmful = [s for s in entry['survivors'] if 'harmless' not in s]
    entry['score_without_harmless'] = round(100.0 * entry['killed'] / (entry['killed'] + len(harmful)), 1) \
        if entry['killed'] + len(harmful) else 100.0
    return entry


ROW = '%-45s %8d %8d %8d %7.1f%% %7.0fs'


def write_results(args, results, elapsed):
    document = dict(tool='scripts/mutate.py', seconds=round(elapsed), max_per_file=args.max_per_file, seed=args.seed,
                    files=dict(results))
    if args.only and os.path.exists(args.out):
        # A partial run updates those files' entries and keeps the others.
        with open(args.out, encoding='utf-8') as handle:
            previous = json.load(handle)
        previous['files'].update(results)
        document = dict(previous, files=previous['files'])
    tmp = args.out + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as handle:
        json.dump(document, handle, indent=1, sort_keys=True)
        handle.write('\n')
    os.replace(tmp, args.out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--collection', required=True, help='the built copy: .../ansible_collections/openbsd/vmm')
    parser.add_argument('--python', default=sys.executable)
    parser.add_argument('--out', help='JSON results file')
    parser.add_argument('--only', nargs='*', help='source files (relative to the collection) to mutate')
    parser.add_argument('--max-per-file', type=int, default=0, help='sample this many mutants per file (0: all)')
    parser.add_argument('--seed', default='openbsd.vmm')
    parser.add_argument('--timeout', type=float, default=30, help='seconds per mutant (at least 3x the clean run)')
    parser.add_argument('--list', action='store_true', help='print the test map and mutant counts, run nothing')
    parser.add_argument('--wide', action='store_true', help='run every test file that imports the source, not only its own')
    parser.add_argument('-v', '--verbose', action='store_true')
    args = parser.parse_args()

    source_root = os.path.abspath(args.collection)
    sources = args.only or sorted(os.path.relpath(p, source_root) for pattern in SOURCES
                                  for p in glob.glob(os.path.join(source_root, pattern)) if not p.endswith('__init__.py'))
    mapping = test_map(source_root, sources, args.wide)
    if args.list:
        for source in sources:
            with open(os.path.join(source_root, source), encoding='utf-8') as handle:
                text = handle.read()
            print('%-45s %4d  %s' % (source, len(mutation_points(ast.parse(text), text.splitlines())), ' '.join(mapping[source])))
        return 0

    # A kill (timeout, make interrupted) still removes the private copy.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    results = {}
    with tempfile.TemporaryDirectory(prefix='mutate-') as workdir:
        # A private copy, so the build stays clean if this run is killed.
        copy_root = os.path.join(workdir, 'ansible_collections')
        shutil.copytree(os.path.dirname(os.path.dirname(source_root)), copy_root, symlinks=True,
                        ignore=shutil.ignore_patterns('__pycache__', '.git', 'output'))
        coll_dir = os.path.join(copy_root, 'openbsd', 'vmm')
        with open(os.path.join(workdir, 'mutate_plugin.py'), 'w', encoding='utf-8') as handle:
            handle.write(PLUGIN)
        print('%-45s %8s %8s %8s %8s %8s' % ('file', 'mutants', 'killed', 'survived', 'score', 'time'), flush=True)
        for source in sources:
            file_started = time.monotonic()
            results[source] = mutate_file(args.python, coll_dir, source, mapping[source], args, workdir)
            results[source]['seconds'] = round(time.monotonic() - file_started, 1)
            entry = results[source]
            print(ROW % (source, entry['sampled'], entry['killed'], entry['survived'], entry['score'], entry['seconds']), flush=True)
            if args.out:        # after every file: a run cut short still leaves its results
                write_results(args, results, time.monotonic() - started)
    elapsed = time.monotonic() - started
    total_killed = sum(e['killed'] for e in results.values())
    total = sum(e['sampled'] for e in results.values())
    print(ROW % ('total', total, total_killed, total - total_killed, 100.0 * total_killed / total if total else 100.0, elapsed))
    if args.out:
        write_results(args, results, elapsed)
    return 0


if __name__ == '__main__':
    sys.exit(main())
