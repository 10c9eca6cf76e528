# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import (
    MIB, SizeError, fmt_scaled, round_down_mib, round_up_mib, scan_scaled)

GIB = 1024 * MIB


# The examples in vmctl-facts.md §2 "Memory formatting", computed there with fmt_scaled.
@pytest.mark.parametrize('number, text', [
    (512 * MIB, '512M'), (GIB, '1.0G'), (GIB + GIB // 2, '1.5G'), (2 * GIB, '2.0G'),
    (16 * GIB, '16.0G'), (64 * MIB, '64.0M'), (100 * MIB, '100M'), (1000 * MIB, '1000M'),
    (1023 * MIB, '1023M'), (128 * GIB, '128G'), (0, '0B'),
    (512, '512B'), (1024, '1.0K'),
    # fmt_scaled's quirk: a fraction that rounds to 10 tenths bumps the integer but keeps the unit.
    (1023 * 1024 + 1000, '1024K'), (1024 * 1024 * 1024 - 1, '1024M'),
])
def test_fmt_scaled_matches_reference_examples(number, text):
    assert fmt_scaled(number) == text


@pytest.mark.parametrize('text, number', [
    ('512M', 512 * MIB), ('1G', GIB), ('1g', GIB), ('1.5G', GIB + GIB // 2), ('1024', 1024),
    ('1500K', 1500 * 1024), ('0', 0), ('2T', 2 * 1024 * GIB), ('1B', 1), ('.5M', MIB // 2), (4096, 4096),
])
def test_scan_scaled_bare_number_is_bytes_and_units_are_binary(text, number):
    assert scan_scaled(text) == number


@pytest.mark.parametrize('text, rule', [
    ('abc', 'expected a number'), ('-1G', 'cannot be negative'), ('1X', 'unit must be one of'),
    ('', 'expected a number'), ('1 G B', 'blanks and line breaks are not allowed'), (True, 'expected a number'), (-5, 'cannot be negative'),
    ('99999999E', 'Result too large'),
    ('1G\n', 'blanks and line breaks are not allowed'), (' 1G', 'blanks and line breaks are not allowed'),
    ('1 G', 'blanks and line breaks are not allowed'), ('512\n', 'blanks and line breaks are not allowed'),
])
def test_scan_scaled_rejects_with_the_rule(text, rule):
    with pytest.raises(SizeError, match=rule):
        scan_scaled(text)


def test_rounding_to_mib_like_vmctl():
    assert round_down_mib(1500 * 1024) == MIB
    assert round_up_mib(1500 * 1024) == 2 * MIB
    assert round_up_mib(2 * MIB) == 2 * MIB
    # vmctl's own warning text for -s 1500K says "rounded to 1.0M"
    assert fmt_scaled(round_down_mib(scan_scaled('1500K'))) == '1.0M'


# -- exact edges (values written out by hand from scan_scaled.c / fmt_scaled.c arithmetic) ------

@pytest.mark.parametrize('text, number', [
    ('1.25G', 1342177280), ('1.75K', 1792), ('0.5', 0), ('2.', 2), ('1.05M', 1101004), ('3.125k', 3200),
    ('1e', 1152921504606846976), ('7E', 8070450532247928832), ('9223372036854775807', 9223372036854775807),
    ('8191.99999999P', 9223372036843516808), (0, 0),
])
def test_scan_scaled_decimals_and_limits(text, number):
    assert scan_scaled(text) == number


@pytest.mark.parametrize('text', ['1GB', 'x1G', '1G1', '1..5M', '1.5.5'])
def test_scan_scaled_reads_the_whole_string(text):
    with pytest.raises(SizeError, match="invalid size '%s': expected a number with an optional unit" % text):
        scan_scaled(text)


@pytest.mark.parametrize('text', ['9223372036854775808', '8E', '8192P'])
def test_scan_scaled_one_past_llong_max_is_too_large(text):
    with pytest.raises(SizeError, match="invalid size '%s': Result too large" % text):
        scan_scaled(text)


@pytest.mark.parametrize('number, text', [
    (1023, '1023B'), (99 * MIB, '99.0M'), (100 * MIB + 400 * 1024, '100M'), (100 * MIB + 512 * 1024, '101M'),
    (-1536 * 1024, '-1.5M'), (-5, '-5B'), (2 ** 63 - 1, '8.0E'), (2 ** 70 - 1, '1024E'), (1126 * 1024, '1.1M'),
    # tenths right at fmt_scaled's rounding steps: 52/1024 rounds up to .1, 256/1024 to .3
    (1076, '1.1K'), (1075, '1.0K'), (MIB + 52 * 1024, '1.1M'), (1280, '1.3K'),
])
def test_fmt_scaled_edges(number, text):
    assert fmt_scaled(number) == text


def test_fmt_scaled_refuses_what_fmt_scaled_c_calls_erange():
    with pytest.raises(SizeError, match='size 1180591620717411303424 is too large to format'):
        fmt_scaled(2 ** 70)


def test_rounding_to_mib_at_the_edges():
    assert (round_down_mib(2 * MIB - 1), round_down_mib(2 * MIB), round_down_mib(0)) == (MIB, 2 * MIB, 0)
    assert (round_up_mib(2 * MIB + 1), round_up_mib(1), round_up_mib(0)) == (3 * MIB, MIB, 0)
