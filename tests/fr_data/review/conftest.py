"""One Chromium per test module for the review-page browser tests (``browsers.chromium``)."""

from __future__ import annotations

import pytest

from tests.fr_data.review.browsers import chromium as launch_chromium


@pytest.fixture(scope="module")
def chromium():
    with launch_chromium() as browser:
        yield browser
