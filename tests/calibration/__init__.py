"""Tests of cpm_session.calibration."""
