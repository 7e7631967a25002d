"""`python tests/tiny_kata.py ARGS`: the `kata` command on the tests' tiny catalog, for tests
that need it as a process of its own. The catalog is set inside the process, as the tiny_env
fixture sets it in the tests' (checker.workspace.CATALOG_IN_PROCESS); no user has this route."""

from pathlib import Path

from checker import workspace
from checker.cli import main

workspace.CATALOG_IN_PROCESS = Path(__file__).resolve().parent / "tiny" / "katas" / "catalog.toml"
main()
