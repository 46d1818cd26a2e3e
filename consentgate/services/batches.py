"""Batch requests: every item checked on its own, a bad one answering alone, named by its index."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from consentgate.errors import ConsentgateError, ValidationFailed, pydantic_field_errors

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def check_items(items: Sequence[Any], model: type[M], check: Callable[[int, str, M], T], first: int = 0
                ) -> tuple[list[tuple[int, T]], dict[int, ConsentgateError]]:
    """Each item validated as ``model`` and passed to ``check(index, prefix, item)``, whose errors
    name fields under the item's prefix (``items[3].phone``): (index, what ``check`` gave) for the
    good items, in order, and the error of each bad one by index. ``first``: the index of
    ``items[0]`` in the whole batch, when ``items`` is a part of it."""
    good: list[tuple[int, T]] = []
    bad: dict[int, ConsentgateError] = {}
    for index, raw in enumerate(items, start=first):
        prefix = f"items[{index}]."
        try:
            if not isinstance(raw, dict):
                raise ValidationFailed.field(f"items[{index}]", "each item must be an object")
            good.append((index, check(index, prefix, model.model_validate(raw))))
        except ValidationError as exc:
            bad[index] = ValidationFailed(pydantic_field_errors(exc, prefix))
        except ConsentgateError as exc:
            bad[index] = exc
    return good, bad
