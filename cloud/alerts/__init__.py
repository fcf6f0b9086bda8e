"""Alerts: rules evaluated over the stored data, a firing/resolved state per (rule, subject),
and notifications delivered with retries (apprise, a JSON webhook, MQTT).

Light on purpose: importing the package loads nothing heavy; the evaluator and sender live in
their own modules (``evaluator``, ``sender``) and are started by :mod:`cloud.services`.
"""
