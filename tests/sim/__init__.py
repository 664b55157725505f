"""Tests of cpm_session.sim."""
