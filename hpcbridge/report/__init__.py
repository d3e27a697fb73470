"""The efficiency report of a submission and its resubmissions (``hpcbridge report``).

* :mod:`.attempt`: one run of one task, what it asked for and what it used (pure);
* :mod:`.stats`: distributions, failures by reason, core-hours (pure);
* :mod:`.sizing`: the memory/time a task needs, suggestions and resubmission sizes (pure);
* :mod:`.build`: the :class:`~.build.Report` from the attempts (pure);
* :mod:`.jsonout`: its JSON form and the JSON Schema (``schema.json``) that describes it;
* :mod:`.text`: the terminal form, 80 columns (table and runtime histogram);
* :mod:`.plots`, :mod:`.html`: the self-contained HTML page (matplotlib, optional extra);
* :mod:`.collect`: the thin shell that reads records, outcome files and accounting.

Nothing here is imported by ``hpcbridge.report`` itself, so the package costs nothing
until a report is asked for.
"""
