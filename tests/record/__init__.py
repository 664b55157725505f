"""Tests of cpm_session.record."""
