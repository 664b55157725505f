"""Participant screens and staff controls. The engine talks only to the ParticipantUI interface."""
