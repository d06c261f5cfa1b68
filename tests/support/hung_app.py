"""An app for ``hubbub serve --app tests.support.hung_app:hub`` whose engine never finishes
closing (tests/support/hung_engine.py). Importing this module replaces the server's engine
factory, in that process only (a shutdown test's server; nothing else imports it)."""

from __future__ import annotations

import hubbub.server.lifecycle
from hubbub import Hub
from tests.support.hung_engine import hung_engines

hubbub.server.lifecycle.build_engines = hung_engines([])
hub = Hub()
