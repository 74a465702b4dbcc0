from pathlib import Path
import benchmarks.common as c
c.SHARED_DATA = Path("/work/shared/data")
from benchmarks import bench_embed as B
from alignscope import embed as E
import time
for path, n in ((B.ALPACA, 2000), (B.HH, None)):
    d = B._load(path, n, 0)
    t = time.perf_counter()
    e = E.embed(d, "minilm", progress=False)
    print(path.name, d.n_pairs, len(E.distinct_texts(E.element_texts(d))[0]), "minilm s", time.perf_counter() - t, e.from_cache, flush=True)
