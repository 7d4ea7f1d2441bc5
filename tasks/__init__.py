"""Prefect tasks: thin wrappers that call the domain modules in ``retrain``."""

from tasks.domain_logs import send_domain_logs_to_runs

send_domain_logs_to_runs()
