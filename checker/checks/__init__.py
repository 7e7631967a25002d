"""Hidden checks, one module per kata (test_<kata>.py)."""
