"""Tests of cpm_session.ui (GUI tests open a real PsychoPy window under Xvfb)."""
