"""Issue 23, item 11 follow-up: the ``convlens serve`` banner lists every page the explorer serves."""
from convlens.cli.serve import banner
from convlens.web.app import PAGES


def test_banner_lists_every_page_including_concepts():
    text = banner("http://127.0.0.1:8000/", ["mobilenet_v2"], 1, 2)
    pages_line = text.splitlines()[1]
    listed = {w.rsplit("/", 1)[1] for w in pages_line.split() if w.startswith("http://127.0.0.1:8000/") and "docs" not in w}
    assert listed == PAGES, listed
    assert "http://127.0.0.1:8000/concepts" in pages_line
