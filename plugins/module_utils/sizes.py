# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""Sizes the way OpenBSD reads and prints them: scan_scaled(3) and fmt_scaled(3).

vmctl and vm.conf use these for memory and disk sizes. A bare number means
bytes (so ``1024`` is 1 KiB, not 1 GiB), units are 1024-based and
case-insensitive, and decimals are allowed (``1.5G``).
"""

from __future__ import annotations

import re

MIB = 1024 * 1024

# Units in scan_scaled/fmt_scaled order; the exponent is the index.
UNITS = 'BKMGTPE'

# Whole-string match, no blanks: a size with a line break or a blank in it is a mistake, never a size.
_SCALED = re.compile(r'(?P<number>\d+(?:\.\d*)?|\.\d+)(?P<unit>[A-Za-z]?)')

# fmt_scaled() cannot go beyond E; LLONG_MAX bytes is the ceiling of scan_scaled.
LLONG_MAX = 2 ** 63 - 1


class SizeError(ValueError):
    """A size that OpenBSD's scan_scaled(3) would refuse."""


def scan_scaled(text):
    """Return the number of bytes that ``text`` means to scan_scaled(3).

    Accepts ints (bytes) for convenience. Raises SizeError naming the rule.
    """
    if isinstance(text, bool):
        raise SizeError('invalid size %r: expected a number of bytes or a size such as 512M or 1.5G' % (text,))
    if isinstance(text, int):
        if text < 0:
            raise SizeError("invalid size '%d': a size cannot be negative" % text)
        return text
    text = str(text)
    if text.strip().startswith('-'):
        raise SizeError("invalid size '%s': a size cannot be negative" % text)
    if text != text.strip() or ' ' in text:
        raise SizeError('invalid size %r: blanks and line breaks are not allowed in a size' % text)
    match = _SCALED.fullmatch(text)
    if not match:
        raise SizeError("invalid size '%s': expected a number with an optional unit B, K, M, G, T, P or E (a bare number means bytes)" % text)
    unit = match.group('unit').upper()
    if unit and unit not in UNITS:
        raise SizeError("invalid size '%s': unit must be one of B, K, M, G, T, P, E" % text)
    number = match.group('number')
    whole, dummy, fraction = number.partition('.')
    scale = 1024 ** UNITS.index(unit) if unit else 1
    # Integer arithmetic like the C code: no float rounding surprises for 1.1G.
    value = int(whole or '0') * scale
    if fraction:
        value += int(fraction) * scale // (10 ** len(fraction))
    if value > LLONG_MAX:
        raise SizeError("invalid size '%s': Result too large" % text)
    return value


def fmt_scaled(number):
    """Format bytes exactly like fmt_scaled(3), as vmctl status prints memory.

    Follows lib/libutil/fmt_scaled.c step by step (including its rounding of
    the fraction from the next smaller unit): ``512M``, ``1.0G``, ``100M``, ``0B``.
    """
    number = int(number)
    absolute = abs(number)
    if absolute // 1024 >= 1024 ** (len(UNITS) - 1):
        raise SizeError('size %d is too large to format' % number)
    exponent = 0
    while absolute // 1024 >= 1024 ** exponent:
        exponent += 1
    fraction = 0
    whole = absolute // 1024 ** exponent
    if exponent > 0:
        fraction = (absolute % 1024 ** exponent) // 1024 ** (exponent - 1)
    fraction = (10 * fraction + 512) // 1024
    if fraction >= 10:
        whole += 1
        fraction = 0
    sign = '-' if number < 0 else ''
    if whole == 0:
        return '0B'
    if exponent == 0 or whole >= 100:
        if fraction >= 5:
            whole += 1
        return '%s%d%s' % (sign, whole, UNITS[exponent])
    return '%s%d.%d%s' % (sign, whole, fraction, UNITS[exponent])


def round_down_mib(number):
    """vmctl rounds memory and new disk sizes down to whole MiB."""
    return number - number % MIB


def round_up_mib(number):
    """vmctl create -i rounds the copied size up to whole MiB."""
    return -(-number // MIB) * MIB
