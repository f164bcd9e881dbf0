"""POST /v1/models/NAME[/versions/N]:explain over HTTP: the maps are Predictor.explain's, the
overlay is a PNG of the patch and a colour bar, bad parameters are 400s that say what to fix."""
import base64
import io
import json
import pathlib

import numpy as np
import pytest

requests = pytest.importorskip("requests", reason="python3-requests is not installed")


def b64(path):
    return {"b64": base64.b64encode(pathlib.Path(path).read_bytes()).decode()}


def overlay_width(size):
    """cam_overlay's width for an SxS map: the patch, a gap and the colour bar."""
    return size + max(2, size // 32) + max(4, size // 12)


def test_explain_over_http_matches_the_predictor(serving):
    import histocnn
    from PIL import Image
    base = f"{serving.url}/v1/models/{serving.model_name}"
    for version in serving.versions:
        predictor = histocnn.Predictor(serving.base_path / version)
        size = predictor.image_size
        r = requests.post(f"{base}/versions/{version}:explain",
                          json={"instances": [b64(serving.patch)], "parameters": {"outputs": ["overlay", "map"]}})
        assert r.status_code == 200, r.text
        assert r.headers["X-Model-Version"] == version
        body = r.json()
        assert body["method"] == "gradcam" and body["layer"] == predictor.default_layer
        [e] = body["explanations"]
        expected = predictor.explain([str(serving.patch)])[0]
        assert np.allclose(np.array(e["map"], dtype=np.float32), expected, atol=1.1e-4)
        overlay = Image.open(io.BytesIO(base64.b64decode(e["overlay"]["b64"])))
        assert overlay.format == "PNG" and overlay.mode == "RGB"
        assert overlay.size == (overlay_width(size), size)

    # A named layer at its own resolution, the columnar form, Grad-CAM++.
    predictor = histocnn.Predictor(serving.base_path / serving.versions[-1])
    layers = predictor.explain_layers()
    r = requests.post(f"{base}:explain", data=json.dumps({
        "inputs": [b64(serving.patch)],
        "parameters": {"layer": "features.4", "method": "gradcam++", "outputs": ["layer_map"]}}))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["layer_size"] == list(layers["features.4"][1:])
    got = np.array(body["explanations"][0]["layer_map"], dtype=np.float32)
    want = predictor.explain([str(serving.patch)], method="gradcam++", layer="features.4", upsample=False)[0]
    assert np.allclose(got, want, atol=1.1e-4)
    metrics = requests.get(f"{serving.url}/monitoring/prometheus/metrics").text
    assert 'endpoint="explain"' in metrics


def test_the_python_client_explains(serving):
    import histocnn
    client = histocnn.Client(serving.url, model=serving.model_name, version=int(serving.versions[0]))
    [e] = client.explain(str(serving.patch), outputs=("overlay", "map", "layer_map"), layer="features.4")
    assert client.last_version == serving.versions[0]
    predictor = histocnn.Predictor(serving.base_path / serving.versions[0])
    size = predictor.image_size
    assert e["overlay"].shape == (size, overlay_width(size), 3) and e["overlay"].dtype == np.uint8
    assert np.allclose(e["map"], predictor.explain([str(serving.patch)], layer="features.4")[0], atol=1.1e-4)
    assert e["layer_map"].shape == predictor.explain_layers()["features.4"][1:]
    with pytest.raises(histocnn.ServingError, match="gradcam, gradcam"):
        client.explain(str(serving.patch), method="lime")


def test_explain_errors_over_http(serving):
    base = f"{serving.url}/v1/models/{serving.model_name}"
    r = requests.post(f"{base}:explain", json={"instances": [b64(serving.patch)], "parameters": {"layer": "layer4"}})
    assert r.status_code == 400 and "no layer 'layer4'" in r.json()["error"], r.text
    r = requests.post(f"{base}:explain", json={"instances": [b64(serving.patch)], "parameters": {"outputs": ["png"]}})
    assert r.status_code == 400 and "overlay" in r.json()["error"]
    r = requests.post(f"{serving.url}/v1/models/nope:explain", json={"instances": [b64(serving.patch)]})
    assert r.status_code == 404
    r = requests.post(f"{base}:explain", json={"instances": [{"b64": "bm90IGFuIGltYWdl"}]})
    assert r.status_code == 400 and "instance 0" in r.json()["error"]
