"""Every recipe in recipes/ loads with rlvr's config loader (`rlvr train --config X --dry-run`)."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from rlvr.cli.train import train

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


def test_there_are_recipes():
    assert len(RECIPES) >= 3


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_dry_runs(recipe):
    result = CliRunner().invoke(train, ["--config", str(recipe), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "model:" in result.output
