"""The process's C library, loaded once, for the Linux controls Python does not offer
(`prctl`, `malloc_trim`). None where no C library can be found."""

from __future__ import annotations

import ctypes
import ctypes.util

_name = ctypes.util.find_library("c")
LIBC = ctypes.CDLL(_name, use_errno=True) if _name else None
