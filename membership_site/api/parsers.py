"""The API's JSON parser, and the text checks it shares with URL parameters.

PostgreSQL cannot store a NUL character in text or JSONB, and a lone UTF-16 surrogate
(``"\\ud800"`` in JSON) cannot be encoded at all: either used to fail deep inside a query
or while rendering an error message that quoted it (a 500). Such text is refused where the
request is read, naming where it was found; so is JSON nested too deeply to decode.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ErrorDetail, NotFound, ParseError, ValidationError
from rest_framework.parsers import JSONParser

INVALID_TEXT_CODE = "invalid_characters"


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored, or None."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (an unpaired \\ud800-\\udfff escape)"
    return None


def find_invalid_text(data: Any) -> tuple[str | None, str] | None:
    """(dotted path or None for the top level, message) of the first key or string that
    cannot be stored. Iterative, so any depth the decoder accepted is walked."""
    stack: list[tuple[str | None, Any]] = [(None, data)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            problem = text_problem(node)
            if problem:
                return path, f"The text {problem}."
        elif isinstance(node, dict):
            for key, value in node.items():
                problem = text_problem(key)
                if problem:
                    return path, f"A key {problem}."
                stack.append((f"{path}.{key}" if path else key, value))
        elif isinstance(node, list):
            stack.extend((f"{path}.{index}" if path else str(index), item) for index, item in enumerate(node))
    return None


def raise_for_invalid_text(data: Any) -> None:
    found = find_invalid_text(data)
    if found:
        field, message = found
        detail = ErrorDetail(message, code=INVALID_TEXT_CODE)
        raise ValidationError({field: [detail]} if field else [detail])


def raise_for_invalid_url_text(request, kwargs: dict[str, Any]) -> None:
    """Path parameters with such text name nothing (404); query parameters are a 400."""
    if any(isinstance(value, str) and text_problem(value) for value in kwargs.values()):
        raise NotFound()
    for name, values in request.query_params.lists():
        for text in (name, *values):
            problem = text_problem(text)
            if problem:
                field = name if text is not name else None
                detail = ErrorDetail(f"A query parameter {problem}.", code=INVALID_TEXT_CODE)
                raise ValidationError({field: [detail]} if field else [detail])


class ApiJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        raise_for_invalid_text(data)
        return data
