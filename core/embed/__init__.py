"""Vectors for completions and pairs: the encoders and their cache, the
:class:`~alignscope.embed.embeddings.Embeddings` type and file, Ray sharding, 2-D projections and
the ``embed``/``map`` job functions."""
