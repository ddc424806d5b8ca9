"""Model pairs shared by the tests (paddle first, torch second)."""
