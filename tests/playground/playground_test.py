#!/usr/bin/env python3
"""The playground (GET / on the HTTP port) in a real browser: headless
Chromium driven by Selenium against the real server with bearer tokens on.

The page must ask for a token when the server wants one, list the models
with their state and input mode, take a scene through its file picker, and
draw a mask whose every pixel is the API's mask for the same image (read
back from the page's mask canvas through the colours of its class table);
the class table must hold the API's pixel counts. A screenshot of the page
is saved as a test artifact. A server started with --http_playground=false
serves no page.
"""
import argparse
import base64
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import (SegserveProcess,  # noqa: E402
                                    ready_http_port)
from tests.test_images import png_bytes, scene  # noqa: E402

MODEL = "scenes-sgcpnet"
TOKEN = "playground-token-0123456789"
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)


def api_mask(port, image):
    """The image endpoint's RAW mask and class pixels for a PNG."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/models/{MODEL}/segment"
        "?mask_encoding=raw", data=image, method="POST",
        headers={"Content-Type": "image/png", "Accept": "application/json",
                 "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    mask = np.frombuffer(base64.b64decode(answer["mask"]["data"]),
                         np.uint8).reshape(answer["height"], answer["width"])
    pixels = {s["class_id"]: s["pixels"] for s in answer["class_stats"]}
    return mask, pixels


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-dev-shm-usage", "--window-size=1200,1250",
                 "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"),
                            options=options)


def page_mask(driver, legend):
    """The class id of every pixel of the page's mask canvas, from the
    colours its class table gives each class; -1 for an unknown colour."""
    width, height, rgba = driver.execute_script(
        "const c = document.getElementById('mask-layer');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);"
        "let s = ''; for (const v of d.data) s += String.fromCharCode(v);"
        "return [c.width, c.height, btoa(s)];")
    pixels = np.frombuffer(base64.b64decode(rgba), np.uint8).reshape(
        height, width, 4)
    ids = np.full((height, width), -1, np.int32)
    for class_id, color in legend.items():
        ids[np.all(pixels[:, :, :3] == color, axis=2)] = class_id
    return ids


def check_page(driver, port, image_path, image):
    wait = WebDriverWait(driver, 60)
    driver.get(f"http://127.0.0.1:{port}/")
    check("segserve playground" in driver.title, "the page loads")
    token_row = wait.until(ec.visibility_of_element_located(
        (By.ID, "token-row")))
    check("401" not in token_row.text, "the page asks for a token")
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "token-apply").click()
    row = wait.until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, f"#models tr[data-model='{MODEL}']")))
    wait.until(lambda d: "x" in row.find_elements(By.TAG_NAME, "td")[4].text)
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    check(cells[1] == MODEL and cells[3] == "READY",
          f"the model is listed READY: {cells}")
    check(cells[4].startswith("512x512"),
          f"its input mode is shown: {cells[4]!r}")
    row.find_element(By.CSS_SELECTOR, "input[type=radio]").click()

    driver.find_element(By.ID, "file").send_keys(image_path)
    wait.until(lambda d: d.find_element(By.ID, "result")
               .get_attribute("data-masks") == "1")
    legend, table_pixels = {}, {}
    for tr in driver.find_elements(By.CSS_SELECTOR, "#classes tbody tr"):
        class_id = int(tr.get_attribute("data-class-id"))
        legend[class_id] = [int(c) for c in
                            tr.get_attribute("data-color").split(",")]
        table_pixels[class_id] = int(tr.find_elements(By.TAG_NAME, "td")[2]
                                     .text)
    mask, api_pixels = api_mask(port, png_bytes(image))
    check(table_pixels == api_pixels,
          f"the class table holds the API's pixels: {table_pixels} vs "
          f"{api_pixels}")
    check(len({tuple(c) for c in legend.values()}) == len(legend),
          "every class found has its own colour")
    drawn = page_mask(driver, legend)
    check(drawn.shape == mask.shape,
          f"the overlay is the image's size: {drawn.shape}")
    if drawn.shape == mask.shape:
        differing = int(np.count_nonzero(drawn != mask))
        check(differing == 0,
              f"the overlay's mask is the API's, pixel for pixel "
              f"({differing} differ)")
    timing = [tr.text for tr in
              driver.find_elements(By.CSS_SELECTOR, "#timing tbody tr")]
    check(len(timing) == 5 and timing[2].startswith("Inference"),
          f"the timing split is shown: {timing}")
    opacity = driver.find_element(By.ID, "opacity")
    driver.execute_script("arguments[0].value = 60;"
                          "arguments[0].dispatchEvent(new Event('input'));",
                          opacity)
    check(driver.find_element(By.ID, "mask-layer")
          .value_of_css_property("opacity") == "0.6",
          "the opacity slider sets the mask's opacity")


def check_no_playground(port):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
        check(False, "--http_playground=false serves no page")
    except urllib.error.HTTPError as error:
        check(error.code == 404,
              f"--http_playground=false answers / with 404 ({error.code})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--model_repository", required=True)
    parser.add_argument("--artifacts", required=True,
                        help="Folder for the page's screenshot")
    args = parser.parse_args()
    os.makedirs(args.artifacts, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="segserve-playground-") as tmp:
        tokens = os.path.join(tmp, "tokens.txt")
        with open(tokens, "w") as f:
            f.write(f"{TOKEN} inference,metadata\n")
        image = scene(7, 180, 240)
        image_path = os.path.join(tmp, "scene.png")
        with open(image_path, "wb") as f:
            f.write(png_bytes(image))
        common = [f"--model_repository={args.model_repository}",
                  f"--default_model={MODEL}", "--host=127.0.0.1",
                  "--grpc_port=0", "--http_port=0", "--metrics_port=-1",
                  "--cpu_cores=1", "--preprocess_threads=1"]
        servers = [
            SegserveProcess(args.segserve,
                            common + [f"--auth_tokens_file={tokens}"],
                            os.path.join(tmp, "segserve.log")),
            SegserveProcess(args.segserve,
                            common + ["--http_playground=false"],
                            os.path.join(tmp, "segserve-off.log"))]
        driver = None
        try:
            for server in servers:
                server.wait_ready()
            ports = [ready_http_port(s.log_text()) for s in servers]
            check_no_playground(ports[1])
            driver = browser()
            try:
                check_page(driver, ports[0], image_path, image)
            finally:
                screenshot = os.path.join(args.artifacts, "playground.png")
                driver.save_screenshot(screenshot)
                print(f"screenshot: {screenshot}")
        finally:
            if driver is not None:
                driver.quit()
            for server in servers:
                server.stop()
    print(f"{time.time() - started:.1f} s")
    if failures:
        sys.exit(f"playground test: {len(failures)} failure(s): {failures}")
    print("playground test: ok")


if __name__ == "__main__":
    main()
