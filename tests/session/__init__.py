"""Tests of cpm_session.session."""
