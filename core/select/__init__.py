"""Which pairs to keep: the selectors (scikit-learn estimators: ISA, random, density, k-center, ...),
the :class:`~alignscope.select.selection.Selection` type, ISA's Gaussian mixture and per-group stats."""
