"""``pocketvision serve RUN``: a page and a JSON API for one trained run.

- :mod:`~pocketvision.web.served`: the loaded run, predictions and the model card.
- :mod:`~pocketvision.web.onnx_cache`: the ONNX file the browser runs (RUN/web/model.onnx).
- :mod:`~pocketvision.web.playground`: the convolution playground on the scratch engine.
- :mod:`~pocketvision.web.app`: the FastAPI app, its limits and routes.
- ``static/``: the page (``preprocess.js`` reproduces pocketvision.preprocess bit for bit);
  ``static/vendor/`` is onnxruntime-web, copied from npm by ``make web-assets``.

Nothing here is imported by ``pocketvision --help``: FastAPI and torch load in the handler.
"""
