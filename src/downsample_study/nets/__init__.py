"""The networks: downsampling operators behind a registry (``operators``, built from
``layers``), the seeds' models (``models``) and shape tracing with the layer table
(``shapes``)."""
