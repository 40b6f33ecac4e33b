"""What the test suites share: real servers (gunicorn, throwaway PostgreSQL, brokers) on loopback."""
