"""Shared pytest set-up. Fixtures for real local services live in tests/fixtures/, one module each."""

pytest_plugins = [
    "tests.fixtures.timeouts",
    "tests.fixtures.bitcoin_node",
    "tests.fixtures.anvil",
]
