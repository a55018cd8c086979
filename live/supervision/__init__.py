"""Keeping a weeks-long unattended run alive: the watchdog, systemd notification, logs."""
