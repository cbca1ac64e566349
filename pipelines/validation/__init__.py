"""deepcast.pipelines.validation: the parts of the validate stage.

``rules`` (the table of checks), ``report`` (what validation found), ``writers`` (the files
it leaves) and ``gx``, the adapter that alone imports Great Expectations. The stage itself,
:func:`deepcast.pipelines.validate.validate_long_frame`, puts them together.
"""
