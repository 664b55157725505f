"""Tests of cpm_session.export."""
