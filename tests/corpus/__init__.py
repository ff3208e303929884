"""Test corpora: inputs built by code, each with the outcome it must produce."""
