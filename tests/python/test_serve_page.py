"""The upload page of `histocnn serve` (src/serve/web/index.html), driven in headless Chromium.

Needs Debian's chromium, chromium-driver, python3-selenium and python3-requests (skipped, visibly,
when one is missing) and the `serving` fixture of conftest.py: a running server with `url`,
`model_name`, `versions` (ascending, at least two, all AVAILABLE), `patch` (a PNG) and `label`.
Set HISTOCNN_SCREENSHOT_DIR to keep a screenshot of the page (serve_page.png).
"""
import base64
import os
import pathlib
import shutil

import pytest

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
CHROMEDRIVER = "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else shutil.which("chromedriver")
if not CHROMIUM:
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)
if not CHROMEDRIVER:
    pytest.skip("chromedriver is not installed (apt-get install chromium-driver)", allow_module_level=True)
try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:
    pytest.skip("selenium is not installed (apt-get install python3-selenium)", allow_module_level=True)
try:
    import requests
except ImportError:
    pytest.skip("requests is not installed (apt-get install python3-requests)", allow_module_level=True)

TITLE = "histocnn — IDC patch classifier"
WAIT_S = 20


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1200,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


# --- helpers -----------------------------------------------------------------------------------

def wait(driver, condition, what):
    return WebDriverWait(driver, WAIT_S, ignored_exceptions=[StaleElementReferenceException]).until(
        condition, message=f"timed out after {WAIT_S} s waiting for {what}")


def open_page(driver, serving):
    """Load `/` and wait until the models, every served version and the metadata are shown."""
    driver.get(serving.url + "/")
    wanted = {f"versions/{v}" for v in serving.versions}

    def ready(d):
        options = d.find_elements(By.CSS_SELECTOR, "#version-select option")
        enabled = {o.get_attribute("value") for o in options if o.is_enabled()}
        return (wanted <= enabled and d.find_element(By.ID, "file-input").is_enabled()
                and "threshold" in d.find_element(By.ID, "threshold-info").text)
    wait(driver, ready, f"#version-select to list versions {sorted(wanted)} and the metadata to load")


def row_seqs(driver):
    return {r.get_attribute("data-seq") for r in driver.find_elements(By.CSS_SELECTOR, "#results tr")}


def error_texts(driver):
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#error .error-message")]


def upload_and_wait(driver, path):
    """Upload one file through #file-input; return the new .result-row (failing on a page error)."""
    seqs, errors = row_seqs(driver), len(error_texts(driver))
    driver.find_element(By.ID, "file-input").send_keys(str(pathlib.Path(path).resolve()))

    def outcome(d):
        new_errors = error_texts(d)[errors:]
        if new_errors:
            return ("error", new_errors)
        rows = [r for r in d.find_elements(By.CSS_SELECTOR, "#results tr.result-row")
                if r.get_attribute("data-seq") not in seqs]
        return ("row", rows[0]) if rows else False
    kind, value = wait(driver, outcome, f"a result row for {path}")
    assert kind == "row", f"the page reported an error instead of a result: {value}"
    return value


def cells(row):
    return {c: row.find_element(By.CSS_SELECTOR, f"td.{c}").text.strip()
            for c in ("cls", "prob", "threshold", "version")}


def model_url(serving, version=None):
    base = f"{serving.url}/v1/models/{serving.model_name}"
    return base if version is None else f"{base}/versions/{version}"


def predict_directly(serving, path, version=None):
    b64 = base64.b64encode(pathlib.Path(path).read_bytes()).decode("ascii")
    r = requests.post(model_url(serving, version) + ":predict", json={"instances": [{"b64": b64}]}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0][1], r.headers["X-Model-Version"]


def model_card(serving, version):
    r = requests.get(model_url(serving, version) + "/metadata", timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["metadata"]["model_card"]


def check_row(row, serving, version, p_pos):
    shown = cells(row)
    card = model_card(serving, version)
    threshold = card["threshold"]
    names = card.get("class_names", ["IDC-negative", "IDC-positive"])
    assert row.get_attribute("data-file") == pathlib.Path(serving.patch).name
    assert abs(float(shown["prob"]) - p_pos) <= 0.0005 + 1e-9, (shown, p_pos)
    assert len(shown["prob"].split(".")[1]) == 3, shown
    assert abs(float(shown["threshold"]) - threshold) <= 0.0005 + 1e-9, (shown, threshold)
    assert shown["cls"] == (names[1] if p_pos >= threshold else names[0]), (shown, p_pos, threshold)
    assert shown["version"] == f"v{version}", shown


# --- tests -------------------------------------------------------------------------------------

def test_page_classifies_an_uploaded_patch_with_the_newest_version(browser, serving):
    browser.get_log("browser")  # drop what earlier tests left in the console log
    open_page(browser, serving)
    assert browser.title == TITLE
    newest = serving.versions[-1]
    default = Select(browser.find_element(By.ID, "version-select")).first_selected_option
    assert default.get_attribute("value") == "" and f"newest: v{newest}" in default.text, default.text
    # Bootstrap's CSS and JS come from the server's /static/bootstrap5/ (no CDN).
    assert browser.execute_script("return typeof bootstrap !== 'undefined'"), "bootstrap.bundle.min.js not loaded"
    assert browser.execute_script(
        "return getComputedStyle(document.documentElement).getPropertyValue('--bs-body-font-family') !== ''"), \
        "bootstrap.min.css not loaded"

    row = upload_and_wait(browser, serving.patch)
    p_pos, answered = predict_directly(serving, serving.patch)
    assert answered == newest
    check_row(row, serving, newest, p_pos)
    assert browser.find_element(By.ID, "results").get_attribute("aria-live") == "polite"
    assert not error_texts(browser)
    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, f"errors in the browser console: {severe}"


def test_pinned_older_version_answers(browser, serving):
    open_page(browser, serving)
    older = serving.versions[0]
    Select(browser.find_element(By.ID, "version-select")).select_by_value(f"versions/{older}")
    wait(browser, lambda d: f"v{older}" in d.find_element(By.ID, "threshold-info").text,
         f"#threshold-info to show the metadata of v{older}")
    row = upload_and_wait(browser, serving.patch)
    p_pos, answered = predict_directly(serving, serving.patch, older)
    assert answered == older
    check_row(row, serving, older, p_pos)


def test_non_image_file_is_refused(browser, serving, tmp_path):
    open_page(browser, serving)
    text_file = tmp_path / "notes.txt"
    text_file.write_text("this is not an image\n")
    rows = len(browser.find_elements(By.CSS_SELECTOR, "#results tr"))
    browser.find_element(By.ID, "file-input").send_keys(str(text_file))
    messages = wait(browser, lambda d: [t for t in error_texts(d) if "notes.txt" in t],
                    "an .error-message naming notes.txt")
    assert "not an image" in messages[0]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#results tr")) == rows


def test_undecodable_image_shows_the_server_error(browser, serving, tmp_path):
    fake = tmp_path / "broken.png"
    fake.write_bytes(b"definitely not a PNG\n" * 10)
    b64 = base64.b64encode(fake.read_bytes()).decode("ascii")
    answer = requests.post(model_url(serving) + ":predict", json={"instances": [{"b64": b64}]}, timeout=60)
    assert answer.status_code == 400, answer.text
    server_error = answer.json()["error"]

    open_page(browser, serving)
    browser.find_element(By.ID, "file-input").send_keys(str(fake))
    messages = wait(browser, lambda d: [t for t in error_texts(d) if "broken.png" in t],
                    "an .error-message naming broken.png")
    assert "400" in messages[0] and server_error in messages[0], (messages, server_error)
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#results tr"),
         "the pending row of broken.png to go")


def test_too_large_file_is_refused_before_sending(browser, serving, tmp_path):
    big = tmp_path / "huge.png"
    with open(big, "wb") as f:
        f.truncate(16 * 1024 * 1024 + 1)  # sparse: costs no disk
    open_page(browser, serving)
    browser.find_element(By.ID, "file-input").send_keys(str(big))
    messages = wait(browser, lambda d: [t for t in error_texts(d) if "huge.png" in t],
                    "an .error-message naming huge.png")
    assert "too large" in messages[0]
    assert not browser.find_elements(By.CSS_SELECTOR, "#results tr")


@pytest.mark.parametrize("stub, expected", [
    ("async () => new Response(JSON.stringify({error: 'queue full'}), {status: 503})", ["503", "queue full"]),
    ("async () => new Response('{\"error\": \"boom\"}', {status: 500})", ["500", "boom"]),
    ("() => Promise.reject(new TypeError('Failed to fetch'))", ["network error"]),
], ids=["503", "500", "network-failure"])
def test_server_failures_are_reported(browser, serving, stub, expected):
    """A 5xx answer or a dropped connection (the shared server cannot be made to fail, so the
    page's fetch of :predict is stubbed after the page has loaded)."""
    open_page(browser, serving)
    browser.execute_script(f"""
        const real = window.fetch, stub = {stub};
        window.fetch = (url, init) => String(url).endsWith(":predict") ? stub(url, init) : real(url, init);
    """)
    name = pathlib.Path(serving.patch).name
    browser.find_element(By.ID, "file-input").send_keys(str(pathlib.Path(serving.patch).resolve()))
    messages = wait(browser, lambda d: [t for t in error_texts(d) if name in t], f"an .error-message naming {name}")
    assert all(e in messages[0] for e in expected), (messages, expected)
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#results tr"), "the pending row to go")


def test_dropped_files_are_classified_in_order(browser, serving):
    open_page(browser, serving)
    data = base64.b64encode(pathlib.Path(serving.patch).read_bytes()).decode("ascii")
    browser.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        for (const name of ["first.png", "second.png"]) dt.items.add(new File([bytes], name, {type: "image/png"}));
        document.getElementById("drop-zone").dispatchEvent(
            new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
    """, data)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results tr.result-row")) == 2,
         "two result rows for the dropped files")
    rows = browser.find_elements(By.CSS_SELECTOR, "#results tr.result-row")
    assert [r.get_attribute("data-file") for r in rows] == ["first.png", "second.png"]
    assert cells(rows[0])["prob"] == cells(rows[1])["prob"]
    assert not error_texts(browser)


def overlay_of(driver, row):
    """The loaded overlay <img> of a result row (waits for it; fails on the cell's "no overlay")."""
    def loaded(d):
        cell = row.find_element(By.CSS_SELECTOR, "td.overlay")
        if cell.get_attribute("data-state") == "unavailable":
            return ("error", cell.get_attribute("data-error"))
        imgs = cell.find_elements(By.CSS_SELECTOR, "img.overlay-img")
        if imgs and d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", imgs[0]):
            return ("img", imgs[0])
        return False
    kind, value = wait(driver, loaded, "the Grad-CAM overlay of the row to load")
    assert kind == "img", f"the overlay cell says the server gave none: {value}"
    return value


def decode_png_b64(text):
    import io
    import numpy as np
    from PIL import Image
    image = Image.open(io.BytesIO(base64.b64decode(text)))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"))


def test_overlay_beside_the_prediction_with_a_toggle(browser, serving):
    """The Grad-CAM overlay from :explain appears beside each result, at the size the server made
    it (the patch at the model's input size plus a colour bar), from the version that answered;
    the switch hides it, and shows it again, asking for rows uploaded while it was off."""
    import numpy as np
    open_page(browser, serving)
    toggle = browser.find_element(By.ID, "overlay-toggle")
    assert toggle.is_selected(), "the overlay is on by default"
    row = upload_and_wait(browser, serving.patch)
    img = overlay_of(browser, row)
    version = cells(row)["version"].lstrip("v")
    size = model_card(serving, version)["preprocessing"]["image_size"]
    b64 = base64.b64encode(pathlib.Path(serving.patch).read_bytes()).decode("ascii")
    answer = requests.post(model_url(serving, version) + ":explain", json={"instances": [{"b64": b64}]}, timeout=60)
    assert answer.status_code == 200, answer.text
    direct = decode_png_b64(answer.json()["explanations"][0]["overlay"]["b64"])
    expected_width = size + max(2, size // 32) + max(4, size // 12)
    assert direct.shape == (size, expected_width, 3)
    natural = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img)
    assert natural == [expected_width, size]
    shown = decode_png_b64(img.get_attribute("src").split(",", 1)[1])
    assert np.abs(shown.astype(int) - direct.astype(int)).max() <= 2  # the same map (up to rounding)
    # Drawn at the thumbnails' height, its proportions kept.
    assert img.size["height"] == 50
    assert abs(img.size["width"] - 50 * expected_width / size) <= 1
    assert "layer" in img.get_attribute("title") and "Grad-CAM" in img.get_attribute("alt")
    header = browser.find_element(By.CSS_SELECTOR, "#results-table th.overlay-col")
    assert header.is_displayed() and header.text == "Grad-CAM"

    toggle.click()
    wait(browser, lambda d: not img.is_displayed() and not header.is_displayed(), "the overlay column to hide")
    later = upload_and_wait(browser, serving.patch)
    assert later.find_element(By.CSS_SELECTOR, "td.overlay").get_attribute("data-state") is None  # not asked for
    toggle.click()
    wait(browser, lambda d: img.is_displayed() and header.is_displayed(), "the overlay column to show again")
    overlay_of(browser, later)
    assert not error_texts(browser)


def test_overlay_failure_leaves_the_prediction(browser, serving):
    """A server without :explain (stubbed): the row has its prediction and says "no overlay",
    without an error message."""
    open_page(browser, serving)
    browser.execute_script("""
        const real = window.fetch;
        window.fetch = (url, init) => String(url).endsWith(":explain")
            ? Promise.resolve(new Response(JSON.stringify({error: "no such endpoint"}), {status: 404}))
            : real(url, init);
    """)
    row = upload_and_wait(browser, serving.patch)
    cell = row.find_element(By.CSS_SELECTOR, "td.overlay")
    wait(browser, lambda d: cell.get_attribute("data-state") == "unavailable", "the overlay cell to give up")
    assert cell.text == "no overlay" and "404" in cell.get_attribute("data-error")
    assert cells(row)["prob"] and not error_texts(browser)


def test_screenshot(browser, serving, tmp_path):
    """A picture of the page in use: a result per version, a refused file. Kept in
    $HISTOCNN_SCREENSHOT_DIR/serve_page.png when that is set."""
    open_page(browser, serving)
    upload_and_wait(browser, serving.patch)
    Select(browser.find_element(By.ID, "version-select")).select_by_value(f"versions/{serving.versions[0]}")
    upload_and_wait(browser, serving.patch)
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image\n")
    browser.find_element(By.ID, "file-input").send_keys(str(text_file))
    wait(browser, lambda d: error_texts(d), "the error message for notes.txt")
    out_dir = pathlib.Path(os.environ.get("HISTOCNN_SCREENSHOT_DIR") or tmp_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "serve_page.png"
    assert browser.save_screenshot(str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
