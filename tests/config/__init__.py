"""Tests of cpm_session.config."""
