"""The job file: frozen dataclasses, schema, sections, value parsers, load."""
