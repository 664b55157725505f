"""Tests of cpm_session.devices."""
