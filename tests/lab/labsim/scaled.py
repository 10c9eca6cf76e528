"""OpenBSD libutil scan_scaled(3) and fmt_scaled(3) (lib/libutil/fmt_scaled.c), 1024-based.

Both raise OSError(errno.EINVAL or errno.ERANGE, OpenBSD's strerror text) where the
C functions set errno and return -1; the integer arithmetic is C's (long long,
division truncating toward zero).
"""

import errno

from labsim.state import strerror

LLONG_MAX = (1 << 63) - 1
LLONG_MIN = -(1 << 63)
SCALE_CHARS = "BKMGTPE"
SCALE_FACTORS = [1 << (10 * i) for i in range(len(SCALE_CHARS))]
MAX_DIGITS = len(SCALE_CHARS) * 3
_SPACE = " \t\n\v\f\r"
_DIGITS = "0123456789"


def _error(number):
    return OSError(number, strerror(number))


def _cdiv(dividend, divisor):
    """C integer division (truncates toward zero)."""
    quotient = abs(dividend) // abs(divisor)
    return quotient if (dividend < 0) == (divisor < 0) else -quotient


def scan_scaled(text):
    """Parse like scan_scaled(3): a bare number is bytes (its fraction dropped), one unit B K M G T P E in any case.

    Fraction digits past MAX_DIGITS - 1 are ignored; a unit followed by a letter or digit is EINVAL.
    """
    pos, end = 0, len(text)
    while pos < end and text[pos] in _SPACE:
        pos += 1
    sign = 0
    while pos < end and text[pos] in "+-":
        if sign:
            raise _error(errno.EINVAL)
        sign = -1 if text[pos] == "-" else 1
        pos += 1
    whole = fpart = 0
    ndigits = fract_digits = 0
    while pos < end and (text[pos] in _DIGITS or text[pos] == "."):
        char = text[pos]
        pos += 1
        if char == ".":
            if fract_digits > 0:
                raise _error(errno.EINVAL)
            fract_digits = 1
            continue
        digit = ord(char) - ord("0")
        if fract_digits > 0:
            if fract_digits >= MAX_DIGITS - 1:
                continue
            fract_digits += 1
            if fpart > LLONG_MAX // 10 or digit > LLONG_MAX - fpart * 10:
                raise _error(errno.ERANGE)
            fpart = fpart * 10 + digit
        else:
            ndigits += 1
            if ndigits >= MAX_DIGITS:
                raise _error(errno.ERANGE)
            if whole > LLONG_MAX // 10 or digit > LLONG_MAX - whole * 10:
                raise _error(errno.ERANGE)
            whole = whole * 10 + digit
    if sign:
        whole *= sign
    if pos == end:
        return whole
    unit = SCALE_CHARS.find(text[pos].upper()) if text[pos].isascii() else -1
    if unit < 0:
        raise _error(errno.EINVAL)
    following = text[pos + 1:pos + 2]
    if following and following.isascii() and following.isalnum():
        raise _error(errno.EINVAL)
    factor = SCALE_FACTORS[unit]
    if whole > _cdiv(LLONG_MAX, factor) or whole < _cdiv(LLONG_MIN, factor):
        raise _error(errno.ERANGE)
    whole *= factor
    while fpart >= _cdiv(LLONG_MAX, factor) or fpart <= _cdiv(LLONG_MIN, factor):
        fpart = _cdiv(fpart, 10)
        fract_digits -= 1
    fpart *= factor
    if fract_digits > 1:
        fpart = _cdiv(fpart, 10 ** (fract_digits - 1))  # same as dividing by 10 repeatedly
    return whole - fpart if sign == -1 else whole + fpart


def fmt_scaled(number):
    """Format like fmt_scaled(3): '512M', '1.0G', '0B' (one rounded decimal below 100 units)."""
    if number == LLONG_MIN:
        raise _error(errno.ERANGE)
    abval = abs(number)
    if abval // 1024 >= SCALE_FACTORS[-1]:
        raise _error(errno.ERANGE)
    unit = 0
    fract = 0
    for index, factor in enumerate(SCALE_FACTORS):
        if abval // 1024 < factor:
            unit = index
            fract = 0 if index == 0 else abval % factor
            number = _cdiv(number, factor)
            if index > 0:
                fract //= SCALE_FACTORS[index - 1]
            break
    fract = (10 * fract + 512) // 1024
    if fract >= 10:
        number = number + 1 if number >= 0 else number - 1
        fract = 0
    if number == 0:
        return "0B"
    if unit == 0 or number >= 100 or number <= -100:
        if fract >= 5:
            number = number + 1 if number >= 0 else number - 1
        return "%d%s" % (number, SCALE_CHARS[unit])
    return "%d.%d%s" % (number, fract, SCALE_CHARS[unit])
