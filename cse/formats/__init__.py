"""Formats: metadata schemes that describe how an object was encrypted."""

from cse.formats.base import Format
from cse.formats.native import NativeFormat

__all__ = ["Format", "NativeFormat"]
