"""Session fixtures of the PEFT interop tests: the models and adapters (written
once per session by transformers and PEFT), one genomed serving them, one
client, and PEFT's own view of each adapter."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict

import pytest

HERE = Path(__file__).resolve().parent
# genomed_testing (the launcher) lives one level up; peft_fixtures next to us.
for directory in (HERE.parent, HERE):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

import genomed  # noqa: E402
import torch  # noqa: E402
from genomed_testing import Daemon  # noqa: E402
from peft import PeftModel  # noqa: E402

import peft_fixtures  # noqa: E402


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory) -> peft_fixtures.Fixtures:
    torch.use_deterministic_algorithms(True)
    return peft_fixtures.write_all(tmp_path_factory.mktemp("peft"))


@pytest.fixture(scope="session")
def peft_daemon(fixtures):
    """genomed serving every adapter, without --base-model."""
    with Daemon(roots=[fixtures.root]) as d:
        yield d


@pytest.fixture(scope="session")
def peft_client(peft_daemon):
    with genomed.connect(peft_daemon.socket) as c:
        yield c


class PeftReference:
    """PeftModel.from_pretrained of each adapter on a fresh copy of its base
    model, in eval mode; built once per adapter and session."""

    def __init__(self, fixtures: peft_fixtures.Fixtures) -> None:
        self.fixtures = fixtures
        self._models: Dict[str, PeftModel] = {}

    def __call__(self, adapter: str) -> PeftModel:
        if adapter not in self._models:
            base = self.fixtures.load_base(self.fixtures.base_of(adapter))
            model = PeftModel.from_pretrained(base, self.fixtures.adapters[adapter])
            self._models[adapter] = model.eval()
        return self._models[adapter]


@pytest.fixture(scope="session")
def peft_reference(fixtures) -> PeftReference:
    return PeftReference(fixtures)
