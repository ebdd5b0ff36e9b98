def build_large_index(*a, **k): raise NotImplementedError
