"""OpenBSD libutil scan_scaled(3) and fmt_scaled(3), 1024-based, with their quirks."""

LLONG_MAX = 2 ** 63 - 1
SCALE_CHARS = "BKMGTPE"
SCALE_FACTORS = [1024 ** i for i in range(len(SCALE_CHARS))]
MAX_DIGITS = len(SCALE_CHARS) * 3


class ScaledError(ValueError):
    """Raised with the errno name ('EINVAL' or 'ERANGE') scan_scaled would set."""

    def __init__(self, errno_name):
        super().__init__(errno_name)
        self.errno_name = errno_name


def scan_scaled(text):
    """Parse like scan_scaled(3): a bare number is bytes, one optional unit letter."""
    pos = 0
    while pos < len(text) and text[pos] in " \t\n\r\f\v":
        pos += 1
    sign = 0
    while pos < len(text) and text[pos] in "+-":
        if sign:
            raise ScaledError("EINVAL")
        sign = -1 if text[pos] == "-" else 1
        pos += 1
    whole = 0
    fpart = 0
    ndigits = 0
    fract_digits = 0
    while pos < len(text):
        char = text[pos]
        if char.isdigit() and char.isascii():
            digit = ord(char) - 48
            if fract_digits > 0:
                if fract_digits >= MAX_DIGITS - 1:
                    pos += 1
                    continue
                fract_digits += 1
                fpart = fpart * 10 + digit
                if fpart > LLONG_MAX:
                    raise ScaledError("ERANGE")
            else:
                ndigits += 1
                if ndigits >= MAX_DIGITS:
                    raise ScaledError("ERANGE")
                whole = whole * 10 + digit
                if whole > LLONG_MAX:
                    raise ScaledError("ERANGE")
        elif char == ".":
            if fract_digits > 0:
                raise ScaledError("EINVAL")
            fract_digits += 1
        else:
            unit = SCALE_CHARS.find(char.upper()) if char.isascii() else -1
            if unit < 0:
                raise ScaledError("EINVAL")
            following = text[pos + 1:pos + 2]
            if following and following.isascii() and following.isalnum():
                raise ScaledError("EINVAL")
            factor = SCALE_FACTORS[unit]
            if whole > LLONG_MAX // factor:
                raise ScaledError("ERANGE")
            whole *= factor
            while fpart >= LLONG_MAX // factor:
                fpart //= 10
                fract_digits -= 1
            fpart *= factor
            if fract_digits > 1:
                fpart //= 10 ** (fract_digits - 1)
            whole = whole - fpart if sign == -1 else whole + fpart
            return -whole if sign == -1 else whole
        pos += 1
    return -whole if sign == -1 else whole


def fmt_scaled(number):
    """Format like fmt_scaled(3): '512M', '1.0G', '0B'."""
    abval = abs(number)
    if abval // 1024 >= SCALE_FACTORS[-1]:
        raise ScaledError("ERANGE")
    unit = 0
    fract = 0
    for index, factor in enumerate(SCALE_FACTORS):
        if abval // 1024 < factor:
            unit = index
            fract = 0 if index == 0 else abval % factor
            number = int(number / factor)
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
