"""Devices: one interface per role (thermode, bath, algometer), real drivers and simulators behind it."""
