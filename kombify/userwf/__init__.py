"""Owners' YAML workflows (``kind: Workflow``): schema, validation with lines, expressions.

Use :func:`kombify.userwf.load.validate_workflow_source` to get a :class:`WorkflowFile` or
the problems (each with a field path and a line), as ``kombify workflow validate`` prints them.
"""
