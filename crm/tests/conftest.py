pytest_plugins = ["smtp_accounts.tests.conftest"]
