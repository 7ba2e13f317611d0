"""The investigator's workbench: ``voiceprint serve`` (FastAPI + Jinja2 + vendored htmx) over the same
:class:`voiceprint.library.Library` API, with users and roles, the tamper-evident audit chain,
four-eyes enrolment and the evidence report. Heavy imports stay inside functions."""
