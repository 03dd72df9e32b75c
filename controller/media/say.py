"""Numbers, digits, amounts of money, dates and times as the words a prompt says, in Mandarin and English.

The words are then rendered by the TTS engine, so one engine voices everything a flow says.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

ZH_DIGITS = "零一二三四五六七八九"
EN_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
           "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
EN_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
EN_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December"]
EN_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
               "nine": "ninth", "twelve": "twelfth"}


def _decimal(value: str | int | float | Decimal, what: str) -> Decimal:
    try:
        number = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return number


# -- Mandarin -------------------------------------------------------------------------------------

def _zh_below_10000(n: int) -> str:
    """0 < n < 10000, with 零 for gaps ("一百零五") and no leading 一 before 十 handled by the caller."""
    words = ""
    zero_pending = False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = n // value % 10
        if digit == 0:
            zero_pending = bool(words)
            continue
        if zero_pending:
            words += "零"
            zero_pending = False
        words += ZH_DIGITS[digit] + unit
    return words


def _zh_integer(n: int) -> str:
    if n == 0:
        return "零"
    groups = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    words = ""
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        unit = ["", "万", "亿", "万亿"][index]
        if group == 0:
            continue
        if words and group < 1000:
            words += "零"
        words += _zh_below_10000(group) + unit
    if words.startswith("一十"):
        words = words[1:]  # 十, 十五, 十万: not 一十
    return words


def _zh_number(number: Decimal) -> str:
    sign = "负" if number < 0 else ""
    text = format(abs(number), "f")
    integer, _, fraction = text.partition(".")
    words = sign + _zh_integer(int(integer))
    if fraction:
        words += "点" + "".join(ZH_DIGITS[int(d)] for d in fraction)
    return words


# -- English --------------------------------------------------------------------------------------

def _en_below_1000(n: int) -> str:
    parts = []
    if n >= 100:
        parts.append(f"{EN_ONES[n // 100]} hundred")
        n %= 100
    if n >= 20:
        parts.append(EN_TENS[n // 10] + (f"-{EN_ONES[n % 10]}" if n % 10 else ""))
    elif n or not parts:
        parts.append(EN_ONES[n])
    return " ".join(parts)


def _en_integer(n: int) -> str:
    if n < 1000:
        return _en_below_1000(n)
    parts = []
    for value, name in EN_SCALES:
        if n >= value:
            parts.append(f"{_en_integer(n // value)} {name}")
            n %= value
    if n:
        parts.append(_en_below_1000(n))
    return " ".join(parts)


def _en_number(number: Decimal) -> str:
    sign = "minus " if number < 0 else ""
    integer, _, fraction = format(abs(number), "f").partition(".")
    words = sign + _en_integer(int(integer))
    if fraction:
        words += " point " + " ".join(EN_ONES[int(d)] for d in fraction)
    return words


# -- public -------------------------------------------------------------------------------------------

def say_number(value: str | int | float | Decimal, language: str) -> str:
    number = _decimal(value, "number")
    return _en_number(number) if language == "en" else _zh_number(number)


def say_digits(value: str | int, language: str) -> str:
    """Digit by digit; Mandarin reads 1 as 幺 (as call centers read phone numbers)."""
    zh = {"1": "幺", "*": "星号", "#": "井号"}
    en = {"*": "star", "#": "pound"}
    words = []
    for char in str(value):
        if char.isdigit():
            words.append(zh.get(char, ZH_DIGITS[int(char)]) if language != "en" else EN_ONES[int(char)])
        elif char in "*#":
            words.append(zh[char] if language != "en" else en[char])
    if not words:
        raise ValueError(f"digits: {value!r} has no digits to say")
    return ("" if language != "en" else " ").join(words)


def say_money(value: str | int | float | Decimal, language: str, currency: str = "CNY") -> str:
    """An amount in yuan (元角分) or, with currency USD, dollars and cents."""
    amount = _decimal(value, "money").quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    negative = amount < 0
    cents = int(abs(amount) * 100)
    major, minor = divmod(cents, 100)
    if language == "en":
        names = ("dollar", "dollars", "cent", "cents") if currency == "USD" else ("yuan", "yuan", "fen", "fen")
        parts = []
        if major or not minor:
            parts.append(f"{_en_integer(major)} {names[0] if major == 1 else names[1]}")
        if minor:
            parts.append(f"{_en_integer(minor)} {names[2] if minor == 1 else names[3]}")
        return ("minus " if negative else "") + " and ".join(parts)
    jiao, fen = divmod(minor, 10)
    words = "负" if negative else ""
    if major or not minor:
        words += _zh_integer(major) + ("美元" if currency == "USD" else "元")
    if currency == "USD":
        return words + (_zh_integer(minor) + "美分" if minor else "")
    if jiao:
        words += ZH_DIGITS[jiao] + "角"
    if fen:
        words += ("零" if major and not jiao else "") + ZH_DIGITS[fen] + "分"
    return words


def _parse_date(value: str | date | datetime) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise ValueError(f"date: {value!r} is not a date (expected YYYY-MM-DD)") from None


def say_date(value: str | date | datetime, language: str) -> str:
    day = _parse_date(value)
    if language == "en":
        day_words = _en_integer(day.day)
        last = day_words.split("-")[-1].split(" ")[-1]
        ordinal = EN_ORDINALS.get(last, last[:-1] + "ieth" if last.endswith("y") else last + "th")
        day_words = day_words[: len(day_words) - len(last)] + ordinal
        year = day.year
        year_words = (f"{_en_integer(year // 100)} {_en_integer(year % 100)}" if year % 100 >= 10
                      and not 2000 <= year < 2010 else _en_integer(year))
        return f"{EN_MONTHS[day.month - 1]} {day_words}, {year_words}"
    year_zh = "".join(ZH_DIGITS[int(d)] for d in f"{day.year}")
    return f"{year_zh}年{_zh_integer(day.month)}月{_zh_integer(day.day)}日"


def say_time(value: str | time | datetime, language: str) -> str:
    if isinstance(value, datetime):
        moment = value.time()
    elif isinstance(value, time):
        moment = value
    else:
        try:
            moment = time.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError(f"time: {value!r} is not a time (expected HH:MM)") from None
    if language == "en":
        hour12 = moment.hour % 12 or 12
        suffix = "AM" if moment.hour < 12 else "PM"
        if moment.minute == 0:
            return f"{_en_integer(hour12)} o'clock {suffix}"
        minute = _en_integer(moment.minute) if moment.minute >= 10 else f"oh {_en_integer(moment.minute)}"
        return f"{_en_integer(hour12)} {minute} {suffix}"
    hour = "零" if moment.hour == 0 else _zh_integer(moment.hour)
    if moment.minute == 0:
        return f"{hour}点整"
    return f"{hour}点{_zh_integer(moment.minute) if moment.minute >= 10 else '零' + ZH_DIGITS[moment.minute]}分"


def verbalize(kind: str, value: str, language: str) -> str:
    """The words for a prompt of kind number / digits / money / date / time (tts text as it is)."""
    sayers = {"number": say_number, "digits": say_digits, "money": say_money, "date": say_date, "time": say_time}
    if kind == "tts":
        return value
    if kind not in sayers:
        raise ValueError(f"cannot say a prompt of kind {kind!r}")
    return sayers[kind](value, language)
