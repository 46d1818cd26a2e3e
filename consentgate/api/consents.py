"""Placeholder blueprint: its endpoints arrive with their capability."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint(__name__.rsplit(".", 1)[-1] + "_" + __name__.split(".")[-2], __name__)
