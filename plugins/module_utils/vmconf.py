# -*- coding: utf-8 -*-
# Copyright: openbsd.vmm contributors
# BSD 2-Clause License (see LICENSE)
"""vm.conf(5): the model and the one writer of the part the collection manages.

How the collection owns part of vm.conf
---------------------------------------
The collection owns exactly one **managed block** inside vm.conf, between two
marker comments::

    # BEGIN openbsd.vmm managed VMs (edits between these markers are overwritten)
    vm "web1" {
    ...
    }
    # END openbsd.vmm managed VMs

Every line outside the markers belongs to a person and is written back byte for
byte. The block is appended at the end of the file the first time a VM is
defined; a person may move it (for example above hand-written VMs that are
instances of managed ones) and it stays where it is.

Why one block in vm.conf rather than ``include`` of one file per VM: vmd checks
and loads a *whole* configuration, and ``vmd -n -f FILE`` can only check a file
as it will be read. With a single file the candidate configuration is exactly
one temporary file: it is checked with ``vmd -n -f <temp>``, then renamed over
vm.conf (atomic), and one backup is enough to roll back. With included per-VM
files a change spans several files, the check would need a second temporary
vm.conf pointing at temporary includes, and an interrupted run could leave a
half-applied set. The block keeps the transaction to one rename.

Quoting (vmconf-grammar.md §1): every string argument is written double quoted,
so it is never read as a keyword, a number or a macro (``$`` is literal inside
quotes) and may contain blanks, ``#``, ``=``, ``,`` and braces. Inside quotes
only ``\\"``, ``\\<space>`` and ``\\<tab>`` are escapes and any other backslash is
kept, so ``"`` is written as ``\\"`` and a literal backslash before a blank or a
quote is written doubled. A value ending in a backslash, or containing a
newline or NUL, cannot be written and is refused. Only the arguments the
grammar wants as NUMBER (``rdomain``, a numeric ``owner`` uid) are bare.

This module also reads vm.conf (its own lexer with macros, concatenation and
``include``) to learn what people defined by hand: VM names, switches and
lladdrs, which validation needs.
"""

from __future__ import annotations

import os
import re

from dataclasses import dataclass, field

from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import MIB, SizeError, scan_scaled

BEGIN_MARKER = '# BEGIN openbsd.vmm managed VMs'
END_MARKER = '# END openbsd.vmm managed VMs'
BEGIN_LINE = BEGIN_MARKER + ' (edits between these markers are overwritten)'

KEYWORDS = frozenset((
    'add agentx allow boot cdrom context delay device disable disk down enable format group id include inet6 '
    'instance interface interfaces lladdr local locked memory net owner parallel path prefix rdomain sev seves '
    'size socket staggered start switch up vm').split())

BOOT_DEVICES = ('disk', 'cdrom', 'net')
DISK_FORMATS = ('raw', 'qcow2')
ALLOW_INSTANCE_FLAGS = ('boot', 'cdrom', 'disk', 'instance', 'interface', 'memory')
# parse.y yylex: a quoted string goes into buf[8096] and 'string too long' comes before its 8095th byte
MAX_QUOTED = 8094


class VmConfError(Exception):
    """vm.conf cannot be read, or a value cannot be written into it."""


# ---------------------------------------------------------------------------
# Quoting (the writer's only way of emitting a string)

def quote(value):
    """Return ``value`` as a double-quoted vm.conf string that reads back as ``value``."""
    problem = unquotable(value)
    if problem:
        raise VmConfError('cannot write %r into vm.conf: %s' % (value, problem))
    out = []
    previous = ''
    for char in value:
        if char == '"':
            out.append('\\"')
        elif char in ' \t' and previous == '\\':
            # "\<blank>" would read as the blank alone: escape the blank so the backslash stays.
            out.append('\\' + char)
        else:
            out.append(char)
        previous = char
    return '"%s"' % ''.join(out)


def unquotable(value):
    """None if ``value`` can be written as a quoted vm.conf string, else why not."""
    if not isinstance(value, str):
        return 'not a string'
    if value == '':
        return 'the value is empty'
    if '\0' in value:
        return 'it contains a NUL byte'
    if '\n' in value or '\r' in value:
        return 'it contains a line break'
    if value.endswith('\\'):
        return 'a trailing backslash would escape the closing quote'
    if len(value.encode('utf-8')) > MAX_QUOTED:
        return 'it is longer than vmd accepts'
    return None


def format_memory(size):
    """Memory for vm.conf as a quoted scaled string ("1G", "1536M"): never bare bytes."""
    if size % (1024 * MIB) == 0:
        return quote('%dG' % (size // (1024 * MIB)))
    return quote('%dM' % (size // MIB))


def format_owner(owner):
    """A numeric uid is a NUMBER in the grammar; names (user, user:group, :group) are strings."""
    owner = str(owner)
    if owner.isdigit():
        return owner
    return quote(owner)


# ---------------------------------------------------------------------------
# The model

@dataclass
class Interface:
    switch: str | None = None
    lladdr: str | None = None
    locked: bool = False
    group: str | None = None
    rdomain: int | None = None
    local: bool = False

    def render(self):
        opts = []
        if self.switch is not None:
            opts += ['switch', quote(self.switch)]
        if self.lladdr is not None or self.locked:
            opts += (['locked'] if self.locked else []) + ['lladdr']
            if self.lladdr is not None:
                opts.append(quote(self.lladdr))
        if self.group is not None:
            opts += ['group', quote(self.group)]
        if self.rdomain is not None:
            opts += ['rdomain', str(int(self.rdomain))]
        head = 'local interface' if self.local else 'interface'
        return head + (' { %s }' % ' '.join(opts) if opts else '')

    def as_dict(self):
        return dict(switch=self.switch, lladdr=self.lladdr, locked=self.locked, group=self.group,
                    rdomain=self.rdomain, local=self.local)


@dataclass
class Disk:
    path: str
    format: str | None = None

    def render(self):
        return 'disk %s' % quote(self.path) + (' format %s' % quote(self.format) if self.format else '')

    def as_dict(self):
        return dict(path=self.path, format=self.format)


@dataclass
class VmDefinition:
    """One ``vm`` block. The fields the collection writes; parse-only details below."""

    name: str
    instance_of: str | None = None
    enabled: bool = True
    memory: int | None = None
    boot: str | None = None
    boot_device: str | None = None
    cdrom: str | None = None
    disks: list = field(default_factory=list)
    interfaces: list = field(default_factory=list)
    owner: str | None = None
    allow_instance: list = field(default_factory=list)
    allow_instance_owner: str | None = None
    # Where the block was read from, and options the collection does not write.
    path: str | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)
    unsupported: list = field(default_factory=list, compare=False)
    interfaces_count: int = field(default=0, compare=False)    # `interfaces N` (hand-written): at least N NICs

    @property
    def nic_count(self):
        """How many interfaces (so taps) vmd gives the VM when it starts."""
        return max(len(self.interfaces), self.interfaces_count)

    def render(self):
        """The block as vm.conf text: one option per line, closing brace alone (grammar §6)."""
        head = 'vm %s' % quote(self.name)
        if self.instance_of is not None:
            head = 'vm %s instance %s' % (quote(self.instance_of), quote(self.name))
        lines = [head + ' {', 'enable' if self.enabled else 'disable']
        if self.memory is not None:
            lines.append('memory %s' % format_memory(self.memory))
        if self.boot is not None:
            lines.append('boot %s' % quote(self.boot))
        if self.boot_device is not None:
            lines.append('boot device %s' % self.boot_device)
        if self.cdrom is not None:
            lines.append('cdrom %s' % quote(self.cdrom))
        lines += [disk.render() for disk in self.disks]
        lines += [interface.render() for interface in self.interfaces]
        if self.owner is not None:
            lines.append('owner %s' % format_owner(self.owner))
        flags = list(self.allow_instance)
        if self.allow_instance_owner is not None:
            flags.append('owner %s' % format_owner(self.allow_instance_owner))
        if flags:
            lines.append('allow instance { %s }' % ', '.join(flags))
        return '\n\t'.join(lines) + '\n}\n'

    def as_dict(self):
        return dict(
            name=self.name, instance_of=self.instance_of, enabled=self.enabled, memory=self.memory,
            boot=self.boot, boot_device=self.boot_device, cdrom=self.cdrom,
            disks=[disk.as_dict() for disk in self.disks],
            interfaces=[interface.as_dict() for interface in self.interfaces],
            owner=self.owner, allow_instance=list(self.allow_instance),
            allow_instance_owner=self.allow_instance_owner)

    @property
    def lladdrs(self):
        return [interface.lladdr for interface in self.interfaces if interface.lladdr]


def render_managed_block(definitions):
    """The managed block (markers included) for an ordered list of VmDefinitions."""
    names = set()
    for definition in definitions:
        if definition.name in names:
            raise VmConfError('vm %r would be written twice' % definition.name)
        names.add(definition.name)
    body = ''.join(definition.render() for definition in order_for_instances(definitions))
    return BEGIN_LINE + '\n' + body + END_MARKER + '\n'


def order_for_instances(definitions):
    """Keep the order, except that a managed parent comes before its instances (vmd needs the parent first)."""
    by_name = {definition.name: definition for definition in definitions}
    ordered, placed = [], set()

    def place(definition, chain=()):
        if definition.name in placed:
            return
        if definition.name in chain:
            raise VmConfError('vm %r is an instance of itself (through %s)' % (definition.name, ' -> '.join(chain)))
        parent = by_name.get(definition.instance_of)
        if parent is not None:
            place(parent, chain + (definition.name,))
        placed.add(definition.name)
        ordered.append(definition)

    for definition in definitions:
        place(definition)
    return ordered


# ---------------------------------------------------------------------------
# Lexer (vmconf-grammar.md §1-2), independent of vmd: used to read back what is there.

@dataclass
class Token:
    kind: str          # 'string', 'number', 'keyword', 'punct', 'newline', 'eof'
    value: str
    line: int


_NUMBER_END = set(' \t\r\n\f\v),/}=')
_NOT_IN_WORD = set('(){}!=#,')


def _word_char(char):
    return char.isalnum() or (char.isprintable() and not char.isspace() and not char.isalnum() and char not in _NOT_IN_WORD)


class Lexer:
    """Tokens of one vm.conf file; macros expand at the start of a token outside quotes."""

    def __init__(self, text, path, macros):
        self.text = text
        self.pos = 0
        self.pushback = []      # characters pushed back (macro expansions), last = next
        self.path = path
        self.line = 1
        self.macros = macros

    def _getc(self):
        while True:
            if self.pushback:
                return self.pushback.pop()
            if self.pos >= len(self.text):
                return None
            char = self.text[self.pos]
            self.pos += 1
            # Backslash-newline joins lines outside quotes too.
            if char == '\\' and self.text[self.pos:self.pos + 1] == '\n':
                self.pos += 1
                self.line += 1
                continue
            return char

    def _ungetc(self, char):
        if char is not None:
            self.pushback.append(char)

    def error(self, message, line=None):
        return VmConfError('%s:%d: %s' % (self.path, line or self.line, message))

    def next(self):
        char = self._getc()
        while char is not None and char in ' \t':
            char = self._getc()
        if char == '#':
            while char is not None and char != '\n':
                char = self._getc()
        line = self.line
        if char is None:
            return Token('eof', '', line)
        if char == '$':
            name = ''
            char = self._getc()
            while char is not None and (char.isalnum() or char == '_'):
                name += char
                char = self._getc()
            self._ungetc(char)
            if name not in self.macros:
                raise self.error("macro '%s' not defined" % name)
            for expanded in reversed(self.macros[name]):
                self.pushback.append(expanded)
            return self.next()
        if char in '"\'':
            return self._quoted(char, line)
        if char == '\n':
            self.line += 1
            return Token('newline', '\n', line)
        if char == '-' or char.isdigit():
            text = char
            char = self._getc()
            while char is not None and char.isdigit():
                text += char
                char = self._getc()
            if (char is None or char in _NUMBER_END) and text != '-':
                self._ungetc(char)
                return Token('number', text, line)
            # Digits followed by anything else are re-read as a word (512M, 00:11:..).
            self._ungetc(char)
            for back in reversed(text[1:]):
                self._ungetc(back)
            char = text[0]
        if char.isalnum() or char in ':_/':
            text = char
            char = self._getc()
            while char is not None and _word_char(char):
                text += char
                char = self._getc()
            self._ungetc(char)
            if text in KEYWORDS:
                return Token('keyword', text, line)
            return Token('string', text, line)
        return Token('punct', char, line)

    def _quoted(self, quote_char, line):
        out = []
        while True:
            # Quoted strings see raw characters: no macro expansion, backslash rules of their own.
            char = self._raw()
            if char is None:
                raise self.error('reached end of file while parsing quoted string', line)
            if char == '\n':               # parse.y yylex counts the line and drops the newline
                self.line += 1
                continue
            if char == '\\':
                following = self._raw()
                if following is None:
                    raise self.error('reached end of file while parsing quoted string', line)
                if following in (quote_char, ' ', '\t'):
                    char = following
                elif following == '\n':
                    self.line += 1
                    continue
                else:
                    self._unraw(following)
            elif char == quote_char:
                return Token('string', ''.join(out), line)
            elif char == '\0':
                raise self.error('syntax error', line)
            out.append(char)

    def _raw(self):
        if self.pushback:
            return self.pushback.pop()
        if self.pos >= len(self.text):
            return None
        char = self.text[self.pos]
        self.pos += 1
        return char

    def _unraw(self, char):
        self.pushback.append(char)


class Macros(dict):
    """Macro name -> value, shared by a file and the files it includes."""


# ---------------------------------------------------------------------------
# Reading a whole configuration

@dataclass
class ConfigSummary:
    """What a vm.conf (with its includes) defines."""

    vms: list = field(default_factory=list)          # VmDefinition, in file order
    switches: dict = field(default_factory=dict)     # name -> (path, line)
    files: list = field(default_factory=list)
    local_prefix: str = None                         # `local prefix` (vmd's default 100.64.0.0/10 when None)


class _Parser:
    def __init__(self, summary, macros, depth=0):
        self.summary = summary
        self.macros = macros
        self.depth = depth

    def parse_file(self, path, text=None):
        if text is None:
            try:
                with open(path, encoding='utf-8', errors='surrogateescape') as handle:
                    text = handle.read()
            except FileNotFoundError:
                return
            except OSError as exc:
                raise VmConfError('cannot read %s: %s' % (path, exc))
        self.summary.files.append(path)
        self.lexer = Lexer(text, path, self.macros)
        self.peeked = None
        while True:
            token = self._next()
            if token.kind == 'eof':
                return
            if token.kind == 'newline':
                continue
            self._statement(token, path)

    # tokens -------------------------------------------------------------
    def _next(self):
        if self.peeked is not None:
            token, self.peeked = self.peeked, None
            return token
        return self.lexer.next()

    def _peek(self):
        if self.peeked is None:
            self.peeked = self.lexer.next()
        return self.peeked

    def _string(self, what):
        """A string argument: one or more adjacent string tokens, concatenated."""
        token = self._next()
        if token.kind != 'string':
            raise self.lexer.error('expected %s, got %r' % (what, token.value or token.kind), token.line)
        value = token.value
        while self._peek().kind == 'string':
            value += self._next().value
        return value

    def _skip_line(self):
        depth = 0
        while True:
            token = self._next()
            if token.kind == 'eof':
                return
            if token.kind == 'punct' and token.value == '{':
                depth += 1
            elif token.kind == 'punct' and token.value == '}':
                depth -= 1
            elif token.kind == 'newline' and depth <= 0:
                return

    # statements ----------------------------------------------------------
    def _statement(self, token, path):
        if token.kind == 'keyword' and token.value == 'include':
            include = self._string('a file name after include')
            if self.depth > 16:
                raise self.lexer.error('include nesting too deep', token.line)
            lexer, peeked = self.lexer, self.peeked
            _Parser(self.summary, self.macros, self.depth + 1).parse_file(include)
            self.lexer, self.peeked = lexer, peeked
            return
        if token.kind == 'string' and self._peek().kind == 'punct' and self._peek().value == '=':
            self._next()
            value = ''
            while self._peek().kind in ('string', 'number'):
                value += self._next().value
            self.macros[token.value] = value
            return
        if token.kind == 'keyword' and token.value == 'switch':
            name = self._string('a switch name')
            self.summary.switches.setdefault(name, (path, token.line))
            self._skip_line()
            return
        if token.kind == 'keyword' and token.value == 'vm':
            self.summary.vms.append(self._vm(path, token.line))
            return
        if token.kind == 'keyword' and token.value == 'local' and self._peek().kind == 'keyword' and self._peek().value == 'prefix':
            self._next()
            # parse.y: the last `local prefix` line wins.
            self.summary.local_prefix = self._string('a prefix after local prefix')
        self._skip_line()

    def _vm(self, path, line):
        name = self._string('a VM name')
        instance_of = None
        if self._peek().kind == 'keyword' and self._peek().value == 'instance':
            self._next()
            instance_of, name = name, self._string('an instance name')
        token = self._next()
        if not (token.kind == 'punct' and token.value == '{'):
            raise self.lexer.error('syntax error', token.line)
        definition = VmDefinition(name=name, instance_of=instance_of, path=path, line=line)
        while True:
            token = self._next()
            if token.kind == 'eof':
                raise self.lexer.error('syntax error: vm %r has no closing brace' % name, line)
            if token.kind == 'newline':
                continue
            if token.kind == 'punct' and token.value == '}':
                return definition
            self._vm_option(definition, token)

    def _vm_option(self, vm, token):
        word = token.value if token.kind == 'keyword' else None
        local = False
        if word == 'local' and self._peek().value == 'interface':
            self._next()
            word, local = 'interface', True
        if word in ('enable', 'disable'):
            vm.enabled = word == 'enable'
        elif word == 'memory':
            arg = self._next()
            while self._peek().kind == 'string':
                arg.value += self._next().value
            try:
                vm.memory = scan_scaled(arg.value)
            except SizeError as exc:
                raise self.lexer.error('failed to parse size: %s (%s)' % (arg.value, exc), arg.line)
            vm.memory -= vm.memory % MIB
        elif word == 'boot' and self._peek().value == 'device':
            self._next()
            vm.boot_device = self._next().value
        elif word == 'boot':
            vm.boot = self._string('a boot path')
        elif word == 'cdrom':
            vm.cdrom = self._string('a cdrom path')
        elif word == 'disk':
            disk = Disk(self._string('a disk path'))
            if self._peek().value == 'format':
                self._next()
                disk.format = self._string('a disk format').lower()
            vm.disks.append(disk)
        elif word == 'interface':
            vm.interfaces.append(self._interface(local))
            return
        elif word == 'owner':
            vm.owner = self._owner()
        elif word == 'allow' and self._peek().value == 'instance':
            self._next()
            self._allow_instance(vm)
        else:
            if word == 'interfaces' and self._peek().kind == 'number':
                vm.interfaces_count = int(self._peek().value)
            vm.unsupported.append((token.value, token.line))
            self._skip_to_newline_in_block()
            return
        self._skip_to_newline_in_block()

    def _owner(self):
        token = self._next()
        if token.kind == 'number':
            return token.value
        value = token.value
        while self._peek().kind == 'string':
            value += self._next().value
        return value

    def _skip_to_newline_in_block(self):
        depth = 0
        while True:
            token = self._peek()
            if token.kind == 'eof':
                return
            if token.kind == 'punct' and token.value == '}' and depth == 0:
                return          # "vm x { memory 1G }" on one line
            self._next()
            if token.kind == 'punct' and token.value == '{':
                depth += 1
            elif token.kind == 'punct' and token.value == '}':
                depth -= 1
            elif token.kind == 'newline' and depth <= 0:
                return

    def _interface(self, local):
        interface = Interface(local=local)
        token = self._peek()
        if token.kind == 'string' and re.fullmatch(r'tap\d*', token.value):
            self._next()        # interface name: the collection does not pin tap names
        braced = self._peek().kind == 'punct' and self._peek().value == '{'
        if braced:
            self._next()
        while True:
            token = self._peek()
            if token.kind == 'eof':
                return interface
            if token.kind == 'newline' and not braced:
                return interface
            if token.kind == 'punct' and token.value == '}':
                if braced:
                    self._next()
                return interface
            self._next()
            if token.kind in ('newline',) or (token.kind == 'punct' and token.value == ','):
                continue
            if token.value == 'switch':
                interface.switch = self._string('a switch name')
            elif token.value == 'locked':
                interface.locked = True
            elif token.value == 'lladdr':
                if self._peek().kind == 'string':
                    interface.lladdr = self._string('a MAC address').lower()
            elif token.value == 'group':
                interface.group = self._string('a group name')
            elif token.value == 'rdomain':
                interface.rdomain = int(self._next().value)
            elif token.value in ('up', 'down'):
                pass
            else:
                raise self.lexer.error('syntax error near %r' % token.value, token.line)

    def _allow_instance(self, vm):
        braced = self._peek().kind == 'punct' and self._peek().value == '{'
        if braced:
            self._next()
        while True:
            token = self._peek()
            if token.kind == 'eof' or (token.kind == 'newline' and not braced):
                return
            self._next()
            if token.kind == 'punct' and token.value == '}':
                return
            if token.kind == 'newline' or token.value == ',':
                continue
            if token.value == 'owner':
                vm.allow_instance_owner = self._owner()
            else:
                vm.allow_instance.append(token.value)
            if not braced:
                return


def parse_config(path, text=None):
    """Read a vm.conf (and what it includes) into a ConfigSummary."""
    summary = ConfigSummary()
    _Parser(summary, Macros()).parse_file(path, text)
    return summary


# ---------------------------------------------------------------------------
# The file: hand-written text around the managed block

class VmConf:
    """vm.conf as text split around the managed block, plus what it defines.

    ``managed`` are the VMs inside the block (ordered), ``hand_written`` every
    other VM of the whole configuration (includes too).
    """

    def __init__(self, path, text):
        self.path = path
        self.text = text
        self.before, self.block, self.after = split_managed(text, path)
        self.summary = parse_config(path, text)
        first = self.before.count('\n') + 1
        last = first + (self.block or '').count('\n') - 1
        self.managed = []
        self.hand_written = []
        for definition in self.summary.vms:
            if self.block is not None and definition.path == path and first <= definition.line <= last:
                if definition.unsupported:
                    option, line = definition.unsupported[0]
                    raise VmConfError(
                        "%s:%d: vm %r in the managed part uses '%s', which openbsd.vmm.vmm_vm does not write; "
                        "move the VM out of the managed part (above %r)" % (path, line, definition.name, option, BEGIN_MARKER))
                self.managed.append(definition)
            else:
                self.hand_written.append(definition)

    @classmethod
    def load(cls, path):
        try:
            with open(path, encoding='utf-8', errors='surrogateescape') as handle:
                text = handle.read()
        except FileNotFoundError:
            text = ''
        except OSError as exc:
            raise VmConfError('cannot read %s: %s' % (path, exc))
        return cls(path, text)

    @property
    def exists(self):
        return os.path.exists(self.path)

    def managed_vm(self, name):
        for definition in self.managed:
            if definition.name == name:
                return definition
        return None

    def hand_written_vm(self, name):
        for definition in self.hand_written:
            if definition.name == name:
                return definition
        return None

    def with_managed(self, definitions):
        """The whole file's text with the managed block replaced by ``definitions``."""
        if self.block is None and not definitions:
            return self.text
        block = render_managed_block(definitions)
        if self.block is None:
            before = self.text
            if before and not before.endswith('\n'):
                before += '\n'
            if before.strip():
                before += '\n'
            return before + block
        return self.before + block + self.after


def split_managed(text, path='vm.conf'):
    """(before, block or None, after): the block runs from the BEGIN line to the END line inclusive."""
    lines = text.splitlines(True)
    begins = [index for index, line in enumerate(lines) if line.startswith(BEGIN_MARKER)]
    ends = [index for index, line in enumerate(lines) if line.startswith(END_MARKER)]
    if not begins and not ends:
        return text, None, ''
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise VmConfError('%s: the managed part must be exactly one %r line followed by one %r line '
                          '(found %d and %d); fix the markers by hand' % (path, BEGIN_MARKER, END_MARKER, len(begins), len(ends)))
    begin, end = begins[0], ends[0]
    block = ''.join(lines[begin:end + 1])
    if not block.endswith('\n'):
        block += '\n'
    return ''.join(lines[:begin]), block, ''.join(lines[end + 1:])
