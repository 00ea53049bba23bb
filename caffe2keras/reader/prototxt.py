"""Protobuf text format (prototxt) -> message, the way Caffe's files are really written.

Our own parser rather than ``google.protobuf.text_format`` because real files carry
fields from Caffe forks our schema does not know: those are skipped and reported
(once per field, with the line) instead of failing the whole file, while every genuine
syntax error still stops with the file, line and column. It also accepts the quirks of
hand-written prototxts: ``;`` or ``,`` separators, single-quoted strings, tabs, ``#``
comments, ``<...>`` message brackets and the short repeated form ``[a, b]``.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from typing import Iterator

from google.protobuf import descriptor

from ..errors import ParseError

MAX_DEPTH = 64  # real nets nest 4 deep; anything near this is hostile
# The largest real prototxts are a few hundred KB with a few thousand layers and some ten
# thousand messages; each message costs protobuf up to ~700 bytes however short its text.
MAX_TEXT_BYTES = 16 * 1024 * 1024
MAX_MESSAGES = 250_000

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\f\v]+) |
    (?P<newline>\n) |
    (?P<comment>\#[^\n]*) |
    (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*') |
    (?P<number>[-+]?0[xX][0-9a-fA-F]+
              |[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)[fF]?
              |-?(?:infinity|inf|nan)\b) |
    (?P<ident>[A-Za-z_][A-Za-z0-9_.]*) |
    (?P<symbol>[{}<>:\[\],;]) |
    (?P<error>.)
    """,
    re.VERBOSE | re.IGNORECASE,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a",
            "b": "\b", "f": "\f", "v": "\v", "?": "?"}

_INT_RANGES = {
    descriptor.FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    descriptor.FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    descriptor.FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    descriptor.FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_INTEGER = re.compile(r"[-+]?(?:(?P<hex>0[xX])[0-9a-fA-F]+|\d+)")
_FLOAT_TYPES = {descriptor.FieldDescriptor.CPPTYPE_FLOAT, descriptor.FieldDescriptor.CPPTYPE_DOUBLE}
_TRUE = {"true", "t", "1"}
_FALSE = {"false", "f", "0"}


def _is_repeated(field_desc) -> bool:
    # protobuf >= 6 has ``is_repeated``; older runtimes only ``label``.
    repeated = getattr(field_desc, "is_repeated", None)
    if repeated is None:
        return field_desc.label == descriptor.FieldDescriptor.LABEL_REPEATED
    return repeated() if callable(repeated) else repeated


@dataclass
class _Token:
    kind: str
    text: str
    line: int
    column: int


@dataclass
class TextParseResult:
    unknown_fields: list[str] = field(default_factory=list)  # "Message.field (line N)", first sighting


def _tokenize(text: str, path: str) -> Iterator[_Token]:
    """The tokens of ``text`` one at a time: memory stays flat however long the file."""
    line, line_start = 1, 0
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "newline":
            line, line_start = line + 1, match.end()
        elif kind == "error":
            raise ParseError(f"unexpected character {match.group()!r}", path, line,
                             match.start() - line_start + 1)
        elif kind not in ("space", "comment"):
            yield _Token(kind, match.group(), line, match.start() - line_start + 1)


def _unquote(token: _Token, path: str) -> str:
    body, out, i = token.text[1:-1], [], 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[i + 1:]).group()
            out.append(chr(int(digits, 8)))
            i += 1 + len(digits)
        elif nxt in "xX":
            digits = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2:])
            if not digits:
                raise ParseError("bad \\x escape in string", path, token.line, token.column)
            out.append(chr(int(digits.group(), 16)))
            i += 2 + len(digits.group())
        else:
            raise ParseError(f"unknown escape \\{nxt} in string", path, token.line, token.column)
    return "".join(out)


class _Parser:
    def __init__(self, tokens: Iterator[_Token], path: str, result: TextParseResult):
        self.path, self.result = path, result
        self._tokens = tokens
        self._ahead: _Token | None = None  # the next token, once peeked
        self._last = _Token("", "", 1, 1)  # the last token taken, for end-of-file positions
        self._messages = 0
        self._reported: set[str] = set()

    # -- token helpers -------------------------------------------------------
    def _peek(self) -> _Token | None:
        if self._ahead is None:
            self._ahead = next(self._tokens, None)
        return self._ahead

    def _next(self, expecting: str) -> _Token:
        token = self._peek()
        if token is None:
            last = self._last
            raise ParseError(f"unexpected end of file, expected {expecting}", self.path,
                             last.line, last.column + len(last.text))
        self._ahead, self._last = None, token
        return token

    def _try(self, *symbols: str) -> _Token | None:
        token = self._peek()
        if token is not None and token.kind == "symbol" and token.text in symbols:
            return self._next(repr(symbols[0]))
        return None

    def _expect(self, symbol: str) -> _Token:
        token = self._next(repr(symbol))
        if token.kind != "symbol" or token.text != symbol:
            self._fail(token, f"expected {symbol!r}, found {token.text!r}")
        return token

    def _fail(self, token: _Token, message: str):
        raise ParseError(message, self.path, token.line, token.column)

    # -- grammar -------------------------------------------------------------
    def parse_fields(self, message, closing: str | None, depth: int) -> None:
        if depth > MAX_DEPTH:
            self._fail(self._peek() or self._last, f"messages nested deeper than {MAX_DEPTH}")
        while True:
            token = self._peek()
            if token is None:
                if closing is not None:
                    self._next(repr(closing))
                return
            if token.kind == "symbol" and token.text == closing:
                self._next(repr(closing))
                return
            self._parse_field(message, depth)
            self._try(",", ";")

    def _parse_field(self, message, depth: int) -> None:
        name_token = self._next("a field name")
        if name_token.kind != "ident":
            self._fail(name_token, f"expected a field name, found {name_token.text!r}")
        name = name_token.text
        field_desc = message.DESCRIPTOR.fields_by_name.get(name)
        if field_desc is None:
            self._report_unknown(message.DESCRIPTOR.name, name, name_token.line)
            self._skip_value()
            return
        is_message = field_desc.cpp_type == descriptor.FieldDescriptor.CPPTYPE_MESSAGE
        if is_message:
            self._try(":")
        else:
            self._expect(":")
        if _is_repeated(field_desc) and self._try("["):
            if not self._try("]"):
                while True:
                    self._parse_value(message, field_desc, name_token, depth)
                    if self._try("]"):
                        break
                    self._expect(",")
            return
        self._parse_value(message, field_desc, name_token, depth)

    def _parse_value(self, message, field_desc, name_token: _Token, depth: int) -> None:
        repeated = _is_repeated(field_desc)
        if field_desc.cpp_type == descriptor.FieldDescriptor.CPPTYPE_MESSAGE:
            opening = self._next("'{'")
            if opening.kind != "symbol" or opening.text not in "{<":
                self._fail(opening, f"expected '{{' after {field_desc.name}, found {opening.text!r}")
            closing = "}" if opening.text == "{" else ">"
            self._messages += 1
            if self._messages > MAX_MESSAGES:
                self._fail(opening, f"more than {MAX_MESSAGES} messages (layers and their "
                                    "parameter blocks); no real net has that many")
            if repeated:
                child = getattr(message, field_desc.name).add()
            else:
                child = getattr(message, field_desc.name)
                child.SetInParent()
            self.parse_fields(child, closing, depth + 1)
            return
        value_token = self._next(f"a value for {field_desc.name}")
        value = self._convert(field_desc, value_token)
        if repeated:
            getattr(message, field_desc.name).append(value)
        else:
            if message.HasField(field_desc.name):
                self._fail(name_token, f"field {field_desc.name!r} is set twice")
            setattr(message, field_desc.name, value)

    def _convert(self, field_desc, token: _Token):
        cpp = field_desc.cpp_type
        text = token.text
        try:
            if cpp in _INT_RANGES:
                return self._int_value(field_desc, token)
            if cpp in _FLOAT_TYPES:
                if token.kind not in ("number", "ident"):
                    raise ValueError
                return float(text.rstrip("fF") if not text.lower().endswith("inf") else text)
            if cpp == descriptor.FieldDescriptor.CPPTYPE_BOOL:
                lowered = text.lower()
                if token.kind in ("ident", "number") and lowered in _TRUE | _FALSE:
                    return lowered in _TRUE
                raise ValueError
            if cpp == descriptor.FieldDescriptor.CPPTYPE_STRING:
                if token.kind != "string":
                    raise ValueError
                parts = [_unquote(token, self.path)]
                while (nxt := self._peek()) is not None and nxt.kind == "string":
                    parts.append(_unquote(self._next("a string"), self.path))
                joined = "".join(parts)
                if field_desc.type == descriptor.FieldDescriptor.TYPE_BYTES:
                    return joined.encode("latin-1")
                return joined
            if cpp == descriptor.FieldDescriptor.CPPTYPE_ENUM:
                return self._enum_value(field_desc, token)
        except ValueError:
            pass
        self._fail(token, f"invalid value {text!r} for field {field_desc.name!r}")

    def _int_value(self, field_desc, token: _Token) -> int:
        match = _INTEGER.fullmatch(token.text) if token.kind == "number" else None
        if match is None:
            raise ValueError
        value = int(token.text, 16 if match.group("hex") else 10)
        low, high = _INT_RANGES[field_desc.cpp_type]
        if not low <= value <= high:
            self._fail(token, f"{token.text} is out of range for {field_desc.name!r}")
        return value

    def _enum_value(self, field_desc, token: _Token) -> int:
        enum = field_desc.enum_type
        if token.kind == "ident" and token.text in enum.values_by_name:
            return enum.values_by_name[token.text].number
        if token.kind == "number" and re.fullmatch(r"-?\d+", token.text):
            if int(token.text) in enum.values_by_number:
                return int(token.text)
        known = ", ".join(enum.values_by_name)
        self._fail(token, f"unknown value {token.text!r} for {field_desc.name!r} (expected one of {known})")

    def _skip_value(self) -> None:
        """Skip an unknown field's value: a scalar, a [list] or a {message}."""
        self._try(":")
        if self._try("["):
            depth = 1
            while depth:
                token = self._next("']'")
                if token.kind == "symbol":
                    depth += {"[": 1, "]": -1}.get(token.text, 0)
            return
        token = self._next("a value")
        if token.kind == "symbol" and token.text in "{<":
            self._skip_message("}" if token.text == "{" else ">")
        elif token.kind == "string":
            while (nxt := self._peek()) is not None and nxt.kind == "string":
                self._next("a string")
        elif token.kind == "symbol":
            self._fail(token, f"expected a value, found {token.text!r}")

    def _skip_message(self, closing: str) -> None:
        stack = [closing]
        while stack:
            token = self._next(repr(stack[-1]))
            if token.kind != "symbol":
                continue
            if token.text in "{<":
                if len(stack) > MAX_DEPTH:
                    self._fail(token, f"messages nested deeper than {MAX_DEPTH}")
                stack.append("}" if token.text == "{" else ">")
            elif token.text in "}>":
                if token.text != stack[-1]:
                    self._fail(token, f"expected {stack[-1]!r}, found {token.text!r}")
                stack.pop()

    def _report_unknown(self, message_name: str, field_name: str, line: int) -> None:
        key = f"{message_name}.{field_name}"
        if key not in self._reported:
            self._reported.add(key)
            self.result.unknown_fields.append(f"{key} (line {line})")


def parse_text(text: str, message, path: str = "<text>") -> TextParseResult:
    """Merge prototxt ``text`` into ``message``; return the unknown fields that were skipped."""
    if len(text) > MAX_TEXT_BYTES:
        raise ParseError(f"text is {len(text)} bytes, more than the {MAX_TEXT_BYTES} a prototxt may have",
                         path)
    result = TextParseResult()
    parser = _Parser(_tokenize(text, path), path, result)
    parser.parse_fields(message, None, 0)
    return result


def _read_at_most(handle, limit: int) -> bytes:
    data = bytearray()
    while len(data) < limit:
        chunk = handle.read(min(2**20, limit - len(data)))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def read_text_file(path: str, message) -> TextParseResult:
    try:
        size = os.path.getsize(path)
        if size > MAX_TEXT_BYTES:
            raise ParseError(f"file is {size} bytes, more than the {MAX_TEXT_BYTES} a prototxt may have",
                             path)
        with open(path, "rb") as handle:
            if stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raw = handle.read()
            else:  # a pipe or a device (a symlink to /dev/zero): no size to check first
                raw = _read_at_most(handle, MAX_TEXT_BYTES + 1)
    except OSError as error:
        raise ParseError(f"cannot read: {error.strerror}", path) from None
    if len(raw) > MAX_TEXT_BYTES:
        raise ParseError(f"more than the {MAX_TEXT_BYTES} bytes a prototxt may have", path)
    if b"\x00" in raw[:4096]:
        raise ParseError("this is a binary file, not a text prototxt (weights go in the second argument)",
                         path)
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # editors on Windows may add a BOM
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ParseError("not valid UTF-8 text", path, line) from None
    return parse_text(text, message, path)
