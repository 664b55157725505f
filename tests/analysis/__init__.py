"""Tests of cpm_session.analysis."""
