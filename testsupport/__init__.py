"""What the test suites share: real servers (gunicorn, PostgreSQL, brokers) on loopback."""
