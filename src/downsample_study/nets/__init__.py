"""The networks: downsampling operators and their layers, the seeds' models, shape tracing."""
