"""Consent: who may see whose presence, who may reach whom (blocks), and
who may put whom into a group room. See docs/realtime.md, "Consent"."""
