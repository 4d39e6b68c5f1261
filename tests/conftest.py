"""The `shared` fixture: tests that need the real X-rays and weights in ../shared fail without them under `make test` (CI),
which sets PNEUMONIA_FASTAI_REQUIRE_SHARED=1, and are skipped, with the reason, under a bare `pytest`."""
import os
import pytest
from pneumonia_fastai.core import shared_path

require_env = 'PNEUMONIA_FASTAI_REQUIRE_SHARED'

@pytest.fixture
def shared():
    "`shared(*parts)`: `shared_path(*parts)`, failing or skipping the test when it is missing"
    def need(*parts):
        try: return shared_path(*parts)
        except FileNotFoundError as e:
            if os.environ.get(require_env): pytest.fail(str(e), pytrace=False)
            pytest.skip(str(e))
    return need
