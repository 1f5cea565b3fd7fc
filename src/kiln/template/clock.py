"""The one instant of a run that every time function of templates formats (Packer's InitTime).

Kept apart from gotime (which needs datetime) so that reading a template costs no datetime import
unless the template formats a time."""

from __future__ import annotations

import time

START = time.time()
