"""Submitting: chunk plans, the submitter, resubmit/cancel/rerun, bundles."""
