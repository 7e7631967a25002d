"""The sandbox learner code runs in: the rules window, the audit hook and the integrity checks.

Imported by the child side (checker.learner, checker.plugin) only; it imports nothing of the
engine above it.
"""
