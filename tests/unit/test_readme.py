"""The README's configuration reference is the one generated from the settings model."""

import re
from pathlib import Path

from settlerd.config.reference import render

README = Path(__file__).parents[2] / "README.md"


def test_readme_holds_the_generated_configuration_reference() -> None:
    text = README.read_text()
    found = re.search(r"<!-- config-reference:start -->\n(.*?)<!-- config-reference:end -->", text, re.S)
    assert found is not None, "README lost its config-reference markers"
    assert found.group(1) == render(), "run `settlerd config reference` and paste it into the README"
