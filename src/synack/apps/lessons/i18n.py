"""Every sentence the lessons say, in English and in Chinese.

Lessons and renderers name text by key; `text` looks the key up in the chosen
language and fills in its parameters. A parameter whose name ends in ``_key`` is
itself a key, translated first and passed on without the suffix. There is no
fallback: a key missing in either language is an error (and a test failure).

The Chinese uses the course notes' own terms: 三次握手, 四次挥手, 半连接池,
粘包, 2MSL, 洪水攻击, and the states as the notes write them (SYN_RCVD...).
"""

from __future__ import annotations

from collections.abc import Mapping

from synack.apps.lessons.messages import MESSAGES

LANGUAGES = ("en", "zh")

# Keys whose Chinese is rightly the same text as the English (formats, symbols).
SAME_IN_BOTH: frozenset[str] = frozenset()


def text(lang: str, key: str, **params: object) -> str:
    """The sentence for `key` in `lang`, with `params` filled in."""
    try:
        template = MESSAGES[key][LANGUAGES.index(lang)]
    except ValueError:
        raise ValueError(
            f"unknown language {lang!r}; choose one of {', '.join(LANGUAGES)}"
        ) from None
    values: dict[str, object] = {}
    for name, value in params.items():
        if name.endswith("_key"):
            values[name[: -len("_key")]] = text(lang, str(value))
        else:
            values[name] = value
    return template.format(**values)


def language_from_environment(environ: Mapping[str, str]) -> str:
    """The lesson language the locale asks for: Chinese for zh_*, else English.

    POSIX precedence: LC_ALL, then LC_MESSAGES, then LANG; the first one set decides.
    """
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"
