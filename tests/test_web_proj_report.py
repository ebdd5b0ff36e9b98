"""Issue 23 item 10: the static report's "open in explorer" links carry the figure's parameters (so the
explorer reproduces it), honour CONVLENS_EXPLORER_URL, the word section's printed lists get links, and
a section without a figure shows the start of its output in the contents strip instead of a blank tile."""
from __future__ import annotations

import html
import re
from urllib.parse import parse_qsl, urlparse

import pytest
import torch

from convlens.catalog import explorer_view
from convlens.render import Report


def _view(command):
    v = explorer_view(command)
    u = urlparse(v)
    return u.path, parse_qsl(u.query)


@pytest.mark.parametrize("command, path, query", [
    # a lab technique: image, technique and every option that is a field of its form, by field name
    ("convlens dream chelsea --layer features.10 --steps 20 -o dream.png", "/lab",
     [("image", "chelsea"), ("technique", "deepdream"), ("layer", "features.10"), ("steps", "20")]),
    ("convlens neuronviz --layer features.14 --channel 5 -o ch.png", "/lab",
     [("technique", "neuronviz"), ("layer", "features.14"), ("channel", "5")]),
    ("convlens facets --layer features.9 --channel 3 --images samples:200 --n-facets 3 -o f.png", "/lab",
     [("technique", "facets"), ("layer", "features.9"), ("channel", "3"), ("n_facets", "3")]),   # --images: no field
    ("convlens texture brick --crop 384 --sample-size 64 --method gram", "/lab",
     [("image", "brick"), ("technique", "texture"), ("crop", "384"), ("sample_size", "64"), ("method", "gram")]),
    # words: the queries, and the phrase path's vocabulary; an analogy's three words
    ("convlens words neighbors 麻辣烫 馄饨 --topk 5", "/words", [("q", "麻辣烫"), ("q", "馄饨"), ("topk", "5")]),
    ("convlens words neighbors 麻辣烫 --encoder e5", "/words", [("q", "麻辣烫"), ("vocab", "food")]),
    ("convlens words analogy 国王 男人 女人", "/words", [("tab", "analogy"), ("a", "国王"), ("b", "男人"), ("c", "女人")]),
    # chained commands: the last one with a view (its store, its point, its map)
    ("convlens embed gcompris --out gcompris.emb && convlens neighbors gcompris.emb --index 12 --k 8 -o nn.png",
     "/projector", [("store", "gcompris.emb"), ("point", "12")]),
    ("convlens project photos.emb --method tsne -o map.png", "/projector", [("store", "photos.emb"), ("method", "tsne")]),
    ("convlens patches samples:200 --layer features.6 --channels 7,9 --k 9 -o p.png", "/layers/features.6/7",
     [("image", "chelsea"), ("n", "200"), ("k", "9")]),
])
def test_explorer_links_carry_the_figures_parameters(command, path, query):
    assert _view(command) == (path, query)


def test_words_section_gets_links_and_no_contents_tile_is_blank(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVLENS_EXPLORER_URL", "http://10.0.0.5:9000/")
    rep = Report(tmp_path, title="t", link=explorer_view)
    rep.section("Figure").figure(torch.rand(1, 3, 8, 8), "a.png", "a", command="convlens saliency coffee -o s.png")
    words = rep.section("Word neighbours")
    words.parts.append("<pre>麻辣烫 ——\n麻辣拌, 0.8847\n冒菜, 0.8011</pre>")
    words.command("convlens words neighbors 麻辣烫 肯德基")
    rep.section("Nothing printed").text("a remark")
    page = rep.write().read_text()
    links = re.findall(r'class="explorer" href="([^"]+)"', page)
    assert [html.unescape(x) for x in links] == ["http://10.0.0.5:9000/lab?image=coffee&technique=saliency",
                                                 "http://10.0.0.5:9000/words?q=%E9%BA%BB%E8%BE%A3%E7%83%AB&q=%E8%82%AF%E5%BE%B7%E5%9F%BA"]
    tiles = re.findall(r'<nav class="strip">(.*?)</nav>', page, re.S)[0]
    texts = re.findall(r'<span class="blank text">(.*?)</span>', tiles, re.S)
    assert [html.unescape(t) for t in texts] == ["麻辣烫 ——\n麻辣拌, 0.8847\n冒菜, 0.8011", "a remark"]
    assert '<span class="blank"></span>' not in page
